"""torchvision's architectures with random weights give our models' outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torchvision

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


@pytest.mark.parametrize('name', ['alexnet', 'vgg11_bn', 'resnet18', 'resnet50'])
def test_converted_weights_reproduce_torchvision_logits(name):
  torch.manual_seed(0)
  net = getattr(torchvision.models, name)(weights=None).eval()
  randomize_bn_statistics(net)
  x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  state_dict = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = torchvision_import.convert(name, state_dict)
  got = np.asarray(models.create_model(name).apply(variables, jnp.asarray(x), train=False))
  rel = np.abs(got - expected).max() / np.abs(expected).max()
  print(f'{name}: relative max difference {rel:.2e}')
  assert rel < 1e-4


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


def test_wrong_architecture_is_refused():
  state_dict = {k: v.numpy() for k, v in torchvision.models.resnet18().state_dict().items()}
  with pytest.raises(ValueError, match='do not fit'):
    torchvision_import.convert('resnet34', state_dict)
