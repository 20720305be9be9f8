"""Layers against PyTorch: output sizes, receptive fields, LRN, pooling, padding modes."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import models
from models import layer_stats, layers


def to_torch(x):
  return torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2)


def from_torch(t):
  return t.permute(0, 2, 3, 1).detach().numpy()


class Stack(nnx.Module):
  """A sequential stack of ('conv', k, s, d, p) and ('max'|'avg', k, s, p, ceil) layers."""

  def __init__(self, spec: tuple, *, rngs: nnx.Rngs):
    stack, channels = [], 3
    for kind, *a in spec:
      if kind == 'conv':
        k, s, d, p = a
        stack.append(layers.Conv(channels, 4, k, s, padding=p, dilation=d, rngs=rngs))
        channels = 4
      else:
        k, s, p, ceil = a
        pool = layers.MaxPool if kind == 'max' else layers.AvgPool
        stack.append(pool(k, s, p, ceil_mode=ceil))
    self.stack = layers.Sequential(*stack)

  def __call__(self, x):
    return self.stack(x)


def random_stack(rng, n):
  spec, torch_layers, size = [], [], n
  for _ in range(rng.integers(1, 6)):
    k, s = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    if rng.random() < 0.6:
      d, p = int(rng.integers(1, 3)), int(rng.integers(0, 3))
      spec.append(('conv', k, s, d, p))
      torch_layers.append(torch.nn.Conv2d(4 if any(l[0] == 'conv' for l in spec[:-1]) else 3, 4,
                                          k, s, p, d))
    else:
      kind, ceil = ('max', 'avg')[rng.integers(2)], bool(rng.integers(2))
      p = int(rng.integers(0, k // 2 + 1))  # PyTorch: padding <= kernel / 2
      spec.append((kind, k, s, p, ceil))
      cls = torch.nn.MaxPool2d if kind == 'max' else torch.nn.AvgPool2d
      torch_layers.append(cls(k, s, p, ceil_mode=ceil))
  return tuple(spec), torch_layers


def test_random_stacks_sizes_and_receptive_fields():
  rng = np.random.default_rng(0)
  checked = 0
  for _ in range(60):
    n = int(rng.integers(8, 40))
    spec, torch_layers = random_stack(rng, n)
    t = torch.zeros(1, 3, n, n)
    try:
      torch_sizes = []
      for layer in torch_layers:
        t = layer(t)
        torch_sizes.append(t.shape[-1])
    except RuntimeError:
      with pytest.raises(ValueError, match='larger than its padded input'):
        layer_stats.layer_table(Stack(spec, rngs=nnx.Rngs(0)), n)
      continue
    rows = layer_stats.layer_table(Stack(spec, rngs=nnx.Rngs(0)), n)
    size, r, j = n, 1, 1
    for (kind, k, s, *rest), row, torch_size in zip(spec, rows, torch_sizes):
      d, p, ceil = (rest[0], rest[1], False) if kind == 'conv' else (1, rest[0], rest[1])
      span = size + 2 * p - d * (k - 1) - 1
      if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:  # the last window must start inside
          out -= 1
      else:
        out = span // s + 1
      r, j = r + (k - 1) * d * j, j * s
      assert row['output_shape'][0] == out == torch_size
      assert (row['rf'], row['jump']) == (r, j)
      size = out
    checked += 1
  assert checked > 30


@pytest.mark.fast
def test_local_response_norm_matches_pytorch():
  x = np.random.default_rng(0).normal(size=(2, 5, 5, 16)).astype(np.float32) * 3
  for size, alpha, beta, k in ((5, 1e-4, 0.75, 2.0), (4, 0.5, 0.9, 1.0), (3, 2.0, 0.5, 0.5)):
    ref = torch.nn.LocalResponseNorm(size, alpha, beta, k)(to_torch(x))
    np.testing.assert_allclose(layers.LocalResponseNorm(size, alpha, beta, k)(x),
                               from_torch(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('in_hw,out', [((13, 13), 6), ((7, 9), 7), ((3, 2), 7),
                                       ((1, 1), 6), ((10, 15), (4, 5))])
@pytest.mark.fast
def test_adaptive_avg_pool_matches_pytorch(in_hw, out):
  x = np.random.default_rng(1).normal(size=(2, *in_hw, 3)).astype(np.float32)
  ref = torch.nn.AdaptiveAvgPool2d(out)(to_torch(x))
  np.testing.assert_allclose(layers.AdaptiveAvgPool(out)(x), from_torch(ref),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('k,s,p,ceil', [(3, 2, 0, True), (3, 2, 1, True), (2, 2, 1, False),
                                        (3, 3, 1, True), (5, 3, 2, False)])
@pytest.mark.fast
def test_pooling_matches_pytorch(k, s, p, ceil):
  x = np.random.default_rng(2).normal(size=(2, 14, 11, 3)).astype(np.float32)
  ref = torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)(to_torch(x))
  np.testing.assert_allclose(layers.MaxPool(k, s, p, ceil)(x), from_torch(ref))
  for include_pad in (True, False):
    ref = torch.nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=include_pad)(
        to_torch(x))
    np.testing.assert_allclose(layers.AvgPool(k, s, p, ceil, include_pad)(x),
                               from_torch(ref), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('mode,torch_mode', [('zeros', 'zeros'), ('reflect', 'reflect'),
                                             ('edge', 'replicate'),
                                             ('circular', 'circular')])
@pytest.mark.fast
def test_conv_padding_modes_dilation_groups_match_pytorch(mode, torch_mode):
  x = np.random.default_rng(3).normal(size=(2, 12, 10, 4)).astype(np.float32)
  ref = torch.nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2,
                        padding_mode=torch_mode)
  conv = layers.Conv(4, 6, 3, 2, padding=2, padding_mode=mode, dilation=2, groups=2,
                     rngs=nnx.Rngs(0))
  conv.kernel[...] = jnp.asarray(ref.weight.detach().numpy().transpose(2, 3, 1, 0))
  conv.bias[...] = jnp.asarray(ref.bias.detach().numpy())
  np.testing.assert_allclose(conv(jnp.asarray(x)), from_torch(ref(to_torch(x))),
                             rtol=1e-5, atol=1e-5)


def conv_against_pytorch(n, k, s, d, p, groups):
  """layers.Conv and torch.nn.Conv2d with the same weights, 6 -> 12 channels on (3, n, n)
  maps: both outputs and both gradients (input and kernel) of sum(y^3)."""
  rng = np.random.default_rng(4)
  x = rng.normal(size=(3, n, n, 6)).astype(np.float32)
  ref = torch.nn.Conv2d(6, 12, k, stride=s, padding=p, dilation=d, groups=groups)
  conv = layers.Conv(6, 12, k, s, padding=p, dilation=d, groups=groups, rngs=nnx.Rngs(0))
  assert conv.kernel.shape == (k, k, 6 // groups, 12)  # (HWIO: each group's inputs)
  conv.kernel[...] = jnp.asarray(ref.weight.detach().numpy().transpose(2, 3, 1, 0))
  conv.bias[...] = jnp.asarray(ref.bias.detach().numpy())
  tx = to_torch(x).requires_grad_()
  out = ref(tx)
  (out ** 3).sum().backward()

  graph, params = nnx.split(conv)

  def loss(params, x):
    y = nnx.merge(graph, params)(x)
    return jnp.sum(y ** 3), y
  (dp, dx), y = jax.grad(loss, argnums=(0, 1), has_aux=True)(params, jnp.asarray(x))
  dk = dp['kernel'][...]
  np.testing.assert_allclose(y, from_torch(out), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, from_torch(tx.grad), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(dk, ref.weight.grad.numpy().transpose(2, 3, 1, 0),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('groups', [1, 3, 6])  # 6: depthwise, each channel to 2 outputs
@pytest.mark.parametrize('n,k,s,d,p', [(2, 3, 1, 1, 1), (1, 3, 1, 1, 1), (5, 5, 1, 1, 0),
                                       (3, 3, 2, 1, 1), (2, 3, 1, 2, 2)])
def test_small_map_conv_matches_pytorch_values_and_gradients(n, k, s, d, p, groups):
  """Maps no larger than the kernel (VGG's 2x2 maps on CIFAR, LeNet's C5): on CPU the
  layer computes them as one matrix product (layers.conv_as_matmul), per group for a
  grouped or depthwise conv; values and both gradients stay PyTorch's convolution's."""
  assert layers.xla_cpu_loops_over((n, n), (k, k), (s, s), (d, d), ((p, p), (p, p)))
  conv_against_pytorch(n, k, s, d, p, groups)


@pytest.mark.parametrize('groups', [2, 3, 6])
@pytest.mark.fast
def test_grouped_conv_matches_pytorch_values_and_gradients(groups):
  """A grouped and a depthwise conv on a map larger than its window (XLA's own grouped
  convolution, feature_group_count) against nn.Conv2d(groups=...)."""
  assert not layers.xla_cpu_loops_over((9, 9), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)))
  conv_against_pytorch(9, 3, 2, 1, 1, groups)


@pytest.mark.fast
def test_conv_refuses_groups_that_do_not_divide_its_channels():
  for groups in (4, 0):
    with pytest.raises(ValueError, match=f'groups={groups} must be a positive divisor of '
                                         r'the input \(6\) and output \(12\) channels'):
      layers.Conv(6, 12, 3, groups=groups, rngs=nnx.Rngs(0))


@pytest.mark.fast
def test_only_maps_smaller_than_the_window_take_the_matrix_product():
  """ResNet's and VGG's larger maps keep XLA's convolution (no window copy)."""
  for n, k, s in ((32, 3, 1), (8, 3, 1), (4, 3, 1), (16, 3, 2), (224, 7, 2)):
    pads = layers.resolve_padding('SAME', (n, n), k, s)
    assert not layers.xla_cpu_loops_over((n, n), (k, k), (s, s), (1, 1), pads), (n, k, s)


@pytest.mark.fast
def test_same_padding_gives_ceil_of_size_over_stride():
  for n, k, s in ((32, 3, 2), (31, 5, 2), (7, 7, 3), (224, 7, 2)):
    pads = layers.resolve_padding('SAME', (n, n), k, s)
    assert layers.conv_output_size(n, k, s, pads[0]) == -(-n // s)


@pytest.mark.fast
def test_batchnorm_matches_pytorch_in_training_and_in_its_running_statistics():
  """Normalised with the biased batch variance, averaged with the unbiased one, as
  torch.nn.BatchNorm2d (momentum 0.1 there is 0.9 here), over three training steps."""
  rng = np.random.default_rng(0)
  bn = models.functional(lambda rngs: layers.BatchNorm(5, rngs=rngs))  # as the trainer
  ours = bn.init(jax.random.key(0))
  train_step = jax.jit(lambda v, x: bn.apply(v, x, train=True))
  theirs = torch.nn.BatchNorm2d(5, momentum=0.1, eps=1e-5).train()
  for _ in range(3):
    x = (rng.normal(size=(16, 7, 7, 5)) * 3 + 1).astype(np.float32)
    y, batch_stats, _ = train_step(ours, jnp.asarray(x))
    ours = {**ours, 'batch_stats': batch_stats}
    np.testing.assert_allclose(y, from_torch(theirs(to_torch(x))), atol=1e-5)
  np.testing.assert_allclose(ours['batch_stats']['mean'], theirs.running_mean, rtol=1e-6)
  np.testing.assert_allclose(ours['batch_stats']['var'], theirs.running_var, rtol=1e-6)
  x = rng.normal(size=(4, 3, 3, 5)).astype(np.float32)
  evaluated = bn.apply(ours, jnp.asarray(x))
  np.testing.assert_allclose(evaluated, from_torch(theirs.eval()(to_torch(x))), atol=1e-5)


@pytest.mark.fast
def test_batchnorm_module_switches_with_train_and_eval_as_pytorch():
  """The eager module: model.train() normalises with the batch and updates the running
  statistics in place, model.eval() uses them and changes nothing (PyTorch's
  model.train() / model.eval())."""
  rng = np.random.default_rng(1)
  bn = layers.BatchNorm(3, rngs=nnx.Rngs(0))
  theirs = torch.nn.BatchNorm2d(3, momentum=0.1, eps=1e-5).train()
  x = (rng.normal(size=(8, 5, 5, 3)) * 2 - 1).astype(np.float32)
  np.testing.assert_allclose(bn(jnp.asarray(x)), from_torch(theirs(to_torch(x))), atol=1e-5)
  np.testing.assert_allclose(bn.var[...], theirs.running_var, rtol=1e-6)
  bn.eval()
  theirs.eval()
  x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
  np.testing.assert_allclose(bn(jnp.asarray(x)), from_torch(theirs(to_torch(x))), atol=1e-5)
  np.testing.assert_allclose(bn.mean[...], theirs.running_mean, rtol=1e-6)


@pytest.mark.fast
def test_layer_table_has_every_layer_of_lenet5_with_the_papers_figures():
  """One row per layer, in call order, LeNet-5 on a 32x32 grey image (LeCun et al. 1998,
  section II.B): parameters as the paper counts them (C1 156, C3 2,416 with the full C3,
  C5 48,120, F6 10,164, the output 84 x 10 + 10), multiply-adds by hand (output pixels x
  kernel taps x input channels), receptive fields 5, 6, 14, 16, 32."""
  model = models.create_model('lenet5', in_channels=1)
  rows = layer_stats.layer_table(model, 32, channels=1)
  want = [('Conv', (28, 28, 6), 156, 28 * 28 * 6 * 5 * 5 * 1, 5),
          ('AvgPool', (14, 14, 6), 0, 0, 6),
          ('Conv', (10, 10, 16), 2_416, 10 * 10 * 16 * 5 * 5 * 6, 14),
          ('AvgPool', (5, 5, 16), 0, 0, 16),
          ('Conv', (1, 1, 120), 48_120, 120 * 5 * 5 * 16, 32),
          ('Linear', (84,), 10_164, 84 * 120, None),
          ('Linear', (10,), 850, 10 * 84, None)]
  got = [(r['type'], r['output_shape'], r['params'], r['macs'], r['rf']) for r in rows]
  assert got == want
  assert sum(r['params'] for r in rows) == 61_706 == layer_stats.count_params(model)
