"""The building blocks every model uses, in one place: convolution, pooling, LRN.

All layers take NHWC inputs. Output-size arithmetic lives here and nowhere else:
`conv_output_size` and `resolve_padding` are what the layers, the convnet's collapse
check and `summary.py` all use.

Padding may be given as
  'SAME'   TensorFlow's rule: output = ceil(n / stride), extra padding on the right;
  'VALID'  no padding;
  int p    p pixels on every side (PyTorch's `padding=p`);
  (ph, pw) per spatial axis, symmetric;
  ((top, bottom), (left, right)) fully explicit.
"""

import math
from typing import Any, Callable, Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

Padding = Any  # 'SAME' | 'VALID' | int | (int, int) | ((int, int), (int, int))


class AuxLogits(nnx.Variable):
  """What an auxiliary classifier (GoogLeNet section 5) sows during a training call: a
  (loss weight, logits) pair; the trainer adds each one's weighted loss."""


def sow_auxiliary(module: nnx.Module, name: str, weight: float, logits):
  """Hand the trainer an auxiliary classifier's logits and the weight of its loss."""
  module.sow(AuxLogits, f'{name}_logits', (weight, logits))


def with_auxiliary(model: nnx.Module, *args, **kwargs):
  """(model(*args, **kwargs), [(weight, logits)] of every auxiliary classifier it sowed
  during the call; none: [])."""
  out, sown = nnx.capture(lambda m: m(*args, **kwargs), AuxLogits)(model)
  pairs = jax.tree.leaves(sown, is_leaf=lambda v: isinstance(v, AuxLogits))
  return out, [pair for variable in pairs for pair in variable.get_value()]


PADDING_MODES = {'zeros': 'constant', 'reflect': 'reflect', 'edge': 'edge',
                 'circular': 'wrap'}

he_normal = nnx.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def param_key(rngs: nnx.Rngs) -> jax.Array:
  """The next key of the `params` stream: `rngs.params()`, the same key, but its count
  replaced whole. (flax 0.12.8's in-place `count[...] += 1` compares the traced count's
  sharding, and asking a traced value for it walks the whole trace: a model built under
  jit or eval_shape took time quadratic in its layers, ResNet-1202 196 s instead of 6.)"""
  stream = rngs.params
  key = jax.random.fold_in(stream.key[...], stream.count[...])
  stream.count.set_value(stream.count[...] + 1)
  return key


class BatchNorm(nnx.Module):
  """Batch normalisation (Ioffe & Szegedy 2015) exactly as PyTorch's BatchNorm2d, which
  the torchvision and fb.resnet.torch recipes use.

  Training normalises with the batch's mean and biased variance, over every axis but
  the channels (under jit: the global batch, so the statistics are synchronised across
  devices), and keeps running averages for evaluation. PyTorch, and this layer, average
  the *unbiased* variance, n/(n-1) times the biased one (flax's BatchNorm averages the
  biased one: at batch 16 on ResNet-18 the running variances ended 2.4e-3 apart).
  momentum is the old average's weight (PyTorch's momentum=0.1 is 0.9 here); eps 1e-5.
  Parameters {scale, bias} and statistics {mean, var} (nnx.BatchStat) are float32
  whatever `dtype` computes. `use_scale=False`: no scale parameter, a fixed 1 (airbench
  freezes it). `model.eval()` sets use_running_average, as PyTorch's `model.eval()`.
  """

  def __init__(self, num_features: int, *, momentum: float = 0.9, epsilon: float = 1e-5,
               use_scale: bool = True, scale_init: Callable = nnx.initializers.ones,
               dtype: Any = None, rngs: nnx.Rngs):
    # scale_init zeros: a residual branch starts as the identity (Goyal et al. 2017)
    self.momentum, self.epsilon, self.dtype = momentum, epsilon, dtype
    self.use_running_average = False
    shape = (num_features,)
    self.scale = (nnx.Param(scale_init(param_key(rngs), shape, jnp.float32))
                  if use_scale else None)
    self.bias = nnx.Param(jnp.zeros(shape, jnp.float32))
    self.mean = nnx.BatchStat(jnp.zeros(shape, jnp.float32))
    self.var = nnx.BatchStat(jnp.ones(shape, jnp.float32))

  def __call__(self, x):
    scale = 1.0 if self.scale is None else self.scale[...]
    if self.use_running_average:
      mean, var = self.mean[...], self.var[...]
    else:
      axes = tuple(range(x.ndim - 1))
      xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
      mean = jnp.mean(xf, axes)
      var = jnp.maximum(jnp.mean(jnp.square(xf), axes) - jnp.square(mean), 0.0)  # biased
      n, m = x.size // x.shape[-1], self.momentum
      # (set_value, not `[...] =`: flax 0.12.8's in-place update asks the traced value
      # for its sharding, which walks the whole trace: see param_key)
      self.mean.set_value(m * self.mean[...] + (1 - m) * mean)
      self.var.set_value(m * self.var[...] + (1 - m) * var * (n / max(n - 1, 1)))
    y = (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + self.bias[...]
    return y.astype(self.dtype or x.dtype)


def pair(v) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
  """The extent of a dilated kernel: d(k-1)+1."""
  return dilation * (kernel - 1) + 1


def conv_output_size(n: int, kernel: int, stride: int = 1, pad: tuple[int, int] = (0, 0),
                     dilation: int = 1, ceil_mode: bool = False) -> int:
  """floor((n + p_lo + p_hi - d(k-1) - 1) / s) + 1, or PyTorch's ceil_mode rule."""
  span = n + pad[0] + pad[1] - effective_kernel(kernel, dilation)
  if not ceil_mode:
    return span // stride + 1
  out = -(-span // stride) + 1
  # PyTorch: the last window must start inside the input or the left padding.
  if (out - 1) * stride >= n + pad[0]:
    out -= 1
  return out


def resolve_padding(padding: Padding, sizes: Sequence[int], kernel, stride=1,
                    dilation=1) -> tuple[tuple[int, int], tuple[int, int]]:
  """Explicit ((top, bottom), (left, right)) padding for an input of spatial `sizes`."""
  kernel, stride, dilation = pair(kernel), pair(stride), pair(dilation)
  if isinstance(padding, str):
    if padding.upper() == 'VALID':
      return ((0, 0), (0, 0))
    if padding.upper() != 'SAME':
      raise ValueError(f"padding must be 'SAME', 'VALID', an int or pairs; got {padding!r}")
    totals = [max((math.ceil(n / s) - 1) * s + effective_kernel(k, d) - n, 0)
              for n, k, s, d in zip(sizes, kernel, stride, dilation)]
    return tuple((total // 2, total - total // 2) for total in totals)
  # an int or (ph, pw) pads both sides alike: each axis's entry through `pair`
  return tuple(pair(p) for p in pair(padding))


def _check_fits(layer: str, sizes, kernel, dilation, pads):
  """Raise ValueError naming the layer when a window does not fit its padded input."""
  for axis, n, k, d, (lo, hi) in zip('HW', sizes, kernel, dilation, pads):
    if n + lo + hi < effective_kernel(k, d):
      raise ValueError(
          f'{layer}: kernel {k} (dilation {d}, extent {effective_kernel(k, d)}) is larger '
          f'than its padded input along {axis}: {n} + padding {lo}+{hi} = {n + lo + hi}. '
          'The stack collapses the image: use a larger image_size, or fewer/smaller '
          'strides, pools or kernels.')


def xla_cpu_loops_over(sizes, kernel, stride, dilation, pads) -> bool:
  """Whether XLA:CPU would run this convolution, or its input gradient, as a naive loop:
  its algebraic simplifier swaps the operands of a convolution whose window has more
  positions than the map it slides over (XLA's conv_operand_swapper), and its fast
  convolution kernels (YNNPACK, Eigen) take no swapped form. The map is the input for
  the forward and the output (the incoming gradient) for the input gradient: VGG-A's
  3x3 convolutions on CIFAR's 2x2 maps took 600-750 ms each so, three quarters of its
  step. Only on CPU: GPUs and TPUs keep their own convolutions (docs/DESIGN.md, "CPU
  speed")."""
  if jax.default_backend() != 'cpu':
    return False
  window = math.prod(kernel)
  out = [conv_output_size(n, k, s, pad, d)
         for n, k, s, d, pad in zip(sizes, kernel, stride, dilation, pads)]
  return window > min(math.prod(sizes), math.prod(out))


def windows(x, kernel, stride=1, dilation=1):
  """(N, H, W, C) -> (N, OH, OW, kh*kw*C): every kh x kw window of `x` (every
  `stride`-th, its taps `dilation` apart), flattened in the order `flatten` uses (kh,
  kw, c), so a Dense layer on it is a valid conv."""
  (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
  oh = (x.shape[1] - effective_kernel(kh, dh)) // sh + 1
  ow = (x.shape[2] - effective_kernel(kw, dw)) // sw + 1
  return jnp.concatenate(
      [x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
       for i in range(kh) for j in range(kw)], axis=-1)


def conv_as_matmul(x, kernel, stride, dilation, pads, groups: int = 1):
  """The convolution as one matrix product: each output position's window (kh*kw taps of
  C channels, from strided slices of the padded input) against the kernel as a
  (kh*kw*C, out) matrix. Its gradients are matrix products and slice sums, never a
  convolution; it costs a window's copy of the input, small where it is used (maps no
  larger than the kernel). With `groups`, as lax's feature_group_count and PyTorch's
  `groups`: the channels in `groups` consecutive blocks, block g's taps against block g
  of the outputs only, a batch of `groups` products. (XLA:CPU loops over grouped
  convolutions too: a 3x3 conv of 512 channels in 32 groups on 2x2 maps, batch 128,
  forward and both gradients, took 954 ms as a convolution and 60 ms so; depthwise, 91
  and 30 ms.)"""
  kh, kw, c_in, c_out = kernel.shape  # (c_in: the channels of one group)
  taps = windows(jnp.pad(x, ((0, 0), *pads, (0, 0))), (kh, kw), stride, dilation)
  if groups == 1:
    return taps @ kernel.reshape(kh * kw * c_in, c_out)
  n, oh, ow = taps.shape[:3]
  taps = taps.reshape(n, oh, ow, kh * kw, groups, c_in)
  kernel = kernel.reshape(kh * kw, c_in, groups, c_out // groups)
  return jnp.einsum('nhwtgc,tcgo->nhwgo', taps, kernel).reshape(n, oh, ow, c_out)


def layer_name(module) -> str:
  """The module's path in its model ('layer1.0.conv1', as PyTorch prints it), set by
  name_layers; its type before that."""
  return getattr(module, 'path', '') or type(module).__name__


def name_layers(model: nnx.Module) -> nnx.Module:
  """Give every submodule its path, for the messages of the shape checks."""
  for path, module in nnx.iter_modules(model):
    if path:
      module.path = '.'.join(map(str, path))
  return model


class Conv(nnx.Module):
  """2-D convolution with stride, dilation, groups and four padding modes, as PyTorch's
  nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups).

  Parameters: `kernel` (kh, kw, in/groups, out) and `bias` (out,), float32; the
  computation runs in `dtype`. Non-zero padding modes ('reflect', 'edge' = repeat the
  nearest pixel, 'circular') pad the input explicitly before a VALID convolution.
  """

  def __init__(self, in_channels: int, out_channels: int, kernel_size: Any = 3,
               stride: Any = 1, padding: Padding = 'SAME', *, padding_mode: str = 'zeros',
               dilation: Any = 1, groups: int = 1, use_bias: bool = True,
               dtype: Any = jnp.float32,
               # He et al. 2015 (ResNet section 3.4 uses it): N(0, 2/fan_out), as torchvision
               kernel_init: Callable = he_normal, rngs: nnx.Rngs):
    if padding_mode not in PADDING_MODES:
      raise ValueError(f'Conv: padding_mode must be one of {sorted(PADDING_MODES)}; got '
                       f'{padding_mode!r}')
    if groups < 1 or in_channels % groups or out_channels % groups:
      raise ValueError(f'Conv: groups={groups} must be a positive divisor of the input '
                       f'({in_channels}) and output ({out_channels}) channels')
    self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
    self.padding, self.padding_mode, self.groups, self.dtype = padding, padding_mode, groups, dtype
    self.kernel = nnx.Param(kernel_init(
        param_key(rngs), (*self.kernel_size, in_channels // groups, out_channels),
        jnp.float32))
    self.bias = (nnx.Param(nnx.initializers.zeros(param_key(rngs), (out_channels,),
                                                  jnp.float32)) if use_bias else None)

  def __call__(self, x):
    pads = resolve_padding(self.padding, x.shape[1:3], self.kernel_size, self.stride,
                           self.dilation)
    _check_fits(layer_name(self), x.shape[1:3], self.kernel_size, self.dilation, pads)
    x = x.astype(self.dtype)
    if self.padding_mode != 'zeros' and any(p for pad in pads for p in pad):
      x = jnp.pad(x, ((0, 0), *pads, (0, 0)), mode=PADDING_MODES[self.padding_mode])
      pads = ((0, 0), (0, 0))
    kernel = self.kernel[...].astype(self.dtype)
    if xla_cpu_loops_over(x.shape[1:3], self.kernel_size, self.stride, self.dilation, pads):
      y = conv_as_matmul(x, kernel, self.stride, self.dilation, pads, self.groups)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, window_strides=self.stride, padding=pads, rhs_dilation=self.dilation,
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=self.groups)
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


class Sequential(nnx.List):
  """PyTorch's nn.Sequential: layers (modules, or functions such as jax.nn.relu) applied
  in order. Its children are numbered as torchvision numbers them (`features[3]`,
  state path features.3), so torchvision's names are ours."""

  def __init__(self, *layers_in_order):
    super().__init__(layers_in_order)

  def __call__(self, x):
    for layer in self:
      x = layer(x)
    return x


def Linear(in_features: int, out_features: int, *, dtype: Any = jnp.float32,
           rngs: nnx.Rngs, **kw) -> nnx.Linear:
  """A fully connected layer (PyTorch's nn.Linear): nnx.Linear, float32 parameters
  (LeCun normal kernel, zero bias) computing in `dtype`."""
  return nnx.Linear(in_features, out_features, dtype=dtype, param_dtype=jnp.float32,
                    rngs=rngs, **kw)


def _pool(x, init, op, kernel, stride, pads, extra):
  """reduce_window over H and W, with `extra` right-padding for ceil_mode."""
  padding = ((0, 0), (pads[0][0], pads[0][1] + extra[0]),
             (pads[1][0], pads[1][1] + extra[1]), (0, 0))
  init = np.array(init, x.dtype)  # a concrete identity, so autodiff knows the monoid
  return jax.lax.reduce_window(x, init, op, (1, *kernel, 1), (1, *stride, 1), padding)


def _pool_geometry(pool, x):
  """(kernel, stride, pads, the right-padding ceil_mode adds) of a MaxPool's or AvgPool's
  window over `x`, which must fit its padded input (else a ValueError naming the layer)."""
  kernel = pair(pool.kernel_size)
  stride = pair(kernel if pool.stride is None else pool.stride)
  pads = resolve_padding(pool.padding, x.shape[1:3], kernel, stride)
  _check_fits(layer_name(pool), x.shape[1:3], kernel, (1, 1), pads)
  extra = []
  for n, k, s, pad in zip(x.shape[1:3], kernel, stride, pads):
    out = conv_output_size(n, k, s, pad, ceil_mode=pool.ceil_mode)
    extra.append(max((out - 1) * s + k - (n + pad[0] + pad[1]), 0))
  return kernel, stride, pads, tuple(extra)


def adaptive_bins(n: int, out: int) -> np.ndarray:
  """(out, n) averaging matrix with PyTorch's bins [floor(i n/out), ceil((i+1) n/out))."""
  i, j = np.arange(out)[:, None], np.arange(n)
  inside = (j >= i * n // out) & (j < -(-(i + 1) * n // out))
  return (inside / inside.sum(axis=1, keepdims=True)).astype(np.float32)


# Pooling and LRN as parameter-free modules, so that summaries and error messages see
# them as named layers.


class MaxPool(nnx.Module):
  """Max pooling, as torch.nn.MaxPool2d; padded positions never win (PyTorch's -inf
  padding)."""

  def __init__(self, kernel_size: Any = 2, stride: Any = None, padding: Padding = 0,
               ceil_mode: bool = False):
    self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
    self.ceil_mode = ceil_mode

  def __call__(self, x):
    kernel, stride, pads, extra = _pool_geometry(self, x)
    return _pool(x, -jnp.inf, jax.lax.max, kernel, stride, pads, extra)


class AvgPool(nnx.Module):
  """Average pooling with PyTorch's divisor rules: with count_include_pad the explicit
  padding counts in the divisor, but the ceil_mode overhang past it never does (as in
  torch.nn.AvgPool2d)."""

  def __init__(self, kernel_size: Any = 2, stride: Any = None, padding: Padding = 0,
               ceil_mode: bool = False, count_include_pad: bool = True):
    self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
    self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

  def __call__(self, x):
    kernel, stride, pads, extra = _pool_geometry(self, x)
    total = _pool(x, 0., jax.lax.add, kernel, stride, pads, extra)
    ones = jnp.ones((1, *x.shape[1:3], 1), jnp.float32)
    if self.count_include_pad:  # the padding counted as ones, the ceil_mode overhang not
      ones = jnp.pad(ones, ((0, 0), *pads, (0, 0)), constant_values=1)
      pads = ((0, 0), (0, 0))
    count = _pool(ones, 0., jax.lax.add, kernel, stride, pads, extra)
    return total / count.astype(x.dtype)


class AdaptiveAvgPool(nnx.Module):
  """torch.nn.AdaptiveAvgPool2d: exact bins, also when the input is smaller."""

  def __init__(self, output_size: Any = 1):
    self.output_size = output_size

  def __call__(self, x):
    (oh, ow), (_, h, w, _) = pair(self.output_size), x.shape
    if (h, w) == (oh, ow):
      return x
    ph = jnp.asarray(adaptive_bins(h, oh), x.dtype)
    pw = jnp.asarray(adaptive_bins(w, ow), x.dtype)
    return jnp.einsum('oh,nhwc,pw->nopc', ph, x, pw)


class GlobalAvgPool(nnx.Module):
  """Mean over H and W: (N, H, W, C) -> (N, C)."""

  def __call__(self, x):
    return jnp.mean(x, axis=(1, 2))


class LocalResponseNorm(nnx.Module):
  """torch.nn.LocalResponseNorm across channels: x / (k + alpha/n * sum x^2)^beta.

  Note PyTorch divides alpha by the window size n; the AlexNet paper's equation (section
  3.3) does not, so the paper's alpha=1e-4 is alpha=5e-4 here (see alexnet.py).
  """

  def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

  def __call__(self, x):
    size = self.size
    sq = jnp.square(x.astype(jnp.float32))
    # window of `size` channels centred on c: size//2 before, (size-1)//2 after
    window_sum = jax.lax.reduce_window(sq, 0., jax.lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                                       ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
    return (x / jnp.power(self.k + self.alpha / size * window_sum, self.beta)).astype(x.dtype)


def flatten(x):
  """(N, ...) -> (N, -1), in NHWC order (torchvision flattens NCHW; see the importer)."""
  return x.reshape(x.shape[0], -1)


def check_head_input(model: nnx.Module, x, side: int, *, built_for: int | None = None,
                     native: int | None = None):
  """A fully connected head of fixed size needs a fixed-size map: say which image size
  gives it (`built_for`: the image_size the model was created with; `native`: the only
  size a model takes)."""
  if tuple(x.shape[1:3]) == (side, side):
    return
  size = built_for or native
  fix = (f'use {size}x{size} images or create the model with image_size set to yours'
         if built_for else f'use the native input size ({size}x{size})')
  raise ValueError(f'{layer_name(model)}: the fully connected head needs a {side}x{side} '
                   f'feature map but this image size gives {x.shape[1]}x{x.shape[2]}; '
                   f'{fix}.')


def identity(x):
  """PyTorch's nn.Identity: an optional layer (a BN, an LRN, a pool, a dropout) left out."""
  return x


ACTIVATIONS = {'relu': jax.nn.relu, 'tanh': jnp.tanh, 'gelu': jax.nn.gelu,
               'silu': jax.nn.silu, 'elu': jax.nn.elu, 'leaky_relu': jax.nn.leaky_relu,
               'sigmoid': jax.nn.sigmoid, 'identity': identity}


def activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f'unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]
