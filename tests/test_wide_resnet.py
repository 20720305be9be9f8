"""Wide ResNet (models/wide_resnet.py), registered as one file and one registry line:
its parameters from the paper's widths and depth, its shapes, the layer table, a
training run through the real trainer."""

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
import tensorflow_datasets as tfds

from configs import default
from lib import checkpoints
import models
from models import layer_stats
import train
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wrn_params(depth: int, k: int, num_classes: int = 10, in_channels: int = 3) -> int:
  """WRN-depth-k's parameters from the architecture (the paper's section 2, Table 1):
  the 3x3 stem conv (16 filters), N = (depth - 4) / 6 pre-activation blocks in each of
  three groups of widths 16k, 32k, 64k (a block: BN on its input, a 3x3 conv, BN, a 3x3
  conv, and a 1x1 projection where the width changes), the final BN and the FC layer.
  Convs have no bias; a BN has a scale and a bias per channel."""
  n = (depth - 4) // 6
  total = 3 * 3 * in_channels * 16                       # conv1
  c = 16
  for width in (16 * k, 32 * k, 64 * k):
    for _ in range(n):
      total += 2 * c + 3 * 3 * c * width                 # bn1, conv1
      total += 2 * width + 3 * 3 * width * width         # bn2, conv2
      total += c * width if c != width else 0            # the 1x1 shortcut
      c = width
  return total + 2 * c + c * num_classes + num_classes   # bn, fc


def params_of(name, **kw):
  return layer_stats.count_params(models.create_functional(name, **kw))


@pytest.mark.parametrize('name,depth,k', [('wrn16_4', 16, 4), ('wrn28_10', 28, 10)])
@pytest.mark.fast
def test_registered_parameter_counts_equal_the_formula(name, depth, k):
  assert params_of(name) == wrn_params(depth, k)
  assert params_of(name, num_classes=100) == wrn_params(depth, k, num_classes=100)


# The paper's counts on CIFAR-10, in millions: Table 4 (depth, k), and WRN-16-4's 2.7M.
PAPER_MILLIONS = {(40, 1): 0.6, (40, 2): 2.2, (40, 4): 8.9, (40, 8): 35.7, (28, 10): 36.5,
                  (28, 12): 52.5, (22, 8): 17.2, (22, 10): 26.8, (16, 8): 11.0,
                  (16, 10): 17.1, (16, 4): 2.7}


@pytest.mark.parametrize('depth,k', sorted(PAPER_MILLIONS))
def test_parameter_count_rounds_to_the_paper(depth, k):
  count = params_of('wrn16_4', depth=depth, widen_factor=k)
  assert count == wrn_params(depth, k)
  assert round(count / 1e6, 1) == PAPER_MILLIONS[(depth, k)]


def test_wrn16_4_is_the_papers_2_7_million():
  count = params_of('wrn16_4')
  assert count == 2_748_890 and round(count / 1e6, 1) == 2.7


@pytest.mark.fast
def test_depth_must_be_6n_plus_4():
  with pytest.raises(ValueError, match='6N\\+4'):
    models.create_model('wrn16_4', depth=20)


def test_output_shape():
  net = models.create_functional('wrn16_4', num_classes=7)
  variables = jax.eval_shape(net.init, jax.random.key(0))
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  assert jax.eval_shape(net.apply, variables, x).shape == (2, 7)


def reference_block(x, block, stride):
  """A pre-activation block (Fig. 1c) written out: BN-ReLU-conv3x3/stride, BN-ReLU-conv3x3,
  plus the input, or, where the shape changes, a strided 1x1 projection of the block's
  pre-activated input. BN in training: the batch's mean and biased variance, eps 1e-5."""
  def bn(v, layer):
    mean, var = v.mean((0, 1, 2)), v.var((0, 1, 2))
    return (v - mean) / jnp.sqrt(var + 1e-5) * layer.scale[...] + layer.bias[...]

  def conv(v, layer, s, pad):
    return jax.lax.conv_general_dilated(v, layer.kernel[...], (s, s), [(pad, pad)] * 2,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  pre = jax.nn.relu(bn(x, block.bn1))
  out = conv(jax.nn.relu(bn(conv(pre, block.conv1, stride, 1), block.bn2)), block.conv2, 1, 1)
  return out + (x if block.shortcut is None else conv(pre, block.shortcut, stride, 0))


@pytest.mark.parametrize('index,stride', [(0, 2), (1, 1)])
def test_block_is_pre_activated_with_its_projection_on_the_activated_input(index, stride):
  """WRN-16-2's second group: its first block strides and widens 32 -> 64 (a projection),
  its second keeps the shape (the identity); both against the block written out."""
  model = models.create_model('wrn16_4', depth=16, widen_factor=2, rngs=nnx.Rngs(0))
  block = model.layer2[index]
  rng = np.random.RandomState(index)
  # BN scales and biases away from their initial ones and zeros, which would hide a
  # swapped scale and bias or a missing BN.
  for bn in (block.bn1, block.bn2):
    bn.scale.set_value(jnp.asarray(rng.uniform(0.5, 1.5, bn.scale.shape), jnp.float32))
    bn.bias.set_value(jnp.asarray(rng.normal(0, 0.5, bn.bias.shape), jnp.float32))
  x = jnp.asarray(rng.standard_normal((4, 16, 16, 32 if index == 0 else 64)), jnp.float32)
  assert (block.shortcut is None) == (index == 1)
  model.train()
  np.testing.assert_allclose(block(x), reference_block(x, block, stride), rtol=1e-4,
                             atol=1e-4)


def test_dropout_between_the_convs_only_in_training():
  """dropout=0.3 (the paper's, section 3): training calls drop different units, so two
  calls differ; evaluation is deterministic. It adds no parameters."""
  model = models.create_model('wrn16_4', depth=10, widen_factor=1, dropout=0.3,
                              rngs=nnx.Rngs(0))
  assert layer_stats.count_params(model) == wrn_params(10, 1)
  x = jnp.asarray(np.random.RandomState(0).standard_normal((2, 32, 32, 3)), jnp.float32)
  model.train()
  assert not np.allclose(model(x), model(x))
  model.eval()
  np.testing.assert_array_equal(model(x), model(x))


def test_summary_layer_table():
  """summary.py on wrn16_4: every block pre-activated (its BN runs before its first
  conv), the groups' maps 32, 16 and 8 pixels wide with 64, 128, 256 channels (Table 1),
  projections where the width changes, and the formula's total."""
  result = prewarmed.run([sys.executable, 'summary.py', '--model=wrn16_4', '--format=csv'],
                         cwd=ROOT, text=True, capture_output=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  names = [r['layer'] for r in rows]
  shape = {r['layer']: r['output shape'] for r in rows}
  assert shape['conv1'] == '32x32x16'
  for group, (side, width) in enumerate([(32, 64), (16, 128), (8, 256)], start=1):
    for block in (0, 1):
      prefix = f'layer{group}.{block}'
      assert names.index(f'{prefix}.bn1') < names.index(f'{prefix}.conv1')
      assert shape[f'{prefix}.conv2'] == f'{side}x{side}x{width}'
    assert shape[f'layer{group}.0.shortcut'] == f'{side}x{side}x{width}'
    assert f'layer{group}.1.shortcut' not in shape
  assert shape['fc'] == '10'
  assert rows[-1]['layer'] == 'total' and int(rows[-1]['params']) == wrn_params(16, 4)


def test_trains_through_the_trainer(tmp_path):
  """Two steps of train.py's loop on mock CIFAR-10, with the paper's dropout, then the
  final evaluation and checkpoint: a registered model is a trainable one."""
  c = default.get_config()
  c.model = {'name': 'wrn16_4', 'dropout': 0.3}
  c.dataset.update({'name': 'cifar10', 'augment': 'cifar', 'workers': 0})
  c.batch_size = 8
  c.num_train_steps = 2
  c.schedule.name = 'constant'
  c.schedule.learning_rate = 0.05
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 2
  with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
    final = train.train_and_evaluate(c, str(tmp_path))
  assert final['num_examples'] == 16 and np.isfinite(final['loss'])
  records = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  (trained,) = [r for r in records if r['split'] == 'train']
  assert trained['step'] == 2 and np.isfinite(trained['loss'])
  # The checkpoint holds the WRN's parameters, moved by the steps from where they start
  # (the FC bias at zeros, the BN scales at ones).
  params = checkpoints.read_state(str(tmp_path))['params']
  assert params['layer1'][0]['shortcut']['kernel'].shape == (1, 1, 16, 64)
  assert params['fc']['kernel'].shape == (256, 10)
  assert np.abs(params['fc']['bias']).max() > 0
  assert np.abs(params['bn']['scale'] - 1).max() > 0
