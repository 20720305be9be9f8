"""Network in Network (models/nin.py): its parameters from the paper's widths and
kernels, layer by layer against the same network written in PyTorch, the released
model's pooling sizes and initialisation, summary.py's table, configs/nin.py's recipe and
a run through the trainer."""

import csv
import io
import json
import os
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import nin as nin_config
from lib import checkpoints
from lib import optim
import models
from models import layer_stats
import train
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The CIFAR-10 network (section 4.1; the released model's kernels, widths and padding):
# per mlpconv layer, (kernel, padding, widths) of its spatial conv and two 1x1 convs,
# the last width the classes.
MLPCONV = [(5, 2, (192, 160, 96)), (5, 2, (192, 192, 192)), (3, 1, (192, 192, 'classes'))]
NAMES = ['conv1', 'cccp1', 'cccp2', 'conv2', 'cccp3', 'cccp4', 'conv3', 'cccp5', 'cccp6']


def convs(num_classes=10, in_channels=3):
  """(kernel, padding, in, out) of the nine convolutions, in order."""
  out, c = [], in_channels
  for kernel, pad, widths in MLPCONV:
    widths = [num_classes if w == 'classes' else w for w in widths]
    for i, width in enumerate(widths):
      out.append((kernel, pad, c, width) if i == 0 else (1, 0, c, width))
      c = width
  return out


def nin_params(num_classes=10, in_channels=3) -> int:
  """Each conv's k*k*in*out weights and out biases; pooling and dropout have none, and
  there is no fully connected layer (section 3.2)."""
  return sum(k * k * c_in * c_out + c_out for k, _, c_in, c_out in convs(num_classes,
                                                                          in_channels))


@pytest.mark.fast
def test_parameter_count_from_the_papers_widths_and_kernels():
  count = layer_stats.count_params(models.create_functional('nin'))
  assert count == nin_params() == 966_986
  assert layer_stats.count_params(models.create_functional('nin', num_classes=100)) == (
      nin_params(100))


def caffe_pool_size(n: int, kernel: int = 3, stride: int = 2) -> int:
  """Caffe's pooling output size (pooling_layer.cpp): rounded up."""
  return -(-(n - kernel) // stride) + 1


def test_summary_table_has_the_released_models_layers_and_sizes():
  """summary.py on nin: the released model's layers in order, 32x32 maps through the
  first mlpconv layer, Caffe's rounded-up pooling sizes (16, then 8), one 8x8 map per
  class averaged into the logits; the formula's parameters and the multiply-adds of each
  conv (output pixels x out x k*k*in)."""
  result = prewarmed.run([sys.executable, 'summary.py', '--model=nin', '--format=csv'],
                         cwd=ROOT, text=True, capture_output=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  assert [r['layer'] for r in rows] == [
      'conv1', 'cccp1', 'cccp2', 'pool1', 'drop1', 'conv2', 'cccp3', 'cccp4', 'pool2',
      'drop2', 'conv3', 'cccp5', 'cccp6', 'pool3', 'total']
  by_name = {r['layer']: r for r in rows}
  side1 = caffe_pool_size(32)
  side2 = caffe_pool_size(side1)
  assert (side1, side2) == (16, 8)
  sides = [32] * 3 + [side1] * 3 + [side2] * 3
  macs = 0
  for name, side, (k, _, c_in, c_out) in zip(NAMES, sides, convs(), strict=True):
    assert by_name[name]['output shape'] == f'{side}x{side}x{c_out}'
    assert int(by_name[name]['params']) == k * k * c_in * c_out + c_out
    assert int(by_name[name]['mult-adds']) == side * side * c_out * k * k * c_in
    macs += side * side * c_out * k * k * c_in
  assert by_name['pool1']['output shape'] == f'{side1}x{side1}x96'
  assert by_name['pool2']['output shape'] == f'{side2}x{side2}x192'
  assert by_name['pool3']['output shape'] == '10'
  assert int(by_name['total']['params']) == nin_params()
  assert int(by_name['total']['mult-adds']) == macs == 222_486_528


def torch_nin(num_classes=10):
  """The released network written in PyTorch (the Caffe layers one for one): ReLU after
  every conv, ceil-mode pools (Caffe's rounding), global average pooling."""
  nn = torch.nn
  layers_in_order = []
  for i, (k, pad, c_in, c_out) in enumerate(convs(num_classes)):
    layers_in_order += [nn.Conv2d(c_in, c_out, k, padding=pad), nn.ReLU()]
    if i == 2:
      layers_in_order += [nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(0.5)]
    if i == 5:
      layers_in_order += [nn.AvgPool2d(3, 2, ceil_mode=True), nn.Dropout(0.5)]
  layers_in_order += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
  return nn.Sequential(*layers_in_order)


def test_layer_by_layer_logits_and_gradients_equal_pytorchs():
  """With the same weights, every layer's output (each conv before its ReLU, each pool,
  the logits) and the gradients of a loss on the logits, for every kernel, bias and the
  input, equal those of the network written in PyTorch (evaluation mode: no dropout)."""
  torch.manual_seed(0)
  ref = torch_nin().eval()
  rng = np.random.default_rng(0)
  with torch.no_grad():  # He-scaled weights and non-zero biases keep every layer alive
    for conv in (m for m in ref if isinstance(m, torch.nn.Conv2d)):
      fan_in = conv.weight[0].numel()
      conv.weight.copy_(torch.from_numpy(
          rng.normal(0, np.sqrt(2 / fan_in), conv.weight.shape).astype(np.float32)))
      conv.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, conv.bias.shape)
                                       .astype(np.float32)))
  model = models.create_model('nin', rngs=nnx.Rngs(0))
  ref_convs = [m for m in ref if isinstance(m, torch.nn.Conv2d)]
  for name, conv in zip(NAMES, ref_convs, strict=True):
    getattr(model, name).kernel[...] = jnp.asarray(
        conv.weight.detach().numpy().transpose(2, 3, 1, 0))
    getattr(model, name).bias[...] = jnp.asarray(conv.bias.detach().numpy())
  model.eval()

  x = rng.normal(size=(4, 32, 32, 3)).astype(np.float32)
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
  theirs, t = {}, tx
  kinds = {torch.nn.Conv2d: 'Conv', torch.nn.MaxPool2d: 'MaxPool',
           torch.nn.AvgPool2d: 'AvgPool', torch.nn.Flatten: 'GlobalAvgPool'}
  for layer in ref:
    t = layer(t)
    if type(layer) in kinds:
      theirs.setdefault(kinds[type(layer)], []).append(t)
  ours = {}
  with layer_stats.calls_of(model, lambda name, m, inp, out: ours.setdefault(
      type(m).__name__, []).append(out)):
    logits = model(jnp.asarray(x))
  assert {k: len(v) for k, v in ours.items()} == {
      'Conv': 9, 'MaxPool': 1, 'AvgPool': 1, 'GlobalAvgPool': 1, 'Dropout': 2}
  for kind, outputs in theirs.items():
    for got, want in zip(ours[kind], outputs, strict=True):
      want = want.detach().numpy()
      want = want.transpose(0, 2, 3, 1) if want.ndim == 4 else want
      scale = np.abs(want).max()
      assert scale > 0.1  # (no layer dead: a wrong layer would show)
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
  np.testing.assert_allclose(logits, theirs['GlobalAvgPool'][0].detach().numpy(),
                             rtol=1e-4, atol=1e-5)

  w = rng.normal(size=(4, 10)).astype(np.float32)  # a loss that weighs every logit
  (t * torch.from_numpy(w)).sum().backward()
  graph, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(params, x):
    return jnp.sum(nnx.merge(graph, params, rest)(x) * w)
  grads, dx = jax.grad(loss, argnums=(0, 1))(params, jnp.asarray(x))
  np.testing.assert_allclose(dx, tx.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4,
                             atol=1e-4 * np.abs(tx.grad.numpy()).max())
  for name, conv in zip(NAMES, ref_convs, strict=True):
    want_k = conv.weight.grad.numpy().transpose(2, 3, 1, 0)
    np.testing.assert_allclose(grads[name]['kernel'][...], want_k, rtol=1e-4,
                               atol=1e-4 * np.abs(want_k).max())
    np.testing.assert_allclose(grads[name]['bias'][...], conv.bias.grad.numpy(),
                               rtol=1e-4, atol=1e-4 * np.abs(conv.bias.grad.numpy()).max())


def test_released_initialisation_and_dropout():
  """Kernels N(0, 0.05^2) and zero biases (cuda-convnet's initW=0.05); dropout only in
  training, and a rate outside [0, 1) refused naming it."""
  model = models.create_model('nin', rngs=nnx.Rngs(0))
  kernel = np.asarray(model.conv2.kernel[...])  # 460,800 draws
  assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() / 0.05 - 1) < 0.01
  assert all(not np.asarray(getattr(model, n).bias[...]).any() for n in NAMES)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 32, 32, 3)), jnp.float32)
  model.train()
  assert not np.allclose(model(x), model(x))
  model.eval()
  np.testing.assert_array_equal(model(x), model(x))
  with pytest.raises(ValueError, match=r'nin dropout must be in \[0, 1\)'):
    models.create_model('nin', dropout=1.0)


def test_config_is_the_released_recipe():
  """configs/nin.py: batch 128, SGD 0.9 at 0.1 with L2 decay 1e-4 on the kernels, 200
  epochs then a tenth for 30, then a hundredth for 30; no augmentation (Table 1's
  10.41%) unless `augment` (its 8.81%: translations and flips)."""
  c = nin_config.get_config()
  assert (c.model.name, c.batch_size, c.num_epochs, c.dataset.augment) == (
      'nin', 128, 260, 'none')
  assert (c.optimizer.name, c.optimizer.momentum, c.optimizer.weight_decay,
          c.optimizer.decay_style, c.optimizer.decay_params) == (
              'sgd', 0.9, 1e-4, 'l2', 'kernels')
  schedule = optim.create_schedule(c, steps_per_epoch=100, total_steps=26_000)
  rates = [float(schedule(s)) for s in (0, 19_999, 20_000, 22_999, 23_000, 25_999)]
  np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
  assert nin_config.get_config('augment').dataset.augment == 'cifar'


def test_trains_through_the_trainer(tmp_path):
  """Two steps of configs/nin.py (with `augment`) through train.py's loop on synthetic
  data, then the final evaluation and checkpoint: the steps move the parameters."""
  c = nin_config.get_config('augment')
  c.dataset.update({'name': 'synthetic', 'synthetic_size': 32})
  c.num_classes = 10
  c.batch_size = 8
  c.num_train_steps, c.num_epochs = 2, None  # (in steps, as --config.num_train_steps)
  c.eval_every_epochs = c.checkpoint_every_epochs = None
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 2
  final = train.train_and_evaluate(c, str(tmp_path))
  assert final['num_examples'] == 32 and np.isfinite(final['loss'])
  records = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  (trained,) = [r for r in records if r['split'] == 'train']
  assert trained['step'] == 2 and np.isfinite(trained['loss'])
  params = checkpoints.read_state(str(tmp_path))['params']
  assert params['cccp6']['kernel'].shape == (1, 1, 192, 10)
  assert np.abs(params['cccp6']['bias']).max() > 0  # (zeros at the start)
