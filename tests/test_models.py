"""The model zoo: parameter counts, shapes, the convnet, the registry, errors."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx, traverse_util

from configs import convnet as convnet_config
from configs.sweeps import groups as groups_sweep
from lib import checkpoints
from lib import experiment
import models
from models import convnet, layer_stats, layers
import train

# torchvision's counts, and the papers' (ResNet Table 6, LeNet-5, SENet Table 2).
PARAMS = {
    'alexnet': 61_100_840, 'vgg11': 132_863_336, 'vgg13': 133_047_848,
    'vgg16': 138_357_544, 'vgg19': 143_667_240, 'vgg16_bn': 138_365_992,
    'resnet18': 11_689_512, 'resnet34': 21_797_672, 'resnet50': 25_557_032,
    'resnet101': 44_549_160, 'resnet152': 60_192_808,
}
PAPER_MILLIONS = {  # ResNet Table 6 (CIFAR), VGG Table 2, SENet: 28.1M
    'resnet20': 0.27, 'resnet32': 0.46, 'resnet44': 0.66, 'resnet56': 0.85,
    'resnet110': 1.7, 'resnet1202': 19.4, 'vgg_a': 133, 'vgg_a_lrn': 133, 'vgg_b': 133,
    'vgg_c': 134, 'vgg_d': 138, 'vgg_e': 144, 'se_resnet50': 28.1,
}
TABLE1_GMACS = {'resnet18': 1.8, 'resnet34': 3.6, 'resnet50': 3.8, 'resnet101': 7.6,
                'resnet152': 11.3}


def params_of(name, **kw):
  """The model's parameters, as summary.py counts them (of its shapes: nothing drawn)."""
  return layer_stats.count_params(models.create_functional(name, **kw))


@pytest.mark.parametrize('name', sorted(PARAMS))
def test_parameter_count_equals_torchvision(name):
  assert params_of(name) == PARAMS[name]


@pytest.mark.parametrize('name', sorted(PAPER_MILLIONS))
@pytest.mark.fast
def test_parameter_count_rounds_to_paper(name):
  millions = params_of(name) / 1e6
  digits = 2 if PAPER_MILLIONS[name] < 1 else (1 if PAPER_MILLIONS[name] < 100 else 0)
  assert round(millions, digits) == PAPER_MILLIONS[name]


@pytest.mark.fast
def test_lenet5_parameters_with_full_c3():
  # C1 156 + C3 2,416 + C5 48,120 + F6 10,164 + output 850, on one input channel.
  assert params_of('lenet5', in_channels=1) == 61_706
  # At 36x36 C5's maps are 2x2, so F6 sees 4 x 120 inputs: 3 x 120 x 84 more weights.
  assert params_of('lenet5', in_channels=1, image_size=36) == 61_706 + 3 * 120 * 84


@pytest.mark.parametrize('name', sorted(TABLE1_GMACS))
def test_resnet_multiply_adds_match_table1(name):
  # Table 1 counts the paper's bottleneck, which strides on its first 1x1 conv.
  macs = layer_stats.count_macs(models.create_functional(name, stride_in_1x1=True), 224)
  assert abs(macs / 1e9 / TABLE1_GMACS[name] - 1) < 0.03


def output_shape(name, size, **kw):
  """The logits' shape in eval mode on (2, size, size, 3) images, the model built for
  that size (traced only)."""
  net = models.create_functional(name, image_size=size, **kw)
  variables = jax.eval_shape(net.init, jax.random.key(0))
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  return jax.eval_shape(net.apply, variables, x).shape


@pytest.mark.parametrize('name', models.list_models())
def test_output_shape_at_native_size(name):
  assert output_shape(name, models.default_image_size(name), num_classes=7) == (2, 7)


SMALL_INPUT = ['resnet18', 'resnet50', 'se_resnet50', 'vgg11', 'vgg16_bn', 'vgg_c',
               'resnet20', 'lenet5', 'simple_cnn', 'tutorial_resnet', 'convnet']


@pytest.mark.parametrize('name', SMALL_INPUT)
def test_output_shape_at_32x32(name):
  assert output_shape(name, 32, num_classes=7) == (2, 7)


def test_fixed_head_rejects_other_image_sizes():
  with pytest.raises(ValueError, match='227x227'):
    output_shape('alexnet_v1', 224)


@pytest.mark.parametrize('name,kw', [('lenet5', {}), ('simple_cnn', {}),
                                     ('tutorial_resnet', {}), ('vgg11', {'head': 'linear'})])
def test_head_sized_by_image_size_names_the_size_it_was_built_for(name, kw):
  net = models.create_functional(name, image_size=64, **kw)
  variables = jax.eval_shape(net.init, jax.random.key(0))
  with pytest.raises(ValueError, match='use 64x64 images or create the model with '
                                       'image_size'):
    jax.eval_shape(net.apply, variables, jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))


def test_vgg_cifar_head_is_one_linear_layer_on_the_final_map():
  """VGG-16 with BN for 32x32 images (models/vgg.py): the 13 convs (14,714,688), their
  BatchNorms' scales and biases (2 x 4,224) and one 512 x 10 layer: 14.7 M."""
  assert params_of('vgg16_bn', head='linear', num_classes=10, image_size=32) == (
      14_714_688 + 2 * 4_224 + 512 * 10 + 10)


@pytest.mark.fast
def test_unknown_model_names_closest():
  with pytest.raises(ValueError, match='resnet50'):
    models.create_model('resnet5O')


@pytest.mark.fast
def test_list_models_pattern():
  assert models.list_models('resnet1*') == ['resnet101', 'resnet110', 'resnet1202',
                                            'resnet152', 'resnet18']


@pytest.mark.fast
def test_collapse_names_stage_layer_and_sizes():
  """32 -> 14 -> 5 -> 1 through 5x5/2 convs: the fourth stage's conv cannot fit, and the
  model says so when it is built, on shapes only."""
  stages = [dict(width=8, kernel=5, stride=2, padding=0)] * 4
  with pytest.raises(ValueError, match=r'stage4\.conv1: kernel 5 .* input along H: 1 '):
    models.functional(lambda rngs: models.create_model('convnet', stages=stages, rngs=rngs))


@pytest.mark.fast
def test_convnet_rejects_unknown_stage_key():
  with pytest.raises(ValueError, match="unknown key.*'widht'"):
    models.create_model('convnet', stages=[dict(widht=8)])


def layers_in_call_order(model, x, monkeypatch) -> list:
  """The convolutions and fully connected layers of `model`, in the order an eval-mode
  forward pass on `x` calls them."""
  called = []
  for cls in (layers.Conv, nnx.Linear):
    def recorded(self, *args, _call=cls.__call__, **kwargs):
      called.append(self)
      return _call(self, *args, **kwargs)
    monkeypatch.setattr(cls, '__call__', recorded)
  model.eval()
  model(x)
  monkeypatch.undo()
  return called


@pytest.mark.parametrize('name,spec,size', [('simple_cnn', convnet.SIMPLE_CNN, 32),
                                            ('vgg11', convnet.VGG11_LIKE, 64),
                                            ('alexnet', convnet.ALEXNET_LIKE, 96)])
def test_classic_networks_are_convnets(name, spec, size, monkeypatch):
  """With the classic network's weights, layer for layer, the convnet config computes
  the classic network's logits."""
  x = jax.random.normal(jax.random.key(1), (2, size, size, 3))
  ref = models.create_model(name, num_classes=10, image_size=size, rngs=nnx.Rngs(0))
  net = models.create_model('convnet', num_classes=10, image_size=size, rngs=nnx.Rngs(2),
                            **spec)
  pairs = list(zip(layers_in_call_order(ref, x, monkeypatch),
                   layers_in_call_order(net, x, monkeypatch), strict=True))
  for theirs, ours in pairs:
    assert ours.kernel.shape == theirs.kernel.shape
    ours.kernel[...] = theirs.kernel[...]
    assert (ours.bias is None) == (theirs.bias is None)
    if ours.bias is not None:
      ours.bias[...] = theirs.bias[...]
  np.testing.assert_allclose(net(x), ref(x), rtol=1e-5, atol=1e-5)


def test_grouped_convnet_matches_pytorch_values_and_gradients(monkeypatch):
  """A convnet with grouped stages against the same network written with PyTorch's
  nn.Conv2d(groups=...), the same weights: logits, and the gradients of every kernel,
  bias and the input. Stage 2 splits its 8 -> 16 -> 16 channels into 8 groups (its first
  conv depthwise, 2 filters a channel); stage 3 is depthwise (16 groups of 16) on 2x2
  maps, where the CPU computes it as matrix products (layers.conv_as_matmul)."""
  nn = torch.nn
  no_norm = dict(norm='none', padding=1)
  pool = dict(type='max', kernel=2, stride=2)
  stages = [dict(width=8, downsample=pool, **no_norm),
            dict(width=16, depth=2, groups=8, downsample=pool, **no_norm),
            dict(width=16, groups=16, **no_norm)]
  ref = nn.Sequential(
      nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(8, 16, 3, padding=1, groups=8), nn.ReLU(),
      nn.Conv2d(16, 16, 3, padding=1, groups=8), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
  x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
  net = models.create_model('convnet', stages=stages, num_classes=10, image_size=8,
                            rngs=nnx.Rngs(0))
  ours = layers_in_call_order(net, jnp.asarray(x), monkeypatch)
  theirs = [m for m in ref if isinstance(m, (nn.Conv2d, nn.Linear))]
  assert [tuple(o.kernel.shape) for o in ours] == [
      (3, 3, 3, 8), (3, 3, 1, 16), (3, 3, 2, 16), (3, 3, 1, 16), (16, 10)]
  for o, t in zip(ours, theirs, strict=True):
    weight = t.weight.detach().numpy()
    o.kernel[...] = jnp.asarray(weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T)
    o.bias[...] = jnp.asarray(t.bias.detach().numpy())
  net.eval()
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
  logits = ref(tx)
  w = np.random.default_rng(1).normal(size=(4, 10)).astype(np.float32)
  (logits * torch.from_numpy(w)).sum().backward()
  graph, params, rest = nnx.split(net, nnx.Param, ...)

  def loss(params, x):
    y = nnx.merge(graph, params, rest)(x)
    return jnp.sum(y * w), y
  (grads, dx), y = jax.grad(loss, argnums=(0, 1), has_aux=True)(params, jnp.asarray(x))
  np.testing.assert_allclose(y, logits.detach().numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, tx.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-5)
  paths = [('stage1', 'conv1'), ('stage2', 'conv1'), ('stage2', 'conv2'),
           ('stage3', 'conv1'), ('fc',)]
  for path, t in zip(paths, theirs, strict=True):
    g = grads
    for key in path:
      g = g[key]
    weight = t.weight.grad.numpy()
    np.testing.assert_allclose(
        g['kernel'][...], weight.transpose(2, 3, 1, 0) if weight.ndim == 4 else weight.T,
        rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g['bias'][...], t.bias.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.fast
def test_convnet_refuses_groups_that_do_not_divide_a_stages_widths():
  """One line naming the stage, the widths and the groups that would do."""
  stages = [dict(width=32), dict(width=64, groups=3)]
  with pytest.raises(ValueError, match=re.escape(
      'convnet stage 2 groups=3 must divide the channels its 3x3 convs read and write '
      '(its input 32, its width 64); set groups to one of [1, 2, 4, 8, 16, 32], or '
      'change the widths')):
    models.create_model('convnet', stages=stages)
  stages = [dict(width=32), dict(width=16, bottleneck=12, groups=8, kernel=5)]
  with pytest.raises(ValueError, match=re.escape(
      'convnet stage 2 groups=8 must divide the channels its 5x5 convs read and write '
      '(its bottleneck 12, its width 16); set groups to one of [1, 2, 4]')):
    models.create_model('convnet', stages=stages)
  with pytest.raises(ValueError, match='convnet stage 1 groups must be >= 1; got 0'):
    models.create_model('convnet', stages=[dict(width=32, groups=0)])
  for pool in ('max', (2,)):  # (the head's pool: 'gap', 'flatten' or [h, w])
    with pytest.raises(ValueError, match=re.escape(
        f"convnet head pool must be 'gap', 'flatten' or [h, w]; got {pool!r}")):
      models.create_model('convnet', head=dict(pool=pool))


@pytest.mark.parametrize('groups', [1, 4, 32])
def test_layer_table_counts_grouped_convs(groups):
  """configs/convnet.py with `groups`: stage 1's convs stay full (the image's 3
  channels), stages 2 and 3's kxk convs have k*k*(in/groups)*out weights and
  H*W*out*k*k*in/groups multiply-adds (each output sees its group's inputs only), as
  summary.py counts them."""
  net = experiment.create_net(convnet_config.get_config(f'groups={groups}'), 10)
  rows = {r['name']: r for r in layer_stats.layer_table(net, 32)}
  want = {'stage1.conv1': (32, 3, 32, 1), 'stage1.conv2': (32, 32, 32, 1),
          'stage2.conv1': (16, 32, 64, groups), 'stage2.conv2': (16, 64, 64, groups),
          'stage3.conv1': (8, 64, 128, groups), 'stage3.conv2': (8, 128, 128, groups)}
  for name, (side, c_in, c_out, g) in want.items():
    assert (rows[name]['params'], rows[name]['macs']) == (
        9 * c_in // g * c_out, side * side * c_out * 9 * c_in // g), name
  assert layer_stats.count_params(net) == sum(r['params'] for r in rows.values())


def test_groups_sweep_varies_the_grouped_stages(tmp_path):
  """configs/sweeps/groups.py: each trial's convnet groups stages 2 and 3 as it says,
  and a grouped convnet trains through the trainer (two steps on synthetic data)."""
  trials = groups_sweep.get_sweep()
  assert sorted({t['groups'] for t in trials}) == [1, 2, 4, 8, 16, 32]
  for trial in trials:
    arg = ','.join(f'{k}={v}' for k, v in trial.items())
    variables = jax.eval_shape(experiment.create_net(
        groups_sweep.get_config(arg), 10).init, jax.random.key(0))
    kernels = {f'{s}.{c}': variables['params'][s][c]['kernel'].shape
               for s in ('stage1', 'stage2', 'stage3') for c in ('conv1', 'conv2')}
    assert kernels['stage1.conv1'] == (3, 3, 3, 32)
    assert kernels['stage2.conv1'] == (3, 3, 32 // trial['groups'], 64)
    assert kernels['stage3.conv2'] == (3, 3, 128 // trial['groups'], 128)

  c = groups_sweep.get_config('groups=32,pool=conv')
  c.dataset.update({'name': 'synthetic', 'synthetic_size': 32})
  c.num_classes, c.batch_size = 10, 8
  c.num_train_steps, c.num_epochs = 2, None  # (in steps, as --config.num_train_steps)
  c.eval_every_epochs = c.checkpoint_every_epochs = None
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 2
  final = train.train_and_evaluate(c, str(tmp_path))
  assert np.isfinite(final['loss']) and final['num_examples'] == 32
  params = checkpoints.read_state(str(tmp_path))['params']
  assert params['stage2']['conv1']['kernel'].shape == (3, 3, 1, 64)  # depthwise
  assert np.abs(params['fc']['bias']).max() > 0  # (zeros at the start)


@pytest.mark.parametrize('size', [224, 112])
def test_googlenet_aux_classifiers_only_in_training(size):
  """Section 5: the auxiliary classifiers on 4a and 4d, their losses weighted by 0.3, in
  train mode only (their FC layers sized for the image: 4x4x128 at 224, 1x1x128 at 112)."""
  net = models.functional(lambda rngs: models.create_model(
      'googlenet', num_classes=5, image_size=size, rngs=rngs))
  x = jnp.ones((1, size, size, 3))
  variables = jax.eval_shape(net.init, jax.random.key(0))
  assert {'aux1', 'aux2'} <= set(variables['params'])
  weights = []

  def train_step(v):
    _, _, aux = net.apply(v, x, train=True, rng=jax.random.key(1))
    weights.extend(w for w, _ in aux)  # as the trainer sees them
    return aux
  aux = jax.eval_shape(train_step, variables)
  assert len(aux) == 2 and all(logits.shape == (1, 5) for _, logits in aux)
  assert weights == [0.3, 0.3]

  def eval_step(v):
    return layers.with_auxiliary(net.merge(v, train=False), x)
  logits, aux = jax.eval_shape(eval_step, variables)
  assert logits.shape == (1, 5) and aux == []


def test_bfloat16_compute_keeps_float32_params():
  net = models.create_functional('resnet20', dtype=jnp.bfloat16)
  x = jnp.ones((2, 32, 32, 3))
  variables = jax.eval_shape(net.init, jax.random.key(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  logits, batch_stats, _ = jax.eval_shape(lambda v: net.apply(v, x, train=True), variables)
  assert logits.dtype == jnp.bfloat16 and logits.shape == (2, 10)
  assert all(s.dtype == jnp.float32 for s in jax.tree.leaves(batch_stats))
  assert jax.eval_shape(net.apply, variables, x).dtype == jnp.bfloat16


@pytest.mark.fast
def test_option_b_cifar_resnet_projects():
  """ResNet section 4.2 (option A: zero-padded identity shortcuts) against option B:
  a 1x1 projection and its BatchNorm where the width doubles, 16 -> 32 and 32 -> 64."""
  projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
  assert params_of('resnet20', shortcut='B') - params_of('resnet20') == projections


@pytest.mark.fast
def test_cifar_resnet_option_a_shortcut_matches_numpy():
  """ResNet section 4.2's option A, through a whole ResNet-20: with every block's residual
  branch silenced (its last BatchNorm's scale and bias 0), each block is relu(shortcut(x)),
  so the logits are numpy's conv1 -> BN -> ReLU, the shortcuts (identity; where the width
  doubles, every other pixel and the channels zero-padded equally on both sides: 16 ->
  8 + 16 + 8, 32 -> 16 + 32 + 16), the global average and the FC layer."""
  rng = np.random.default_rng(0)
  net = models.create_functional('resnet20')
  x = rng.normal(size=(2, 32, 32, 3)).astype(np.float32)
  shapes = jax.eval_shape(net.init, jax.random.key(0))  # (no init compiled)
  flat = {path: (rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(
      np.float32) for path, leaf in traverse_util.flatten_dict(shapes).items()}
  for path in flat:  # ('params' | 'batch_stats', layer or 'layerI', J, ..., leaf)
    if path[0] == 'batch_stats':
      flat[path] = np.zeros(flat[path].shape, np.float32) + (path[-1] == 'var')
    elif path[-2] == 'bn2':  # every block's residual branch ends in 0
      flat[path] = np.zeros_like(flat[path])
  bn1 = {leaf: rng.uniform(0.5, 1.5, 16).astype(np.float32) for leaf in ('scale', 'var')}
  bn1.update(bias=rng.normal(size=16).astype(np.float32),
             mean=rng.normal(size=16).astype(np.float32))
  for leaf in ('scale', 'bias'):
    flat[('params', 'bn1', leaf)] = bn1[leaf]
  for leaf in ('mean', 'var'):
    flat[('batch_stats', 'bn1', leaf)] = bn1[leaf]
  variables = traverse_util.unflatten_dict(flat)
  logits = jax.jit(net.apply)(variables, x)

  kernel = flat[('params', 'conv1', 'kernel')]  # (3, 3, 3, 16) HWIO, padding 1
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h = sum(np.einsum('nhwc,cd->nhwd', padded[:, i:i + 32, j:j + 32], kernel[i, j])
          for i in range(3) for j in range(3))
  h = (h - bn1['mean']) / np.sqrt(bn1['var'] + 1e-5) * bn1['scale'] + bn1['bias']
  h = np.maximum(h, 0)
  for width in (32, 64):  # each stage's first block; the others pass relu(h) = h on
    h = h[:, ::2, ::2]
    extra = width - h.shape[-1]
    h = np.pad(h, ((0, 0), (0, 0), (0, 0), (extra // 2, extra // 2)))
  assert h.shape == (2, 8, 8, 64)
  want = h.mean(axis=(1, 2)) @ flat[('params', 'fc', 'kernel')] + flat[('params', 'fc', 'bias')]
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)
  assert np.abs(want - flat[('params', 'fc', 'bias')]).max() > 0.1  # the shortcut carries x
