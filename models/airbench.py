"""airbench (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv
2404.00498; the `airbench` package 0.1.8): a small VGG-like network built for speed.

  2x2 whitening conv (frozen, from the training patches' covariance; bias trained for the
  first epochs) -> GELU -> three conv groups [conv 3x3, maxpool 2, BN, GELU, conv 3x3,
  BN, GELU] -> maxpool 3 -> linear (no bias) -> x 1/9

airbench94: widths 64-256-256. airbench95: 128-384-384. airbench96: 128-512-512 with a
third conv in each group, added to the group's pooled input (a residual). Convolutions
have no bias and start as identities where they can (dirac: output i copies input i
for i below the input width); the rest as PyTorch's default. BatchNorm has no trainable
scale (frozen at 1), eps 1e-12, and keeps its running statistics with weight 0.6 on the
old value (PyTorch's momentum 0.4).
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import layers

WIDTHS = {'airbench94': (64, 256, 256), 'airbench95': (128, 384, 384),
          'airbench96': (128, 512, 512)}
WHITEN_KERNEL = 2
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL ** 2  # each eigenvector of 2x2x3 patches and its negative
WHITEN_EPS = 5e-4


def torch_default_init(key, shape, dtype=jnp.float32):
  """PyTorch's default for Conv2d and Linear weights: kaiming_uniform(a=sqrt(5)), that is
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (HWIO or (in, out) shapes)."""
  fan_in = int(np.prod(shape[:-1]))
  bound = 1 / np.sqrt(fan_in)
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def dirac_init(key, shape, dtype=jnp.float32):
  """PyTorch's default, then torch.nn.init.dirac_ on the first `in` output filters: a 3x3
  conv that starts by passing its first channels through."""
  kernel = torch_default_init(key, shape, dtype)
  kh, kw, cin, cout = shape
  n = min(cin, cout)
  identity = jnp.zeros((kh, kw, cin, n), dtype).at[kh // 2, kw // 2, jnp.arange(n),
                                                    jnp.arange(n)].set(1)
  return kernel.at[..., :n].set(identity)


def whitening_weights(images, eps: float = WHITEN_EPS) -> np.ndarray:
  """The whitening conv's kernel (2, 2, 3, 24) HWIO from float NHWC images (normalised,
  as the network sees them): the eigenvectors of their 2x2 patches' covariance, each
  scaled by 1/sqrt(eigenvalue + eps), largest eigenvalue first, then their negatives."""
  x = np.asarray(images, np.float32)
  k = WHITEN_KERNEL
  patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
  patches = patches.reshape(-1, x.shape[-1] * k * k)  # (c, h, w) order, as the reference
  covariance = patches.T @ patches / len(patches)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
  eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1].T  # rows, descending
  scaled = eigenvectors / np.sqrt(eigenvalues + eps)[:, None]
  filters = np.concatenate([scaled, -scaled]).reshape(-1, x.shape[-1], k, k)  # OIHW
  return np.ascontiguousarray(filters.transpose(2, 3, 1, 0))  # HWIO


class ConvGroup(nn.Module):
  width: int
  residual: bool = False  # airbench96: a third conv, added to the pooled input
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda name: layers.Conv(self.width, 3, padding='SAME', use_bias=False,
                                    kernel_init=dirac_init, dtype=self.dtype, name=name)
    norm = lambda name: layers.BatchNorm(use_running_average=not train, momentum=0.6,
                                         epsilon=1e-12, use_scale=False, dtype=self.dtype,
                                         name=name)
    gelu = lambda x: nn.gelu(x, approximate=False)  # torch.nn.GELU: the exact erf form
    x = layers.MaxPool(2, 2, name='pool')(conv('conv1')(x))
    x = gelu(norm('norm1')(x))
    pooled = x
    x = gelu(norm('norm2')(conv('conv2')(x)))
    if self.residual:
      x = gelu(norm('norm3')(conv('conv3')(x))) + pooled
    return x


class AirBench(nn.Module):
  """airbench's network (see the module docstring); `whiten/kernel` comes from
  `whitening_weights` of the training images, set once before training."""
  frozen_params: ClassVar[tuple] = ('whiten/kernel',)  # never updated by the optimizer
  init_images: ClassVar[int] = 5000  # init_from_data's training images (the whitening's)
  variant: str = 'airbench94'
  num_classes: int = 10
  scaling_factor: float = 1 / 9
  whiten_bias_epochs: float = 3  # the whitening bias trains for these first epochs
  dtype: Any = jnp.float32

  def frozen_after_epochs(self) -> dict:
    return {'whiten/bias': self.whiten_bias_epochs}

  def init_from_data(self, params, images):
    """params with the whitening kernel of `images` (the first 5,000 training images,
    normalised, as airbench's train() takes them)."""
    kernel = whitening_weights(images)
    return {**params, 'whiten': {**params['whiten'], 'kernel': kernel}}

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.variant not in WIDTHS:
      raise ValueError(f'airbench variant must be one of {sorted(WIDTHS)}; got {self.variant!r}')
    x = layers.Conv(WHITEN_WIDTH, WHITEN_KERNEL, padding='VALID', kernel_init=torch_default_init,
                    dtype=self.dtype, name='whiten')(x)
    x = nn.gelu(x, approximate=False)
    for i, width in enumerate(WIDTHS[self.variant]):
      x = ConvGroup(width, residual=self.variant == 'airbench96', dtype=self.dtype,
                    name=f'block{i + 1}')(x, train)
    x = layers.MaxPool(3, 3, name='pool')(x)
    x = nn.Dense(self.num_classes, use_bias=False, kernel_init=torch_default_init,
                 dtype=self.dtype, name='head')(layers.flatten(x))
    return x * self.scaling_factor
