"""One set-up for train.py, evaluate.py and benchmark.py: every check of a config, in
order, then the model, its recipe, optimizer, schedule, abstract state, shardings and
the jitted steps (lib/steps.py).

  info = experiment.validate(config, given)   # every check, the dataset opened once
  exp = experiment.setup(config, info, mesh)  # exp.train_step, exp.eval_step, exp.init ...
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from configs import keys
from data import sources
from data import transforms
import input_pipeline
from lib import compile_options
from lib import optim
from lib import parallel
from lib import recipes
from lib import steps
import models

PRECISIONS = steps.PRECISIONS  # (the keys config.precision admits)


class SetupError(ValueError):
  """Bad input found before training starts: a one-line message for the user."""


# ------------------------------------------------------------------- checks without data


def _one_of(config, steps_key: str, epochs_key: str):
  """(key, value) of the one of the two that is set; ValueError naming both otherwise."""
  in_steps, in_epochs = config.get(steps_key), config.get(epochs_key)
  if (in_steps is None) == (in_epochs is None):
    got = f'both ({in_steps} and {in_epochs})' if in_steps is not None else 'neither'
    raise ValueError(f'set one of config.{steps_key} and config.{epochs_key}, the other '
                     f'None; got {got} (e.g. --config.{steps_key}=None '
                     f'--config.{epochs_key}=1)')
  return (steps_key, in_steps) if in_steps is not None else (epochs_key, in_epochs)


def validate(config, given=()) -> input_pipeline.DatasetInfo:
  """Every check of a training config, in the order a run meets them, before anything
  compiles or is written; returns the dataset's info. Each failure is a ValueError
  naming the field and the fix (a missing dataset: the way to get it)."""
  check(config, given=given)
  info = input_pipeline.dataset_info(config)
  input_pipeline.check_config(config, info)
  refuse_idle(config, given, info)
  return info


def check(config, training: bool = True, given=()):
  """Every config error that needs no data, before any dataset is opened or downloaded:
  each names the field and the fix (unknown keys are caught by cli.run). Without
  `training`, only what evaluating a trained model needs: model, precision, batch;
  with it, also that this run reads each key in `given` (refuse_idle)."""
  keys.check_declared(config)  # (a config file's keys were checked as it loaded)
  check_model(config)
  if training:
    _check_training(config)
    refuse_idle(config, given)


def check_model(config):
  """The model's name and arguments (building it with shapes only checks them,
  computing nothing), the keys it and evaluation read, with a stand-in for the dataset's
  classes."""
  check_ranges(config, EVALUATION_KEYS)
  transforms.augmentation(config)  # (its errors, before READ_ONLY_WHEN reads its preset)
  create_net(config, config.num_classes or 10)


def create_net(config, num_classes: int) -> models.Functional:
  """The config's model for `num_classes`, computing in the config's precision, split
  into functions of its variables (nothing computed)."""
  return models.functional(lambda rngs: models.create_model_from_config(
      config.model, num_classes, PRECISIONS[config.precision],
      image_size=config.dataset.image_size, in_channels=config.dataset.channels, rngs=rngs))


# What building the model and evaluating read: check_model, for evaluate.py too.
EVALUATION_KEYS = ('precision', 'dataset.image_size', 'dataset.channels', 'batch_size',
                   'num_classes')
# The kinds of parameters a READ_ONLY_WHEN condition may ask a model for (run.has); the
# non-kernels are what decay_params='all' adds.
PARAMETER_KINDS = {'norm_biases': optim.norm_bias_mask,
                   'non_kernels': lambda p: jax.tree.map(lambda k: not k, optim.kernel_mask(p))}


class RunView:
  """What a READ_ONLY_WHEN condition may ask of the run a config makes: which parameters
  its model has, traced on first use only (abstract: nothing computed or compiled; a
  stand-in for the dataset's classes, which change shapes, not which parameters), its
  data and augmentation, and its length, known before the data only for a run in
  steps."""

  def __init__(self, config, info=None):
    self.config, self.info = config, info

  @functools.cached_property
  def params(self):
    net = create_net(self.config, self.config.num_classes or 10)
    return jax.eval_shape(lambda: net.init(jax.random.key(0)))['params']  # (key traced)

  def has(self, kind: str) -> bool:
    """Whether the model has any parameter of `kind`, a key of PARAMETER_KINDS."""
    return any(jax.tree.leaves(PARAMETER_KINDS[kind](self.params)))

  @property
  def dataset_kind(self) -> str:
    """Which source reads the data: 'folder', 'tfds', 'synthetic', ... (data/sources)."""
    return sources.kind(self.config.dataset.name)

  @property
  def reads_pad_mode(self) -> bool:
    """Whether a pad_crop of the augmentation has no mode of its own (pad_mode acts)."""
    return transforms.reads_pad_mode(self.config)

  def augments_with(self, op: str) -> bool:
    """Whether config.dataset.augment's list (presets spelled out) has the op `op`."""
    return transforms.has_op(self.config, op)

  def may_last_beyond(self, steps: int) -> bool:
    """Whether the run may be longer than `steps` (True while its length is unknown)."""
    total = (run_length(self.config, self.info).total_steps if self.info is not None
             else self.config.num_train_steps)  # (None for a run in epochs: not known yet)
    return total is None or total > steps


def _check_training(config):
  for pair in keys.DURATIONS:
    _one_of(config, *pair)  # (their values: RANGES)
  check_ranges(config, [k for k in keys.RANGES if k not in EVALUATION_KEYS])  # (check_model's)
  d = config.dataset
  if d.scale_min > d.scale_max:
    raise ValueError(f'config.dataset.scale_min={d.scale_min} is above scale_max='
                     f'{d.scale_max}; S is drawn from [scale_min, scale_max]')
  if config.batch_size % parallel.mesh_size(config.batch_size):  # (any batch: one CPU)
    raise ValueError(f'config.batch_size={config.batch_size} is not divisible by the '
                     f'{jax.device_count()} devices; use a multiple of {jax.device_count()}')
  # The optimizer and the schedule, with stand-ins for the dataset's numbers.
  optim.create_optimizer(config)
  optim.create_schedule(config, steps_per_epoch=100, total_steps=10_000)


def check_ranges(config, fields):
  """Each of `fields` (dotted keys of keys.RANGES) within its range, and finite (NaN and
  infinity pass a comparison with `inf`, and fail as the run's first loss): ValueError
  naming the first that is not, and the values it admits (a None the key admits
  passes)."""
  for field in fields:
    ok, admits = keys.RANGES[field]
    value = config[field]  # (a ConfigDict reads a dotted key)
    if value is None and keys.KEYS[field].admits_none:
      continue
    if isinstance(value, (tuple, list)) and not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
      raise ValueError(f'config.{field} must be numbers, {admits}; got {value!r}')
    if not ok(value) or not keys.finite(value):
      raise ValueError(f'config.{field} must be {admits}; got {value!r}')


def refuse_idle(config, given, info=None):
  """Refuse a key in `given` (set on the command line, by a sweep, or by a config file)
  that would change nothing in this run: one that its settings do not read, or that
  cannot act on its model or run (READ_ONLY_WHEN). check() runs it before the data;
  validate(), with the dataset's `info`, again, knowing the length of a run in epochs."""
  run = RunView(config, info)  # (the model traced only if a condition asks)
  for key in sorted(k for k in given if k in keys.READ_ONLY_WHEN):
    acts, when = keys.READ_ONLY_WHEN[key]
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
  """Every duration of configs/keys.DURATIONS in steps, from its steps or epochs key
  (a fraction of an epoch rounds up to at least one step). An epoch is as many full
  batches as the training split holds; the stream walks one permutation of the split
  after another (data/sampler.py), so E epochs draw each example E times, give or take
  the examples of one batch. A batch larger than the split would hold some examples
  twice and make a step more than an epoch: refused."""
  if config.batch_size > info.num_train:
    raise ValueError(f'config.batch_size={config.batch_size} is larger than the training '
                     f'split ({config.dataset.train_split}: {info.num_train} examples), so '
                     'one batch would repeat examples and no epoch could be counted; give '
                     f'a batch of at most {info.num_train}, or a larger split')
  steps_per_epoch = info.num_train // config.batch_size
  in_steps = []  # (DURATIONS are in RunLength's order)
  for steps_key, epochs_key in keys.DURATIONS:
    key, value = _one_of(config, steps_key, epochs_key)
    in_steps.append(value if key == steps_key else max(1, math.ceil(value * steps_per_epoch)))
  return RunLength(steps_per_epoch, *in_steps)


def length_dependent(config, net, length: RunLength) -> dict:
  """{what: vectorised step -> value} of everything in a run that depends on its length
  (`step`: the state's step counter as a step starts, as the schedule reads it): the
  learning rate, and what the recipe adds (recipes.Recipe.length_dependent). A resume
  that changes any of these for the steps ahead changes the run
  (run_contract.length_change)."""
  return {'the learning rate': optim.create_schedule(config, length.steps_per_epoch,
                                                     length.total_steps),
          **recipes.of(config, net.module, length).length_dependent()}


# ------------------------------------------------------------------------------ set-up


@dataclasses.dataclass
class Experiment:
  """What a run needs before its first step; train, evaluate and benchmark share it."""
  config: Any
  info: input_pipeline.DatasetInfo
  mesh: Mesh
  net: models.Functional   # the model split into functions (net.module: the nnx.Module)
  recipe: recipes.Recipe    # what the model and the config add to the plain step
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
  """The Experiment of a validated config: traced (eval_shape), nothing compiled."""
  net = create_net(config, info.num_classes)
  length = run_length(config, info)
  recipe = recipes.of(config, net.module, length)
  schedule = optim.create_schedule(config, length.steps_per_epoch, length.total_steps)
  tx = optim.create_optimizer(config, schedule, recipe.additions.frozen,
                              recipe.frozen_after_steps)

  def init(rng):
    variables = net.init(rng)
    params = variables['params']
    return steps.TrainState(
        step=jnp.array(0, jnp.int32), params=params, batch_stats=variables['batch_stats'],
        opt_state=tx.init(params), lr_scale=jnp.array(1.0, jnp.float32),
        best_top1=jnp.array(-1.0, jnp.float32), bad_evals=jnp.array(0, jnp.int32),
        nonfinite=jnp.array(0, jnp.int32), first_nonfinite=jnp.array(-1, jnp.int32),
        metrics=steps.zero_metrics(), lookahead=recipe.average_of(variables))

  abstract = jax.eval_shape(lambda: init(jax.random.key(0)))  # (traced: nothing on a device)
  size = config.dataset.image_size  # the forward pass, traced: shape errors surface here
  jax.eval_shape(net.apply, {'params': abstract.params, 'batch_stats': abstract.batch_stats},
                 jax.ShapeDtypeStruct((1, size, size, config.dataset.channels), jnp.float32))
  replicated = NamedSharding(mesh, P())
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  model_input, input_sharding = input_pipeline.train_model_input(config, info, mesh)
  train_step = jax.jit(steps.make_train_step(config, net, tx, schedule, info.num_classes,
                                             model_input, recipe),
                       in_shardings=(state_sharding, input_sharding),
                       out_shardings=state_sharding, donate_argnums=0,
                       compiler_options=compile_options.train_step(
                           mesh.devices.flat[0].platform, net.module))
  eval_input = lambda batch, dtype: input_pipeline.eval_model_input(batch, config, dtype)
  eval_step = jax.jit(steps.make_eval_step(config, net, info.num_classes, eval_input),
                      in_shardings=(state_sharding, input_pipeline.batch_sharding(mesh)),
                      out_shardings=replicated)
  return Experiment(config, info, mesh, net, recipe, schedule, length, init, abstract,
                    state_sharding, train_step, eval_step)
