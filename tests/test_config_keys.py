"""Every key of configs/default.py takes effect or is refused: none is silently ignored.

For each key, the test overrides it on a config whose other settings read it, and
checks that what the run would do changes: its resolved durations, its learning rate,
its optimizer update, its model's output, its first training or eval batch, its data,
its checkpoints, or its reaction to a NaN. Each key's probe is the `affects` of its entry
in configs/keys.py (the observable below, the value, the settings that make it read); a
key declared without one fails `test_every_key_has_a_probe`.
"""

import dataclasses
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image
import tensorflow_datasets as tfds

from configs import default
from configs import keys
from data import sources
import input_pipeline
from lib import checkpoints
from lib import experiment
from lib import optim
from lib import parallel
from lib import recipes
from lib import steps
import train
from tests import support
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_config(**changes):
  """LeNet-5 on the 4,000 mnist5k digits, four steps."""
  c = default.get_config()
  c.model = {'name': 'lenet5'}
  c.dataset.update(name='mnist5k', image_size=32, channels=1, augment='none', workers=0)
  c.batch_size = 16
  c.num_train_steps, c.log_every_steps, c.eval_every_steps = 4, 2, 4
  c.checkpoint_every_steps = 4
  c.schedule.name = 'constant'
  c.schedule.learning_rate = 0.01
  for key, value in changes.items():
    set_key(c, key, value)
  return c


def set_key(config, key, value):
  *parents, leaf = key.split('.')
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  default.clear_duration_partners(config, {key})


def checked_info(config, key):
  """The checks a launch runs with `key` given on the command line (None: the key set
  by a config file, which need not act), then the data."""
  experiment.check(config, given={key} - {None})
  info = input_pipeline.dataset_info(config)
  input_pipeline.check_config(config, info)
  return info


# ------------------------------------------------------------------------- observables


def length(config, key):
  return dataclasses.asdict(experiment.run_length(config, checked_info(config, key)))


def learning_rates(config, key):
  info = checked_info(config, key)
  exp = experiment.setup(config, info, parallel.data_mesh())
  steps = jnp.array([0, 1, 10, 100, 399, 400, 401, 1000, 5000, 20000, 40000])
  return np.asarray(exp.schedule(steps))


def plateau(config, key):
  """The reduce-on-plateau multipliers after a series of evaluations (train.py updates
  them on the plateau schedule only)."""
  checked_info(config, key)
  scale, best, bad, out = 1.0, -1.0, 0, []
  for top1 in (0.5, 0.4, 0.4, 0.4, 0.4, 0.4):
    if config.schedule.name == 'plateau':
      scale, best, bad = optim.plateau_update(config, scale, best, bad, top1)
    out.append(scale)
  return out


def updates(config, key):
  """Three optimizer steps on a kernel, a bias, a BatchNorm scale and bias."""
  checked_info(config, key)
  tx = optim.create_optimizer(config)
  params = {'conv': {'kernel': jnp.full((3,), 2.0), 'bias': jnp.ones(2)},
            'bn': {'scale': jnp.ones(2), 'bias': jnp.full((2,), 0.5)}}
  grads = jax.tree.map(lambda p: jnp.linspace(-30.0, 50.0, p.size), params)
  state = tx.init(params)
  for _ in range(3):
    step, state = tx.update(grads, state, params)
    params = jax.tree.map(jnp.add, params, step)
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)])


def model_output(config, key):
  info = checked_info(config, key)
  exp = experiment.setup(config, info, parallel.data_mesh())
  size, channels = config.dataset.image_size, config.dataset.channels
  x = jnp.linspace(0, 1, size * size * channels).reshape(1, size, size, channels)
  variables = exp.net.init(jax.random.key(0))
  return np.asarray(exp.net.apply(variables, x), np.float64)


def train_loss(config, key):
  """The loss of one real train step."""
  info = checked_info(config, key)
  exp = experiment.setup(config, info, parallel.data_mesh())
  state = exp.init(jax.random.key(config.seed))
  batches = input_pipeline.train_inputs(config, info, exp.mesh)
  state = exp.train_step(state, next(batches))
  return float(state.metrics['loss'])


def averaged(config, key):
  """What the train step's lookahead does at step 5 of 10 to a toy state: the network's
  weights and the average after it (as `updates` runs the optimizer on toy weights)."""
  checked_info(config, key)
  toy = {'params': {'w': jnp.ones(3)}, 'batch_stats': {'mean': jnp.full(3, 2.0)}}
  state = steps.TrainState(
      step=jnp.int32(5), params=toy['params'], batch_stats=toy['batch_stats'],
      opt_state=None, lr_scale=None, best_top1=None, bad_evals=None, nonfinite=None,
      first_nonfinite=None, metrics=None, lookahead=jax.tree.map(jnp.zeros_like, toy))
  if config.lookahead.every:  # (as make_train_step: no average without it)
    state = recipes.lookahead(config.lookahead, state, 10)
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(
      (state.params, state.batch_stats, state.lookahead))])


def first_batch(config, key):
  """The first training batch as the model sees it, and which path fed it."""
  info = checked_info(config, key)
  mesh = parallel.data_mesh()
  prepare, _ = input_pipeline.train_model_input(config, info, mesh)
  inputs = next(input_pipeline.train_inputs(config, info, mesh))
  batch = jax.jit(prepare, static_argnums=2)(jnp.int32(0), inputs, jnp.float32)
  return {'resident': input_pipeline.resident(config, info),
          'image': np.asarray(batch['image']), 'label': np.asarray(batch['label'])}


def data(config, key):
  """The sizes of the data, its first eval batch, and what reads it."""
  info = checked_info(config, key)
  batch = next(iter(input_pipeline.eval_dataset(config, info)))
  return {'sizes': (info.name, info.num_classes, info.num_train, info.num_eval,
                    info.num_corrupt),
          'eval': np.asarray(batch['image']), 'workers': input_pipeline.num_workers(config),
          'resident': input_pipeline.resident(config, info)}


def files_opened(config, key):
  """How many image files a launch on a folder opens, once the folder has been seen."""
  for _ in range(2):
    sources._folder.cache_clear()  # pylint: disable=protected-access  (a new launch)
    checked_info(config, key)
  return sources._folder_of(config).inspected  # pylint: disable=protected-access


def tfds_source(config, key):
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    info = checked_info(config, key)
  return info.opened['train'].args


def run(config, key, tmp_path):
  """A whole run: the checkpoints it keeps, or the fault that stopped it."""
  workdir = str(tmp_path / f'run{len(os.listdir(tmp_path))}')
  try:
    train.train_and_evaluate(config, workdir, given={key})
  except train.TrainingStopped as e:
    return f'stopped: {str(e)[:40]}'
  return checkpoints.saved_steps(workdir)


def distributed(config, key, monkeypatch):
  checked_info(config, key)
  calls = []
  monkeypatch.setattr(jax.distributed, 'initialize', lambda *a, **k: calls.append(a))
  monkeypatch.delenv('JAX_NUM_PROCESSES', raising=False)
  monkeypatch.delenv('SLURM_NTASKS', raising=False)
  parallel.maybe_initialize_distributed(config)
  return len(calls)


def initial_params(config, key):
  info = checked_info(config, key)
  exp = experiment.setup(config, info, parallel.data_mesh())
  weights = train.initial_weights(exp)
  return None if weights is None else np.concatenate(
      [np.ravel(x) for x in jax.tree.leaves(weights['params'])])


# ------------------------------------------------------------------------------ probes

# key -> (observable, the base config's settings, the override), as configs/keys.py
# declares each key's `affects`. The base settings make the key read: a schedule key on
# its schedule, an Adam key with AdamW, and so on.
PROBES = {k.name: (globals()[k.affects[0]], k.affects[2], k.affects[1])
          for k in keys.KEYS.values() if k.affects}


@pytest.mark.fast
def test_every_key_has_a_probe():
  assert sorted(PROBES) == sorted(keys.flatten(default.get_config()))


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
  """An RGB folder dataset of 40x56 PNGs, and a copy with one truncated file."""
  root = tmp_path_factory.mktemp('folders')
  rng = np.random.RandomState(0)
  for name in ('ds', 'ds_corrupt'):
    for split, count in (('train', 12), ('test', 4)):
      for c in range(2):
        os.makedirs(root / name / split / f'c{c}')
        for i in range(count):
          Image.fromarray(rng.randint(0, 255, (40, 56, 3), np.uint8)).save(
              root / name / split / f'c{c}' / f'{i}.png')
  with open(root / 'ds_corrupt' / 'train' / 'c0' / '0.png', 'r+b') as f:
    f.truncate(100)
  return str(root / 'ds')


def resolve(value, folders, trained):
  if isinstance(value, str):
    return value.format(folder=folders, trained=trained)
  if isinstance(value, dict):
    return {k: resolve(v, folders, trained) for k, v in value.items()}
  return value


def differs(a, b) -> bool:
  if isinstance(a, dict):
    return a.keys() != b.keys() or any(differs(a[k], b[k]) for k in a)
  if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
    return np.shape(a) != np.shape(b) or not np.array_equal(a, b)
  return a != b


@pytest.mark.parametrize('key', sorted(PROBES))
def test_overriding_a_key_changes_what_the_run_does(key, folders, trained_lenet, tmp_path,
                                                    monkeypatch):
  observe, settings, value = PROBES[key]
  settings = resolve(settings, folders, str(trained_lenet[0]))
  value = resolve(value, folders, str(trained_lenet[0]))
  extra = {'run': (tmp_path,), 'distributed': (monkeypatch,)}.get(observe.__name__, ())

  def outcome(config):
    try:
      return observe(config, key, *extra)
    except ValueError as e:  # refused
      return f'refused: {e}'

  before = outcome(base_config(**settings))
  changed = base_config(**settings)
  set_key(changed, key, value)
  after = outcome(changed)
  assert not str(after).startswith('refused'), after
  # (a corrupt file stops the base run: on_corrupt='skip' is what lets it go on)
  assert not str(before).startswith('refused') or key == 'dataset.on_corrupt', before
  assert differs(before, after), f'--config.{key}={value!r} changed nothing'


@pytest.mark.parametrize('key,value,message', [
    ('label_smoothing', 2.0, r'config.label_smoothing must be in \[0, 1\); got 2.0'),
    ('schedule.warmup_steps', -5, 'config.schedule.warmup_steps must be >= 0; got -5'),
    ('seed', -1, r'config.seed must be in \[0, 2\*\*31\); got -1'),
    ('optimizer.momentum', 1.5, r'config.optimizer.momentum must be in \[0, 1\)'),
    ('schedule.factor', 0.0, r'config.schedule.factor must be in \(0, 1\]'),
    ('dataset.workers', -2, 'config.dataset.workers must be >= 0, or -1'),
    ('schedule.multipliers', (1.0, 0.0, 0.1), 'config.schedule.multipliers must be each > 0'),
    # (NaN and infinity: issue 36, an infinite rate compiled and stopped at step 2)
    ('schedule.learning_rate', float('inf'), 'config.schedule.learning_rate must be > 0; '
                                             'got inf'),
    ('optimizer.weight_decay', float('nan'), 'config.optimizer.weight_decay must be >= 0; '
                                             'got nan'),
    ('schedule.multipliers', (1.0, float('inf'), 0.1), 'config.schedule.multipliers must '
                                                        'be each > 0; got'),
    ('schedule.boundaries', (100, float('inf')), 'config.schedule.boundaries must be '
                                                 'non-negative and increasing; got'),
    ('schedule.boundaries', (100, 50), 'config.schedule.boundaries must be non-negative and '
                                       'increasing; got'),
])
def test_out_of_range_values_are_refused_before_any_data(key, value, message):
  config = base_config(**{'dataset.name': 'no_such_dataset'})  # never opened
  set_key(config, key, value)
  with pytest.raises(ValueError, match=message):
    experiment.check(config)


# (key, settings where it cannot act, the override, what the refusal names it needs, an
# observable for `differs` where its probe's cannot run on those settings). Every
# READ_ONLY_WHEN condition has a row.
REFUSALS = [
    ('schedule.boundaries', {}, (1, 2), "schedule.name is 'piecewise'", None),
    ('schedule.boundaries_in_epochs', {'schedule.name': 'piecewise', 'schedule.boundaries': (),
                                       'schedule.multipliers': (0.5,)},
     True, 'with schedule.boundaries', None),
    ('schedule.multipliers', {}, (1.0, 0.5, 0.2), "schedule.name is 'piecewise'", None),
    ('schedule.step_epochs', {}, 2, "schedule.name is 'step'", None),
    ('schedule.step_epochs', {'schedule.name': 'step', 'schedule.factor': 1.0}, 2,
     'schedule.factor < 1', None),
    ('schedule.factor', {'schedule.name': 'cosine'}, 0.5, "'step' or 'plateau'", None),
    ('schedule.warmup_steps', {}, 100, "schedule.name is 'cosine'", None),
    ('schedule.patience', {'schedule.name': 'cosine'}, 3, "schedule.name is 'plateau'", None),
    ('schedule.patience', {'schedule.name': 'plateau', 'schedule.factor': 1.0}, 3,
     "'plateau' with schedule.factor < 1", None),
    ('schedule.min_learning_rate', {}, 0.005, "'cosine' with a run longer", None),
    ('schedule.min_learning_rate', {'schedule.name': 'cosine', 'schedule.warmup_steps': 3},
     0.005, 'a run longer than schedule.warmup_steps + 1', 'rates_of_the_run'),  # (4 steps:
    # the warm-up's 3, then the cosine's first, the base rate whatever the floor)
    ('schedule.triangle', {}, (0.5, 0.5, 0.1), "schedule.name is 'triangle'", None),
    ('optimizer.norm_bias_lr_scale', {}, 64.0, 'the model has normalisation biases',
     'model_updates'),  # (LeNet-5 has none)
    ('lookahead.decay', {}, 0.5, 'lookahead.every > 0', None),
    ('lookahead.power', {'lookahead.every': 5, 'lookahead.decay': 0.0}, 2.0,
     'lookahead.decay > 0', None),
    ('optimizer.momentum', {'optimizer.name': 'adamw'}, 0.5, "optimizer.name is 'sgd'", None),
    ('optimizer.nesterov', {'optimizer.name': 'adamw'}, True, "optimizer.name is 'sgd'", None),
    ('optimizer.nesterov', {'optimizer.momentum': 0.0}, True, 'optimizer.momentum > 0',
     'model_updates'),
    ('optimizer.b1', {}, 0.5, "optimizer.name is 'adam' or 'adamw'", None),
    ('optimizer.b2', {}, 0.5, "optimizer.name is 'adam' or 'adamw'", None),
    ('optimizer.decay_style', {'optimizer.weight_decay': 0.1, 'optimizer.momentum': 0.0},
     'decoupled', "with optimizer.name 'sgd' and momentum > 0", 'model_updates'),
    ('optimizer.decay_style', {'optimizer.weight_decay': 0.1, 'optimizer.name': 'adam'},
     'decoupled', "with optimizer.name 'sgd' and momentum > 0", None),  # (adam's is l2)
    ('optimizer.decay_params', {'optimizer.weight_decay': 0.0}, 'all',
     'optimizer.weight_decay > 0', None),
    ('dataset.pad_mode', {}, 'reflect', 'dataset.augment has a pad_crop without a mode', None),
    ('dataset.pad_mode', {'dataset.augment': 'airbench'}, 'zeros',  # (its pad_crop's own)
     'dataset.augment has a pad_crop without a mode', None),
    ('dataset.scale_min', {}, 56, "dataset.augment has scale_jitter (the 'vgg' preset)", None),
    ('dataset.scale_max', {}, 600, "dataset.augment has scale_jitter (the 'vgg' preset)", None),
    ('dataset.eval_resize', {}, 48, "dataset.augment has scale_jitter (the 'vgg' preset)", None),
    ('dataset.device_resident_max_mb', {'dataset.device_resident': False}, 0,
     'dataset.device_resident is True', None),
    ('dataset.synthetic_size', {}, 10, 'dataset.name is synthetic', None),
    ('dataset.on_corrupt', {}, 'skip', 'dataset.name is a folder:PATH', None),
    ('dataset.rescan', {}, True, 'dataset.name is a folder:PATH', 'data'),
    ('dataset.data_dir', {}, '/elsewhere', 'dataset.name is tfds (TFDS)', 'data'),
]
REFUSAL_IDS = [f'{key}-{i}' for i, (key, *_) in enumerate(REFUSALS)]


def test_every_condition_has_a_refusal_case():
  assert sorted({key for key, *_ in REFUSALS}) == sorted(keys.READ_ONLY_WHEN)


@pytest.mark.parametrize('key,settings,value,reader,_', REFUSALS, ids=REFUSAL_IDS)
def test_a_key_given_where_it_cannot_act_is_refused(key, settings, value, reader, _):
  config = base_config(**settings)
  set_key(config, key, value)
  experiment.check(config)  # the same value from a config file is not the user's doing
  with pytest.raises(ValueError, match=f'config.{key} is read only when .*'
                     + re.escape(reader)):
    experiment.check(config, given={key})


def test_a_condition_on_the_length_of_a_run_in_epochs_waits_for_the_data():
  """A cosine warm-up of 300 steps in a 1-epoch run: 4,000 mnist5k digits in batches of
  16 make 250 steps, so the floor never shows; only the data says so."""
  config = base_config(**{'schedule.name': 'cosine', 'schedule.warmup_steps': 300,
                          'num_epochs': 1.0, 'schedule.min_learning_rate': 0.001})
  given = {'schedule.min_learning_rate'}
  experiment.check(config, given=given)  # (the length unknown: not refused yet)
  info = input_pipeline.dataset_info(config)
  with pytest.raises(ValueError, match='config.schedule.min_learning_rate is read only'):
    experiment.refuse_idle(config, given, info)
  config.schedule.warmup_steps = 249  # step 249: the cosine's first, the base rate
  with pytest.raises(ValueError, match='config.schedule.min_learning_rate is read only'):
    experiment.refuse_idle(config, given, info)
  config.schedule.warmup_steps = 248  # step 249: half-way down, lr * (1 + floor / lr) / 2
  experiment.refuse_idle(config, given, info)


def rates_of_the_run(config, key):
  """The learning rate of each step of the run."""
  info = checked_info(config, key)
  exp = experiment.setup(config, info, parallel.data_mesh())
  return np.asarray(exp.schedule(jnp.arange(exp.length.total_steps)))


def model_updates(config, key):
  """Three optimizer steps on the parameters of the config's own model (LeNet-5's
  kernels and biases), from fixed gradients."""
  checked_info(config, key)
  model = experiment.create_net(config, 10)
  params = model.init(jax.random.key(0))['params']
  grads = jax.tree.map(lambda p: jnp.linspace(-3.0, 5.0, p.size).reshape(p.shape), params)
  tx = optim.create_optimizer(config)
  state = tx.init(params)
  for _ in range(3):
    step, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, step)
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(params)])


@pytest.mark.parametrize('key,settings,value,_,observable', REFUSALS, ids=REFUSAL_IDS)
def test_what_is_refused_would_change_nothing(key, settings, value, _, observable, tmp_path):
  """Each refusal is right: the run with the key set (as a config file may set it, where
  no refusal applies) does bitwise what it does without it."""
  observe = globals()[observable] if observable else PROBES[key][0]
  extra = {'run': (tmp_path,)}.get(observe.__name__, ())
  unchanged = base_config(**settings)
  changed = base_config(**settings)
  set_key(changed, key, value)
  before, after = (observe(c, None, *extra) for c in (unchanged, changed))
  assert not differs(before, after), f'--config.{key}={value!r} changes the run'


def test_only_durations_and_keys_none_by_default_admit_none():
  """--config.KEY=None: the eight duration keys (one of each pair is None) and
  num_classes (None: the dataset's), as default.py documents them; no other key."""
  config = default.get_config()
  admitting = {k for k in keys.flatten(config) if default.admits_none(config, k)}
  assert admitting == {'num_classes', 'num_train_steps', 'num_epochs', 'log_every_steps',
                       'log_every_epochs', 'eval_every_steps', 'eval_every_epochs',
                       'checkpoint_every_steps', 'checkpoint_every_epochs'}
  config.model.width = None  # a config file's own None (a model argument)
  assert default.admits_none(config, 'model.width')
  assert not default.admits_none(config, 'model.name')


def test_piecewise_rates_follow_the_base_learning_rate():
  """A learning-rate sweep on the ResNet/CIFAR recipe trains different trials."""
  from configs import resnet  # pylint: disable=import-outside-toplevel
  rates = {}
  for lr in (0.5, 0.001):
    c = resnet.get_config()
    c.schedule.learning_rate = lr
    schedule = optim.create_schedule(c, steps_per_epoch=391, total_steps=64000)
    rates[lr] = [float(schedule(s)) for s in (0, 32000, 48000)]
  np.testing.assert_allclose(rates[0.5], [0.5, 0.05, 0.005], rtol=1e-6)
  np.testing.assert_allclose(rates[0.001], [0.001, 1e-4, 1e-5], rtol=1e-6)


def test_weight_decay_covers_batchnorm_in_the_resnet_recipes_only():
  """fb.resnet.torch and torchvision decay every parameter; the Caffe recipes (AlexNet,
  VGG, GoogLeNet) and the modern short ones decay the kernels alone."""
  import importlib  # pylint: disable=import-outside-toplevel
  decay = lambda name, arg=None: importlib.import_module(f'configs.{name}').get_config(
      arg).optimizer.decay_params
  assert decay('resnet') == decay('resnet', 'imagenet,depth=50') == 'all'
  assert {decay('alexnet'), decay('vgg'), decay('googlenet'), decay('lenet')} == {'kernels'}
  c = base_config(**{'optimizer.weight_decay': 0.5, 'optimizer.momentum': 0.0})
  params = {'conv': {'kernel': jnp.ones(2), 'bias': jnp.ones(2)}, 'bn': {'scale': jnp.ones(2)}}
  zero = jax.tree.map(jnp.zeros_like, params)
  for decay_params, decayed in (('kernels', {'kernel'}), ('all', {'kernel', 'bias', 'scale'})):
    c.optimizer.decay_params = decay_params
    tx = optim.create_optimizer(c)
    step, _ = tx.update(zero, tx.init(params), params)
    moved = {path[-1].key for path, leaf in jax.tree_util.tree_flatten_with_path(step)[0]
             if np.any(np.asarray(leaf) != 0)}
    assert moved == decayed
    np.testing.assert_allclose(step['conv']['kernel'], -0.01 * 0.5 * np.ones(2), rtol=1e-6)


@pytest.mark.fast
def test_config_arguments_take_only_real_booleans_and_numbers():
  from configs import common, lenet  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=r"mnist='maybe': give true or false"):
    lenet.get_config('mnist=maybe')
  assert lenet.get_config('mnist=no').dataset.name == 'mnist5k'
  assert lenet.get_config('mnist=true').dataset.name == 'mnist'
  with pytest.raises(ValueError, match=r"depth='deep': give an integer, like its default depth=20"):
    common.parse_arg('depth=deep', depth=20)


def test_an_unknown_preset_is_named_before_the_keys_it_would_read():
  config = base_config(**{'dataset.augment': 'cifr', 'dataset.pad_mode': 'reflect'})
  with pytest.raises(ValueError, match=r"config.dataset.augment: unknown preset 'cifr'; .*"
                                       r"did you mean 'cifar'"):
    experiment.check(config, given={'dataset.pad_mode'})


# --------------------------------------------------- keys a config file sets (issue 36)

@pytest.mark.fast
def test_a_config_file_is_held_to_the_declared_keys():
  """What a file sets goes through the same table as the command line: a misspelt or
  misplaced key, a model argument the model does not take or a value outside its
  annotation is refused, naming the closest declared key."""
  def refused(change):
    config = default.get_config()
    config.model = {'name': 'lenet5', 'pooling': 'max'}
    change(config)
    with pytest.raises(ValueError) as error:
      keys.check_declared(config)
    return str(error.value)

  assert refused(lambda c: c.update(label_smothing=0.1)) == (
      "unknown config key 'label_smothing'; did you mean 'label_smoothing'?")
  assert refused(lambda c: c.optimizer.update(learning_rate=0.5)) == (
      "unknown config key 'optimizer.learning_rate'; did you mean 'schedule.learning_rate'?")
  assert "takes no argument 'activaton'; did you mean 'activation'?" in refused(
      lambda c: c.model.update(activaton='relu'))
  assert refused(lambda c: c.model.update(pooling='mean')) == (
      "config.model.pooling must be one of ['avg', 'max']; got 'mean'")
  assert refused(lambda c: setattr(c, 'model', {'name': 'vgg_a', 'dropout': 1.5})) == (
      'config.model.dropout must be in [0, 1); got 1.5')
  # and the keys every shipped config sets are all declared
  keys.check_declared(default.get_config())


@pytest.mark.fast
def test_a_model_declares_its_keys_in_its_signature():
  """A registered model's keys are its constructor's arguments, less those its registry
  entry binds and those the trainer sets (classes, channels, input size, precision)."""
  import models  # pylint: disable=import-outside-toplevel
  assert list(models.arguments('resnet50')) == ['stride_in_1x1', 'se_reduction',
                                                'zero_init_residual']
  assert list(models.arguments('se_resnet50')) == ['stride_in_1x1', 'zero_init_residual']
  assert list(models.arguments('resnet20')) == ['shortcut']  # (depth: resnet20's own)
  assert list(models.arguments('vgg_a_bn')) == ['dropout', 'head']  # (not batch_norm)
  for name in models.list_models():
    assert not set(models.arguments(name)) & set(models.SET_BY_TRAINER), name


def test_a_sweep_sets_a_model_argument_the_file_left_out(tmp_path):
  from sweeping import sweeps  # pylint: disable=import-outside-toplevel
  (tmp_path / 's.py').write_text(
      'from configs import hyper\nfrom configs.resnet import get_config\n\n'
      "def get_sweep(arg=None):\n  return hyper.product(hyper.fixed('imagenet', True), "
      "hyper.sweep('config.model.stride_in_1x1', [False, True]))\n")
  spec = str(tmp_path / 's.py')
  trials = sweeps.expand(spec)
  module = sweeps.load_module(str(tmp_path / 's.py'))
  assert [sweeps.build_config(module, t).model.stride_in_1x1 for t in trials] == [False, True]
  (tmp_path / 's.py').write_text(
      'from configs import hyper\nfrom configs.resnet import get_config\n\n'
      "def get_sweep(arg=None):\n  return hyper.product(hyper.fixed('imagenet', True), "
      "hyper.sweep('config.model.stride_in_1x', [True]))\n")
  with pytest.raises(sweeps.SweepError, match="unknown config key 'model.stride_in_1x'; "
                     "did you mean 'model.stride_in_1x1'"):
    sweeps.expand(spec)


def _total_macs(*args) -> int:
  out = prewarmed.run([sys.executable, 'summary.py', '--num_classes=1000', *args],
                      cwd=ROOT, capture_output=True, text=True, check=True).stdout
  return int(next(l for l in out.splitlines() if l.startswith('total')).split()[-1]
             .replace(',', ''))


def test_a_model_argument_the_file_left_out_is_set_from_the_command_line():
  """configs/resnet.py:imagenet sets model.stride_in_1x1 only when its argument asks;
  the command line sets it too: the paper's bottleneck (stride in the first 1x1 conv),
  whose multiply-adds are Table 1's 3.8 billion, against torchvision's 4.1 (V1.5)."""
  spec = '--config=configs/resnet.py:imagenet,depth=50'
  v1 = _total_macs(spec, '--config.model.stride_in_1x1=True')
  assert v1 == _total_macs('--config=configs/resnet.py:imagenet,depth=50,stride_in_1x1')
  assert v1 == pytest.approx(3.8e9, rel=0.02) and _total_macs(spec) == pytest.approx(
      4.1e9, rel=0.01)


@pytest.mark.parametrize('config_file', ['lenet', 'simple_cnn'])
def test_adamw_is_decoupled_weight_decay_and_adam_the_l2_penalty(config_file):
  """optimizer.name means what PyTorch's and optax's names mean (Loshchilov & Hutter
  2019): 'adamw' decays beside Adam's update, 'adam' adds the decay to the gradient. The
  shipped AdamW recipes (LeNet-5's, the tutorial CNN's) are optax.adamw's updates."""
  import importlib  # pylint: disable=import-outside-toplevel
  c = importlib.import_module(f'configs.{config_file}').get_config()
  o, lr = c.optimizer, c.schedule.learning_rate
  assert o.name == 'adamw' and o.weight_decay > 0
  want = optax.adamw(lr, o.b1, o.b2, weight_decay=o.weight_decay, mask=optim.kernel_mask)
  updates = support.optimizer_updates
  for got, expected in zip(updates(optim.create_optimizer(c)), updates(want)):
    np.testing.assert_allclose(got['conv']['kernel'], expected['conv']['kernel'], rtol=1e-6)
    np.testing.assert_allclose(got['conv']['bias'], expected['conv']['bias'], rtol=1e-6)
  c.optimizer.name = 'adam'
  l2 = optax.chain(optax.add_decayed_weights(o.weight_decay, optim.kernel_mask),
                   optax.adam(lr, o.b1, o.b2))
  for got, expected in zip(updates(optim.create_optimizer(c)), updates(l2)):
    np.testing.assert_allclose(got['conv']['kernel'], expected['conv']['kernel'], rtol=1e-6)
