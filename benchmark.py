"""Throughput of the train step, the whole training loop, or the input pipeline alone.

  python benchmark.py --model=resnet20,resnet56 --batch_size=128
  python benchmark.py --model=resnet50 --batch_size=256 --precision=bfloat16 --image_size=224
  python benchmark.py --config=configs/lenet.py --end_to_end     # with the real pipeline
  python benchmark.py --config=configs/resnet.py --input_only    # the pipeline alone
  python benchmark.py --config=configs/resnet.py:imagenet --config.dataset.name=folder:DIR \
      --input_only --start_step=100000   # time to the first batch of a run resumed there
  python benchmark.py --suite=gpu --json=gpu.json   # beside PyTorch on this GPU (8 min)
  python benchmark.py --suite=gpu --smoke           # the same at toy sizes, on a CPU
  python benchmark.py --against=../before   # beside another checkout (20 min on 2 cores)
  python benchmark.py --compare=torch       # beside PyTorch on this CPU (3 min on 2 cores)
  python benchmark.py --profile --model=resnet20 --batch_size=128   # the step's time by kind

The default mode times the compiled train step (the one train.py runs: same model,
optimizer, shardings, donation) over all local devices on one synthetic batch that stays
on the devices, so it measures computation only. `--end_to_end` feeds the step from the
config's real input pipeline with the device prefetch train.py uses; the gap between the
two is the pipeline's cost. `--input_only` times the host pipeline (read, decode,
augment, batch) without a model, the time to its first batch from `--start_step`
(`first_batch_s`), and, for datasets of image files, one plain Pillow process doing the
same per-image work in Pillow calls alone (`pillow_images_per_sec`): `speedup`, ours over
it, counts both the workers and any cost of our per-image code. `--suite`, `--against`,
`--compare` and `--profile` run the module of benchmarking/ that their flag names.
Each mode prints a table and writes JSON (--json).
"""

import json
import os
import sys
import time

from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from benchmarking import compare_commits, gpu_suite, pillow_baseline, torch_cpu, xla_profile
from configs import default
from data import sources
import input_pipeline
from lib import cli
from lib import compile_options
from lib import experiment
from lib import formatting
from lib import parallel

FLAGS = flags.FLAGS
# (no default file: ml_collections would parse --config.KEY overrides of a default while
# this module is imported, before cli.run can report a bad one in a line)
config_flags.DEFINE_config_file('config', None, 'config file (file.py[:arg]; default '
                                'configs/default.py)', lock_config=True)
flags.DEFINE_list('model', [], 'model names to time (default: the config\'s model)')
flags.DEFINE_integer('batch_size', 0, 'global batch (default: the config\'s)')
flags.DEFINE_enum('precision', None, list(experiment.PRECISIONS), 'computation dtype '
                  '(default: the config\'s)')
flags.DEFINE_integer('image_size', 0, 'input height and width (default: the config\'s)')
flags.DEFINE_integer('num_classes', 0, 'classes for synthetic data (default: the '
                     'dataset\'s, or 1000)')
flags.DEFINE_integer('steps', 20, 'timed steps (batches with --input_only)')
flags.DEFINE_integer('warmup', 3, 'untimed steps after compilation')
flags.DEFINE_bool('end_to_end', False, 'feed the step from the real input pipeline')
flags.DEFINE_bool('input_only', False, 'time the input pipeline alone, without a model')
flags.DEFINE_integer('start_step', 0, '--input_only: the step the pipeline starts at, as '
                     'in a run resumed there')
flags.DEFINE_string('json', 'benchmark.json', 'where to write the results as JSON')
flags.DEFINE_enum('suite', None, ['gpu'], 'gpu: ResNet-50, ResNet-20 and the JPEG pipeline '
                  'beside PyTorch on this device (benchmarking/gpu_suite.py); --model and '
                  'the modes do not apply')
flags.DEFINE_bool('smoke', False, '--suite=gpu at toy sizes, minutes on a CPU')
flags.DEFINE_string('against', None, 'another checkout (a commit before a change): its train '
                    'step and one-step train.py launch beside ours, alternating, on the CPU '
                    '(benchmarking/compare_commits.py; --model default lenet5,resnet20, '
                    '--batch_size 128, --steps 200 and 20)')
flags.DEFINE_enum('compare', None, ['torch'], 'torch: the train step beside the same '
                  'network\'s PyTorch step, eager, on the same CPU threads '
                  '(benchmarking/torch_cpu.py; --model default lenet5,resnet20,vgg_a, '
                  '--batch_size 128, --repeats 3)')
flags.DEFINE_bool('profile', False, 'trace the train step and sum its operations\' time by '
                  'kind (convolutions and their two gradients, layout copies, BatchNorm, '
                  'the optimizer...; benchmarking/xla_profile.py)')
flags.DEFINE_integer('repeats', 5, '--against and --compare (there 3): rounds; each '
                     'figure is the best of them')


def peak_memory(compiled) -> tuple[int | None, str]:
  """Peak device memory: measured where the device reports it (GPU, TPU), else as XLA plans it."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return stats['peak_bytes_in_use'], 'measured'
  analysis = compiled.memory_analysis()
  if analysis is None:
    return None, 'unknown'
  return int(analysis.argument_size_in_bytes + analysis.output_size_in_bytes
             + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes), 'planned'


def train_step_timer(config, end_to_end: bool, warmup: int, fusion: bool | None = None):
  """train.py's step for `config`, compiled and run 1 + `warmup` steps: (timer, facts).
  timer(steps) runs that many more steps and returns their seconds, waiting for the
  devices at the end; timer.check_loss() raises where the loss so far is not finite;
  facts: what the row reports beside the speed (model, batch, compile_s, ...).
  fusion: compiled with (True) or without XLA's fusion pass instead of as train.py does
  (lib/compile_options); timer.fusion says which it was."""
  info = experiment.validate(config)  # (the dataset 'synthetic' unless --end_to_end)
  if not end_to_end:
    config.dataset.device_resident = False  # one uint8 batch, as the host pipeline gives
  mesh = parallel.data_mesh(config.batch_size)
  exp = experiment.setup(config, info, mesh)  # train.py's model, optimizer, steps
  state = jax.jit(exp.init, out_shardings=exp.state_sharding)(jax.random.key(config.seed))

  if end_to_end:
    batches = input_pipeline.train_inputs(config, info, mesh)
  else:
    local = config.batch_size // jax.process_count()
    size, channels = config.dataset.image_size, config.dataset.channels
    rng = np.random.RandomState(0)
    batch = input_pipeline.to_global(
        {'image': rng.randint(0, 256, (local, size, size, channels)).astype(np.uint8),
         'label': rng.randint(0, info.num_classes, local).astype(np.int32)}, mesh)
    batches = iter(lambda: batch, None)  # the same device batch, forever

  first = next(batches)
  t = time.perf_counter()
  rule = compile_options.fuses(mesh.devices.flat[0].platform, exp.net.module)
  compiled = exp.train_step.lower(state, first).compile(
      compiler_options=None if fusion is None else compile_options.fusion(fusion))
  compile_s = time.perf_counter() - t
  box = [compiled(state, first)]  # the state, donated at each step
  wait_each_step = parallel.one_step_at_a_time(mesh)  # (as train.py: XLA:CPU meshes)

  def timer(steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      box[0] = compiled(box[0], next(batches))
      if wait_each_step:
        jax.block_until_ready(box[0])
    jax.block_until_ready(box[0])
    return time.perf_counter() - t

  def check_loss():  # (the count, since the metrics leave such steps out)
    if int(box[0].nonfinite):
      raise FloatingPointError(f'{config.model.name}: the loss became NaN or Inf at step '
                               f'{int(box[0].first_nonfinite)} during the benchmark')

  timer.compiled = compiled  # (its memory plan; for --profile, its HLO names the trace's ops)
  timer.fusion = rule if fusion is None else fusion
  timer.check_loss = check_loss
  timer(warmup)
  facts = {'mode': 'end_to_end' if end_to_end else 'train_step',
           'model': config.model.name, 'dataset': info.name,
           'batch_size': config.batch_size, 'image_size': config.dataset.image_size,
           'precision': config.precision, 'devices': mesh.size,
           'device_kind': jax.devices()[0].device_kind, 'compile_s': compile_s}
  return timer, facts


def time_train_step(config, steps: int, warmup: int, end_to_end: bool) -> dict:
  """Compile time, step time and images/s of train.py's step for `config`."""
  timer, facts = train_step_timer(config, end_to_end, warmup)
  elapsed = timer(steps)
  timer.check_loss()
  memory, memory_kind = peak_memory(timer.compiled)
  return {**facts, 'step_ms': 1000 * elapsed / steps,
          'images_per_sec': steps * config.batch_size / elapsed,
          'peak_memory_bytes': memory, 'peak_memory_kind': memory_kind, 'steps': steps}


def time_input_pipeline(config, steps: int, warmup: int, start_step: int = 0) -> dict:
  """Host-side images/s of this process's training pipeline (no devices involved), the
  time to its first batch from `start_step`, and one plain Pillow process's images/s
  doing the same images' work (where Pillow alone can: benchmarking/pillow_baseline.py)."""
  info = input_pipeline.dataset_info(config)
  input_pipeline.check_config(config, info)
  t = time.perf_counter()
  iterator = iter(input_pipeline.train_dataset(config, start_step, info=info))
  next(iterator)  # building the pipeline, starting its workers, the first batch
  first_batch_s = time.perf_counter() - t
  for _ in range(warmup):
    next(iterator)
  t = time.perf_counter()
  images = sum(len(next(iterator)['label']) for _ in range(steps))
  elapsed = time.perf_counter() - t
  if hasattr(iterator, 'close'):  # its workers would go on filling their buffers (some
    iterator.close()              # 20 batches) on the cores the Pillow process is timed on
  row = {'mode': 'input_only', 'dataset': info.name, 'augment': config.dataset.augment,
         'image_size': config.dataset.image_size, 'batch_size': config.batch_size,
         'start_step': start_step, 'host_cpus': cli.host_cpus(),
         'workers': input_pipeline.num_workers(config), 'first_batch_s': first_batch_s,
         'batch_ms': 1000 * elapsed / steps, 'images_per_sec': images / elapsed,
         'steps': steps}
  if sources.is_encoded(config):
    pillow = pillow_baseline.rate(config, sources.open_split(config, 'train', info), images)
    if pillow is not None:
      row['pillow_images_per_sec'] = pillow
      row['speedup'] = row['images_per_sec'] / pillow
  return row


def show(key, value) -> str:
  if value is None:
    return '-'
  if key == 'peak_memory_bytes':
    return f'{value / 2**30:.2f} GiB'
  if isinstance(value, float):
    return f'{value:,.1f}' if value >= 10 else f'{value:.3g}'
  return str(value)


def format_table(rows: list[dict], keys=None) -> str:
  keys = keys or [k for k in rows[0] if k not in ('peak_memory_kind', 'steps')]
  cells = [[show(k, r.get(k)) for k in keys] for r in rows]
  out = formatting.table(keys, cells).splitlines()
  kinds = {r.get('peak_memory_kind') for r in rows} - {None}
  if kinds == {'planned'}:
    out.append('(peak memory: the compiled step\'s planned footprint; this device '
               'reports no measured peak)')
  return '\n'.join(out)


def configs_to_run(base):
  """One config per --model (or the config's model), with the flag overrides applied."""
  for name in FLAGS.model or [base.model.name]:
    c = base.copy_and_resolve_references()
    if FLAGS.model:
      c.model = {'name': name}
    c.batch_size = FLAGS.batch_size or c.batch_size
    c.precision = FLAGS.precision or c.precision
    c.dataset.image_size = FLAGS.image_size or c.dataset.image_size
    c.num_classes = FLAGS.num_classes or c.num_classes
    if not (FLAGS.input_only or FLAGS.end_to_end):
      c.dataset.name = 'synthetic'  # the other modes read the config's dataset
    yield c


# The modes that exclude others: (flag, as the message names it, what it times, the
# flags it excludes, the models it can time or None for any).
EXCLUSIVE = (
    ('profile', '--profile', 'traces the bare or --end_to_end train step',
     ('suite', 'against', 'compare', 'input_only'), None),
    ('compare', '--compare=torch', 'times the bare train step',
     ('suite', 'against', 'input_only', 'end_to_end'), torch_cpu.MODELS),
    ('against', '--against', 'times the train step and train.py launches',
     ('suite', 'input_only', 'end_to_end'), compare_commits.MODELS),
)


def check_flags(argv):
  """The command line's own consistency, and a device for --suite=gpu, in one line (exit 2)
  before anything runs."""
  if len(argv) > 1:
    cli.fail('benchmark.py', f'unexpected arguments: {" ".join(argv[1:])} (flags only, '
             'e.g. --model=resnet20)')
  if FLAGS.input_only and FLAGS.end_to_end:
    cli.fail('benchmark.py', '--input_only and --end_to_end exclude each other: give one')
  for name, low in (('steps', 1), ('warmup', 0), ('start_step', 0), ('repeats', 1)):
    if FLAGS[name].value < low:
      cli.fail('benchmark.py', f'--{name}={FLAGS[name].value}: give {low} or more')
  if FLAGS.smoke and FLAGS.suite != 'gpu':
    cli.fail('benchmark.py', '--smoke goes with --suite=gpu')
  if FLAGS.against is not None and not os.path.isfile(os.path.join(FLAGS.against, 'train.py')):
    cli.fail('benchmark.py', f'--against={FLAGS.against}: no train.py there; give a '
             'checkout of this project (git worktree add ../before HEAD~1)')
  for flag, mode, what, excluded, models in EXCLUSIVE:
    if FLAGS[flag].value in (None, False):
      continue
    if any(FLAGS[f].value for f in excluded):
      drop = [f'--{f}' for f in excluded]
      cli.fail('benchmark.py', f'{mode} {what}: drop {", ".join(drop[:-1])} and {drop[-1]}')
    unknown = sorted(set(FLAGS.model) - set(models or FLAGS.model))
    if unknown:
      cli.fail('benchmark.py', f'{mode} times {", ".join(models)}; not {", ".join(unknown)}')
  # The full suite's sizes are an H100's (minutes there, hours on a CPU): said at once,
  # before PyTorch is imported or anything compiled.
  if FLAGS.suite == 'gpu' and not FLAGS.smoke and jax.default_backend() != 'gpu':
    cli.fail('benchmark.py', f'--suite=gpu: JAX sees no GPU here (its devices: '
             f'{jax.default_backend()}), and the full sizes would run for hours; add --smoke '
             'for the same suite at toy sizes on this machine, or run it on a GPU machine')


def main(argv):
  check_flags(argv)
  sys.stdout.reconfigure(line_buffering=True)  # (progress lines show as they come)
  # XLA's flags, set before anything starts XLA (it reads them once): --profile's trace;
  # --smoke's quickest compile (compile_options.run_once), its toy steps each run twice.
  if FLAGS.profile or FLAGS.smoke:
    extra = (xla_profile.TRACE_FLAG if FLAGS.profile else
             compile_options.xla_flags(compile_options.run_once('cpu')))
    os.environ['XLA_FLAGS'] = ' '.join([os.environ.get('XLA_FLAGS', ''), extra])
  if FLAGS.against is None:  # (--against's processes each have a cache of their own)
    cli.use_compilation_cache()
  try:
    parallel.use_cpu_cores()  # (as train.py: one XLA device per core on a CPU)
  except ValueError as e:  # (a bad CLASSIC_CPU_DEVICES)
    cli.fail('benchmark.py', str(e))
  if FLAGS.suite == 'gpu':
    report = gpu_suite.run(FLAGS.smoke, time_train_step, time_input_pipeline)
    table = format_table(report, [*gpu_suite.ROW_KEYS, 'epoch_s'])
  elif FLAGS.against is not None:
    report = compare_commits.compare(
        os.path.dirname(os.path.abspath(__file__)), FLAGS.against,
        tuple(FLAGS.model) or tuple(compare_commits.MODELS), batch=FLAGS.batch_size or 128,
        repeats=FLAGS.repeats, steps=FLAGS.steps if FLAGS['steps'].present else None,
        warmup=FLAGS.warmup)
    table = (f"ours: {report['ours']} ({report['revisions']['ours']}); theirs: "
             f"{report['theirs']} ({report['revisions']['theirs']}); best of "
             f"{report['repeats']}, alternating; ratio = ours / theirs\n"
             + compare_commits.format_table(report))
  elif FLAGS.compare == 'torch':
    report = torch_cpu.compare(
        train_step_timer, tuple(FLAGS.model) or tuple(torch_cpu.MODELS),
        batch=FLAGS.batch_size or 128,
        repeats=FLAGS.repeats if FLAGS['repeats'].present else 3,
        steps=FLAGS.steps if FLAGS['steps'].present else None)
    table = torch_cpu.format_table(report)
  else:
    report, table = time_models()
  if table:
    print(f'\n{table}')
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(report, f, indent=2)
    print(f'wrote {FLAGS.json}')


def time_models() -> tuple[list[dict], str | None]:
  """The default mode, --end_to_end, --input_only and --profile: (their rows, the table;
  None for --profile, which prints each model's profile as it comes)."""
  rows = []
  try:
    for config in configs_to_run(FLAGS.config or default.get_config()):
      if FLAGS.profile:
        timer, facts = train_step_timer(config, FLAGS.end_to_end, FLAGS.warmup)
        report = xla_profile.profile(timer.compiled, timer, FLAGS.steps, config.batch_size)
        timer.check_loss()
        rows.append({k: facts[k] for k in ('model', 'batch_size', 'devices')} | report)
        print(xla_profile.format_profile(config.model.name, rows[-1]))
        continue
      if FLAGS.input_only:
        rows.append(time_input_pipeline(config, FLAGS.steps, FLAGS.warmup, FLAGS.start_step))
        break  # the pipeline does not depend on the model
      rows.append(time_train_step(config, FLAGS.steps, FLAGS.warmup, FLAGS.end_to_end))
      print(f"{rows[-1]['model']}: {rows[-1]['images_per_sec']:,.1f} images/s")
  except (ValueError, FloatingPointError) as e:  # a bad model, size, dataset or rate: one line
    cli.fail('benchmark.py', str(e))
  return rows, None if FLAGS.profile else format_table(rows)


if __name__ == '__main__':
  cli.run(main, 'benchmark.py')
