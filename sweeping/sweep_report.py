"""A sweep's results: a row per trial in results.csv and results.md (its overrides, final
and best eval metrics, size and wall time, from its final_metrics.json and trial.json),
and the plots of DIR/plots/ (what each shows: plot_accuracy, plot_learning_curves)."""

import collections
import math
import os
import time

from configs import hyper
from lib import formatting
from lib import workdir as workdir_lib
from sweeping import sweeps
from visualization import plots

plt = plots.plt  # (pyplot on the Agg backend: files only)

METRIC_COLUMNS = ('status', 'top1', 'best_top1', 'top5', 'loss', 'step', 'params',
                  'mult_adds', 'wall_time', 'error')


def collect(sweep_dir: str, trials: list[dict]) -> list[dict]:
  """One row per trial, finished ones first by final top-1, then the others (with
  the step they reached and their latest evaluation)."""
  rows = []
  for trial in trials:
    trial_dir = os.path.join(sweep_dir, trial['name'])
    final = sweeps.final_result(trial_dir) or {}  # (not a failed rerun's old metrics)
    status = sweeps.read_status(trial_dir)
    row = {'trial': trial['name'], **trial['overrides']}
    row['status'] = 'done' if final else status.get('state', 'not run')
    wall_time = status.get('wall_time')
    if row['status'] == 'running':
      if workdir_lib.is_locked(trial_dir):  # its train.py is alive: time so far
        wall_time = (wall_time or 0.0) + time.time() - status.get('started', time.time())
      else:  # its runner was killed before it could say how the trial ended
        row['status'] = "interrupted"
    row.update({k: final.get(k) for k in ('top1', 'best_top1', 'top5', 'loss', 'step',
                                          'params', 'mult_adds')})
    if not final:  # unfinished: how far it got, and its latest evaluation
      records = workdir_lib.read_metrics(trial_dir)
      evals = [r for r in records if r['split'] not in ('train', 'data')]
      row['step'] = records[-1]['step'] if records else None
      if evals:
        row.update(top1=evals[-1]['top1'], top5=evals[-1]['top5'], loss=evals[-1]['loss'])
    row['wall_time'] = wall_time
    row['error'] = status.get('error') if row['status'] == 'failed' else None
    rows.append(row)
  done = sorted((r for r in rows if r['status'] == 'done'), key=lambda r: -r['top1'])
  return done + [r for r in rows if r['status'] != 'done']


def label(key: str) -> str:
  """A sweep key as the tables and plots name it: `config.` left out."""
  return key.removeprefix('config.')


_PERCENT = lambda value: f'{100 * value:.2f}'
CELLS = {'top1': _PERCENT, 'best_top1': _PERCENT, 'top5': _PERCENT, 'loss': '{:.4f}'.format,
         'params': formatting.si, 'mult_adds': formatting.si, 'wall_time': formatting.duration}


def report(sweep_dir: str) -> str:
  """Write results.csv, results.md and plots/*.png; return the markdown."""
  plan = sweeps.load_plan(sweep_dir)
  trials = plan['trials']
  rows = collect(sweep_dir, trials)
  swept, fixed = hyper.swept_and_fixed([t['overrides'] for t in trials])
  columns = swept + [c for c in METRIC_COLUMNS if c != 'error']
  formatting.write_csv(os.path.join(sweep_dir, 'results.csv'),
            ['trial'] + [label(k) for k in swept] + list(METRIC_COLUMNS),
            [[r['trial']] + [r.get(k) for k in swept + list(METRIC_COLUMNS)] for r in rows])
  counts = collections.Counter(r['status'] for r in rows)  # (in the rows' order)
  header = {'top1': 'top-1 %', 'best_top1': 'best top-1 %', 'top5': 'top-5 %',
            'mult_adds': 'mult-adds', 'wall_time': 'wall time'}
  cells = [['' if r.get(c) is None else CELLS.get(c, str)(r[c]) for c in columns] for r in rows]
  md = [f"# Sweep {plan['config']}\n",
        f"{len(rows)} trials: " + ', '.join(f'{n} {s}' for s, n in counts.items()) + '.'
        + (' Fixed: ' + ', '.join(f'{label(k)}={v}' for k, v in fixed.items()) + '.' if fixed
           else '') + '\n',
        formatting.table([header.get(c, label(c)) for c in columns], cells, 'markdown')]
  failed = [r for r in rows if r['status'] == 'failed']
  if failed:
    md.append('\nFailed trials:\n\n' + ''.join(f"- {r['trial']}: {r['error']}\n"
                                             for r in failed))
  figures = plot_accuracy(rows, swept, os.path.join(sweep_dir, 'plots'))
  figures += plot_learning_curves(sweep_dir, trials, os.path.join(sweep_dir, 'plots'))
  if figures:
    md.append('\nPlots: ' + ', '.join(os.path.relpath(p, sweep_dir) for p in figures) + '\n')
  text = '\n'.join(md)
  with open(os.path.join(sweep_dir, 'results.md'), 'w') as f:
    f.write(text)
  return text


def plot_accuracy(rows: list[dict], swept: list[str], out_dir: str) -> list[str]:
  """plots/top1_vs_<p>.png per swept parameter p: mean final top-1 at each value of p,
  one line per value of the next swept parameter."""
  done = [r for r in rows if r['status'] == 'done' and r['top1'] is not None]
  if not done or not swept:
    return []
  paths = []
  for i, p in enumerate(swept):
    q = swept[(i + 1) % len(swept)] if len(swept) > 1 else None
    # Numbers stand at their value, anything else (strings, booleans) in order of appearance.
    labels = list(dict.fromkeys(r[p] for r in done))
    categorical = any(isinstance(v, (str, bool)) for v in labels)
    labels = labels if categorical else sorted(labels)
    xs = list(range(len(labels))) if categorical else labels
    fig, ax = plt.subplots(figsize=(6, 4))
    for q_value in (list(dict.fromkeys(r[q] for r in done)) if q else [None]):
      accs = {x: [r['top1'] for r in done if r[p] == value and (q is None or r[q] == q_value)]
              for x, value in zip(xs, labels)}
      points = [(x, 100 * sum(a) / len(a)) for x, a in accs.items() if a]
      if points:
        ax.plot(*zip(*points), marker='o', label=None if q is None else f'{label(q)}={q_value}')
    if categorical:
      ax.set_xticks(xs, [str(l) for l in labels])
    ax.set(xlabel=label(p), ylabel='final top-1 (%)' + (', mean over the other parameters'
                                                         if len(swept) > 2 else ''))
    ax.grid(alpha=0.3)
    legend = [ax.legend(loc='upper left', bbox_to_anchor=(1.02, 1.0), fontsize=8,
                        frameon=False)] if q else []  # right of the plot: covers no line
    fig.tight_layout()
    paths.append(os.path.join(out_dir, f'top1_vs_{label(p)}.png'))
    plots.save(fig, paths[-1], legend)
  return paths


LEGEND_MAX = 12  # trials whose names a legend lists; more would hide the plot


def plot_learning_curves(sweep_dir: str, trials: list[dict], out_dir: str) -> list[str]:
  """plots/learning_curves.png: train loss and eval top-1 against step, every trial, in
  one colour each; the legend below the two plots, where it covers no curve."""
  curves = {t['name']: workdir_lib.read_metrics(os.path.join(sweep_dir, t['name']))
            for t in trials}
  ran = [t for t in trials if curves[t['name']]]
  if not ran:
    return []
  swept, _ = hyper.swept_and_fixed([t['overrides'] for t in trials])
  fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
  lines = []
  for i, trial in enumerate(ran):
    records = curves[trial['name']]
    colour = f'C{i}'  # the same in both plots, whatever either lacks
    train = [(r['step'], r['loss']) for r in records
             if r['split'] == 'train' and math.isfinite(r['loss'])]
    evals = [(r['step'], 100 * r['top1']) for r in records
             if r['split'] not in ('train', 'data')]
    if train:
      loss_ax.plot(*zip(*train), color=colour)
    if evals:
      acc_ax.plot(*zip(*evals), marker='.', color=colour)
    # A trial as the legend names it: its swept settings (what all trials share left out).
    name = ', '.join(f"{label(k)}={trial['overrides'][k]}" for k in swept
                     if k in trial['overrides']) or trial['name']
    lines.append(plt.Line2D([], [], color=colour, marker='.', label=name))
  loss_ax.set(xlabel='step', ylabel='train loss', yscale='log')
  acc_ax.set(xlabel='step', ylabel='eval top-1 (%)')
  for ax in (loss_ax, acc_ax):
    ax.grid(alpha=0.3)
  fig.tight_layout()
  legend = [] if len(ran) > LEGEND_MAX else [fig.legend(  # under the plots, outside both axes
      handles=lines, loc='upper center', bbox_to_anchor=(0.5, 0.0), ncol=min(len(lines), 4),
      fontsize=8, frameon=False)]
  path = os.path.join(out_dir, 'learning_curves.png')
  plots.save(fig, path, legend)
  return [path]
