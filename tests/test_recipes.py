"""What a recipe adds to a run, seen from the run: the lookahead average it ends on, the
BatchNorm statistics a fine-tune run starts from, airbench's whitening from the data.
Each is read from the state the run's first step receives, or from its last checkpoint,
and compared with a reference of its own (the source checkpoint, numpy, the paper)."""

import dataclasses
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from configs import airbench as airbench_config
from configs import default
import input_pipeline
from lib import checkpoints
from lib import experiment
from lib import parallel
from lib import recipes
import train

# A small network with BatchNorm after each conv (the convnet's default norm).
BN_CONVNET = {'name': 'convnet', 'head': {'pool': 'gap'},
              'stages': ({'width': 8, 'stride': 2}, {'width': 16, 'stride': 2})}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision's models


class FirstStep(Exception):
  """Raised by the spy after it has seen the state the run's first step receives."""


@pytest.fixture
def first_state(monkeypatch):
  """(seen, stop): seen gets host copies of the params and batch_stats the run's first
  train step is given; once anything is appended to stop, the run ends there."""
  seen, seen_stop = {}, []
  setup = experiment.setup

  class Spy:
    def __init__(self, step):
      self.step = step

    def __getattr__(self, name):  # lower, compile: the jitted step's own
      return getattr(self.step, name)

    def __call__(self, state, inputs):
      if not seen:
        seen.update(jax.device_get({'params': state.params,
                                    'batch_stats': state.batch_stats}))
        if seen_stop:
          raise FirstStep
      return self.step(state, inputs)

  def spying_setup(*args, **kwargs):
    exp = setup(*args, **kwargs)
    return dataclasses.replace(exp, train_step=Spy(exp.train_step))

  monkeypatch.setattr(experiment, 'setup', spying_setup)
  return seen, seen_stop


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def bn_convnet(steps, **overrides):
  c = default.get_config()
  c.model = BN_CONVNET
  c.dataset.update({'name': 'mnist5k', 'augment': 'none', 'channels': 1, 'workers': 0})
  c.batch_size, c.num_train_steps = 16, steps
  c.schedule.name, c.schedule.learning_rate = 'constant', 0.05
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = steps
  c.update(overrides)
  return c


def test_init_from_starts_from_the_sources_batchnorm_statistics(first_state, tmp_path):
  """A fine-tune run's first step has the source's parameters and its BatchNorm running
  means and variances, not BatchNorm's initial 0 and 1."""
  seen, stop = first_state
  source = str(tmp_path / 'source')
  train.train_and_evaluate(bn_convnet(4), source)
  saved = checkpoints.read_state(source)
  means = [v for k, v in jax.tree_util.tree_flatten_with_path(saved['batch_stats'])[0]
           if k[-1].key == 'mean']
  assert means and all(np.abs(m).max() > 1e-3 for m in means)  # the statistics moved
  seen.clear()
  stop.append(True)
  with pytest.raises(FirstStep):
    train.train_and_evaluate(bn_convnet(2, init_from=source, seed=7), str(tmp_path / 'tuned'))
  assert_trees_equal(seen['batch_stats'], saved['batch_stats'])
  assert_trees_equal(seen['params'], saved['params'])


def test_lookahead_run_ends_on_the_average(tmp_path):
  """airbench94's lookahead: the run ends by taking the average (LookaheadState.update
  with decay 1 after the last step), so the final parameters and BatchNorm statistics
  are the average after its last update, also when the run does not end on a multiple of
  `every` (22 steps, every 5); and that average has moved from the initial weights."""
  c = bn_convnet(22)
  c.lookahead.every = 5
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(c, workdir)
  final = checkpoints.read_state(workdir)
  assert int(final['step']) == 22
  assert_trees_equal(final['params'], final['lookahead']['params'])
  assert_trees_equal(final['batch_stats'], final['lookahead']['batch_stats'])
  first = jax.tree.leaves(final['params'])[0]
  exp = experiment.setup(c, input_pipeline.dataset_info(c), parallel.data_mesh())
  init = jax.tree.leaves(jax.device_get(exp.init(jax.random.key(c.seed)).params))[0]
  assert np.abs(first - init).max() > 1e-3


def write_colour_folder(root, count=48, size=32):
  """RGB images with correlated, unequal channels and neighbouring pixels, so their 2x2
  patches' covariance has 12 distinct eigenvalues; two classes, train and test."""
  rng = np.random.default_rng(0)
  images = []
  for split, n in (('train', count), ('test', 8)):
    for i in range(n):
      noise = rng.normal(size=(size + 1, size + 1, 3))
      smooth = noise[1:, 1:] + 0.6 * noise[:-1, 1:] + 0.3 * noise[1:, :-1]
      mixed = smooth @ np.array([[1.0, 0.5, 0.2], [0.0, 0.8, 0.4], [0.0, 0.0, 0.5]])
      image = np.clip(128 + 30 * mixed, 0, 255).astype(np.uint8)
      folder = root / split / f'c{i % 2}'
      folder.mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(folder / f'{i}.png')
      if split == 'train':
        images.append(image)
  return np.stack(images)


def test_a_new_airbench_run_whitens_from_its_training_images(first_state, tmp_path):
  """airbench94 (Jordan 2024, section 3.2; the package's init_whitening_conv): the first
  step of a new run has the whitening kernel of the training images (all of them, here
  fewer than its 5,000), normalised as the network sees them: the package's eigenvectors
  of their 2x2 patches' covariance, scaled by 1/sqrt(eigenvalue + 5e-4), and negated."""
  sys.modules.setdefault('torchvision._meta_registrations',
                         types.ModuleType('torchvision._meta_registrations'))
  from airbench import utils  # pylint: disable=import-outside-toplevel  (torchvision)
  seen, stop = first_state
  images = write_colour_folder(tmp_path / 'data')
  c = airbench_config.get_config()
  c.dataset.update({'name': f"folder:{tmp_path / 'data'}", 'workers': 0})
  # 5 steps (its lookahead's period; a shorter run is refused), of which the first runs.
  c.batch_size, c.num_epochs, c.num_train_steps = 8, None, 5
  c.eval_every_epochs = c.checkpoint_every_epochs = None
  c.eval_every_steps = c.checkpoint_every_steps = c.log_every_steps = 5
  stop.append(True)
  with pytest.raises(FirstStep):
    train.train_and_evaluate(c, str(tmp_path / 'run'))
  mean, std = IMAGENET_STATS  # a folder is normalised with ImageNet's statistics
  x = ((images / 255. - np.array(mean)) / np.array(std)).astype(np.float32)
  layer = torch.nn.Conv2d(3, 24, 2, bias=True)
  utils.init_whitening_conv(layer, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
  want = layer.weight.detach().numpy().transpose(2, 3, 1, 0)  # HWIO
  got = seen['params']['whiten']['kernel']
  assert got.shape == want.shape == (2, 2, 3, 24)
  for i in range(24):  # each eigenvector's sign is the solver's choice
    sign = np.sign(np.sum(got[..., i] * want[..., i]))
    np.testing.assert_allclose(sign * got[..., i], want[..., i], rtol=1e-3, atol=1e-3)


# ----------------------------------------------------------------------------- mixup


def mixup_step(alpha, step=0):
  """(the loss one train step of the BatchNorm convnet with config.mixup_alpha=alpha
  logs at step `step`, and the same step's loss written here with torch: lam *
  CE(y_i) + (1 - lam) * CE(y_j) on the model's logits of x = lam * x_i + (1 - lam) *
  x_j, j the reversed batch, and the plain CE(y_i) of those logits)."""
  c = bn_convnet(4, mixup_alpha=alpha)
  info = input_pipeline.dataset_info(c)
  exp = experiment.setup(c, info, parallel.data_mesh())
  state = exp.init(jax.random.key(c.seed)).replace(step=jnp.int32(step))
  inputs = next(input_pipeline.train_inputs(c, info, exp.mesh, start_step=step))
  prepare, _ = input_pipeline.train_model_input(c, info, exp.mesh)
  batch = jax.jit(prepare, static_argnums=2)(jnp.int32(step), inputs, jnp.float32)
  rng = jax.random.fold_in(jax.random.key(c.seed), step)  # the step's key
  lam = float(recipes.mixup_weight(rng, alpha))
  assert 0 < lam < 1
  x = lam * batch['image'] + (1 - lam) * batch['image'][::-1]
  logits, _, _ = exp.net.apply({'params': state.params, 'batch_stats': state.batch_stats},
                                 x, train=True, rng=rng)
  logits = torch.from_numpy(np.asarray(logits, np.float64))
  labels = torch.from_numpy(np.asarray(batch['label'], np.int64))
  ce = lambda y: float(torch.nn.functional.cross_entropy(logits, y))
  want = lam * ce(labels) + (1 - lam) * ce(labels.flip(0))
  after = exp.train_step(state, inputs)  # (donates the state: last)
  return float(after.metrics['loss']), want, ce(labels)


@pytest.mark.parametrize('step', [0, 3])
def test_mixup_loss_is_lambda_weighted_cross_entropy_of_the_two_labels(step):
  """config.mixup_alpha (Zhang et al. 2018): the step trains on x = lam * x_i +
  (1 - lam) * x_j with lam ~ Beta(alpha, alpha), j the reversed batch, and its loss is
  lam * CE(y_i) + (1 - lam) * CE(y_j)."""
  loss, want, plain = mixup_step(0.4, step)
  assert loss == pytest.approx(want, rel=1e-5)
  assert abs(loss - plain) > 1e-3  # (the second label counts)


@pytest.mark.fast
def test_mixup_weights_follow_beta_alpha_alpha():
  """lam ~ Beta(alpha, alpha), one per step: over 2,000 steps' keys, alpha=0.2 puts
  about two thirds of the draws below 0.1 or above 0.9, and the quartiles are numpy's
  Beta(0.2, 0.2)'s."""
  keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(0), s))(jnp.arange(2000))
  lam = np.asarray(jax.vmap(lambda k: recipes.mixup_weight(k, 0.2))(keys))
  reference = np.random.default_rng(0).beta(0.2, 0.2, 200_000)
  assert abs(lam.mean() - 0.5) < 0.03
  np.testing.assert_allclose(np.quantile(lam, [0.25, 0.5, 0.75]),
                             np.quantile(reference, [0.25, 0.5, 0.75]), atol=0.04)
  assert 0.6 < np.mean((lam < 0.1) | (lam > 0.9)) < 0.72  # numpy's: 0.67
