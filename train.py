"""Train any zoo model on any dataset, data-parallel over every device of every host.

  python train.py --config=configs/resnet.py --workdir=runs/resnet20
  python train.py --config=configs/resnet.py:depth=56 --workdir=runs/r56 \
      --config.batch_size=256

One linear trainer in sections: set-up and validation -> mesh -> data -> model and state
-> steps -> checkpoints -> loop. Everything is jit-compiled once over a Mesh with one
'data' axis: batches are sharded, the state replicated (so BatchNorm statistics are over
the global batch), the state donated. Metrics accumulate on the devices and reach the
host only every `log_every_steps`. Running the same command on the same workdir resumes.
"""

import functools
import json
import math
import os
import sys
import time
from typing import Any

from absl import app, flags, logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import checkpoints
import input_pipeline
import models
import optim

FLAGS = flags.FLAGS

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


# ------------------------------------------------------------------ set-up, validation


def maybe_initialize_distributed(config):
  """jax.distributed for multi-process runs, before anything touches a device.

  Explicit: JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and
  JAX_PROCESS_ID, for any set of machines (or several processes on one). Detected: a
  SLURM job step with several tasks, a TPU pod; or forced by config.distributed.
  """
  env = os.environ
  if 'JAX_NUM_PROCESSES' in env:
    missing = [k for k in ('JAX_COORDINATOR_ADDRESS', 'JAX_PROCESS_ID') if k not in env]
    if missing:
      raise SetupError(f'JAX_NUM_PROCESSES is set but {" and ".join(missing)} not; set '
                       'all three, or none to let SLURM/TPU detection work')
    jax.distributed.initialize(env['JAX_COORDINATOR_ADDRESS'], int(env['JAX_NUM_PROCESSES']),
                               int(env['JAX_PROCESS_ID']))
  elif (config.distributed or int(env.get('SLURM_NTASKS', '1')) > 1
        or env.get('TPU_WORKER_HOSTNAMES')):
    jax.distributed.initialize()


def num_steps(config, info) -> tuple[int, int]:
  """(steps_per_epoch, total steps) from num_epochs or num_train_steps."""
  steps_per_epoch = max(info.num_train // config.batch_size, 1)
  if config.num_epochs is not None:
    return steps_per_epoch, max(1, math.ceil(config.num_epochs * steps_per_epoch))
  return steps_per_epoch, config.num_train_steps


def validate(config):
  """Config errors that need no data: each names the field and the fix."""
  positive = {'batch_size': config.batch_size, 'dataset.image_size': config.dataset.image_size,
              'log_every_steps': config.log_every_steps,
              'eval_every_steps': config.eval_every_steps,
              'checkpoint_every_steps': config.checkpoint_every_steps,
              'keep_checkpoints': config.keep_checkpoints,
              'schedule.learning_rate': config.schedule.learning_rate}
  if config.num_epochs is not None:
    positive['num_epochs'] = config.num_epochs
  else:
    positive['num_train_steps'] = config.num_train_steps
  for field, value in positive.items():
    if value <= 0:
      raise ValueError(f'config.{field} must be positive; got {value}')
  if config.precision not in PRECISIONS:
    raise ValueError(f'config.precision must be one of {list(PRECISIONS)}; '
                     f'got {config.precision!r}')
  if config.batch_size % jax.device_count():
    raise ValueError(f'config.batch_size={config.batch_size} is not divisible by the '
                     f'{jax.device_count()} devices; use a multiple of {jax.device_count()}')


# -------------------------------------------------------------------- model and state


def build(config, info, mesh):
  """Model, optimizer, schedule, the state's abstract shape and its sharding."""
  dtype = PRECISIONS[config.precision]
  model = models.create_model_from_config(config.model, info.num_classes, dtype)
  tx = optim.create_optimizer(config)
  size = config.dataset.image_size
  dummy = jnp.zeros((1, size, size, config.dataset.channels), jnp.float32)

  def init(rng):
    variables = model.init(rng, dummy, train=False)
    params = variables['params']
    return TrainState(step=jnp.array(0, jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}),
                      opt_state=tx.init(params), lr_scale=jnp.array(1.0, jnp.float32),
                      best_top1=jnp.array(-1.0, jnp.float32),
                      bad_evals=jnp.array(0, jnp.int32))

  # Tracing only: shape errors (a collapsing stack, a fixed head) surface here, before
  # anything is compiled.
  abstract = jax.eval_shape(init, jax.random.key(0))
  replicated = NamedSharding(mesh, P())
  state_sharding = jax.tree.map(lambda _: replicated, abstract)
  return model, tx, init, abstract, state_sharding


def cross_entropy(logits, labels, num_classes, smoothing):
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing) \
      if smoothing else jax.nn.one_hot(labels, num_classes)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def make_train_step(config, model, tx, schedule, num_classes):
  """One SGD step on a global batch; metrics summed into an on-device accumulator."""
  base_key = jax.random.key(config.seed)

  def train_step(state, batch, acc):
    rng = jax.random.fold_in(base_key, state.step)  # dropout depends on seed and step

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      logits, updates = model.apply(variables, batch['image'], train=True,
                                    rngs={'dropout': rng},
                                    mutable=['batch_stats', 'intermediates'])
      loss = cross_entropy(logits, batch['label'], num_classes,
                           config.label_smoothing).mean()
      # GoogLeNet's auxiliary classifiers, weighted 0.3 (Szegedy et al. section 5).
      for aux in updates.get('intermediates', {}).get('aux_logits', ()):
        loss += 0.3 * cross_entropy(aux, batch['label'], num_classes,
                                    config.label_smoothing).mean()
      return loss, (logits, updates.get('batch_stats', {}))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    lr = schedule(state.step) * state.lr_scale
    opt_state = state.opt_state
    opt_state.hyperparams['learning_rate'] = lr
    updates, opt_state = tx.update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    top1 = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    acc = {'loss': acc['loss'] + loss, 'top1': acc['top1'] + top1,
           'steps': acc['steps'] + 1, 'learning_rate': lr}
    return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                         opt_state=opt_state), acc

  return train_step


def make_eval_step(model, num_classes):
  """Sums of loss, top-1 and top-5 hits over the unmasked examples of a global batch."""

  def eval_step(state, batch):
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    logits = model.apply(variables, batch['image'], train=False).astype(jnp.float32)
    mask = batch['mask'].astype(jnp.float32)
    loss = cross_entropy(logits, batch['label'], num_classes, 0.0)
    top5 = jax.lax.top_k(logits, min(5, num_classes))[1]
    hit5 = jnp.any(top5 == batch['label'][:, None], axis=-1)
    return {'loss': jnp.sum(loss * mask),
            'top1': jnp.sum((jnp.argmax(logits, -1) == batch['label']) * mask),
            'top5': jnp.sum(hit5 * mask), 'count': jnp.sum(mask)}

  return eval_step


def jit_steps(config, model, tx, schedule, num_classes, mesh, state_sharding):
  """The train and eval steps, jitted with explicit shardings; the train step donates
  the state and the metrics accumulator, so their buffers are updated in place."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = input_pipeline.batch_sharding(mesh)
  train_step = jax.jit(make_train_step(config, model, tx, schedule, num_classes),
                       in_shardings=(state_sharding, batch_sharding, replicated),
                       out_shardings=(state_sharding, replicated), donate_argnums=(0, 2))
  eval_step = jax.jit(make_eval_step(model, num_classes),
                      in_shardings=(state_sharding, batch_sharding), out_shardings=replicated)
  return train_step, eval_step


def zero_accumulator():
  return {'loss': jnp.zeros([], jnp.float32), 'top1': jnp.zeros([], jnp.float32),
          'steps': jnp.zeros([], jnp.int32), 'learning_rate': jnp.zeros([], jnp.float32)}


# ------------------------------------------------------------------------ metrics I/O


class MetricsLog:
  """metrics.jsonl (for programs) and TensorBoard through clu (for people); process 0."""

  def __init__(self, workdir):
    from clu import metric_writers  # pylint: disable=import-outside-toplevel
    self.primary = jax.process_index() == 0
    self.path = os.path.join(workdir, 'metrics.jsonl')
    # The console line is printed by the loop; clu writes the TensorBoard events.
    self.writer = (metric_writers.SummaryWriter(workdir) if self.primary
                   else metric_writers.MultiWriter([]))

  def write(self, record: dict):
    record = {**record, 'wall_time': time.time()}
    if self.primary:
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')
    scalars = {f"{record['split']}/{k}": v for k, v in record.items()
               if isinstance(v, (int, float)) and k not in ('step', 'wall_time')}
    self.writer.write_scalars(record['step'], scalars)

  def flush(self):
    self.writer.flush()


def read_metrics(workdir) -> list[dict]:
  """The records of a workdir's metrics.jsonl."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def final_metrics(records, eval_split) -> dict:
  """The last eval record and the last train record of a run, as one dict."""
  evals = [r for r in records if r['split'] == eval_split]
  trains = [r for r in records if r['split'] == 'train']
  out = {}
  if trains:
    out.update({'train_loss': trains[-1]['loss'], 'train_top1': trains[-1]['top1']})
  if evals:
    out.update({k: evals[-1][k] for k in ('step', 'loss', 'top1', 'top5', 'num_examples')})
    out['best_top1'] = max(r['top1'] for r in evals)
  return out


def format_duration(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else \
      f'{seconds // 60}m{seconds % 60:02d}s'


# ------------------------------------------------------------------------------ train


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Train and evaluate; returns the final eval metrics (top1, top5, loss, ...)."""
  # --- set-up and validation, all before anything compiles
  try:
    validate(config)
    info = input_pipeline.dataset_info(config)
    input_pipeline.check_config(config, info)
    mesh = Mesh(np.array(jax.devices()), ('data',))
    model, tx, init, abstract_state, state_sharding = build(config, info, mesh)
    steps_per_epoch, total_steps = num_steps(config, info)
    schedule = optim.create_schedule(config, steps_per_epoch, total_steps)
  except ValueError as e:  # DatasetError too
    raise SetupError(str(e)) from None
  eval_split = config.dataset.eval_split

  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))

  # --- checkpoints: the last `keep_checkpoints`, and the best by eval top-1 apart
  ckpt = checkpoints.manager(workdir, checkpoints.LATEST, config.keep_checkpoints)
  best_ckpt = checkpoints.manager(workdir, checkpoints.BEST, keep=1)
  start = ckpt.latest_step()
  if start is not None and start >= total_steps:
    final = final_metrics(read_metrics(workdir), eval_split)
    logging.info('%s is finished (step %d); final metrics: %s', workdir, start, final)
    print(f'{workdir} is already finished at step {start}: {json.dumps(final)}')
    return final

  # --- state: initialised straight into its sharding, or restored
  if start is None:
    state = jax.jit(init, out_shardings=state_sharding)(jax.random.key(config.seed))
    start = 0
  else:
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract_state, state_sharding)
    state = ckpt.restore(start, args=ocp.args.StandardRestore(target))
    logging.info('Resumed from %s at step %d', workdir, start)
    print(f'Resuming {workdir} from step {start}')

  # --- steps, compiled once
  replicated = NamedSharding(mesh, P())
  train_step, eval_step = jit_steps(config, model, tx, schedule, info.num_classes, mesh,
                                    state_sharding)
  dtype = PRECISIONS[config.precision]
  log = MetricsLog(workdir)
  eval_ds = input_pipeline.eval_dataset(config, info)  # built once, iterated at each eval

  def evaluate(state, step):
    sums = None
    for batch in input_pipeline.device_iterator(eval_ds, mesh, dtype):
      out = eval_step(state, batch)
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = jax.device_get(sums)
    n = int(sums['count'])
    record = {'split': eval_split, 'step': step, 'loss': float(sums['loss'] / n),
              'top1': float(sums['top1'] / n), 'top5': float(sums['top5'] / n),
              'num_examples': n}
    log.write(record)
    print(f"eval  step {step:>7} | {eval_split} loss {record['loss']:.4f} | "
          f"top1 {100 * record['top1']:.2f}% | top5 {100 * record['top5']:.2f}% | "
          f'{n} examples', flush=True)
    return record

  def after_eval(state, step, record):
    """Plateau bookkeeping and the best checkpoint (host side, between steps)."""
    top1 = record['top1']
    improved = top1 > float(state.best_top1)
    scale, best, bad = float(state.lr_scale), float(state.best_top1), int(state.bad_evals)
    if config.schedule.name == 'plateau':
      scale, best, bad = optim.plateau_update(config, scale, best, bad, top1)
    else:
      best = max(best, top1)
    state = state.replace(lr_scale=jax.device_put(jnp.float32(scale), replicated),
                          best_top1=jax.device_put(jnp.float32(best), replicated),
                          bad_evals=jax.device_put(jnp.int32(bad), replicated))
    if improved:
      best_ckpt.save(step, args=ocp.args.StandardSave(state), force=True)
    return state

  # --- loop
  batches = input_pipeline.device_iterator(
      input_pipeline.train_dataset(config, start_step=start), mesh, dtype)
  acc = jax.device_put(zero_accumulator(), replicated)
  print(f'Training {config.model.name} on {info.name}: {total_steps} steps '
        f'({steps_per_epoch} per epoch), global batch {config.batch_size} over '
        f'{jax.device_count()} devices', flush=True)
  t_last, step_last, t_start = time.time(), start, time.time()
  record = None
  for step in range(start + 1, total_steps + 1):
    state, acc = train_step(state, next(batches), acc)
    if step % config.log_every_steps == 0 or step == total_steps:
      m = jax.device_get(acc)  # the only host sync: every log_every_steps
      acc = jax.device_put(zero_accumulator(), replicated)
      now = time.time()
      rate = (step - step_last) * config.batch_size / (now - t_last)
      t_last, step_last = now, step
      train_record = {'split': 'train', 'step': step, 'loss': float(m['loss'] / m['steps']),
                      'top1': float(m['top1'] / m['steps']),
                      'learning_rate': float(m['learning_rate']), 'images_per_sec': rate}
      log.write(train_record)
      eta = (total_steps - step) * config.batch_size / rate
      print(f"train step {step:>7}/{total_steps} | epoch {step / steps_per_epoch:6.2f} | "
            f"loss {train_record['loss']:.4f} | top1 {100 * train_record['top1']:5.2f}% | "
            f"lr {train_record['learning_rate']:.3g} | {rate:,.0f} img/s | "
            f'ETA {format_duration(eta)}', flush=True)
    if step % config.eval_every_steps == 0 or step == total_steps:
      record = evaluate(state, step)
      state = after_eval(state, step, record)
      t_last = time.time()  # evaluation time is not training throughput
    if step % config.checkpoint_every_steps == 0 or step == total_steps:
      ckpt.save(step, args=ocp.args.StandardSave(state))
  ckpt.wait_until_finished()
  best_ckpt.wait_until_finished()
  log.flush()
  final = final_metrics(read_metrics(workdir), eval_split) if jax.process_index() == 0 \
      else {k: record[k] for k in ('step', 'loss', 'top1', 'top5', 'num_examples')}
  print(f'Done in {format_duration(time.time() - t_start)}: {json.dumps(final)}', flush=True)
  return final


def main(argv):
  if not FLAGS['verbosity'].present:  # orbax logs every save at INFO: keep the console
    logging.set_verbosity(logging.WARNING)  # to our progress lines
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.config is None or FLAGS.workdir is None:
    raise app.UsageError('give --config=configs/FILE.py[:arg] and --workdir=DIR')
  try:
    maybe_initialize_distributed(FLAGS.config)
    train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except SetupError as e:
    print(f'train.py: error: {e}', file=sys.stderr)
    sys.exit(2)


def define_flags():
  """The CLI's flags; defined only when train.py is the program, so that other entry
  points (benchmark.py, sweep.py) can import it and define their own --config."""
  config_flags.DEFINE_config_file('config', None, 'training config file (file.py[:arg])',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'directory for checkpoints and metrics')


if __name__ == '__main__':
  define_flags()
  app.run(main)
