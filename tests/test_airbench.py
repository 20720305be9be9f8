"""airbench94/95/96 against the `airbench` package (PyPI 0.1.8, PyTorch), run on the CPU
in float32: its `.cuda()` and `.half()` calls are bypassed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from data import transforms
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
  return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def functional(variant):
  """The model as pure functions of its variables (models.functional)."""
  return models.functional(lambda rngs: models.create_model(variant, rngs=rngs))


def images(n=8, seed=0):
  return np.random.default_rng(seed).normal(size=(n, 32, 32, 3)).astype(np.float32)


def relative(got, want):
  return np.abs(np.asarray(got) - want).max() / np.abs(want).max()


@pytest.mark.parametrize('variant', ['airbench94', 'airbench96'])  # (95: 94's code, wider)
def test_imported_weights_give_the_reference_logits(reference, variant):
  net = make_reference_net(reference, variant)
  x = images()
  with torch.no_grad():
    want = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
  variables = torchvision_import.convert(variant, state_dict_of(net))
  got = functional(variant).apply(variables, jnp.asarray(x))
  assert relative(got, want) <= 1e-4


def test_the_parameters_and_their_initial_values_are_the_references(reference):
  """Same names and shapes through the importer; dirac starts: the first 24 filters of
  block1's conv1 pass their input channel through (24 of its 64), as the reference's."""
  net = make_reference_net(reference, 'airbench94')
  converted = torchvision_import.convert('airbench94', state_dict_of(net))
  variables = functional('airbench94').init(jax.random.key(0))
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


def test_test_time_augmentation_gives_the_reference_logits(reference):
  """evaluate.py --mode=flip and --mode=tta are airbench's infer at tta_level 1 (mirror)
  and 2 (mirror and 1-pixel translations): each mode's level (evaluate.TTA_LEVEL) through
  lib.trained.tta_logits, which both modes run, against the package's own."""
  import types  # pylint: disable=import-outside-toplevel
  import evaluate  # pylint: disable=import-outside-toplevel
  from lib import trained  # pylint: disable=import-outside-toplevel
  net = make_reference_net(reference, 'airbench94')
  x = images(16, seed=2)
  loader = types.SimpleNamespace(images=torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),
                                 normalize=lambda images: images)  # already normalised
  variables = torchvision_import.convert('airbench94', state_dict_of(net))
  model = functional('airbench94')
  plain = model.apply(variables, jnp.asarray(x))
  for mode, airbench_level in (('flip', 1), ('tta', 2)):
    want = reference.infer(net, loader, tta_level=airbench_level).numpy()
    got = trained.tta_logits(lambda z: model.apply(variables, z),
                             jnp.asarray(x), evaluate.TTA_LEVEL[mode])
    assert relative(got, want) <= 1e-4, mode
    assert relative(plain, want) > 1e-3  # the augmentation changes the logits


def reference_triangle(reference):
  """The `triangle` schedule airbench.utils.train defines inside itself, taken from its
  source as it is."""
  import inspect  # pylint: disable=import-outside-toplevel
  import textwrap  # pylint: disable=import-outside-toplevel
  source = inspect.getsource(reference.utils.train)
  block = source[source.index('    def triangle('):source.index('    lr_schedule =')]
  namespace = {'torch': torch}
  exec(textwrap.dedent(block), namespace)  # pylint: disable=exec-used
  return namespace['triangle']


def airbench_config(batch_size, total_steps=476):
  """airbench94's optimizer in this codebase's terms (configs/default.py keys): the
  package's decoupled hyper-parameters per 1024 examples turned into PyTorch's SGD
  coefficients for a summed loss, then into a mean loss's."""
  from configs import default  # pylint: disable=import-outside-toplevel
  lr_1024, wd_1024, momentum = 11.5, 0.0153, 0.85
  c = default.get_config()
  c.model = {'name': 'airbench94'}
  c.num_classes, c.batch_size = 10, batch_size
  c.dataset.update(name='synthetic', synthetic_size=batch_size, image_size=32, augment='none',
                   device_resident=False)
  c.num_epochs, c.num_train_steps = None, total_steps
  c.label_smoothing = 0.2
  c.optimizer.update(name='sgd', momentum=momentum, nesterov=True, decay_style='l2',
                     decay_params='all', weight_decay=wd_1024 / lr_1024,
                     norm_bias_lr_scale=64.0)
  c.schedule.name, c.schedule.triangle = 'triangle', (0.2, 0.23, 0.07)
  c.schedule.learning_rate = lr_1024 * batch_size / (1024 * (1 + 1 / (1 - momentum)))
  c.lookahead.update(every=5, decay=0.95, power=3.0)
  return c


def test_the_triangle_schedule_is_the_references_at_every_step(reference):
  from lib import optim  # pylint: disable=import-outside-toplevel
  config = airbench_config(1024)
  want = reference_triangle(reference)(476, start=0.2, end=0.07, peak=0.23).numpy()
  schedule = optim.create_schedule(config, steps_per_epoch=48, total_steps=476)
  got = np.asarray(schedule(jnp.arange(477))) / config.schedule.learning_rate
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_six_training_steps_give_the_references_parameters_and_average(reference):
  """The package's training against train.py's step with airbench_config, from the same
  weights on the same batch, six times: its SGD (Nesterov, the BatchNorm-bias group at
  64x the rate with the same decay, the whitening kernel and BatchNorm weights frozen,
  label smoothing 0.2 on a summed loss, the triangle schedule over 476 steps), the
  whitening bias frozen after 3 epochs (here an epoch is one step), and its lookahead
  (an update at step 5)."""
  import input_pipeline  # pylint: disable=import-outside-toplevel
  from lib import experiment, parallel  # pylint: disable=import-outside-toplevel
  from data import sources  # pylint: disable=import-outside-toplevel
  batch_size, total = 16, 476
  net = make_reference_net(reference, 'airbench94').train()
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, batch_size)
  mean, std = sources.channel_stats(airbench_config(batch_size, total).dataset, 3)  # as ours
  x = torch.from_numpy(((images / 255 - mean) / std).astype(np.float32).transpose(0, 3, 1, 2))
  y = torch.from_numpy(labels)
  # airbench.utils.train's optimizer and lookahead, as it builds them.
  momentum, bias_scaler = 0.85, 64.0
  kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
  lr = 11.5 / kilostep_scale
  wd = 0.0153 * batch_size / kilostep_scale
  lr_biases = lr * bias_scaler
  norm_biases = [p for k, p in net.named_parameters() if 'norm' in k and p.requires_grad]
  other = [p for k, p in net.named_parameters() if 'norm' not in k and p.requires_grad]
  optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                               dict(params=other, lr=lr, weight_decay=wd / lr)],
                              momentum=momentum, nesterov=True)
  schedule = reference_triangle(reference)(total, start=0.2, end=0.07, peak=0.23)
  scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: schedule[i])
  alpha_schedule = 0.95**5 * (torch.arange(total + 1) / total)**3
  lookahead_state = reference.utils.LookaheadState(net)
  loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2, reduction='none')
  start = torchvision_import.convert('airbench94', state_dict_of(net))
  for step in range(1, 7):
    net[0].bias.requires_grad = step <= 3  # `epoch < whiten_bias_epochs`, a step an epoch
    loss = loss_fn(net(x), y).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    if step % 5 == 0:
      lookahead_state.update(net, decay=alpha_schedule[step].item())
  want = torchvision_import.convert('airbench94', state_dict_of(net))
  want_ema = torchvision_import.convert(
      'airbench94', {k: v.numpy().copy() for k, v in lookahead_state.net_ema.items()})

  config = airbench_config(batch_size, total)
  info = input_pipeline.dataset_info(config)
  exp = experiment.setup(config, info, parallel.data_mesh())
  assert exp.length.steps_per_epoch == 1
  state = exp.init(jax.random.key(0))
  state = state.replace(params=start['params'], batch_stats=start['batch_stats'],
                        lookahead=jax.tree.map(np.copy, start))
  batch = input_pipeline.to_global({'image': images, 'label': labels.astype(np.int32)},
                                   exp.mesh)
  for _ in range(6):
    state = exp.train_step(state, batch)
  got = jax.device_get({'params': state.params, 'batch_stats': state.batch_stats})
  flat = lambda tree: {jax.tree_util.keystr(p): v
                       for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  for ours, theirs in ((got, want), (jax.device_get(state.lookahead), want_ema)):
    ours, theirs = flat(ours), flat(theirs)
    assert ours.keys() == theirs.keys()
    errors = {key: float(relative(ours[key], theirs[key])) for key in theirs}
    assert max(errors.values()) <= 1e-4, errors
  got, start, ema = flat(got), flat(start), flat(jax.device_get(state.lookahead))
  moved = [k for k in got if not np.array_equal(got[k], start[k])]
  assert "['params']['whiten']['kernel']" not in moved  # frozen
  assert "['params']['whiten']['bias']" in moved and len(moved) == len(got) - 1
  assert any(not np.array_equal(ema[k], start[k]) for k in ema)  # the step-5 update


@pytest.mark.fast
def test_the_config_is_the_recipe_these_tests_check():
  """configs/airbench.py holds the constants the step-by-step test above runs against the
  package, at batch 1024, and the package's 476 steps of 48 an epoch."""
  import input_pipeline  # pylint: disable=import-outside-toplevel
  from configs import airbench  # pylint: disable=import-outside-toplevel
  from lib import experiment  # pylint: disable=import-outside-toplevel
  config, checked = airbench.get_config(), airbench_config(1024)
  assert config.label_smoothing == checked.label_smoothing == 0.2
  for key in ('optimizer', 'schedule', 'lookahead'):
    assert config[key].to_dict() == checked[key].to_dict(), key
  assert config.schedule.learning_rate == pytest.approx(1.5)  # 11.5 / (1 + 1 / 0.15)
  cifar10 = input_pipeline.DatasetInfo('cifar10', 10, (32, 32, 3), 50_000, 10_000)
  length = experiment.run_length(config, cifar10)
  assert (length.steps_per_epoch, length.total_steps) == (48, 476)
  # (the preset's pad_crop(2, reflect) has a mode of its own: dataset.pad_mode is idle)
  assert config.dataset.augment == 'airbench' and not transforms.reads_pad_mode(config)
  assert models.create_model_from_config(config.model, 10).whiten_bias_epochs == 3
  with pytest.raises(ValueError, match='variant must be one of'):
    airbench.get_config('variant=96')
