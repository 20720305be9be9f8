"""Reproduce a paper's table: plan the runs, run what is missing, report ours beside theirs.

  python reproduce.py resnet_cifar10 plan --workdir=tables/resnet_cifar10
  python reproduce.py resnet_cifar10 run --workdir=tables/resnet_cifar10 --seeds=3 \
      --launcher=slurm --gpus_per_task=1
  python reproduce.py resnet_cifar10 report --workdir=tables/resnet_cifar10

Tables: reproduction/paper_tables.py. `run` runs the missing rows as a sweep (sweep.py's
flags), a train.py process per row and seed in DIR/<row>[,seed=K]/. `report` writes
DIR/report.md and report.csv: our params and multiply-adds (traced, never trained) and
errors under the paper's evaluation (DIR/<row>/eval/best_<mode>.json from evaluate.py;
the training's own for `center`) beside the paper's; for resnet_cifar10 also the error
against depth. See README.md, "Reproducing the papers' tables".
"""

import functools
import json
import os
import shlex
import statistics
import sys

from absl import flags

from data import sources
from lib import cli
from lib import formatting
from lib import workdir as workdir_lib
from reproduction import paper_tables
from sweeping import sweeps as sweep
from visualization import plots

FLAGS = flags.FLAGS
flags.DEFINE_integer('seeds', 1, 'run: runs per row, seeds 0..N-1 (mean ± std in the report)',
                     lower_bound=1)
flags.DEFINE_string('benchmark', None, 'plan: a benchmark.py --json file; its images/s per '
                    'model turn images to process into hours')


def trials(table: str, seeds: int = 1) -> list[dict]:
  """A trial per row (and seed), named after the row."""
  out = []
  for row in paper_tables.TABLES[table]['rows']:
    path = os.path.join(sweep.REPO, row['config'])
    for seed in range(seeds):
      overrides = dict(row['overrides'], **({'config.seed': seed} if seeds > 1 else {}))
      trial = sweep.make_trial(path, overrides, swept=[])
      trial['name'] = row['name'] + (f',seed={seed}' if seeds > 1 else '')
      trial['row'] = row['name']
      out.append(trial)
  return out


def config_of(trial: dict):
  module = sweep.load_module(trial['config'].partition(':')[0])
  return sweep.build_config(module, trial)


def model_size(config, num_classes: int) -> tuple[int, int]:
  """(params, multiply-adds) of a config's model at its image size, traced, never run."""
  return _model_size(json.dumps(config.model.to_dict(), sort_keys=True),
                     config.num_classes or num_classes, config.dataset.image_size,
                     config.dataset.channels)


@functools.lru_cache(maxsize=None)  # tracing ResNet-1202 takes seconds; tables repeat
def _model_size(model_json: str, num_classes: int, size: int, channels: int):
  # (JAX and Flax only here: `run` and `plan` launch train.py and need neither)
  from flax import nnx  # pylint: disable=import-outside-toplevel
  import models  # pylint: disable=import-outside-toplevel
  from models import layer_stats  # pylint: disable=import-outside-toplevel
  model = nnx.eval_shape(lambda: models.create_model_from_config(  # shapes only
      json.loads(model_json), num_classes, image_size=size, in_channels=channels))
  return layer_stats.count_params(model), layer_stats.count_macs(model, size, channels)


def epochs_and_images(config) -> tuple[float, int | None]:
  size = sources.PUBLISHED_TRAIN_SIZES.get(config.dataset.name)
  if config.num_epochs is not None:
    return config.num_epochs, size and int(config.num_epochs * size)
  images = config.num_train_steps * config.batch_size
  return (images / size if size else None), images


def benchmark_rates(path: str) -> dict:
  """{model: training images/s} from a benchmark.py --json file: its end-to-end rows,
  else its train-step rows (input-only rows time no model)."""
  try:
    with open(path) as f:
      rows = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise sweep.SweepError(f'--benchmark={path}: cannot read it ({e})') from None
  rates = {}
  for mode in ('train_step', 'end_to_end'):  # the later mode wins
    rates.update({r['model']: r['images_per_sec'] for r in rows
                  if isinstance(r, dict) and r.get('mode', 'train_step') == mode
                  and 'model' in r})
  if not rates:
    modes = sorted({str(r.get('mode')) for r in rows if isinstance(r, dict)})
    raise sweep.SweepError(
        f'--benchmark={path} holds no model timings (modes: {", ".join(modes) or "none"}); '
        'the plan needs a training rate: python benchmark.py --config=... --json=FILE '
        '(the train-step or --end_to_end mode)')
  return rates


def plan(table: str, sweep_dir: str, seeds: int, benchmark: str | None) -> str:
  rates = benchmark_rates(benchmark) if benchmark else {}
  lines = [f"# {paper_tables.TABLES[table]['title']}: plan\n"]
  total_hours = 0.0
  for trial in trials(table, seeds):
    config = config_of(trial)
    epochs, images = epochs_and_images(config)
    rate = rates.get(config.model.name)
    hours = images / rate / 3600 if rate and images else None
    total_hours += hours or 0
    lines.append(
        f"{trial['name']}: {config.model.name} on {config.dataset.name}, "
        + (f'{epochs:g} epochs, ' if epochs else '')
        + (f'{images:,} images' if images else 'images unknown')
        + (f', ~{hours:.1f} h at {rate:,.0f} images/s' if hours is not None else
           ' (time: give --benchmark=FILE from benchmark.py --json)')
        + f"\n    {shlex.join(sweep.command(sweep_dir, trial))}")
  if total_hours:
    lines.append(f'\nTotal ~{total_hours:.1f} device-hours at the benchmarked rates.')
  return '\n'.join(lines) + '\n'


def run_result(sweep_dir: str, trial: dict, mode: str) -> dict | None:
  """The run's errors (%) under the paper's evaluation, or None if not available yet
  (or its last attempt failed: sweeps.final_result)."""
  run_dir = os.path.join(sweep_dir, trial['name'])
  final = sweep.final_result(run_dir)
  if final is None:
    return None
  record = final if mode == 'center' else workdir_lib.read_json(
      os.path.join(run_dir, 'eval', f'best_{mode}.json'))
  if record is None:
    return {'pending_eval': True}
  return {'top1_err': 100 * (1 - record['top1']), 'top5_err': 100 * (1 - record['top5'])}


def _mean_std(values: list[float | None]) -> str:
  """'', one value or 'mean ± std' (Nones, numbers the paper does not give, left out)."""
  values = [v for v in values if v is not None]
  if not values:
    return ''
  if len(values) == 1:
    return f'{values[0]:.2f}'
  return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def report(table: str, sweep_dir: str) -> str:
  spec = paper_tables.TABLES[table]
  plan_file = workdir_lib.read_json(os.path.join(sweep_dir, sweep.PLAN))
  all_trials = plan_file['trials'] if plan_file else trials(table)
  metric = 'top1_err' if any(r['paper']['top1_err'] for r in spec['rows']) else 'top5_err'
  header = ['row', 'params (ours)', 'params (paper)', 'mult-adds (ours)', 'mult-adds (paper)',
            f"{'top-1' if metric == 'top1_err' else 'top-5'} err % (ours)", '(paper)', 'diff',
            'top-5 err % (ours)', '(paper)', 'epochs', 'wall time', 'status', 'source']
  rows, csv_rows, figure = [], [], []
  for row in spec['rows']:
    mode = row['eval_mode'] or spec['eval_mode']
    row_trials = [t for t in all_trials if t.get('row', t['name']) == row['name']] or \
        [t for t in trials(table) if t['row'] == row['name']]
    results = [run_result(sweep_dir, t, mode) for t in row_trials]
    done = [r for r in results if r and 'pending_eval' not in r]
    ours = [r[metric] for r in done]
    ours5 = [r['top5_err'] for r in done]
    config = config_of(row_trials[0])
    params, macs = model_size(config, row['num_classes'])
    paper = row['paper']
    diff = (statistics.mean(ours) - paper[metric]) if ours and paper[metric] else None
    statuses = [sweep.read_status(os.path.join(sweep_dir, t['name'])) for t in row_trials]
    walls = [s['wall_time'] for s in statuses if s.get('wall_time')]
    states = [s.get('state', 'not run') if result is None else
              'needs evaluate.py' if 'pending_eval' in result else 'done'
              for result, s in zip(results, statuses)]
    unique = list(dict.fromkeys(states))  # the row's status: one state, or each counted
    status = unique[0] if len(unique) == 1 else ', '.join(f'{states.count(s)} {s}'
                                                          for s in unique)
    epochs, _ = epochs_and_images(config)
    cells = [row['name'], formatting.si(params), formatting.si(paper['params']),
             formatting.si(macs), formatting.si(paper['mult_adds']), _mean_std(ours),
             _mean_std([paper[metric]]), '' if diff is None else f'{diff:+.2f}',
             _mean_std(ours5), _mean_std([paper['top5_err']]),  # (dropped if metric is top-5)
             '' if epochs is None else f'{epochs:g}',
             formatting.duration(sum(walls) / len(walls)) if walls else '',
             status,
             row['source'] + (f' ({mode})' if mode != 'center' else '')]
    rows.append(cells)
    csv_rows.append([row['name'], params, paper['params'], macs, paper['mult_adds'],
                     statistics.mean(ours) if ours else None, paper[metric], diff,
                     statistics.mean(ours5) if ours5 else None, paper['top5_err'],
                     len(ours), epochs, status])
    figure.append((row, ours))
  if metric == 'top5_err':  # a top-5-only table: no second pair of error columns
    drop = lambda cells: cells[:8] + cells[10:]
    header, rows = drop(header), [drop(r) for r in rows]
  notes = [f"- {r['name']}: {r['note']}" for r in spec['rows'] if r['note']]
  text = (f"# {spec['title']}\n\n"
          + formatting.table(header, rows, 'markdown')
          + ('\n' + '\n'.join(notes) + '\n' if notes else ''))
  os.makedirs(sweep_dir, exist_ok=True)
  formatting.write_csv(os.path.join(sweep_dir, 'report.csv'),
                         ['row', 'params', 'paper_params', 'mult_adds', 'paper_mult_adds',
                          metric, f'paper_{metric}', 'diff', 'top5_err', 'paper_top5_err',
                          'runs', 'epochs', 'status'], csv_rows)
  if spec.get('figure') == 'depth':
    path = plot_error_vs_depth(figure, metric, os.path.join(sweep_dir, f'{table}.png'))
    text += f'\nFigure: {os.path.relpath(path, sweep_dir)}\n'
  with open(os.path.join(sweep_dir, 'report.md'), 'w') as f:
    f.write(text)
  return text


def plot_error_vs_depth(figure, metric: str, path: str) -> str:
  """Test error against depth, the paper's and ours (mean and each seed)."""
  depths = [int(''.join(c for c in row['name'] if c.isdigit())) for row, _ in figure]
  fig, ax = plots.plt.subplots(figsize=(6, 4))
  ax.plot(depths, [row['paper'][metric] for row, _ in figure], 'o-', label='paper')
  ran = [(d, ours) for d, (_, ours) in zip(depths, figure) if ours]
  if ran:
    ax.plot([d for d, _ in ran], [statistics.mean(o) for _, o in ran], 's-', label='ours')
    for d, ours in ran:
      ax.scatter([d] * len(ours), ours, color='C1', alpha=0.4, s=12)
  ax.set(xscale='log', xlabel='layers', ylabel='test error (%)')
  ax.set_xticks(depths, [str(d) for d in depths])
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  plots.save(fig, path)
  return path


ACTIONS = ('plan', 'run', 'report')
USAGE = 'usage: reproduce.py TABLE plan|run|report --workdir=DIR'


def usage_error(argv: list[str]) -> str | None:
  """What is wrong with the command line's words, in one line (None: nothing)."""
  words = argv[1:]
  if not words:
    return f'{USAGE}; tables: {", ".join(paper_tables.TABLES)}'
  if words[0] not in paper_tables.TABLES:
    return (f'no table {words[0]!r}' + sweep.did_you_mean(words[0], paper_tables.TABLES)
            + f' (tables: {", ".join(paper_tables.TABLES)})')
  if len(words) < 2:
    return f'give the action: reproduce.py {words[0]} plan|run|report --workdir=DIR'
  if words[1] not in ACTIONS:
    return (f'no action {words[1]!r}' + sweep.did_you_mean(words[1], ACTIONS)
            + f'; {USAGE}')
  if len(words) > 2:
    return f'unexpected arguments {words[2:]}; {USAGE}'
  if FLAGS.workdir is None:
    return 'give --workdir=DIR (the directory of the table\'s runs)'
  return None


def main(argv):
  problem = usage_error(argv)
  if problem:
    cli.fail('reproduce.py', problem)
  table, action = argv[1], argv[2]
  spec = f'{os.path.join(sweep.REPO, "reproduction", "paper_tables.py")}:{table}'
  try:
    sweep.check_plan(FLAGS.workdir, spec)  # (not another table's runs, nor a train.py run)
    if action == 'plan':
      print(plan(table, FLAGS.workdir, FLAGS.seeds, FLAGS.benchmark), end='')
    elif action == 'report':
      print(report(table, FLAGS.workdir), end='')
    else:
      table_trials = trials(table, FLAGS.seeds)
      slurm = sweep.slurm_options() if FLAGS.launcher == 'slurm' else None
      no_failures = sweep.launch(FLAGS.workdir, spec, table_trials, FLAGS.parallel,
                                 FLAGS.dry_run, slurm, lambda: report(table, FLAGS.workdir),
                                 ('reproduce.py', table, 'report'), FLAGS.allow_schedule_change)
      sys.exit(0 if no_failures else 1)
  except (sweep.SweepError, workdir_lib.WorkdirError, OSError) as e:
    cli.fail('reproduce.py', str(e))


if __name__ == '__main__':
  sweep.define_launch_flags()  # --workdir, --launcher, --parallel, --dry_run, SLURM
  cli.run(main, 'reproduce.py', config_flag=None)
