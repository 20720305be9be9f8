"""One set-up for train.py, evaluate.py and benchmark.py: the checks that need no data,
then the model, optimizer, schedule, abstract state, shardings and the jitted steps.

  experiment.check(config)                    # before any dataset is opened
  info = input_pipeline.dataset_info(config)
  exp = experiment.setup(config, info, mesh)  # exp.train_step, exp.eval_step, exp.init ...

The model is split once (models.functional): the steps are pure functions of the
state, in which `net.merge` rebuilds the NNX module at trace time. They are
model-agnostic: a model with auxiliary classifiers sows them (layers.sow_auxiliary), so
nothing here names a model.
"""

import dataclasses
import functools
import math
from typing import Any, Callable

import flax
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from configs import default
from configs import keys
from data import sources
from data import transforms
import input_pipeline
from lib import checkpoints
from lib import optim
import models
from models import layers

PRECISIONS = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


class SetupError(ValueError):
  """Bad input found before training starts: a one-line message for the user."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  lr_scale: jax.Array      # reduce-on-plateau multiplier (1.0 otherwise)
  best_top1: jax.Array     # best eval top-1 so far (plateau and best checkpoint)
  bad_evals: jax.Array     # evaluations without improvement (plateau)
  nonfinite: jax.Array     # steps whose loss or gradient was NaN/Inf (not applied)
  first_nonfinite: jax.Array  # the first such step, -1 if none
  metrics: Any             # sums since the last log line (checkpointed with the state,
                           # so a resumed run logs what an uninterrupted one would)
  ema: Any = None          # config.lookahead: the average of params and batch_stats
                           # (None, no leaves, without it)


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
  computing nothing), the keys it and evaluation read, with a stand-in for the dataset's
  classes."""
  check_ranges(config, MODEL_KEYS)
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


# Each key's range and the conditions under which it is read: declared with the key in
# configs/keys.py. A key that only some settings read, or that acts only on some models
# or runs, set on the command line (or by a sweep) where it would change nothing, would
# be ignored without a word: the run refuses it (check_read).
RANGES = keys.RANGES
READ_ONLY_WHEN = keys.READ_ONLY_WHEN
# What building the model and evaluating read: check_model, for evaluate.py too.
MODEL_KEYS = ('precision', 'dataset.image_size', 'dataset.channels', 'batch_size',
              'num_classes')
# The kinds of parameters a READ_ONLY_WHEN condition may ask a model for (run.has).
PARAMETER_KINDS = {'norm_biases': optim.norm_bias_mask, 'non_kernels': optim.not_a_kernel}


class RunView:
  """What a READ_ONLY_WHEN condition may ask of the run a config makes: which parameters
  its model has, traced on first use only (abstract: nothing computed or compiled; a
  stand-in for the dataset's classes, which change shapes, not which parameters), its
  data and augmentation, and its length, known before the data only for a run in
  steps."""

  def __init__(self, config, info=None):
    self.config = config
    self.info = info

  @functools.cached_property
  def params(self):
    net = create_model(self.config, self.config.num_classes or 10)
    return jax.eval_shape(lambda: net.init(jax.random.key(0)))['params']  # (key traced)

  def has(self, kind: str) -> bool:
    """Whether the model has any parameter of `kind`, a name of PARAMETER_KINDS
    ('norm_biases', 'non_kernels')."""
    return any(jax.tree.leaves(PARAMETER_KINDS[kind](self.params)))

  @property
  def dataset_kind(self) -> str:
    """Which source reads the data: 'folder', 'tfds', 'synthetic', ... (data/sources)."""
    return sources.kind(self.config.dataset.name)

  @property
  def augment_pads(self) -> bool:
    """Whether the augmentation pads the image (so that dataset.pad_mode acts)."""
    return transforms.PRESETS[self.config.dataset.augment].pad > 0

  @functools.cached_property
  def total_steps(self) -> int | None:
    if self.info is not None:
      return run_length(self.config, self.info).total_steps
    return self.config.num_train_steps  # (None for a run in epochs: not known yet)

  def may_last_beyond(self, steps: int) -> bool:
    """Whether the run may be longer than `steps` (True while its length is unknown)."""
    return self.total_steps is None or self.total_steps > steps


def _check_training(config):
  for pair in default.DURATIONS:
    _one_of(config, *pair)  # (their values: RANGES)
  check_ranges(config, [key for key in RANGES if key not in MODEL_KEYS])  # (check_model's)
  d = config.dataset
  if d.scale_min > d.scale_max:
    raise ValueError(f'config.dataset.scale_min={d.scale_min} is above scale_max='
                     f'{d.scale_max}; S is drawn from [scale_min, scale_max]')
  if config.batch_size % jax.device_count():
    raise ValueError(f'config.batch_size={config.batch_size} is not divisible by the '
                     f'{jax.device_count()} devices; use a multiple of {jax.device_count()}')
  # The optimizer and the schedule, with stand-ins for the dataset's numbers.
  optim.create_optimizer(config)
  optim.create_schedule(config, steps_per_epoch=100, total_steps=10_000)


def check_ranges(config, fields):
  """Each of `fields` (dotted keys of RANGES) within its range: ValueError naming the
  first that is not, and the values it admits (a None the key admits passes)."""
  for field in fields:
    ok, admits = RANGES[field]
    value = config
    for part in field.split('.'):
      value = value[part]
    if value is None and keys.KEYS[field].admits_none:
      continue
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


def check_length(config, length: RunLength):
  """What cannot work in a run of this length: a lookahead average never updated (its
  first update is at step lookahead.every)."""
  every = config.lookahead.every
  if every > length.total_steps:
    raise ValueError(f'config.lookahead.every={every} is longer than the run '
                     f'({length.total_steps} steps): the average would never be updated; '
                     f'set it to at most {length.total_steps} (airbench94: 5), or 0 for no '
                     'lookahead')


def length_dependent(config, model, length: RunLength) -> dict:
  """{what: vectorised step -> value} of everything in a run that depends on its length
  (`step`: the state's step counter as a step starts, as the schedule reads it): the
  learning rate, the lookahead average's weight and final copy, the steps a recipe's
  parameters train for (models.frozen_after_epochs). A resume that changes any of these
  for the steps ahead changes the run (run_contract.length_change)."""
  out = {'the learning rate': optim.create_schedule(config, length.steps_per_epoch,
                                                    length.total_steps)}
  la = config.lookahead
  if la.every:
    t = lambda step: step + 1  # (the lookahead acts after the step's update)
    out["the lookahead average's weight"] = lambda step: jnp.where(
        t(step) % la.every == 0, lookahead_weight(la, t(step), length.total_steps), 0.0)
    out["the lookahead's final copy"] = lambda step: lookahead_final(
        la, t(step), length.total_steps).astype(jnp.float32)
  for path, epochs in models.frozen_after_epochs(model.module).items():
    frozen_at = round(epochs * length.steps_per_epoch)
    out[f'the training of {path}'] = (
        lambda step, at=frozen_at: (step < at).astype(jnp.float32))
  return out


# ------------------------------------------------------------------------------ set-up


@dataclasses.dataclass
class Experiment:
  """What a run needs before its first step; train, evaluate and benchmark share it."""
  config: Any
  info: input_pipeline.DatasetInfo
  mesh: Mesh
  model: models.Functional
  tx: optax.GradientTransformation
  schedule: Callable
  length: RunLength
  init: Callable            # rng -> TrainState
  abstract_state: Any       # its shapes, no arrays
  state_sharding: Any       # replicated on the mesh
  train_step: Callable      # jitted, donates the state
  eval_step: Callable       # jitted

  def state_target(self):
    """The state's shapes with their shardings: what to restore into or compile for."""
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        self.abstract_state, self.state_sharding)


def setup(config, info, mesh: Mesh) -> Experiment:
  """Model, optimizer, schedule, the state's abstract shape and sharding, the steps.
  Traces (eval_shape) but compiles nothing: shape errors surface here."""
  model = create_model(config, info.num_classes)
  length = run_length(config, info)
  frozen_after = {path: round(epochs * length.steps_per_epoch)  # (as length_dependent)
                  for path, epochs in models.frozen_after_epochs(model.module).items()}
  tx = optim.create_optimizer(config, models.frozen_params(model.module), frozen_after)
  schedule = optim.create_schedule(config, length.steps_per_epoch, length.total_steps)

  def init(rng):
    variables = model.init(rng)
    params = variables['params']
    return TrainState(step=jnp.array(0, jnp.int32), params=params,
                      batch_stats=variables['batch_stats'],
                      opt_state=tx.init(params), lr_scale=jnp.array(1.0, jnp.float32),
                      best_top1=jnp.array(-1.0, jnp.float32),
                      bad_evals=jnp.array(0, jnp.int32), nonfinite=jnp.array(0, jnp.int32),
                      first_nonfinite=jnp.array(-1, jnp.int32), metrics=zero_metrics(),
                      ema=(jax.tree.map(jnp.copy,  # its own buffers: both are donated
                                        variables) if config.lookahead.every else None))

  abstract = jax.eval_shape(lambda: init(jax.random.key(0)))  # (traced: nothing on a device)
  size = config.dataset.image_size  # the forward pass, traced: shape errors surface here
  jax.eval_shape(model.apply, {'params': abstract.params, 'batch_stats': abstract.batch_stats},
                 jax.ShapeDtypeStruct((1, size, size, config.dataset.channels), jnp.float32))
  replicated = NamedSharding(mesh, P())
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  prepare, input_sharding = input_pipeline.train_prepare(config, info, mesh)
  train_step = jax.jit(make_train_step(config, model, tx, schedule, info.num_classes, prepare,
                                       length.total_steps),
                       in_shardings=(state_sharding, input_sharding),
                       out_shardings=state_sharding, donate_argnums=0)
  eval_step = jax.jit(make_eval_step(config, model, info.num_classes),
                      in_shardings=(state_sharding, input_pipeline.batch_sharding(mesh)),
                      out_shardings=replicated)
  return Experiment(config, info, mesh, model, tx, schedule, length, init, abstract,
                    state_sharding, train_step, eval_step)


# -------------------------------------------------------------------------------- steps


def zero_metrics():
  """The metrics accumulator, empty: numpy, a constant inside jit, put on the devices
  explicitly by the loop when it resets them."""
  return {'loss': np.zeros([], np.float32), 'top1': np.zeros([], np.float32),
          'steps': np.zeros([], np.int32), 'learning_rate': np.zeros([], np.float32)}


def cross_entropy(logits, labels, num_classes, smoothing):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing) \
      if smoothing else jax.nn.one_hot(labels, num_classes)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def lookahead_weight(la, t, total_steps: int):
  """The weight of the average's old value at an update after step t (airbench94's
  alpha_schedule): decay**every * (t/T)**power."""
  return la.decay ** la.every * (jnp.asarray(t, jnp.float32) / total_steps) ** la.power


def lookahead_final(la, t, total_steps: int):
  """Whether the state takes the average after step t although t is no update step: at
  the last step (airbench94's update with decay 1.0), once the average has been updated
  (from step `every` on; check_length refuses a run shorter than that)."""
  return (t >= total_steps) & (t >= la.every)


def lookahead(config, state, total_steps: int):
  """airbench's lookahead (Zhang et al. 2019 as airbench94 does it): every `every` steps
  the average moves toward the parameters and BatchNorm statistics, with weight
  lookahead_weight on its old value, and the state takes the average; at the last step
  the state takes the average as it stands."""
  la = config.lookahead
  t = state.step  # (after this step's update)
  regular = t % la.every == 0
  weight = lookahead_weight(la, t, total_steps)
  live = {'params': state.params, 'batch_stats': state.batch_stats}
  ema = jax.tree.map(lambda e, p: jnp.where(regular, weight * e + (1 - weight) * p, e),
                     state.ema, live)
  copy = regular | lookahead_final(la, t, total_steps)
  live = jax.tree.map(lambda e, p: jnp.where(copy, e, p), ema, live)
  return state.replace(ema=ema, **live)


def make_train_step(config, model, tx, schedule, num_classes, prepare, total_steps: int):
  """One SGD step on a global batch; metrics summed into the state's accumulator.

  `prepare(step, inputs, dtype)` turns the step's second argument (a uint8 batch, or a
  dataset resident on the devices) into the model's input: input_pipeline.train_prepare.
  The loss adds whatever auxiliary classifiers the model sows, with their weights.

  A step whose loss or gradients are not finite changes nothing but the step counter
  and the non-finite count: the host stops the run (on_nonfinite='stop') or goes on
  (on_nonfinite='skip') when it next looks, and the parameters stay those of the last
  good step either way.
  """
  dtype = PRECISIONS[config.precision]
  loss_of = lambda logits, labels: cross_entropy(logits, labels, num_classes,
                                                 config.label_smoothing).mean()

  def train_step(state, inputs):
    # Dropout depends on seed and step (the key made here is a constant of the program).
    rng = jax.random.fold_in(jax.random.key(config.seed), state.step)
    batch = prepare(state.step, inputs, dtype)

    def loss_fn(params):
      network = model.merge({'params': params, 'batch_stats': state.batch_stats},
                            train=True, rng=rng)
      logits, auxiliary = layers.with_auxiliary(network, batch['image'])
      loss = loss_of(logits, batch['label'])
      for weight, aux in auxiliary:
        loss += weight * loss_of(aux, batch['label'])
      return loss, (logits, nnx.to_pure_dict(nnx.state(network, nnx.BatchStat)))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    lr = schedule(state.step) * state.lr_scale
    opt_state = state.opt_state
    opt_state.hyperparams['learning_rate'] = lr
    updates, opt_state = tx.update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jax.tree.reduce(
        jnp.logical_and, jax.tree.map(lambda g: jnp.all(jnp.isfinite(g)), grads), True)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    top1 = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    m = state.metrics
    metrics = {'loss': m['loss'] + jnp.where(finite, loss, 0.0),
               'top1': m['top1'] + jnp.where(finite, top1, 0.0),
               'steps': m['steps'] + finite.astype(jnp.int32), 'learning_rate': lr}
    first = jnp.where((state.first_nonfinite < 0) & ~finite, state.step + 1,
                      state.first_nonfinite)
    state = state.replace(step=state.step + 1, params=keep(params, state.params),
                          batch_stats=keep(batch_stats, state.batch_stats),
                          opt_state=keep(opt_state, state.opt_state), metrics=metrics,
                          nonfinite=state.nonfinite + (~finite).astype(jnp.int32),
                          first_nonfinite=first.astype(jnp.int32))
    return lookahead(config, state, total_steps) if config.lookahead.every else state

  return train_step


def make_eval_step(config, model, num_classes):
  """Sums of loss, top-1 and top-5 hits over the unmasked examples of a global batch."""
  dtype = PRECISIONS[config.precision]

  def eval_step(state, batch):
    batch = input_pipeline.prepare_eval(batch, config, dtype)
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    logits = model.apply(variables, batch['image']).astype(jnp.float32)
    mask = batch['mask'].astype(jnp.float32)
    loss = cross_entropy(logits, batch['label'], num_classes, 0.0)
    hits = topk_hits(logits, batch['label'])
    return {'loss': jnp.sum(loss * mask), 'top1': jnp.sum(hits['top1'] * mask),
            'top5': jnp.sum(hits['top5'] * mask), 'count': jnp.sum(mask)}

  return eval_step


def topk_hits(scores, labels, xp=jnp) -> dict:
  """{'top1', 'top5'}: per example, whether the label is the best class, or among the
  five best (fewer classes: all), for jnp inside a step or numpy on the host."""
  k = min(5, scores.shape[-1])
  top = xp.argsort(-scores, axis=-1)[:, :k]
  return {'top1': top[:, 0] == labels, 'top5': xp.any(top == labels[:, None], axis=-1)}
