"""This checkout's speed beside another's (a commit before a change), in one run, one machine.

  git worktree add ../before HEAD~1
  python benchmark.py --against=../before                 # LeNet-5, ResNet-20, batch 128

For each model, on both checkouts, with the same Python and flags: `step`, the bare
train step's images/s (each checkout's own benchmark.py: its train.py step on one
synthetic batch left on the device); `launch`, the wall time of one `train.py` run of one
step, process start to exit, with an empty compilation cache: what a user waits for.
Every measurement is a fresh process. The two checkouts alternate, each round swapping
which goes first (ABBA...), so that a machine getting busier or cooler, or caches
warming, favours neither; each figure is the best of `repeats` (the least disturbed
run). The ratios, ours / theirs, are held to the bars below. The timings are only as
quiet as the machine: run it with nothing else running.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from lib import formatting

# What is timed for each model: the config, the train.py flags of a one-step launch
# that needs no download (ResNet-20 on synthetic CIFAR-sized images, 10 classes), and
# the timed steps (each timing some 10 s on 2 cores: long beside a step, short enough
# to repeat).
MODELS = {
    'lenet5': ('configs/lenet.py', ['--config.schedule.warmup_steps=0'], 200),
    'resnet20': ('configs/resnet.py', ['--config.dataset.name=synthetic',
                                       '--config.num_classes=10'], 20),
}
# The bars on ours / theirs: what a change may cost before it is a slowdown, beside the
# spread of repeated timings on a quiet 2-core machine (1-3% for a step, 5-10% a launch).
STEP_AT_LEAST, LAUNCH_AT_MOST = 0.97, 1.1


def _python(directory: str, args: list, cache: str, timeout: float = 1800) -> float:
  """Wall seconds of a fresh process of the venv's Python in `directory`, with its own
  compilation cache."""
  env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': cache, 'JAX_PLATFORMS': 'cpu'}
  env.pop('PYTHONPATH', None)  # each checkout imports its own code
  start = time.perf_counter()
  result = subprocess.run([sys.executable, *args], cwd=directory, env=env, text=True,
                          capture_output=True, timeout=timeout)
  elapsed = time.perf_counter() - start
  if result.returncode != 0:
    raise RuntimeError(f'{" ".join(args)} in {directory} failed (exit '
                       f'{result.returncode}): {result.stderr.strip()[-1500:]}')
  return elapsed


def step_rate(directory: str, model: str, batch: int, steps: int, warmup: int,
              scratch: str) -> float:
  """images/s of `directory`'s own benchmark.py train step."""
  out = tempfile.mktemp(suffix='.json', dir=scratch)
  _python(directory, ['benchmark.py', f'--config={MODELS[model][0]}', f'--batch_size={batch}',
                      f'--steps={steps}', f'--warmup={warmup}', f'--json={out}'],
          tempfile.mkdtemp(dir=scratch))
  with open(out) as f:
    (row,) = json.load(f)
  return row['images_per_sec']


def launch_seconds(directory: str, model: str, batch: int, scratch: str) -> float:
  """Wall seconds of one `train.py` of one step in a new workdir, an empty cache."""
  config, flags, _ = MODELS[model]
  return _python(directory, [
      'train.py', f'--config={config}', f'--workdir={tempfile.mkdtemp(dir=scratch)}',
      '--config.num_epochs=None', '--config.num_train_steps=1',
      f'--config.batch_size={batch}', *flags], tempfile.mkdtemp(dir=scratch))


def compare(ours: str, theirs: str, model_names, batch: int, repeats: int,
            steps: int | None, warmup: int) -> dict:
  """{'rows': [per model and measure: both checkouts' best and every sample, the
  ratio], ...}. `ours` and `theirs` are checkout directories; `steps` timed per
  measurement (None: each model's own, MODELS)."""
  timed = {m: steps or MODELS[m][2] for m in model_names}
  samples = {(m, kind, side): [] for m in model_names for kind in ('step', 'launch')
             for side in ('ours', 'theirs')}
  order = []
  with tempfile.TemporaryDirectory(prefix='compare-commits-') as scratch:
    for r in range(repeats):
      sides = [('ours', ours), ('theirs', theirs)][::-1 if r % 2 else 1]
      for m in model_names:
        for kind in ('step', 'launch'):
          for side, directory in sides:
            value = (step_rate(directory, m, batch, timed[m], warmup, scratch)
                     if kind == 'step' else launch_seconds(directory, m, batch, scratch))
            samples[(m, kind, side)].append(value)
            order.append(side)
            unit = 'images/s' if kind == 'step' else 's'
            print(f'[round {r + 1}/{repeats}] {m} {kind} {side}: {value:,.2f} {unit}')
  rows = []
  for m in model_names:
    for kind in ('step', 'launch'):
      step = kind == 'step'
      best = max if step else min  # (the most images/s, the fewest seconds)
      a, b = samples[(m, kind, 'ours')], samples[(m, kind, 'theirs')]
      ratio = best(a) / best(b)
      bound = STEP_AT_LEAST if step else LAUNCH_AT_MOST
      rows.append({'model': m, 'measure': 'step images/s' if step else 'launch s',
                   'batch': batch, 'steps': timed[m] if step else 1, 'ours': best(a),
                   'theirs': best(b), 'ratio': ratio,
                   'bound': f"{'>=' if step else '<='} {bound}",
                   'within': ratio >= bound if step else ratio <= bound,
                   'ours_samples': a, 'theirs_samples': b})
  return {'rows': rows, 'order': order, 'repeats': repeats,
          'ours': os.path.abspath(ours), 'theirs': os.path.abspath(theirs),
          'revisions': {'ours': revision(ours), 'theirs': revision(theirs)},
          'cpus': os.cpu_count()}


def revision(directory: str) -> str | None:
  try:
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=directory,
                          text=True, capture_output=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None


def format_table(report: dict) -> str:
  keys = ['model', 'measure', 'batch', 'steps', 'theirs', 'ours', 'ratio', 'bound',
          'within']
  cells = [[f'{r[k]:.3f}' if k == 'ratio' else f'{r[k]:,.2f}' if isinstance(r[k], float)
            else str(r[k]) for k in keys] for r in report['rows']]
  return formatting.table(keys, cells)
