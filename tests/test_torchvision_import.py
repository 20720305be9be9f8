"""torchvision's architectures with random weights give our models' outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision

from configs import resnet
from lib import trained
import models
from models import torchvision_import


def randomize_bn_statistics(net, seed=0):
  g = torch.Generator().manual_seed(seed)
  for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
      m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
      m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
      m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)


def numpy_state(net) -> dict:
  return {k: v.numpy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize('name', ['alexnet', 'vgg11_bn', 'resnet18', 'resnet50'])
def test_converted_weights_reproduce_torchvision_logits(name):
  torch.manual_seed(0)
  net = getattr(torchvision.models, name)(weights=None).eval()
  randomize_bn_statistics(net)
  x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  variables = torchvision_import.convert(name, numpy_state(net))
  ours = models.create_functional(name)  # as the trainer and evaluate.py run it
  got = np.asarray(jax.jit(ours.apply)(variables, jnp.asarray(x)))
  rel = np.abs(got - expected).max() / np.abs(expected).max()
  print(f'{name}: relative max difference {rel:.2e}')
  assert rel < 1e-4


@pytest.mark.parametrize('name', ['resnet50', 'vgg16_bn', 'alexnet'])
def test_our_state_paths_are_torchvision_names(name):
  """Every parameter and statistic torchvision's model holds sits at the same path in
  ours, its numbered children int keys (features.1.running_mean: batch_stats
  ['features'][1]['mean']), and we hold nothing else."""
  net = getattr(torchvision.models, name)(weights=None)
  leaves = {'weight': 'kernel', 'bias': 'bias', 'running_mean': 'mean', 'running_var': 'var'}
  bn_names = {n for n, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
  want = set()
  for key in net.state_dict():
    module, leaf = key.rsplit('.', 1)
    if leaf != 'num_batches_tracked':
      leaf = 'scale' if (module in bn_names and leaf == 'weight') else leaves[leaf]
      want.add(f'{module}.{leaf}')
  variables = jax.eval_shape(models.create_functional(name).init, jax.random.key(0))
  ours = {'.'.join(str(p.key) for p in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(variables)[0]}
  assert {p.split('.', 1)[1] for p in ours} == want


def test_load_model_is_torchvision_in_eval_mode(tmp_path):
  """The README's lines: a .pth file in, a model out that gives torchvision's eval-mode
  logits on NHWC images (a checkpoint of 7 classes, so the head follows the weights)."""
  torch.manual_seed(1)
  net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
  randomize_bn_statistics(net, seed=1)
  torch.save(net.state_dict(), tmp_path / 'r18.pth')
  x = np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  model = torchvision_import.load_model('resnet18', tmp_path / 'r18.pth')
  got = np.asarray(model(jnp.asarray(x)))
  assert got.shape == (2, 7)
  assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4


def test_training_updates_batchnorm_statistics_as_pytorch():
  """One train-mode forward pass of the imported ResNet-18: every BatchNorm's running
  mean and variance (unbiased, momentum 0.1) as torchvision's after the same pass."""
  torch.manual_seed(2)
  net = torchvision.models.resnet18(weights=None, num_classes=10)
  randomize_bn_statistics(net, seed=2)
  variables = torchvision_import.convert('resnet18', numpy_state(net))
  x = np.random.default_rng(2).normal(size=(4, 64, 64, 3)).astype(np.float32)
  with torch.no_grad():
    net.train()(torch.from_numpy(x).permute(0, 3, 1, 2))
  ours = models.create_functional('resnet18', num_classes=10)
  _, batch_stats, _ = jax.jit(lambda v, x: ours.apply(v, x, train=True))(variables,
                                                                          jnp.asarray(x))
  want = torchvision_import.convert('resnet18', numpy_state(net))['batch_stats']
  flat = lambda tree: dict(jax.tree_util.tree_flatten_with_path(tree)[0])
  got, want = flat(batch_stats), flat(want)
  assert got.keys() == want.keys() and len(got) == 2 * 20  # 20 BatchNorms in ResNet-18
  for path in want:
    np.testing.assert_allclose(got[path], want[path], rtol=1e-5, atol=1e-6,
                               err_msg=jax.tree_util.keystr(path))


@pytest.mark.fast
def test_load_pth_round_trip(tmp_path):
  """A .pth file reads back as the state dict that was saved, every tensor exact."""
  net = torchvision.models.resnet18(weights=None, num_classes=7)
  randomize_bn_statistics(net)
  torch.save(net.state_dict(), tmp_path / 'r18.pth')
  loaded = torchvision_import.load_pth(tmp_path / 'r18.pth')
  saved = net.state_dict()
  assert sorted(loaded) == sorted(saved)
  for key, value in saved.items():
    np.testing.assert_array_equal(loaded[key], value.numpy())
  variables = torchvision_import.convert('resnet18', loaded)
  np.testing.assert_array_equal(variables['params']['fc']['kernel'], saved['fc.weight'].numpy().T)
  in_memory = torchvision_import.convert('resnet18', {k: v.numpy() for k, v in saved.items()})
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(in_memory), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.fast
def test_wrong_architecture_is_refused():
  state_dict = {k: v.numpy() for k, v in torchvision.models.resnet18().state_dict().items()}
  with pytest.raises(ValueError, match='do not fit'):
    torchvision_import.convert('resnet34', state_dict)


@pytest.mark.fast
@pytest.mark.parametrize('content,named', [
    (b'{"a": 1}', r'not a state dict of tensors \(UnpicklingError\)'),
    ([torch.zeros(2)], r'not a state dict of tensors \(AttributeError\)'),
    ({'foo': torch.zeros(2)}, "resnet18: cannot place torchvision tensor 'foo'")])
def test_a_file_that_is_not_the_weights_is_one_line_naming_the_flag(tmp_path, content, named):
  """--weights of another file (a JSON file, a list of tensors, a state dict of other
  names): one line naming the flag and the fix, where it had been a traceback."""
  path = tmp_path / 'weights.pth'
  path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
  with pytest.raises(trained.LoadError, match=rf'--weights={path}: {named}.*give '
                     r"torchvision's .pth for resnet18"):
    trained.load(resnet.get_config('imagenet,depth=18'), 1000, None,
                 torchvision='resnet18', weights=str(path))
