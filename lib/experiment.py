"""One set-up for train.py, evaluate.py and benchmark.py: the checks that need no data,
then the model, its recipe, optimizer, schedule, abstract state, shardings and the
jitted steps (lib/steps.py).

  experiment.check(config)                    # before any dataset is opened
  info = input_pipeline.dataset_info(config)
  exp = experiment.setup(config, info, mesh)  # exp.train_step, exp.eval_step, exp.init ...
"""

import dataclasses
import functools
import math
from typing import Any, Callable

from flax import nnx
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from configs import default
from data import sources
from data import transforms
import input_pipeline
from lib import checkpoints
from lib import optim
from lib import recipes
from lib import steps
import models

PRECISIONS = steps.PRECISIONS  # (the keys config.precision admits)


class SetupError(ValueError):
  """Bad input found before training starts: a one-line message for the user."""


# ------------------------------------------------------------------- checks without data


def _one_of(config, steps_key: str, epochs_key: str):
  """(key, value) of the one of the two that is set; ValueError naming both otherwise."""
  steps, epochs = config.get(steps_key), config.get(epochs_key)
  if (steps is None) == (epochs is None):
    got = f'both ({steps} and {epochs})' if steps is not None else 'neither'
    raise ValueError(f'set one of config.{steps_key} and config.{epochs_key}, the other '
                     f'None; got {got} (e.g. --config.{steps_key}=None '
                     f'--config.{epochs_key}=1)')
  return (steps_key, steps) if steps is not None else (epochs_key, epochs)


def check(config, training: bool = True, given=()):
  """Every config error that needs no data, before any dataset is opened or downloaded:
  each names the field and the fix (unknown keys are caught by cli.run). Without
  `training`, only what evaluating a trained model needs: model, precision, batch.
  `given`: the keys set on the command line (or by a sweep), each of which must be read
  by this run (READ_ONLY_WHEN)."""
  check_model(config)
  if training:
    _check_training(config)
    check_read(config, given)


def check_model(config):
  """The model's name and arguments (building it with shapes only checks them,
  computing nothing), its input's size, the precision and the batch, with a stand-in for
  the dataset's classes."""
  if config.precision not in PRECISIONS:
    raise ValueError(f'config.precision must be one of {list(PRECISIONS)}; '
                     f'got {config.precision!r}')
  check_ranges(config, MODEL_INPUT)
  if config.batch_size <= 0:
    raise ValueError(f'config.batch_size must be positive; got {config.batch_size}')
  if config.num_classes is not None and config.num_classes <= 0:
    raise ValueError(f'config.num_classes must be positive, or None for the dataset\'s; '
                     f'got {config.num_classes}')
  input_pipeline.check_augment(config)  # (before READ_ONLY_WHEN reads its preset)
  nnx.eval_shape(lambda: _build(config, config.num_classes or 10, nnx.Rngs(0)))


def _build(config, num_classes: int, rngs: nnx.Rngs):
  return models.create_model_from_config(
      config.model, num_classes, PRECISIONS[config.precision],
      image_size=config.dataset.image_size, in_channels=config.dataset.channels, rngs=rngs)


def create_model(config, num_classes: int) -> models.Functional:
  """The config's model for `num_classes`, computing in the config's precision, split
  into functions of its variables (nothing computed)."""
  return models.functional(functools.partial(_build, config, num_classes))


# Each numeric key's valid values: (test, the values it admits), checked before any data.
_POSITIVE = (lambda v: v > 0, '> 0')
_NON_NEGATIVE = (lambda v: v >= 0, '>= 0')
_FRACTION = (lambda v: 0 <= v < 1, 'in [0, 1)')
RANGES = {
    'seed': (lambda v: 0 <= v < 2**31, 'in [0, 2**31)'),  # the samplers' uint32 keys
    'label_smoothing': _FRACTION,
    'keep_checkpoints': _POSITIVE,
    'dataset.image_size': _POSITIVE,
    'dataset.channels': _POSITIVE,
    'dataset.scale_min': _POSITIVE,
    'dataset.scale_max': _POSITIVE,
    'dataset.eval_resize': _POSITIVE,
    'dataset.device_resident_max_mb': _NON_NEGATIVE,
    'dataset.workers': (lambda v: v >= -1, '>= 0, or -1 for one per core'),
    'dataset.synthetic_size': _POSITIVE,
    'optimizer.momentum': _FRACTION,
    'optimizer.b1': _FRACTION,
    'optimizer.b2': _FRACTION,
    'optimizer.weight_decay': _NON_NEGATIVE,
    'optimizer.grad_clip_norm': _NON_NEGATIVE,
    'schedule.learning_rate': _POSITIVE,
    'schedule.multipliers': (lambda v: all(m > 0 for m in v), 'each > 0'),
    'schedule.step_epochs': _POSITIVE,
    'schedule.factor': (lambda v: 0 < v <= 1, 'in (0, 1]'),
    'schedule.warmup_steps': _NON_NEGATIVE,
    'schedule.patience': (lambda v: v >= 1, '>= 1'),
    'schedule.min_learning_rate': _NON_NEGATIVE,
    'schedule.triangle': (lambda v: len(v) == 3 and v[0] >= 0 and 0 <= v[1] <= 1 and v[2] >= 0,
                          '(start >= 0, peak in [0, 1], end >= 0)'),
    'optimizer.norm_bias_lr_scale': _POSITIVE,
    'lookahead.every': _NON_NEGATIVE,
    'lookahead.decay': (lambda v: 0 <= v <= 1, 'in [0, 1]'),
    'lookahead.power': _NON_NEGATIVE,
}

MODEL_INPUT = ('dataset.image_size', 'dataset.channels')  # what building the model reads

_schedule_is = lambda *names: (lambda c, _: c.schedule.name in names,
                               f"schedule.name is {' or '.join(map(repr, names))}")
_optimizer_is = lambda name: (lambda c, _: c.optimizer.name == name,
                              f'optimizer.name is {name!r}')
_dataset_is = lambda kind: (lambda c, _: sources.kind(c.dataset.name) == kind,
                            f"dataset.name is {'a folder:PATH' if kind == 'folder' else kind}"
                            + (' (TFDS)' if kind == 'tfds' else ''))
_augment_is = lambda name, also='': (lambda c, _: c.dataset.augment == name,
                                     f'dataset.augment is {name!r}{also}')
_looking_ahead = (lambda c, _: c.lookahead.every > 0, 'lookahead.every > 0')
_decaying = (lambda c, _: c.optimizer.weight_decay > 0, 'optimizer.weight_decay > 0')
# Keys that only some settings read, or that act only on some models or runs: set on the
# command line (or by a sweep) where they would change nothing, they would be ignored
# without a word, so the run refuses them. Each condition is (config, run) -> whether the
# key acts; `run` is a RunView of the network and the run the config makes.
READ_ONLY_WHEN = {
    'schedule.boundaries': _schedule_is('piecewise'),
    'schedule.boundaries_in_epochs': (
        lambda c, _: c.schedule.name == 'piecewise' and len(c.schedule.boundaries) > 0,
        "schedule.name is 'piecewise' with schedule.boundaries"),
    'schedule.multipliers': _schedule_is('piecewise'),
    # (a factor of 1 keeps the rate: when it would drop, step_epochs or patience, is moot)
    'schedule.step_epochs': (lambda c, _: c.schedule.name == 'step' and c.schedule.factor < 1,
                             "schedule.name is 'step' with schedule.factor < 1"),
    'schedule.factor': _schedule_is('step', 'plateau'),
    'schedule.warmup_steps': _schedule_is('cosine'),
    'schedule.patience': (lambda c, _: c.schedule.name == 'plateau' and c.schedule.factor < 1,
                          "schedule.name is 'plateau' with schedule.factor < 1"),
    # (the cosine's floor shows from the second step after its warm-up, the first being
    # the base rate; the plateau's, only after drops)
    'schedule.min_learning_rate': (
        lambda c, run: (c.schedule.name == 'cosine' and run.may_last_beyond(
            c.schedule.warmup_steps + 1)) or (c.schedule.name == 'plateau'
                                              and c.schedule.factor < 1),
        "schedule.name is 'cosine' with a run longer than schedule.warmup_steps + 1, or "
        "'plateau' with schedule.factor < 1"),
    'schedule.triangle': _schedule_is('triangle'),
    # (optim.create_optimizer: the bias scaler is SGD's; it scales what norm_bias_mask picks)
    'optimizer.norm_bias_lr_scale': (
        lambda c, run: c.optimizer.name == 'sgd' and run.has(optim.norm_bias_mask),
        "optimizer.name is 'sgd' and the model has normalisation biases (BatchNorm's, "
        'biases beside no kernel)'),
    'lookahead.decay': _looking_ahead,
    # (the average's weight decay**every * (t/T)**power is 0 for any power when decay is)
    'lookahead.power': (lambda c, _: c.lookahead.every > 0 and c.lookahead.decay > 0,
                        'lookahead.every > 0 and lookahead.decay > 0'),
    'optimizer.momentum': _optimizer_is('sgd'),
    # (SGD without momentum has no velocity for Nesterov's look-ahead to use)
    'optimizer.nesterov': (lambda c, _: c.optimizer.name == 'sgd' and c.optimizer.momentum > 0,
                           "optimizer.name is 'sgd' with optimizer.momentum > 0"),
    'optimizer.b1': _optimizer_is('adamw'),
    'optimizer.b2': _optimizer_is('adamw'),
    # (without momentum or Adam's scaling, SGD's decay added to the gradient and its
    # decay beside the update are one and the same step, lr * (g + wd * w))
    'optimizer.decay_style': (
        lambda c, _: c.optimizer.weight_decay > 0 and (
            c.optimizer.name != 'sgd' or c.optimizer.momentum > 0),
        "optimizer.weight_decay > 0, with optimizer.name 'adamw' or momentum > 0"),
    'optimizer.decay_params': (
        lambda c, run: c.optimizer.weight_decay > 0 and run.has(optim.not_a_kernel),
        'optimizer.weight_decay > 0 and the model has parameters other than kernels '
        '(biases, BatchNorm scales)'),
    'dataset.pad_mode': (lambda c, _: transforms.PRESETS[c.dataset.augment].pad > 0,
                         "dataset.augment pads ('cifar', 'airbench')"),
    'dataset.scale_min': _augment_is('vgg'),
    'dataset.scale_max': _augment_is('vgg'),
    'dataset.eval_resize': _augment_is('vgg', ' (and evaluate.py --mode=dense)'),
    'dataset.device_resident_max_mb': (lambda c, _: c.dataset.device_resident,
                                       'dataset.device_resident is True'),
    'dataset.synthetic_size': _dataset_is('synthetic'),
    'dataset.on_corrupt': _dataset_is('folder'),
    'dataset.rescan': _dataset_is('folder'),
    'dataset.data_dir': _dataset_is('tfds'),
}


class RunView:
  """What a READ_ONLY_WHEN condition may ask of the run a config makes: which parameters
  its model has, traced on first use only (abstract: nothing computed or compiled; a
  stand-in for the dataset's classes, which change shapes, not which parameters), and
  its length, known before the data only for a run in steps."""

  def __init__(self, config, info=None):
    self.config = config
    self.info = info

  @functools.cached_property
  def params(self):
    c = self.config
    net = create_model(self.config, self.config.num_classes or 10)
    return jax.eval_shape(lambda: net.init(jax.random.key(0)))['params']  # (key traced)

  def has(self, mask) -> bool:
    """Whether `mask` (params -> a tree of bools: optim.norm_bias_mask ...) picks any
    parameter of this model."""
    return any(jax.tree.leaves(mask(self.params)))

  @functools.cached_property
  def total_steps(self) -> int | None:
    if self.info is not None:
      return run_length(self.config, self.info).total_steps
    return self.config.num_train_steps  # (None for a run in epochs: not known yet)

  def may_last_beyond(self, steps: int) -> bool:
    """Whether the run may be longer than `steps` (True while its length is unknown)."""
    return self.total_steps is None or self.total_steps > steps


def _check_training(config):
  # (config.batch_size: check_model)
  check_ranges(config, RANGES)
  for pair in default.DURATIONS:
    field, value = _one_of(config, *pair)
    if value <= 0:
      raise ValueError(f'config.{field} must be positive; got {value}')
  d = config.dataset
  if d.scale_min > d.scale_max:
    raise ValueError(f'config.dataset.scale_min={d.scale_min} is above scale_max='
                     f'{d.scale_max}; S is drawn from [scale_min, scale_max]')
  if config.on_nonfinite not in ('stop', 'skip'):
    raise ValueError(f"config.on_nonfinite must be 'stop' or 'skip'; got "
                     f'{config.on_nonfinite!r}')
  if config.batch_size % jax.device_count():
    raise ValueError(f'config.batch_size={config.batch_size} is not divisible by the '
                     f'{jax.device_count()} devices; use a multiple of {jax.device_count()}')
  # The optimizer and the schedule, with stand-ins for the dataset's numbers.
  optim.create_optimizer(config)
  optim.create_schedule(config, steps_per_epoch=100, total_steps=10_000)


def check_ranges(config, fields):
  """Each of `fields` (dotted keys of RANGES) within its range: ValueError naming the
  first that is not, and the values it admits."""
  for field in fields:
    ok, admits = RANGES[field]
    value = config
    for part in field.split('.'):
      value = value[part]
    if not ok(value):
      raise ValueError(f'config.{field} must be {admits}; got {value!r}')


def check_read(config, given, info=None):
  """Refuse a key set on the command line that would change nothing in this run: one
  that its settings do not read, or that cannot act on its model or run (READ_ONLY_WHEN).
  check() runs it before the data; with the dataset's `info`, it runs again knowing the
  length of a run in epochs."""
  run = RunView(config, info)  # (the model traced only if a condition asks)
  for key in sorted(given):
    if key in READ_ONLY_WHEN:
      acts, when = READ_ONLY_WHEN[key]
      if not acts(config, run):
        raise ValueError(f'config.{key} is read only when {when}, which this run is not: '
                         'the setting would change nothing; drop it, or change that too')


# ---------------------------------------------------------------------------- durations


@dataclasses.dataclass(frozen=True)
class RunLength:
  steps_per_epoch: int
  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int


def run_length(config, info) -> RunLength:
  """Every duration of configs/default.DURATIONS in steps, from its steps or epochs key
  (a fraction of an epoch rounds up to at least one step)."""
  steps_per_epoch = max(info.num_train // config.batch_size, 1)
  steps = {}
  for steps_key, epochs_key in default.DURATIONS:
    key, value = _one_of(config, steps_key, epochs_key)
    steps[steps_key] = value if key == steps_key else max(1, math.ceil(value * steps_per_epoch))
  return RunLength(steps_per_epoch, steps['num_train_steps'], steps['log_every_steps'],
                   steps['eval_every_steps'], steps['checkpoint_every_steps'])


def check_init_from(config):
  """config.init_from names a workdir with a checkpoint. Only a new run reads its source:
  a resumed fine-tune run goes on from its own checkpoints, wherever the source went."""
  if config.init_from and not checkpoints.saved_steps(config.init_from):
    raise ValueError(f'config.init_from={config.init_from}: no checkpoint there; give the '
                     'workdir of a training run')


def length_dependent(config, model, length: RunLength) -> dict:
  """{what: vectorised step -> value} of everything in a run that depends on its length
  (`step`: the state's step counter as a step starts, as the schedule reads it): the
  learning rate, and what the recipe adds (recipes.Recipe.length_dependent). A resume
  that changes any of these for the steps ahead changes the run
  (run_contract.length_change)."""
  return {'the learning rate': optim.create_schedule(config, length.steps_per_epoch,
                                                     length.total_steps),
          **recipes.of(config, model.module, length).length_dependent()}


# ------------------------------------------------------------------------------ set-up


@dataclasses.dataclass
class Experiment:
  """What a run needs before its first step; train, evaluate and benchmark share it."""
  config: Any
  info: input_pipeline.DatasetInfo
  mesh: Mesh
  model: models.Functional
  recipe: recipes.Recipe    # what the model and the config add to the plain step
  tx: optax.GradientTransformation
  schedule: Callable
  length: RunLength
  init: Callable            # rng -> steps.TrainState
  abstract_state: Any       # its shapes, no arrays
  state_sharding: Any       # replicated on the mesh
  train_step: Callable      # jitted, donates the state
  eval_step: Callable       # jitted

  def state_target(self):
    """The state's shapes with their shardings: what to restore into or compile for."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        self.abstract_state, self.state_sharding)


def setup(config, info, mesh: Mesh) -> Experiment:
  """Model, recipe, optimizer, schedule, the state's abstract shape and sharding, the
  steps. Traces (eval_shape) but compiles nothing: shape errors surface here."""
  model = create_model(config, info.num_classes)
  length = run_length(config, info)
  recipe = recipes.of(config, model.module, length)
  tx = optim.create_optimizer(config, recipe.additions.frozen, recipe.frozen_after_steps)
  schedule = optim.create_schedule(config, length.steps_per_epoch, length.total_steps)

  def init(rng):
    variables = model.init(rng)
    params = variables['params']
    return steps.TrainState(
        step=jnp.array(0, jnp.int32), params=params, batch_stats=variables['batch_stats'],
        opt_state=tx.init(params), lr_scale=jnp.array(1.0, jnp.float32),
        best_top1=jnp.array(-1.0, jnp.float32), bad_evals=jnp.array(0, jnp.int32),
        nonfinite=jnp.array(0, jnp.int32), first_nonfinite=jnp.array(-1, jnp.int32),
        metrics=steps.zero_metrics(), ema=recipe.average_of(variables))

  abstract = jax.eval_shape(lambda: init(jax.random.key(0)))  # (traced: nothing on a device)
  size = config.dataset.image_size  # the forward pass, traced: shape errors surface here
  jax.eval_shape(model.apply, {'params': abstract.params, 'batch_stats': abstract.batch_stats},
                 jax.ShapeDtypeStruct((1, size, size, config.dataset.channels), jnp.float32))
  replicated = NamedSharding(mesh, P())
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  prepare, input_sharding = input_pipeline.train_prepare(config, info, mesh)
  train_step = jax.jit(steps.make_train_step(config, model, tx, schedule, info.num_classes,
                                             prepare, recipe),
                       in_shardings=(state_sharding, input_sharding),
                       out_shardings=state_sharding, donate_argnums=0)
  prepare_eval = lambda batch, dtype: input_pipeline.prepare_eval(batch, config, dtype)
  eval_step = jax.jit(steps.make_eval_step(config, model, info.num_classes, prepare_eval),
                      in_shardings=(state_sharding, input_pipeline.batch_sharding(mesh)),
                      out_shardings=replicated)
  return Experiment(config, info, mesh, model, recipe, tx, schedule, length, init, abstract,
                    state_sharding, train_step, eval_step)
