"""This checkout's speed beside another's (the last Linen commit), in one run, one machine.

  git worktree add ../linen 52aaa4a
  python benchmark.py --against=../linen                  # LeNet-5, ResNet-20, batch 128

For each model it measures, on both checkouts, with the same Python and flags:

  step      the bare train step's images/s: each checkout's own `benchmark.py` (its
            train.py step, compiled, on one synthetic batch left on the device);
  launch    the wall time of one `train.py` run of one step, from process start to exit
            (imports, dataset, model, compilation with an empty compilation cache, the
            step, the final evaluation and checkpoint): what a user waits for.

Every measurement is a fresh process. The two checkouts alternate, and each round
swaps which goes first (ABBA...), so that a machine getting busier or cooler, or caches
warming, favours neither; each figure is the best of `repeats` (the least disturbed
run). The ratios are ours / theirs: step images/s (the issue asks >= 0.97) and launch
seconds (<= 1.1).

With `nnx_jit` it also times, in this checkout, one minimal train step (cross-entropy,
SGD with momentum, BatchNorm statistics) built three ways on the same NNX model: the
functional step (nnx.split once, jax.jit of a pure function that merges), `nnx.jit` on
the model and optimizer objects, and `nnx.jit` through `nnx.cached_partial` (Flax's
cure for nnx.jit's per-call graph traversal).

The timings are only as quiet as the machine: run it with nothing else running.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lib import formatting
import models

# What is timed for each model: the config, the train.py flags of a one-step launch
# that needs no download (ResNet-20 on synthetic CIFAR-sized images, 10 classes), and
# the timed steps (each timing some 10 s on 2 cores: long beside a step, short enough
# to repeat).
MODELS = {
    'lenet5': ('configs/lenet.py', ['--config.schedule.warmup_steps=0'], 200),
    'resnet20': ('configs/resnet.py', ['--config.dataset.name=synthetic',
                                       '--config.num_classes=10'], 20),
}
# The bounds on ours / theirs.
STEP_AT_LEAST, LAUNCH_AT_MOST = 0.97, 1.1


def _python(directory: str, args: list, cache: str, timeout: float = 1800):
  """A fresh process of the venv's Python in `directory`, with its own compilation
  cache; (completed process, wall seconds)."""
  env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': cache, 'JAX_PLATFORMS': 'cpu'}
  env.pop('PYTHONPATH', None)  # each checkout imports its own code
  start = time.perf_counter()
  result = subprocess.run([sys.executable, *args], cwd=directory, env=env, text=True,
                          capture_output=True, timeout=timeout)
  elapsed = time.perf_counter() - start
  if result.returncode != 0:
    raise RuntimeError(f'{" ".join(args)} in {directory} failed (exit '
                       f'{result.returncode}): {result.stderr.strip()[-1500:]}')
  return result, elapsed


def step_rate(directory: str, model: str, batch: int, steps: int, warmup: int,
              scratch: str) -> float:
  """images/s of `directory`'s own benchmark.py train step."""
  config = MODELS[model][0]
  out = tempfile.mktemp(suffix='.json', dir=scratch)
  _python(directory, ['benchmark.py', f'--config={config}', f'--batch_size={batch}',
                      f'--steps={steps}', f'--warmup={warmup}', f'--json={out}'],
          tempfile.mkdtemp(dir=scratch))
  with open(out) as f:
    (row,) = json.load(f)
  return row['images_per_sec']


def launch_seconds(directory: str, model: str, batch: int, scratch: str) -> float:
  """Wall seconds of one `train.py` of one step in a new workdir, an empty cache."""
  config, flags, _ = MODELS[model]
  _, elapsed = _python(directory, [
      'train.py', f'--config={config}', f'--workdir={tempfile.mkdtemp(dir=scratch)}',
      '--config.num_epochs=None', '--config.num_train_steps=1',
      f'--config.batch_size={batch}', *flags], tempfile.mkdtemp(dir=scratch))
  return elapsed


def compare(ours: str, theirs: str, model_names=('lenet5', 'resnet20'), batch: int = 128,
            repeats: int = 5, steps: int | None = None, warmup: int = 5,
            nnx_jit: bool = True, log=print) -> dict:
  """{'rows': [per model and measure: both checkouts' best and every sample, the ratio],
  'nnx_jit': [...] or None}. `ours` and `theirs` are checkout directories; `steps`
  timed per measurement (None: each model's own, MODELS)."""
  timed = {m: steps or MODELS[m][2] for m in model_names}
  samples = {(m, kind, side): [] for m in model_names for kind in ('step', 'launch')
             for side in ('ours', 'theirs')}
  order = []
  with tempfile.TemporaryDirectory(prefix='compare-commits-') as scratch:
    for r in range(repeats):
      sides = [('ours', ours), ('theirs', theirs)]
      if r % 2:
        sides.reverse()
      for m in model_names:
        for kind in ('step', 'launch'):
          for side, directory in sides:
            value = (step_rate(directory, m, batch, timed[m], warmup, scratch)
                     if kind == 'step' else launch_seconds(directory, m, batch, scratch))
            samples[(m, kind, side)].append(value)
            order.append(side)
            unit = 'images/s' if kind == 'step' else 's'
            log(f'[round {r + 1}/{repeats}] {m} {kind} {side}: {value:,.2f} {unit}')
    jit_rows = None
    if nnx_jit:
      jit_rows = []
      for m in model_names:
        result, _ = _python(ours, ['-m', 'benchmarking.compare_commits', '--nnx_jit_only',
                                   f'--model={m}', f'--batch_size={batch}',
                                   f'--steps={timed[m]}', f'--warmup={warmup}',
                                   f'--repeats={repeats}'],
                            tempfile.mkdtemp(dir=scratch))
        jit_rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        log(f'{m} nnx.jit: ' + ', '.join(f'{k} {v:,.1f}' for k, v in
                                          jit_rows[-1]['images_per_sec'].items()))
  rows = []
  for m in model_names:
    for kind in ('step', 'launch'):
      best = max if kind == 'step' else min
      a, b = samples[(m, kind, 'ours')], samples[(m, kind, 'theirs')]
      ratio = best(a) / best(b)
      bound = STEP_AT_LEAST if kind == 'step' else LAUNCH_AT_MOST
      rows.append({'model': m, 'measure': 'step images/s' if kind == 'step'
                   else 'launch s', 'batch': batch,
                   'steps': timed[m] if kind == 'step' else 1,
                   'ours': best(a), 'theirs': best(b),
                   'ratio': ratio, 'bound': f'>= {bound}' if kind == 'step' else f'<= {bound}',
                   'within': ratio >= bound if kind == 'step' else ratio <= bound,
                   'ours_samples': a, 'theirs_samples': b})
  return {'rows': rows, 'nnx_jit': jit_rows, 'order': order, 'repeats': repeats,
          'ours': os.path.abspath(ours), 'theirs': os.path.abspath(theirs),
          'revisions': {'ours': revision(ours), 'theirs': revision(theirs)},
          'cpus': os.cpu_count()}


def revision(directory: str) -> str | None:
  try:
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=directory,
                          text=True, capture_output=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None


# ------------------------------------------------------ nnx.jit against the functional


def nnx_jit_rates(model_name: str, batch: int, steps: int, warmup: int,
                  repeats: int) -> dict:
  """images/s of one minimal train step on `model_name` (in this checkout) built three
  ways: functional (jax.jit), nnx.jit, nnx.jit with nnx.cached_partial; best of
  `repeats` timings of `steps` steps each."""
  # The models as the configs of MODELS make them (LeNet-5: MNIST's one channel).
  config = {'lenet5': dict(in_channels=1, num_classes=10, activation='relu',
                           pooling='max'),
            'resnet20': dict(num_classes=10)}[model_name]
  channels = config.get('in_channels', 3)
  classes = config.get('num_classes', 10)
  rng = np.random.RandomState(0)
  images = jnp.asarray(rng.standard_normal((batch, 32, 32, channels)), jnp.float32)
  labels = jnp.asarray(rng.randint(0, classes, batch), jnp.int32)
  tx = optax.sgd(0.01, momentum=0.9)

  def loss_of(model, images, labels):
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  def fresh():
    model = models.create_model(model_name, rngs=nnx.Rngs(0), **config)
    model.train()
    return model

  # Functional, as the trainer builds it (models.functional): split once, a pure step of
  # (variables, optimizer state, batch) that merges inside, the state donated.
  net = models.functional(lambda rngs: models.create_model(model_name, rngs=rngs,
                                                           **config))
  variables = net.init(jax.random.key(0))

  def functional_step(params, batch_stats, opt_state, images, labels):
    def loss_fn(params):
      logits, batch_stats_now, _ = net.apply(
          {'params': params, 'batch_stats': batch_stats}, images, train=True)
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return loss, batch_stats_now
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss
  functional_step = jax.jit(functional_step, donate_argnums=(0, 1, 2))
  state = [variables['params'], variables['batch_stats'], tx.init(variables['params'])]

  def run_functional():
    state[:3] = functional_step(*state, images, labels)[:3]
    return state[0]

  # nnx.jit on the objects, then through cached_partial.
  def nnx_step(model, optimizer, images, labels):
    loss, grads = nnx.value_and_grad(loss_of)(model, images, labels)
    optimizer.update(model, grads)
    return loss
  jitted = nnx.jit(nnx_step, donate_argnums=(0, 1))
  m1 = fresh()
  o1 = nnx.Optimizer(m1, tx, wrt=nnx.Param)
  m2 = fresh()
  o2 = nnx.Optimizer(m2, tx, wrt=nnx.Param)
  cached = nnx.cached_partial(jitted, m2, o2)

  ways = {'functional (jax.jit)': run_functional,
          'nnx.jit': lambda: jitted(m1, o1, images, labels),
          'nnx.jit + cached_partial': lambda: cached(images, labels)}
  best = {}
  for _ in range(repeats):
    for name, call in ways.items():  # (interleaved: the machine's moods are shared)
      for _ in range(warmup + 1):
        jax.block_until_ready(call())
      start = time.perf_counter()
      for _ in range(steps):
        out = call()
      jax.block_until_ready(out)
      best[name] = max(best.get(name, 0), steps * batch / (time.perf_counter() - start))
  return {'model': model_name, 'batch': batch, 'images_per_sec': best}


# ---------------------------------------------------------------------------- reports


def format_table(report: dict) -> str:
  keys = ['model', 'measure', 'batch', 'steps', 'theirs', 'ours', 'ratio', 'bound',
          'within']
  cells = [[f'{r[k]:,.2f}' if isinstance(r[k], float) and k != 'ratio'
            else f'{r[k]:.3f}' if k == 'ratio' else str(r[k]) for k in keys]
           for r in report['rows']]
  out = [formatting.table(keys, cells)]
  if report.get('nnx_jit'):
    ways = list(report['nnx_jit'][0]['images_per_sec'])
    out += ['', 'One minimal train step (cross-entropy, SGD with momentum, BatchNorm '
            'statistics) on the same NNX model, three ways, images/s:',
            formatting.table(['model', 'batch', *ways], [
        [r['model'], str(r['batch']), *(f'{r["images_per_sec"][w]:,.1f}' for w in ways)]
        for r in report['nnx_jit']])]
  return '\n'.join(out)


def main(argv: list[str]):
  """`python -m benchmarking.compare_commits --nnx_jit_only --model=M ...`: one JSON line (what
  compare() runs in this checkout)."""
  args = dict(a.removeprefix('--').split('=', 1) for a in argv if '=' in a)
  if '--nnx_jit_only' in argv:
    print(json.dumps(nnx_jit_rates(args['model'], int(args['batch_size']),
                                   int(args['steps']), int(args['warmup']),
                                   int(args['repeats']))))
    return
  print('usage: python benchmark.py --against=DIR (see benchmarking/compare_commits.py)',
        file=sys.stderr)
  sys.exit(2)


if __name__ == '__main__':
  main(sys.argv[1:])
