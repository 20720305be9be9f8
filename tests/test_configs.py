"""Every shipped config file builds its model at its image size, with its optimizer and
schedule, and the `:arg` settings reach the fields they name; the key table
(configs/keys.py) builds the configs the hand-written default.py built, and the README
lists its keys."""

import glob
import hashlib
import importlib
import json
import math
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from configs import keys
from data import sources
from lib import experiment
from lib import optim

pytestmark = pytest.mark.fast  # (the fast lane: README)

CONFIGS = [
    ('resnet', None), ('resnet', 'depth=110'), ('resnet', 'imagenet,depth=50'),
    ('lenet', None), ('lenet', 'mnist,activation=tanh,pooling=avg'),
    ('vgg', None), ('vgg', 'config=A-LRN'), ('vgg', 'config=E,bn,jitter'),
    ('vgg', 'config=A,cifar,bn'), ('vgg', 'config=A,cifar'), ('alexnet', None),
    ('alexnet', 'v1'), ('alexnet', 'zfnet'),
    ('googlenet', None), ('googlenet', 'bn'), ('simple_cnn', None),
    ('simple_cnn', 'mnist5k'), ('convnet', None),
    ('convnet', 'kernel=7,stride=2,pool=conv,padding=reflect,depth=1'),
    ('convnet', 'pool=avg,stages=4,dataset=mnist5k'), ('airbench', None),
    ('airbench', 'variant=95')]
NUM_CLASSES = {'cifar10': 10, 'mnist5k': 10, 'mnist': 10, 'imagenet2012': 1000}


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name, arg):
  return importlib.import_module(f'configs.{name}').get_config(arg)


def documented_configs() -> set:
  """Each (file, arg) of a `configs/F.py:arg` the README and the config files show."""
  texts = [open(os.path.join(ROOT, 'README.md')).read()] + [
      open(p).read() for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))]
  return {(n, a.rstrip('.,')) for t in texts
          for n, a in re.findall(r'configs/(\w+)\.py:([\w=,.-]*\w)', t)}


@pytest.mark.parametrize('name,arg', CONFIGS)
def test_config_builds_its_model_and_schedule(name, arg):
  c = load(name, arg)
  num_classes = NUM_CLASSES[c.dataset.name]
  model = experiment.create_net(c, num_classes)
  size, channels = c.dataset.image_size, c.dataset.channels
  out = jax.eval_shape(model.apply, jax.eval_shape(model.init, jax.random.key(0)),
                       jax.ShapeDtypeStruct((2, size, size, channels), jnp.float32))
  assert out.shape == (2, num_classes)
  optim.create_optimizer(c)
  schedule = optim.create_schedule(c, steps_per_epoch=100, total_steps=1000)
  s = c.schedule
  # Step 0's rate as each schedule defines it: the first interval's multiplier, the first
  # step of a linear warm-up, the triangle's start, or the base rate.
  first = {'piecewise': s.learning_rate * s.multipliers[0],
           'cosine': s.learning_rate / max(s.warmup_steps, 1),
           'triangle': s.learning_rate * s.triangle[0]}.get(s.name, s.learning_rate)
  assert float(schedule(0)) == pytest.approx(first, rel=1e-6) and first > 0
  rates = [float(schedule(step)) for step in range(0, 1000, 10)]
  after_peak = rates[rates.index(max(rates)):]  # after a warm-up (ResNet-110's 0.01: 4.2)
  assert after_peak == sorted(after_peak, reverse=True), 'the rate never rises again'


def test_arguments_reach_the_config():
  c = load('convnet', 'kernel=5,pool=conv,padding=reflect,stages=2')
  assert [s['kernel'] for s in c.model.stages] == [5, 5]
  assert c.model.stages[0]['downsample']['type'] == 'conv'
  assert c.model.stages[1]['padding_mode'] == 'reflect'
  assert load('vgg', 'config=B,bn').model.name == 'vgg_b_bn'
  assert load('alexnet', 'v1').dataset.image_size == 227
  assert load('resnet', 'depth=110').schedule.multipliers[0] == 0.1  # 0.01 at first
  with pytest.raises(ValueError, match='not one of'):
    load('convnet', 'kernal=3')


def test_every_config_argument_the_docs_name_builds():
  """Each `configs/F.py:arg` the README and the config files show loads and builds."""
  named = documented_configs()
  assert ('resnet', 'imagenet,depth=50') in named
  for name, arg in sorted(named):
    c = load(name, arg)
    experiment.create_net(c, NUM_CLASSES.get(c.dataset.name, 10))
    optim.create_optimizer(c)


def _convnet_kernel5_conv_pool_params():
  """configs/convnet.py:kernel=5,pool=conv by hand: three stages of width 32, 64, 128,
  each two 5x5 convs and a 3x3 stride-2 downsampling conv, every conv bias-free with a
  BatchNorm (scale and bias), global average pooling and a 10-way FC."""
  total, cin = 0, 3
  for width in (32, 64, 128):
    for k, c in ((5, cin), (5, width), (3, width)):
      total += k * k * c * width + 2 * width
    cin = width
  return total + 128 * 10 + 10


# The documented configs CONFIGS does not hold, initialised, with their parameter counts:
# ResNet-56 0.85M (He et al. 2016, Table 6), VGG-D 138M (Simonyan & Zisserman 2015,
# Table 2), ResNet-18/50 on ImageNet as torchvision's (the paper gives FLOPs, not counts).
DOCUMENTED = {('resnet', 'depth=56'): ('millions', 0.85),
              ('vgg', 'config=D'): ('millions', 138),
              ('resnet', 'imagenet'): ('exact', 25_557_032),
              ('resnet', 'imagenet,depth=18'): ('exact', 11_689_512),
              ('convnet', 'kernel=5,pool=conv'): ('exact', _convnet_kernel5_conv_pool_params())}


@pytest.mark.parametrize('name,arg', sorted(DOCUMENTED))
def test_documented_configs_initialise_with_the_papers_parameter_counts(name, arg):
  c = load(name, arg)
  num_classes = NUM_CLASSES[c.dataset.name]
  model = experiment.create_net(c, num_classes)
  size, channels = c.dataset.image_size, c.dataset.channels
  variables = jax.eval_shape(model.init, jax.random.key(0))
  logits = jax.eval_shape(model.apply, variables,
                          jax.ShapeDtypeStruct((2, size, size, channels), jnp.float32))
  assert logits.shape == (2, num_classes)
  count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(variables['params']))
  kind, want = DOCUMENTED[name, arg]
  if kind == 'exact':
    assert count == want
  else:
    assert round(count / 1e6, 2 if want < 1 else 0) == want


def test_every_documented_config_is_initialised_here():
  """The docs' configs are those of CONFIGS (initialised above) and DOCUMENTED."""
  named = documented_configs()
  assert named <= set(CONFIGS) | set(DOCUMENTED)


# ------------------------------------------------------------------------ the key table

def test_the_readme_lists_every_key_as_the_table_declares_it():
  """The README's list is `python -m configs.keys --markdown`, between its markers."""
  readme = open(os.path.join(ROOT, 'README.md')).read()
  listed = re.search(r'<!-- keys: .*? -->\n(.*?)<!-- /keys -->', readme, re.S)
  assert listed, 'README.md has no <!-- keys: ... --> list'
  assert listed.group(1) == keys.markdown(), 'regenerate: python -m configs.keys --markdown'
  assert all(f'| `{name}` |' in listed.group(1) for name in keys.KEYS)


def test_every_default_is_within_its_declared_range_and_type():
  config = default.get_config()
  experiment.check_ranges(config, keys.RANGES)
  for key in keys.KEYS.values():
    assert key.default is None or isinstance(key.default, key.type), key.name
  _, admits = keys.RANGES['precision']
  assert admits == f'one of {list(experiment.PRECISIONS)}'  # (the dtypes the model maps)


def test_a_range_passes_the_none_a_key_admits():
  config = default.get_config()
  config.num_classes = None  # (the dataset's: admitted)
  experiment.check_ranges(config, ['num_classes'])
  config.num_classes = 0
  with pytest.raises(ValueError, match="config.num_classes must be positive, or None for "
                                       "the dataset's; got 0"):
    experiment.check_ranges(config, ['num_classes'])


@pytest.mark.parametrize('name,arg', CONFIGS)
def test_config_sets_only_declared_keys_that_act(name, arg):
  """What train.py checks as it loads a config file (lib/cli.py): every key declared,
  and none of those the file changed from the defaults idle under its other settings."""
  c = load(name, arg)
  keys.check_declared(c)
  experiment.refuse_idle(c, default.changed_keys(c))


# ------------------------------------------------------------- the learning-rate schedules

def _run_length(c) -> tuple[int, int]:
  """(steps per epoch, steps) of a config's run on its dataset's published training size."""
  per_epoch = sources.PUBLISHED_TRAIN_SIZES[c.dataset.name] // c.batch_size
  return per_epoch, c.num_train_steps or math.ceil(c.num_epochs * per_epoch)


def _rates(c) -> np.ndarray:
  per_epoch, total = _run_length(c)
  rates = optim.create_schedule(c, per_epoch, total)(jnp.arange(total))
  return np.broadcast_to(np.asarray(rates, np.float32), (total,))


with open(os.path.join(ROOT, 'tests', 'data', 'learning_rates.json')) as _f:
  # Each shipped config's rate at every step of its run, as hand-written schedules gave
  # it before optax's took their place (a sha256 of the float32 rates, and a few of them
  # to read): recorded once, at commit 44a5663.
  RECORDED_RATES = json.load(_f)


@pytest.mark.parametrize('name,arg', CONFIGS + [('nin', None), ('nin', 'augment')])
def test_every_shipped_schedule_gives_the_rates_it_always_gave(name, arg):
  c = load(name, arg)
  recorded, rates = RECORDED_RATES[f'{name}:{arg or ""}'], _rates(c)
  assert (len(rates), _run_length(c)[0]) == (recorded['total_steps'],
                                             recorded['steps_per_epoch'])
  assert {s: float(rates[int(s)]) for s in recorded['some']} == recorded['some']
  assert hashlib.sha256(rates.tobytes()).hexdigest() == recorded['sha256']


@pytest.mark.parametrize('name,arg', [('resnet', 'depth=110'), ('lenet', None),
                                      ('resnet', 'imagenet,depth=50'), ('airbench', None)])
def test_the_optimizer_steps_at_the_schedules_rate(name, arg):
  """optax calls the schedule with its count of applied updates: plain SGD's n-th update
  is -schedule(n) * gradient (piecewise, cosine with warm-up, step, triangle)."""
  c = load(name, arg)
  c.optimizer.update(name='sgd', momentum=0.0, weight_decay=0.0, norm_bias_lr_scale=1.0)
  c.optimizer.grad_clip_norm = 0.0
  per_epoch, total = _run_length(c)
  schedule = optim.create_schedule(c, per_epoch, total)
  tx = optim.create_optimizer(c, schedule)
  params = {'kernel': jnp.ones((2,))}
  state = tx.init(params)
  for n in range(3):
    assert int(optim.updates_applied(state)) == n
    updates, state = tx.update({'kernel': jnp.full((2,), 2.0)}, state, params)
    np.testing.assert_array_equal(updates['kernel'], -2.0 * schedule(jnp.int32(n)))
