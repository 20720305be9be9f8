"""The "Adding ..." sections of docs/DESIGN.md done as a contributor would: each test makes
exactly the change its section lists (here as monkeypatched entries, in the project as
lines of code) and shows it working end to end. (Adding a model: tests/test_wide_resnet.py;
a loss term: mixup, tests/test_recipes.py; an augmentation: cutout, tests/test_augment.py;
a config key: tests/test_config_keys.py.)"""

import json

import numpy as np
import optax

from configs import common
from configs import lenet
from data import sources
from lib import optim
import train
from tests import support


def _npz_open(config, split):
  """An `.npz` of uint8 images (N, H, W, C) and int labels: x_train, y_train, x_test,
  y_test."""
  arrays = np.load(sources.path_of(config.dataset.name))
  suffix = 'train' if split == 'train' else 'test'
  return sources.ArraySource(arrays[f'x_{suffix}'], arrays[f'y_{suffix}'])


def _npz_info(config):
  opened = {split: _npz_open(config, split) for split in ('train', 'eval')}
  images = opened['train'].images
  return sources.DatasetInfo('npz', int(opened['train'].labels.max()) + 1, images.shape[1:],
                             len(opened['train']), len(opened['eval']), opened=opened)


def test_adding_a_dataset_source(tmp_path, monkeypatch):
  """One entry in data/sources.SOURCES: an `npz:PATH` source trains, and config.json
  records its path made absolute, as a folder's is."""
  monkeypatch.setitem(sources.SOURCES, 'npz', sources.Source(_npz_info, _npz_open))
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, 96)
  images = (labels[:, None, None, None] * 80 + rng.integers(0, 40, (96, 32, 32, 1)))
  np.savez(tmp_path / 'digits.npz', x_train=images[:64].astype(np.uint8),
           y_train=labels[:64], x_test=images[64:].astype(np.uint8), y_test=labels[64:])
  monkeypatch.chdir(tmp_path)
  c = lenet.get_config()
  c.dataset.name = 'npz:digits.npz'  # (relative: the run contract makes it absolute)
  c.batch_size, c.num_epochs, c.num_train_steps = 16, None, 12
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 6
  c.schedule.warmup_steps = 2
  metrics = train.train_and_evaluate(c, str(tmp_path / 'run'))
  assert metrics['num_examples'] == 32 and metrics['step'] == 12
  with open(tmp_path / 'run' / 'config.json') as f:
    assert json.load(f)['dataset']['name'] == f'npz:{tmp_path}/digits.npz'
  assert sources.kind('npz:/x.npz') == 'npz' and not sources.is_encoded(c)


def test_adding_an_optimizer(monkeypatch):
  """One entry in lib/optim.OPTIMIZERS: Lion (Chen et al. 2023) from optax's scale_by_lion,
  its decay decoupled, reading the Adam keys b1 and b2; the optimizer the config makes is
  optax.lion's, the project's decay mask (kernels) included."""
  monkeypatch.setitem(optim.OPTIMIZERS, 'lion',
                      lambda o: (optax.scale_by_lion(b1=o.b1, b2=o.b2), True))
  c = lenet.get_config()
  common.adamw_cosine_recipe(c, learning_rate=1e-4, warmup_steps=0)
  c.optimizer.name, c.optimizer.b2, c.optimizer.weight_decay = 'lion', 0.99, 0.1
  want = optax.lion(1e-4, b1=0.9, b2=0.99, weight_decay=0.1, mask=optim.kernel_mask)
  updates = support.optimizer_updates
  for got, expected in zip(updates(optim.create_optimizer(c)), updates(want)):
    for leaf in ('kernel', 'bias'):
      np.testing.assert_allclose(got['conv'][leaf], expected['conv'][leaf], rtol=1e-6)
