"""airbench94/95/96 against the `airbench` package (PyPI 0.1.8, PyTorch), run on the CPU
in float32: its `.cuda()` and `.half()` calls are bypassed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import models
from models import airbench as ours
from models import torchvision_import


@pytest.fixture(scope='module')
def reference():
  import airbench  # pylint: disable=import-outside-toplevel  (imports torchvision)
  return airbench


def make_reference_net(reference, variant, seed=0):
  """The package's make_net94/95/96 on the CPU in float32, with random BatchNorm
  statistics and biases (every converted tensor matters), in eval mode."""
  torch.manual_seed(seed)
  cuda, half = torch.nn.Module.cuda, torch.nn.Module.half
  torch.nn.Module.cuda = torch.nn.Module.half = lambda self, *a, **k: self
  try:
    net = getattr(reference, f'make_net{variant[-2:]}')()
  finally:
    torch.nn.Module.cuda, torch.nn.Module.half = cuda, half
  g = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
        m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    net[0].bias.copy_(torch.randn(net[0].bias.shape, generator=g) * 0.1)
  return net.float().eval()


def state_dict_of(net):
  return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def images(n=8, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 32, 32, 3)).astype(np.float32)


def relative(got, want):
  return np.abs(np.asarray(got) - want).max() / np.abs(want).max()


@pytest.mark.parametrize('variant', ['airbench94', 'airbench95', 'airbench96'])
def test_imported_weights_give_the_reference_logits(reference, variant):
  net = make_reference_net(reference, variant)
  x = images()
  with torch.no_grad():
    want = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  variables = torchvision_import.convert(variant, state_dict_of(net))
  got = models.create_model(variant).apply(variables, jnp.asarray(x), train=False)
  assert relative(got, want) <= 1e-4


def test_the_parameters_and_their_initial_values_are_the_references(reference):
  """Same names and shapes through the importer; dirac starts: the first 24 filters of
  block1's conv1 pass their input channel through (24 of its 64), as the reference's."""
  net = make_reference_net(reference, 'airbench94')
  converted = torchvision_import.convert('airbench94', state_dict_of(net))
  model = models.create_model('airbench94')
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  shapes = lambda tree: jax.tree.map(np.shape, tree)
  assert shapes(variables) == shapes(converted)
  kernel = np.asarray(variables['params']['block1']['conv1']['kernel'])  # (3, 3, 24, 64)
  identity = np.zeros((3, 3, 24, 24))
  identity[1, 1, np.arange(24), np.arange(24)] = 1
  np.testing.assert_array_equal(kernel[..., :24], identity)
  torch_kernel = net[2].conv1.weight.detach().numpy()
  np.testing.assert_array_equal(torch_kernel[:24], identity.transpose(3, 2, 0, 1))
  bound = 1 / np.sqrt(3 * 3 * 24)  # the rest: PyTorch's default uniform
  assert np.abs(kernel[..., 24:]).max() <= bound and kernel[..., 24:].std() > bound / 3
  assert 'scale' not in variables['params']['block1']['norm1']  # frozen at 1


def test_whitening_weights_are_the_references_up_to_sign(reference):
  from airbench import utils  # pylint: disable=import-outside-toplevel
  x = np.random.default_rng(1).normal(size=(64, 32, 32, 3)).astype(np.float32)
  x[..., 1] += 0.5 * x[..., 0]  # correlated channels: distinct eigenvalues
  layer = torch.nn.Conv2d(3, 24, 2, bias=True)
  utils.init_whitening_conv(layer, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
  want = layer.weight.detach().numpy().transpose(2, 3, 1, 0)  # HWIO
  got = ours.whitening_weights(x)
  assert got.shape == want.shape == (2, 2, 3, 24)
  for i in range(24):  # each eigenvector's sign is the solver's choice
    sign = np.sign(np.sum(got[..., i] * want[..., i]))
    np.testing.assert_allclose(sign * got[..., i], want[..., i], rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(got[..., 12:], -got[..., :12])  # each with its negative


@pytest.mark.parametrize('level', [1, 2])
def test_test_time_augmentation_gives_the_reference_logits(reference, level):
  """airbench's infer at tta_level 1 (mirror) and 2 (mirror and 1-pixel translations)
  against lib.trained.tta_logits, which evaluate.py --mode=flip and --mode=tta use."""
  import types  # pylint: disable=import-outside-toplevel
  from lib import trained  # pylint: disable=import-outside-toplevel
  net = make_reference_net(reference, 'airbench94')
  x = images(16, seed=2)
  loader = types.SimpleNamespace(images=torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                                 normalize=lambda images: images)  # already normalised
  want = reference.infer(net, loader, tta_level=level).numpy()
  variables = torchvision_import.convert('airbench94', state_dict_of(net))
  model = models.create_model('airbench94')
  got = trained.tta_logits(lambda z: model.apply(variables, z, train=False), jnp.asarray(x),
                           level)
  assert relative(got, want) <= 1e-4
  plain = model.apply(variables, jnp.asarray(x), train=False)
  assert relative(plain, want) > 1e-3  # the augmentation changes the logits
