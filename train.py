"""Train any zoo model on any dataset, data-parallel over every device of every host.

  python train.py --config=configs/resnet.py --workdir=runs/resnet20
  python train.py --config=configs/resnet.py:depth=56 --workdir=runs/r56 \
      --config.batch_size=256

Read from the top: `train_and_evaluate` checks everything that can be checked before
anything compiles (lib/experiment.py builds the model, recipe, optimizer and steps,
shared with evaluate.py and benchmark.py); `train_loop` restores or initialises the
state and calls the train step (lib/steps.py: the step and the loss) once per step,
with the periodic actions between steps (log, evaluate, checkpoint, stop), each a named
function below it. Everything is jit-compiled once over a Mesh with one 'data' axis:
batches are sharded, the state replicated (so BatchNorm statistics are over the global
batch), the state donated. Metrics accumulate on the devices and reach the host only at
log points (`log_every_steps` or `log_every_epochs`). Running the same command on the
same workdir resumes.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_flags
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

import input_pipeline
from lib import checkpoints
from lib import cli
from lib import compile_options
from lib import events
from lib.experiment import SetupError
from lib import experiment
from lib import formatting
from lib import optim
from lib import parallel
from lib import pictures
from lib import recipes
from lib import run_contract
from lib import steps
from lib import workdir as workdir_lib
from models import layer_stats

FLAGS = flags.FLAGS


# ---------------------------------------------------------------------------- set-up

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, given=(),
                       allow_schedule_change: bool = False) -> dict:
  """Train and evaluate; returns the final eval metrics (top1, top5, loss, ...).

  `given`: the keys set on the command line, each of which this run must read.
  A workdir that holds a run resumes it if the config matches the saved one (see
  lib/run_contract.py); `allow_schedule_change` accepts a new run length that changes
  the learning rate of the steps ahead. Raises SetupError for bad input (before anything
  compiles or any file changes) and TrainingStopped for a divergence or a checkpoint
  that cannot be written.
  """
  lock = workdir_lib.Lock(workdir)  # (releasing a lock not held does nothing)
  try:
    # --- set-up and validation, all before anything compiles or is written
    run_contract.resolve_paths(config)
    resuming = bool(checkpoints.saved_steps(workdir))
    if resuming:  # (checkpoints of an earlier format: refused, naming the way on)
      run_contract.check_format(workdir, '--workdir', resuming=True)
    elif config.init_from:  # (a resumed fine-tune run reads its own, wherever this went)
      if not checkpoints.saved_steps(config.init_from):
        raise ValueError(f'config.init_from={config.init_from}: no checkpoint there; give '
                         'the workdir of a training run')
      run_contract.check_format(config.init_from, '--config.init_from', resuming=False)
    info = experiment.validate(config, given)  # every check of the config, in order
    exp = experiment.setup(config, info, parallel.data_mesh(config.batch_size))
    recipes.check_length(config, exp.length.total_steps)
    weights = None if resuming else initial_weights(exp)
    workdir_lib.check_usable(workdir)
    if jax.process_index() == 0:  # one run per workdir (process 0 speaks for a job)
      lock.acquire()
    changed = check_contract(exp, workdir, allow_schedule_change) if resuming else {}
  except ValueError as e:  # DatasetError, WorkdirError, ContractError too
    lock.release()
    raise SetupError(str(e)) from None
  stop_signal, restore_signals = _stop_signals()
  try:
    return train_loop(exp, workdir, stop_signal, weights, changed)
  except checkpoints.CorruptCheckpointError as e:
    raise SetupError(str(e)) from None
  finally:
    restore_signals()
    lock.release()


def initial_weights(exp: experiment.Experiment) -> dict | None:
  """config.init_from's weights (params and BatchNorm statistics, host arrays), checked
  against the model, and the step they are of ('step'); None without init_from."""
  source = exp.config.init_from
  if not source:
    return None
  try:
    state = checkpoints.read_state(source)
  except checkpoints.CorruptCheckpointError as e:
    raise ValueError(f'config.init_from={source}: {e}; restore it, or give another '
                     "run's workdir") from None
  weights = {'params': state['params'], 'batch_stats': state.get('batch_stats') or {}}
  expected = {k: getattr(exp.abstract_state, k) for k in weights}
  wrong = checkpoints.mismatch(expected, weights, f'the checkpoint of {source}')
  if wrong:
    raise ValueError(f'config.init_from={source}: {wrong}; its model differs from this '
                     "config's")
  return {**weights, 'step': int(state['step'])}


def check_contract(exp: experiment.Experiment, workdir: str,
                   allow_schedule_change: bool) -> dict:
  """The run contract (lib/run_contract.py) of a workdir with checkpoints (without any,
  the config (re)starts the run): {} for the same run; the durations and periods a
  resume changes; ContractError for anything else: another config, another dataset
  (run.json's sizes and classes), a change of anything that depends on the run's length
  without `allow_schedule_change`."""
  config, info = exp.config, exp.info
  saved = run_contract.read_saved(workdir)
  if saved is None:
    raise run_contract.ContractError(
        f'--workdir={workdir} has checkpoints but no {run_contract.CONFIG} to say what '
        'they were trained with; restore that file, or choose a new --workdir')
  facts = run_contract.read_facts(workdir)  # (present: check_format required it)
  data_changed = run_contract.dataset_change(facts, info)
  if data_changed:
    raise run_contract.ContractError(
        f'--workdir={workdir} was trained on another {info.name} than there is now: '
        f'{data_changed}. Its checkpoints are of that data, so it cannot resume on this; '
        f'put the data back as it was, or choose a new --workdir (with '
        f'--config.init_from={workdir} to start from its weights)')
  diff = run_contract.check_resume(saved, config, workdir, facts['dataset']['num_classes'],
                                   info.num_classes)
  if not diff:
    return diff
  latest, total = checkpoints.saved_steps(workdir)[-1], exp.length.total_steps
  if latest > total:
    raise run_contract.ContractError(
        f'--workdir={workdir} is at step {latest}, past the {total} steps this config asks '
        f'for ({run_contract.describe(diff)}); choose a new --workdir (with '
        f'--config.init_from={workdir} to start from its weights)')
  # The saved run's length as it was resolved (run.json), not rebuilt from today's data.
  old = dataclasses.replace(experiment.run_length(saved, info),
                            steps_per_epoch=facts['steps_per_epoch'],
                            total_steps=facts['total_steps'])
  moved = run_contract.length_change(
      experiment.length_dependent(saved, exp.net, old),
      experiment.length_dependent(config, exp.net, exp.length), latest, total)
  if moved and not allow_schedule_change:
    what, where = moved
    why = config.schedule.name if what == 'the learning rate' else 'it'
    raise run_contract.ContractError(
        f'{run_contract.describe(diff)} changes {what} of the steps ahead of {workdir} '
        f"({where}), since {why} depends on the run's length; pass --allow_schedule_change "
        'to resume with the new schedule, or choose a new --workdir')
  if latest < total:
    print(f'Resuming with config changes: {run_contract.describe(diff)}; '
          + (f'{moved[0]} changes at {moved[1]}' if moved
             else "the learning rate of the steps ahead is unchanged, as is all else that "
             "depends on the run's length"),
          flush=True)
  return diff


# ------------------------------------------------------------------------------- loop


def train_loop(exp: experiment.Experiment, workdir: str, stop_signal, weights,
               changed) -> dict:
  """Restore or initialise the state, then train (the module docstring says how)."""
  config, length = exp.config, exp.length
  ckpts = RunCheckpoints(workdir, config.keep_checkpoints)
  latest = ckpts.latest.latest_step()
  if latest is not None and latest >= length.total_steps:
    return already_finished(exp, workdir, latest)
  compile_in_background(exp)
  state, start = restore_or_init(exp, ckpts, weights)
  record_start(exp, workdir, changed, start)
  log = MetricsLog(workdir, resume_step=start)
  batches = input_pipeline.train_inputs(config, exp.info, exp.mesh, start_step=start)
  evaluator = Evaluator(exp, log)
  announce(exp, start, log)
  speed = Throughput(start, config.batch_size)
  wait_each_step = parallel.one_step_at_a_time(exp.mesh)
  record = None
  try:
    for step in range(start + 1, length.total_steps + 1):
      state = exp.train_step(state, next(batches))
      if wait_each_step:
        jax.block_until_ready(state.step)
      last = step == length.total_steps
      if step % length.log_every == 0 or last:
        state = log_train(exp, state, step, log, speed, ckpts)
      if step % length.eval_every == 0 or last:
        stop_if_nonfinite(config, state, step, ckpts)
        jax.block_until_ready(state)  # (the training steps before it are training time)
        with speed.paused():  # evaluation time is not training throughput
          record = evaluator.evaluate(state, step)
          state = track_best(exp, state, step, record, ckpts)
      signalled = stop_requested(stop_signal, step)
      if step % length.checkpoint_every == 0 or last or signalled:
        stop_if_nonfinite(config, state, step, ckpts)
        ckpts.save(ckpts.latest, step, state, force=bool(signalled))
      if signalled and not last:
        ckpts.finish()
        log.flush()
        print(f'{signalled} received: stopped after step {step} and saved a checkpoint in '
              f'{ckpts.latest.directory}; run the same command to resume', flush=True)
        return {'step': step, 'preempted': True}
  except (TrainingStopped, input_pipeline.DatasetError):
    with contextlib.suppress(TrainingStopped):  # (a failed write: what is reported)
      ckpts.finish()  # the saves in flight are good states: let them complete
    raise
  ckpts.finish()
  log.flush()
  return finish(exp, workdir, record, speed.started)


# ------------------------------------------------------------- the loop's named parts


class RunCheckpoints:
  """The run's checkpoints: the last `keep` (`latest`), and the best by eval top-1
  apart (`best`)."""

  def __init__(self, workdir: str, keep: int):
    self.workdir, self.keep = workdir, keep
    self.latest = checkpoints.manager(workdir, checkpoints.LATEST, keep)
    self.best = checkpoints.manager(workdir, checkpoints.BEST, keep=1)

  def save(self, manager, step: int, state, force: bool):
    """An asynchronous save into `manager` (latest or best); a failed write (full disk)
    stops the run, the previous checkpoint intact (orbax commits a step only once it is
    complete)."""
    try:
      manager.save(step, args=ocp.args.StandardSave(state), force=force)
    except Exception as e:  # pylint: disable=broad-except
      # (An asynchronous write that failed earlier surfaces at this next save.)
      raise TrainingStopped(checkpoints.write_failure(self.workdir, manager, step, e)) \
          from None

  def finish(self):
    """Wait for the writes in flight; a failed one stops the run."""
    for manager in (self.latest, self.best):
      try:
        manager.wait_until_finished()
      except Exception as e:  # pylint: disable=broad-except
        raise TrainingStopped(checkpoints.write_failure(self.workdir, manager, None, e)) \
            from None


def already_finished(exp, workdir: str, latest: int) -> dict:
  """A run at its last step already: its final metrics, written if they are missing."""
  missing = not os.path.exists(os.path.join(workdir, workdir_lib.FINAL_METRICS))
  final = final_metrics(exp, workdir, write=missing)
  print(f'{workdir} is already finished at step {latest}: {json.dumps(final)}')
  return final


def compile_in_background(exp: experiment.Experiment):
  """Compile both steps while the state is made and the data loads (XLA releases the
  GIL); their first calls reuse these executables. Start-up is bound by compiling: the
  train step is traced first, alone, and compiles first, on every core (XLA compiles
  its kernels in parallel); the eval step, needed later, compiles next."""
  config, info, mesh, target = exp.config, exp.info, exp.mesh, exp.state_target()
  compiling = concurrent.futures.ThreadPoolExecutor(1)
  compiling.submit(exp.train_step.lower(
      target, input_pipeline.train_spec(config, info, mesh)).compile)
  compiling.submit(exp.eval_step.lower(
      target, input_pipeline.batch_spec(config, mesh, with_mask=True)).compile)
  compiling.shutdown(wait=False)  # (an error there surfaces again at the first call)


def restore_or_init(exp: experiment.Experiment, ckpts: RunCheckpoints, weights):
  """(state, start step): the newest readable checkpoint, or a new state made straight
  into its sharding: from the seed, then config.init_from's `weights` or what the model
  sets from the data (its recipe)."""
  state, start, ckpts.latest = checkpoints.restore_latest(
      ckpts.workdir, ckpts.latest, exp.state_target(), ckpts.keep)
  if state is not None:
    print(f'Resuming {ckpts.workdir} from step {start}', flush=True)
    return state, start
  # The seed goes to the devices explicitly and the key is made in the program: no
  # transfer hides in a jit call (JAX_TRANSFER_GUARD=disallow holds).
  seed = jax.device_put(np.uint32(exp.config.seed), NamedSharding(exp.mesh, P()))
  def init_from_seed(seed):  # (named: JAX_LOG_COMPILES and the cache name it)
    return exp.init(jax.random.key(seed))
  init = jax.jit(init_from_seed, out_shardings=exp.state_sharding).lower(seed)
  state = init.compile(compiler_options=compile_options.init(
      exp.mesh.devices.flat[0].platform, exp.abstract_state))(seed)
  if weights is not None:
    state = start_from_weights(exp, state, weights)
  elif exp.recipe.additions.init_from_data:
    state = init_from_data(exp, state)
  return state, 0


def start_from_weights(exp: experiment.Experiment, state, weights: dict):
  """config.init_from: its weights, placed as the state's are (the parameter average,
  if any, starts from them too, in buffers of its own)."""
  print(f"Starting from the weights of {exp.config.init_from} (its step {weights['step']})",
        flush=True)
  variables = {k: jax.device_put(weights[k], getattr(exp.state_sharding, k))
               for k in ('params', 'batch_stats')}
  return state.replace(**variables, lookahead=jax.jit(exp.recipe.average_of)(variables))


def init_from_data(exp: experiment.Experiment, state):
  """The parameters the model sets from the first training images (airbench: its
  whitening kernel), on the host, once."""
  additions = exp.recipe.additions
  images = input_pipeline.first_train_images(exp.config, exp.info, additions.init_images)
  params = additions.init_from_data(jax.device_get(state.params), images)
  return state.replace(params=jax.device_put(params, exp.state_sharding.params))


def record_start(exp: experiment.Experiment, workdir: str, changed: dict, start: int):
  """run.json and config.json say what this launch runs (process 0); a resume on another
  count of devices or processes says that the run is no longer bit-identical to an
  uninterrupted one, and the history keeps it; a finished run made longer is unfinished
  again: its final metrics come at the end."""
  if jax.process_index() != 0:
    return
  facts = run_contract.run_facts(exp.info, exp.length, exp.mesh.size,
                                 jax.process_count())
  moved = run_contract.layout_change(run_contract.read_facts(workdir), facts) if start else {}
  if moved:
    print(f'WARNING: resuming {workdir} at step {start}, '
          f'{run_contract.describe_layout(moved)}: the same batches are now summed in '
          "another order, so its results are no longer bit-identical to an uninterrupted "
          f"run's (recorded in {run_contract.HISTORY})", flush=True)
  run_contract.save(workdir, exp.config, changed, start, facts, moved)
  if os.path.exists(os.path.join(workdir, workdir_lib.FINAL_METRICS)):
    os.remove(os.path.join(workdir, workdir_lib.FINAL_METRICS))


def announce(exp: experiment.Experiment, start: int, log: 'MetricsLog'):
  config, info, length = exp.config, exp.info, exp.length
  where = ', data resident on the devices' if input_pipeline.resident(config, info) else ''
  print(f'Training {config.model.name} on {info.name}: {length.total_steps} steps '
        f'({length.steps_per_epoch} per epoch), global batch {config.batch_size} over '
        f'{exp.mesh.size} devices{where}', flush=True)
  if info.num_corrupt and start == 0:
    log.write({'split': 'data', 'step': 0, 'num_corrupt_files_skipped': info.num_corrupt})


class Throughput:
  """Training images/s since the last log line, less the evaluations in it (each timed
  from when the steps before it have finished: steps are dispatched ahead)."""

  def __init__(self, start_step: int, batch_size: int):
    self.started = self.since = time.time()
    self.since_step, self.batch_size, self.evaluating = start_step, batch_size, 0.0

  @contextlib.contextmanager
  def paused(self):
    began = time.time()
    yield
    self.evaluating += time.time() - began

  def rate(self, step: int) -> float:  # (and a new interval from here)
    now = time.time()
    rate = ((step - self.since_step) * self.batch_size
            / max(now - self.since - self.evaluating, 1e-9))
    self.since, self.since_step, self.evaluating = now, step, 0.0
    return rate


def log_train(exp: experiment.Experiment, state, step: int, log: 'MetricsLog',
              speed: Throughput, ckpts: RunCheckpoints):
  """The train metrics since the last log line, to metrics.jsonl, TensorBoard and the
  console; the state with its accumulator reset. The loop's only routine host sync."""
  config, total = exp.config, exp.length.total_steps
  m, nonfinite = jax.device_get((state.metrics, state.nonfinite))
  stop_if_nonfinite(config, state, step, ckpts)
  state = state.replace(metrics=jax.device_put(steps.zero_metrics(),
                                               NamedSharding(exp.mesh, P())))
  rate = speed.rate(step)
  good_steps = max(int(m['steps']), 1)
  record = {'split': 'train', 'step': step, 'loss': float(m['loss'] / good_steps),
            'top1': float(m['top1'] / good_steps), 'learning_rate': float(m['learning_rate']),
            'images_per_sec': rate, 'nonfinite_steps': int(nonfinite)}
  log.write(record)
  eta = (total - step) * config.batch_size / rate
  print(f"train step {step:>7}/{total} | epoch {step / exp.length.steps_per_epoch:6.2f} | "
        f"loss {record['loss']:.4f} | top1 {100 * record['top1']:5.2f}% | "
        f"lr {record['learning_rate']:.3g} | {rate:,.0f} img/s | "
        f'ETA {formatting.duration(eta)}'
        + (f" | {record['nonfinite_steps']} NaN/Inf steps skipped"
           if record['nonfinite_steps'] else ''), flush=True)
  return state


class Evaluator:
  """The eval split (its dataset built once, iterated at each evaluation): metrics to
  the log and the console, and the first layer's filters to TensorBoard."""

  def __init__(self, exp: experiment.Experiment, log: 'MetricsLog'):
    self.exp, self.log = exp, log
    self.dataset = input_pipeline.eval_dataset(exp.config, exp.info)
    self.wait_each_step = parallel.one_step_at_a_time(exp.mesh)

  def evaluate(self, state, step: int) -> dict:
    split = self.exp.config.dataset.eval_split
    sums = None
    for batch in input_pipeline.device_iterator(self.dataset, self.exp.mesh):
      out = self.exp.eval_step(state, batch)
      if self.wait_each_step:  # (its collectives, as the train step's)
        jax.block_until_ready(out)
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = jax.device_get(sums)
    n = int(sums['count'])
    record = {'split': split, 'step': step,
              **{k: float(sums[k] / n) for k in ('loss', 'top1', 'top5')}, 'num_examples': n}
    self.log.write(record)
    self.show_first_filters(state, step)
    print(f"eval  step {step:>7} | {split} loss {record['loss']:.4f} | "
          f"top1 {100 * record['top1']:.2f}% | top5 {100 * record['top5']:.2f}% | "
          f'{n} examples', flush=True)
    return record

  @functools.cached_property
  def first_conv(self) -> str | None:
    """The first conv layer's name (the model traced once, at the first evaluation)."""
    d = self.exp.config.dataset
    return next((r['name'] for r in layer_stats.layer_table(
        self.exp.net.module, d.image_size, d.channels) if r['type'] == 'Conv'), None)

  def show_first_filters(self, state, step: int):
    """The first layer's kernels as a picture in TensorBoard at each evaluation, to watch
    them form (AlexNet's Fig. 3); only that layer's kernel leaves the devices."""
    if self.log.writer and self.first_conv:
      kernel = pictures.conv_kernels(state.params, self.first_conv)
      image = pictures.grid(pictures.filter_tiles(kernel), scale=max(1, 48 // kernel.shape[0]))
      self.log.writer.write_image(step, f'filters/{self.first_conv}', image)


def track_best(exp: experiment.Experiment, state, step: int, record: dict,
               ckpts: RunCheckpoints):
  """After an evaluation: the plateau schedule's bookkeeping, and the best checkpoint
  (host side, between steps)."""
  config, top1 = exp.config, record['top1']
  scale, best, bad = (x.item() for x in jax.device_get(
      (state.lr_scale, state.best_top1, state.bad_evals)))
  improved = top1 > best
  if config.schedule.name == 'plateau':
    scale, best, bad = optim.plateau_update(config, scale, best, bad, top1)
  else:
    best = max(best, top1)
  scale, best, bad = jax.device_put((np.float32(scale), np.float32(best), np.int32(bad)),
                                    NamedSharding(exp.mesh, P()))
  state = state.replace(lr_scale=scale, best_top1=best, bad_evals=bad)
  # A run resumed from before this step may find its best checkpoint already there,
  # saved by the interrupted attempt from this same state.
  if improved and step not in ckpts.best.all_steps():
    ckpts.save(ckpts.best, step, state, force=True)
  return state


def stop_if_nonfinite(config, state, step: int, ckpts: RunCheckpoints):
  """on_nonfinite='stop': end the run at the first NaN/Inf step (host sync: only at
  log, eval and checkpoint points)."""
  nonfinite, first = jax.device_get((state.nonfinite, state.first_nonfinite))
  if config.on_nonfinite == 'stop' and nonfinite > 0:
    last = ckpts.latest.latest_step()
    where = (f'the last good checkpoint is step {last} in {ckpts.latest.directory}'
             if last is not None else 'there is no checkpoint yet')
    raise TrainingStopped(
        f'the loss became NaN or Inf at step {int(first)}, seen at step {step} (the run '
        f'looks at its log, eval and checkpoint steps); {where}. Lower the learning rate, '
        "or set config.on_nonfinite='skip' to skip such steps")


def stop_requested(stop_signal, step: int) -> str | None:
  """The signal that asks the run to stop after this step; in a multi-process job,
  every process stops at the same step, to save together."""
  signalled = stop_signal()
  if signalled or jax.process_count() == 1:
    return signalled
  return 'SIGTERM' if multihost_utils.reached_preemption_sync_point(step) else None


def finish(exp: experiment.Experiment, workdir: str, record: dict | None,
           started: float) -> dict:
  """The finished run's final metrics, written beside the model's size (process 0)."""
  final = (final_metrics(exp, workdir, write=True) if jax.process_index() == 0 else
           {k: record[k] for k in EVAL_FINAL})
  print(f'Done in {formatting.duration(time.time() - started)}: {json.dumps(final)}',
        flush=True)
  return final


# ------------------------------------------------------------------------ metrics I/O


class MetricsLog:
  """metrics.jsonl (for programs) and TensorBoard event files (for people); process 0.

  A resumed run first drops the records past its checkpoint (the killed run's steps
  that are about to be redone), so the file reads as one uninterrupted run.
  """

  def __init__(self, workdir, resume_step: int = 0):
    self.path = path = os.path.join(workdir, workdir_lib.METRICS)
    primary = jax.process_index() == 0
    if primary and os.path.exists(path):
      kept = [r for r in workdir_lib.read_metrics(workdir) if r['step'] <= resume_step]
      with open(path + '.tmp', 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in kept)
      os.replace(path + '.tmp', path)  # atomic: never a half-written file
    self.writer = events.EventWriter(workdir) if primary else None

  def write(self, record: dict):
    if self.writer:
      record = {**record, 'wall_time': time.time()}
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')
      self.writer.write_scalars(record['step'], {
          f"{record['split']}/{k}": v for k, v in record.items()
          if isinstance(v, (int, float)) and k not in ('step', 'wall_time')})

  def flush(self):
    if self.writer:
      self.writer.flush()


EVAL_FINAL = ('step', 'loss', 'top1', 'top5', 'num_examples')  # (of the last evaluation)


def final_metrics(exp, workdir: str, write: bool) -> dict:
  """The last eval record and the last train record of the run (metrics.jsonl), as one
  dict; with `write` (process 0 only), also to final_metrics.json with the model's size
  beside them (one atomic write)."""
  d, records = exp.config.dataset, workdir_lib.read_metrics(workdir)
  evals = [r for r in records if r['split'] == d.eval_split]
  trains = [r for r in records if r['split'] == 'train']
  out = ({'train_loss': trains[-1]['loss'], 'train_top1': trains[-1]['top1']} if trains
         else {})
  if evals:
    out.update({k: evals[-1][k] for k in EVAL_FINAL})
    out['best_top1'] = max(r['top1'] for r in evals)
  if write and jax.process_index() == 0:
    module = exp.net.module
    size = {'params': layer_stats.count_params(module),
            'mult_adds': layer_stats.count_macs(module, d.image_size, d.channels),
            'num_classes': exp.info.num_classes}
    workdir_lib.write_json(os.path.join(workdir, workdir_lib.FINAL_METRICS), {**out, **size})
  return out


# ------------------------------------------------------------------------ stopping


class TrainingStopped(RuntimeError):
  """The run stopped on a fault (divergence, a checkpoint it cannot write), its
  checkpoints intact: the message says what happened and what to do."""


def _stop_signals():
  """SIGTERM/SIGINT ask the loop to stop after the current step (a second SIGINT
  interrupts at once). Returns a function that says which signal came, and a restorer."""
  received, previous = [], {}

  def handler(signum, _):
    received.append(signal.Signals(signum).name)
    if signum == signal.SIGINT:
      signal.signal(signal.SIGINT, signal.default_int_handler)

  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGTERM, signal.SIGINT):
      previous[sig] = signal.signal(sig, handler)

  def restore():
    for sig, old in previous.items():
      signal.signal(sig, old)

  return (lambda: received[0] if received else None), restore


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.config is None or FLAGS.workdir is None:
    raise app.UsageError('give --config=configs/FILE.py[:arg] and --workdir=DIR')
  cli.use_compilation_cache()
  try:
    parallel.maybe_initialize_distributed(FLAGS.config)
  except ValueError as e:
    cli.fail('train.py', str(e))
  try:
    train_and_evaluate(FLAGS.config, FLAGS.workdir, cli.overridden_keys(sys.argv),
                       FLAGS.allow_schedule_change)
  except SetupError as e:
    cli.fail('train.py', str(e))
  except input_pipeline.DatasetError as e:  # found by the stream mid-run (set-up's: above)
    _exit_now(f'error: {e}', 2)
  except TrainingStopped as e:
    _exit_now(f'stopped: {e}', 1)
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    _exit_now(f'stopped: process {jax.process_index()} lost contact with the other '
              f'processes ({str(e).splitlines()[0][:300]}); one of them has probably died, '
              'see its log. The checkpoints are intact: run the job again to resume', 1)


def _exit_now(message: str, status: int):
  """The message, then an exit that runs nothing more: checkpoint writes are finished or
  failed by now, and a normal interpreter exit would let orbax's failed background
  threads (and Grain's workers) print pages of tracebacks after this line, or, in a
  multi-process job, wait in jax.distributed's shutdown barrier on a dead process."""
  print(f'train.py: {message}', file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(status)  # pylint: disable=protected-access


def define_flags():
  """The CLI's flags; defined only when train.py is the program, so that other entry
  points (benchmark.py, sweep.py) can import it and define their own --config."""
  config_flags.DEFINE_config_file('config', None, 'training config file (file.py[:arg])',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'directory for checkpoints and metrics')
  flags.DEFINE_bool('allow_schedule_change', False, 'resume with a new run length that '
                    'changes the learning rate of the steps ahead (a longer cosine run)')


if __name__ == '__main__':
  define_flags()
  cli.run(main, 'train.py')
