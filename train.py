"""Train any zoo model on any dataset, data-parallel over every device of every host.

  python train.py --config=configs/resnet.py --workdir=runs/resnet20
  python train.py --config=configs/resnet.py:depth=56 --workdir=runs/r56 \
      --config.batch_size=256

One linear trainer: checks without data -> set-up (experiment.py, shared with
evaluate.py and benchmark.py) -> checkpoints -> state -> data -> loop. Everything is
jit-compiled once over a Mesh with one 'data' axis: batches are sharded, the state
replicated (so BatchNorm statistics are over the global batch), the state donated.
Metrics accumulate on the devices and reach the host only at log points (`log_every_steps`
or `log_every_epochs`). Running the same command on the same workdir resumes.
"""

import concurrent.futures
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
from lib import events
from lib.experiment import SetupError
from lib import experiment
from lib import formatting
from lib import legacy_workdirs
from lib import optim
from lib import parallel
from lib import pictures
from lib import run_contract
from lib import workdir as workdir_lib
import models
from models import layer_stats

FLAGS = flags.FLAGS


# ------------------------------------------------------------------------ metrics I/O


class MetricsLog:
  """metrics.jsonl (for programs) and TensorBoard event files (for people); process 0.

  A resumed run first drops the records past its checkpoint (the killed run's steps
  that are about to be redone), so the file reads as one uninterrupted run.
  """

  def __init__(self, workdir, resume_step: int = 0):
    self.primary = jax.process_index() == 0
    self.workdir, self.path = workdir, os.path.join(workdir, workdir_lib.METRICS)
    if self.primary and os.path.exists(self.path):
      kept = [r for r in workdir_lib.read_metrics(workdir) if r['step'] <= resume_step]
      with open(self.path + '.tmp', 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in kept)
      os.replace(self.path + '.tmp', self.path)  # atomic: never a half-written file
    # The console line is printed by the loop; process 0 writes the TensorBoard events.
    self.writer = events.EventWriter(workdir) if self.primary else None

  def write(self, record: dict):
    record = {**record, 'wall_time': time.time()}
    if self.primary:
      workdir_lib.append_metrics(self.workdir, record)
    scalars = {f"{record['split']}/{k}": v for k, v in record.items()
               if isinstance(v, (int, float)) and k not in ('step', 'wall_time')}
    if self.writer:
      self.writer.write_scalars(record['step'], scalars)

  def write_image(self, step: int, tag: str, image):
    """uint8 (H, W, 3) into TensorBoard (process 0)."""
    if self.writer:
      self.writer.write_image(step, tag, pictures.png_bytes(image), *image.shape[:2])

  def flush(self):
    if self.writer:
      self.writer.flush()


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


def write_final_metrics(workdir, final, config, model, info):
  """The finished run's metrics with the model's size beside them (one atomic write)."""
  size = {'params': layer_stats.count_params(model.module),
          'mult_adds': layer_stats.count_macs(model.module, config.dataset.image_size,
                                              config.dataset.channels),
          'num_classes': info.num_classes}
  workdir_lib.write_json(os.path.join(workdir, workdir_lib.FINAL_METRICS), {**final, **size})


# ------------------------------------------------------------------------------ train

def run_once_options(platform: str) -> dict:
  """XLA's quickest compile, for a program that runs once (the init, whose RNG code is
  large): LLVM at level 0 (a quarter of the CPU time) and, on CPU, the classic kernel
  emitters (half of that again; the values are bitwise level 0's, checked on LeNet,
  ResNet-20, VGG and AlexNet)."""
  options = {'xla_backend_optimization_level': 0}
  if platform == 'cpu':
    options['xla_cpu_use_fusion_emitters'] = False
  return options


def one_step_at_a_time(mesh) -> bool:
  """Whether each step must wait for the one before: several XLA:CPU devices in this
  process (--xla_force_host_platform_device_count, as the tests and laptops simulate a
  mesh). XLA:CPU runs each device's part of a step on threads of a shared pool and meets
  the others at every collective; with steps queued ahead (asynchronous dispatch), a
  later step's collective can hold the threads an earlier one waits for, and the run
  aborts ("Termination timeout for all reduce"; seen with 2 devices on 2 cores and 8 on
  2). GPUs and TPUs, and a single CPU device, queue steps ahead as usual."""
  return mesh.devices.flat[0].platform == 'cpu' and jax.local_device_count() > 1


class TrainingStopped(RuntimeError):
  """The run stopped on a fault (divergence, a checkpoint it cannot write), its
  checkpoints intact: the message says what happened and what to do."""


def _stop_signals():
  """SIGTERM/SIGINT ask the loop to stop after the current step (a second SIGINT
  interrupts at once). Returns a function that says which signal came, and a restorer."""
  received = []
  previous = {}

  def handler(signum, frame):
    del frame
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
  lock = None
  try:
    # --- set-up and validation, all before anything compiles or is written
    run_contract.resolve_paths(config)
    experiment.check(config, given=given)  # everything that needs no data
    resuming = bool(checkpoints.saved_steps(workdir))
    if resuming:
      legacy_workdirs.check_workdir(workdir)  # (the Linen version's: refused, converted)
    else:  # (a resumed fine-tune run reads its own checkpoints, not its source)
      experiment.check_init_from(config)
      if config.init_from:
        legacy_workdirs.check_workdir(config.init_from, '--config.init_from')
    info = input_pipeline.dataset_info(config)
    input_pipeline.check_config(config, info)
    experiment.check_read(config, given, info)  # (again, the run's length now known)
    exp = experiment.setup(config, info, parallel.data_mesh())
    experiment.check_length(config, exp.length)
    weights = None if resuming else initial_weights(exp)
    workdir_lib.check_usable(workdir)
    if jax.process_index() == 0:  # one run per workdir (process 0 speaks for a job)
      lock = workdir_lib.Lock(workdir).acquire()
    changed = check_contract(exp, workdir, allow_schedule_change)
  except ValueError as e:  # DatasetError, WorkdirError, ContractError too
    if lock:
      lock.release()
    raise SetupError(str(e)) from None
  stop_signal, restore_signals = _stop_signals()
  try:
    return _train(exp, workdir, stop_signal, weights, changed)
  except checkpoints.CorruptCheckpointError as e:
    raise SetupError(str(e)) from None
  finally:
    restore_signals()
    if lock:
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
  expected = {'params': exp.abstract_state.params,
              'batch_stats': exp.abstract_state.batch_stats}
  wrong = checkpoints.mismatch(expected, weights, f'the checkpoint of {source}')
  if wrong:
    raise ValueError(f'config.init_from={source}: {wrong}; its model differs from this '
                     "config's")
  return {**weights, 'step': int(state['step'])}


def check_contract(exp: experiment.Experiment, workdir: str,
                   allow_schedule_change: bool) -> dict:
  """The run contract (lib/run_contract.py): {} for a new run or the same run; the
  durations and periods a resume changes; ContractError for anything else: another
  config, another dataset (run.json's sizes and classes), a change of anything that
  depends on the run's length without `allow_schedule_change`."""
  config, info = exp.config, exp.info
  steps = checkpoints.saved_steps(workdir)
  if not steps:  # nothing trained yet: the config (re)starts the run
    return {}
  saved = run_contract.read_saved(workdir)
  if saved is None:
    raise run_contract.ContractError(
        f'--workdir={workdir} has checkpoints but no {run_contract.CONFIG} to say what '
        'they were trained with; restore that file, or choose a new --workdir')
  facts = run_contract.read_facts(workdir)
  data_changed = facts and run_contract.dataset_change(facts, info)
  if data_changed:
    raise run_contract.ContractError(
        f'--workdir={workdir} was trained on another {info.name} than there is now: '
        f'{data_changed}. Its checkpoints are of that data, so it cannot resume on this; '
        f'put the data back as it was, or choose a new --workdir (with '
        f'--config.init_from={workdir} to start from its weights)')
  saved_classes = facts['dataset']['num_classes'] if facts else info.num_classes
  diff = run_contract.check_resume(saved, config, workdir, saved_classes, info.num_classes)
  if not diff:
    return diff
  latest, total = steps[-1], exp.length.total_steps
  if latest > total:
    raise run_contract.ContractError(
        f'--workdir={workdir} is at step {latest}, past the {total} steps this config asks '
        f'for ({run_contract.describe(diff)}); choose a new --workdir (with '
        f'--config.init_from={workdir} to start from its weights)')
  # The saved run's length as it was resolved (run.json), not rebuilt from today's data.
  old = experiment.run_length(saved, info)
  if facts:
    old = dataclasses.replace(old, steps_per_epoch=facts['steps_per_epoch'],
                              total_steps=facts['total_steps'])
  moved = run_contract.length_change(
      experiment.length_dependent(saved, exp.model, old),
      experiment.length_dependent(config, exp.model, exp.length), latest, total)
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


def _train(exp: experiment.Experiment, workdir: str, stop_signal, weights, changed) -> dict:
  config, info, mesh, model = exp.config, exp.info, exp.mesh, exp.model
  total_steps, steps_per_epoch = exp.length.total_steps, exp.length.steps_per_epoch
  train_step, eval_step = exp.train_step, exp.eval_step
  eval_split = config.dataset.eval_split
  primary = jax.process_index() == 0

  # --- checkpoints: the last `keep_checkpoints`, and the best by eval top-1 apart
  ckpt = checkpoints.manager(workdir, checkpoints.LATEST, config.keep_checkpoints)
  best_ckpt = checkpoints.manager(workdir, checkpoints.BEST, keep=1)
  latest = ckpt.latest_step()
  if latest is not None and latest >= total_steps:
    final = final_metrics(workdir_lib.read_metrics(workdir), eval_split)
    if primary and not os.path.exists(os.path.join(workdir, workdir_lib.FINAL_METRICS)):
      write_final_metrics(workdir, final, config, model, info)
    print(f'{workdir} is already finished at step {latest}: {json.dumps(final)}')
    return final

  # --- steps, compiled in the background (XLA releases the GIL) while the state is made
  # and the data loads; their first calls reuse these executables. Start-up is bound by
  # compiling: the train step is traced first, alone, and compiles first, on every core
  # (XLA compiles its kernels in parallel); the eval step, needed later, compiles next.
  target = exp.state_target()
  replicated = NamedSharding(mesh, P())
  compiling = concurrent.futures.ThreadPoolExecutor(1)
  compiling.submit(train_step.lower(target, input_pipeline.train_spec(config, info, mesh))
                   .compile)
  compiling.submit(eval_step.lower(target, input_pipeline.batch_spec(
      config, mesh, with_mask=True)).compile)
  compiling.shutdown(wait=False)  # (an error there surfaces again at the first call)

  # --- state: initialised straight into its sharding, or restored
  state, start, ckpt = checkpoints.restore_latest(workdir, ckpt, target,
                                                  config.keep_checkpoints)
  if state is None:
    # The seed goes to the devices explicitly and the key is made in the program: no
    # transfer hides in a jit call (JAX_TRANSFER_GUARD=disallow holds).
    seed = jax.device_put(np.uint32(config.seed), replicated)

    def init_from_seed(seed):
      return exp.init(jax.random.key(seed))
    init = jax.jit(init_from_seed, out_shardings=exp.state_sharding).lower(seed)
    state = init.compile(compiler_options=run_once_options(mesh.devices.flat[0].platform))(
        seed)
    if weights is not None:  # config.init_from: its weights, placed as the state's are
      print(f"Starting from the weights of {config.init_from} (its step {weights['step']})",
            flush=True)
      state = state.replace(**jax.device_put(
          {'params': weights['params'], 'batch_stats': weights['batch_stats']},
          {'params': exp.state_sharding.params,
                    'batch_stats': exp.state_sharding.batch_stats}))
      if state.ema is not None:  # the lookahead average starts from them too, in buffers
        state = state.replace(ema=jax.jit(lambda t: jax.tree.map(jnp.copy, t))(  # of its own
            {'params': state.params, 'batch_stats': state.batch_stats}))
    elif models.data_init(model.module):  # (airbench: its whitening kernel, from the data)
      init_from_data, count = models.data_init(model.module)
      images = input_pipeline.normalize_on_host(
          input_pipeline.first_train_images(config, info, count), config)
      params = init_from_data(jax.device_get(state.params), images)
      state = state.replace(params=jax.device_put(params, exp.state_sharding.params))
    start = 0
  else:
    print(f'Resuming {workdir} from step {start}', flush=True)
  if primary:
    run_contract.save(workdir, config, changed, start,
                      run_contract.run_facts(info, exp.length))
    # A finished run made longer is unfinished again: its final metrics come at the end.
    if os.path.exists(os.path.join(workdir, workdir_lib.FINAL_METRICS)):
      os.remove(os.path.join(workdir, workdir_lib.FINAL_METRICS))
  log = MetricsLog(workdir, resume_step=start)

  # --- data, from the step the run starts at
  batches = input_pipeline.train_batches(config, info, mesh, start_step=start)
  eval_ds = input_pipeline.eval_dataset(config, info)  # built once, iterated at each eval

  one_at_a_time = one_step_at_a_time(mesh)

  def evaluate(state, step):
    sums = None
    for batch in input_pipeline.device_iterator(eval_ds, mesh):
      out = eval_step(state, batch)
      if one_at_a_time:  # (its collectives, as the train step's)
        jax.block_until_ready(out)
      sums = out if sums is None else jax.tree.map(jnp.add, sums, out)
    sums = jax.device_get(sums)
    n = int(sums['count'])
    record = {'split': eval_split, 'step': step, 'loss': float(sums['loss'] / n),
              'top1': float(sums['top1'] / n), 'top5': float(sums['top5'] / n),
              'num_examples': n}
    log.write(record)
    show_first_filters(state, step)
    print(f"eval  step {step:>7} | {eval_split} loss {record['loss']:.4f} | "
          f"top1 {100 * record['top1']:.2f}% | top5 {100 * record['top5']:.2f}% | "
          f'{n} examples', flush=True)
    return record

  @functools.cache
  def first_conv() -> str | None:
    """The first conv layer's name (the model traced once, at the first evaluation)."""
    size, channels = config.dataset.image_size, config.dataset.channels
    return next((r['name'] for r in layer_stats.layer_table(model.module, size, channels)
                 if r['type'] == 'Conv'), None)

  def show_first_filters(state, step):
    """The first layer's kernels as a picture in TensorBoard at each evaluation, to watch
    them form (AlexNet's Fig. 3); only that layer's kernel leaves the devices."""
    if log.writer and first_conv():
      kernel = pictures.conv_kernels(state.params, first_conv())
      log.write_image(step, f'filters/{first_conv()}', pictures.filters_image(kernel))

  def after_eval(state, step, record):
    """Plateau bookkeeping and the best checkpoint (host side, between steps)."""
    top1 = record['top1']
    scale, best, bad = (x.item() for x in jax.device_get(
        (state.lr_scale, state.best_top1, state.bad_evals)))
    improved = top1 > best
    if config.schedule.name == 'plateau':
      scale, best, bad = optim.plateau_update(config, scale, best, bad, top1)
    else:
      best = max(best, top1)
    state = state.replace(lr_scale=jax.device_put(np.float32(scale), replicated),
                          best_top1=jax.device_put(np.float32(best), replicated),
                          bad_evals=jax.device_put(np.int32(bad), replicated))
    # A run resumed from before this step may find its best checkpoint already there,
    # saved by the interrupted attempt from this same state.
    if improved and step not in best_ckpt.all_steps():
      save(best_ckpt, step, state, force=True)
    return state

  def save(manager, step, state, force=False):
    """An asynchronous save; a failed write (full disk) stops the run, the previous
    checkpoint intact (orbax commits a step only once it is complete)."""
    try:
      manager.save(step, args=ocp.args.StandardSave(state), force=force)
    except Exception as e:  # pylint: disable=broad-except
      # (An asynchronous write that failed earlier surfaces at this next save.)
      raise TrainingStopped(checkpoints.write_failure(workdir, manager, step, e)) from None

  def check_finite(state, step):
    """on_nonfinite='stop': end the run at the first NaN/Inf step (host sync: only at
    log, eval and checkpoint points)."""
    nonfinite, first = jax.device_get((state.nonfinite, state.first_nonfinite))
    if config.on_nonfinite == 'stop' and nonfinite > 0:
      last = ckpt.latest_step()
      where = (f'the last good checkpoint is step {last} in {ckpt.directory}'
               if last is not None else 'there is no checkpoint yet')
      raise TrainingStopped(
          f'the loss became NaN or Inf at step {int(first)}; stopped at '
          f"step {step}, {where}. Lower the learning rate, or set config.on_nonfinite='skip'"
          ' to skip such steps')

  def finish_saves():
    for manager in (ckpt, best_ckpt):
      try:
        manager.wait_until_finished()
      except Exception as e:  # pylint: disable=broad-except
        raise TrainingStopped(checkpoints.write_failure(workdir, manager, None, e)) from None

  # --- loop
  where = ', data resident on the devices' if input_pipeline.resident(config, info) else ''
  print(f'Training {config.model.name} on {info.name}: {total_steps} steps '
        f'({steps_per_epoch} per epoch), global batch {config.batch_size} over '
        f'{jax.device_count()} devices{where}', flush=True)
  if info.num_corrupt and start == 0:
    log.write({'split': 'data', 'step': 0, 'num_corrupt_files_skipped': info.num_corrupt})
  # Throughput: the interval since the last log line, less the evaluations in it (each
  # timed from when the steps before it have finished: steps are dispatched ahead).
  t_last, step_last, t_start = time.time(), start, time.time()
  evaluating = 0.0  # seconds of evaluation since the last log line
  record = None
  multiprocess = jax.process_count() > 1
  try:
    for step in range(start + 1, total_steps + 1):
      state = train_step(state, next(batches))
      if one_at_a_time:
        jax.block_until_ready(state.step)
      if step % exp.length.log_every == 0 or step == total_steps:
        # The only routine host sync:
        m, nonfinite = jax.device_get((state.metrics, state.nonfinite))
        check_finite(state, step)
        state = state.replace(metrics=jax.device_put(experiment.zero_metrics(), replicated))
        now = time.time()
        rate = (step - step_last) * config.batch_size / max(now - t_last - evaluating, 1e-9)
        t_last, step_last, evaluating = now, step, 0.0
        good_steps = max(int(m['steps']), 1)
        train_record = {'split': 'train', 'step': step, 'loss': float(m['loss'] / good_steps),
                        'top1': float(m['top1'] / good_steps),
                        'learning_rate': float(m['learning_rate']), 'images_per_sec': rate,
                        'nonfinite_steps': int(nonfinite)}
        log.write(train_record)
        eta = (total_steps - step) * config.batch_size / rate
        print(f"train step {step:>7}/{total_steps} | epoch {step / steps_per_epoch:6.2f} | "
              f"loss {train_record['loss']:.4f} | top1 {100 * train_record['top1']:5.2f}% | "
              f"lr {train_record['learning_rate']:.3g} | {rate:,.0f} img/s | "
              f'ETA {formatting.duration(eta)}'
              + (f" | {train_record['nonfinite_steps']} NaN/Inf steps skipped"
                 if train_record['nonfinite_steps'] else ''), flush=True)
      if step % exp.length.eval_every == 0 or step == total_steps:
        check_finite(state, step)
        jax.block_until_ready(state)  # (the training steps before it are training time)
        t_eval = time.time()
        record = evaluate(state, step)
        state = after_eval(state, step, record)
        evaluating += time.time() - t_eval  # evaluation time is not training throughput
      signalled = stop_signal()
      if multiprocess:  # every process must stop at the same step to save together
        signalled = signalled or (
            'SIGTERM' if multihost_utils.reached_preemption_sync_point(step) else None)
      if step % exp.length.checkpoint_every == 0 or step == total_steps or signalled:
        check_finite(state, step)
        save(ckpt, step, state, force=bool(signalled))
      if signalled and step < total_steps:
        finish_saves()
        log.flush()
        print(f'{signalled} received: stopped after step {step} and saved a checkpoint in '
              f'{ckpt.directory}; run the same command to resume', flush=True)
        return {'step': step, 'preempted': True}
  except (TrainingStopped, input_pipeline.DatasetError):  # let the saves in flight complete:
    # they are good states (a DatasetError: a file the stream could not decode)
    try:
      ckpt.wait_until_finished()
      best_ckpt.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      pass  # the failed write is what is being reported
    raise
  finish_saves()
  log.flush()
  final = final_metrics(workdir_lib.read_metrics(workdir), eval_split) if primary \
      else {k: record[k] for k in ('step', 'loss', 'top1', 'top5', 'num_examples')}
  if primary:
    write_final_metrics(workdir, final, config, model, info)
  print(f'Done in {formatting.duration(time.time() - t_start)}: {json.dumps(final)}',
        flush=True)
  return final


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
    print(f'train.py: error: {e}', file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(2)  # pylint: disable=protected-access  (Grain's workers, as below)
  except TrainingStopped as e:
    print(f'train.py: stopped: {e}', file=sys.stderr, flush=True)
    sys.stdout.flush()
    # Checkpoint writes are finished or failed by now; a normal interpreter exit would
    # let orbax's failed background threads print pages of tracebacks after this line.
    os._exit(1)  # pylint: disable=protected-access
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    first = str(e).splitlines()[0][:300]
    print(f'train.py: stopped: process {jax.process_index()} lost contact with the other '
          f'processes ({first}); one of them has probably died, see its log. The '
          'checkpoints are intact: run the job again to resume', file=sys.stderr, flush=True)
    # Exit now: jax.distributed's shutdown barrier would wait on the dead process.
    os._exit(1)  # pylint: disable=protected-access


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
