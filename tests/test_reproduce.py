"""reproduce.py: every table's plan, our model sizes against the papers', and a report
over real workdirs made by short runs on mock CIFAR-10 (two seeds)."""

import csv
import json
import os
import shutil
import sys

import pytest
import tensorflow_datasets as tfds

import reproduce
from reproduction import paper_tables
from sweeping import sweeps as sweep
import train
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('table', list(paper_tables.TABLES))
@pytest.mark.fast
def test_plan_lists_every_row_with_its_command(table, tmp_path):
  bench = tmp_path / 'benchmark.json'
  bench.write_text(json.dumps([{'model': 'resnet20', 'images_per_sec': 5000.0},
                               {'model': 'lenet5', 'images_per_sec': 20000.0}]))
  text = reproduce.plan(table, str(tmp_path / 'dir'), seeds=1, benchmark=str(bench))
  for row in paper_tables.TABLES[table]['rows']:
    assert f"{row['name']}: " in text
    assert f"--workdir={tmp_path / 'dir' / row['name']}" in text
  if table == 'resnet_cifar10':  # 64k steps x 128 images at 5,000 images/s
    assert 'resnet20: resnet20 on cifar10, 163.84 epochs, 8,192,000 images, ~0.5 h' in text


def test_plan_reads_benchmarks_of_every_mode_or_names_the_one_it_needs(tmp_path):
  bench = tmp_path / 'benchmark.json'
  input_only = {'mode': 'input_only', 'dataset': 'mnist5k', 'images_per_sec': 9e5}
  bench.write_text(json.dumps([input_only]))
  with pytest.raises(sweep.SweepError, match=r'holds no model timings \(modes: input_only\); '
                                             r'the plan needs a training rate'):
    reproduce.plan('lenet_mnist', str(tmp_path / 'dir'), 1, str(bench))
  result = prewarmed.run([sys.executable, 'reproduce.py', 'lenet_mnist', 'plan',
                          f'--workdir={tmp_path}/dir', f'--benchmark={bench}'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
  # Every mode together: end_to_end (data included) wins over the train step alone.
  bench.write_text(json.dumps([
      input_only, {'mode': 'train_step', 'model': 'lenet5', 'images_per_sec': 1e6},
      {'mode': 'end_to_end', 'model': 'lenet5', 'images_per_sec': 2e4}]))
  assert reproduce.benchmark_rates(str(bench)) == {'lenet5': 2e4}


def one_unit(value: float) -> float:
  """One unit in the last digit the paper printed: 0.27 -> 0.01, 133 -> 1, 60 -> 10."""
  text = f'{value:g}'
  if '.' in text:
    return 10.0 ** -len(text.split('.')[1])
  return 10.0 ** (len(text) - len(text.rstrip('0')))


def test_params_and_mult_adds_equal_the_papers_within_rounding():
  checked = 0
  for table, spec in paper_tables.TABLES.items():
    for row in spec['rows']:
      if row['paper']['params'] is None and row['paper']['mult_adds'] is None:
        continue
      trial = [t for t in reproduce.trials(table) if t['row'] == row['name']][0]
      params, macs = reproduce.model_size(reproduce.config_of(trial), row['num_classes'])
      for ours, paper, scale in ((params, row['paper']['params'], 1e6),
                                 (macs, row['paper']['mult_adds'], 1e9)):
        if paper is None:
          continue
        assert abs(ours / scale - paper / scale) <= one_unit(paper / scale) + 1e-9, (
            table, row['name'], ours, paper)
        checked += 1
  assert checked == 6 + 5 + 6 + 2 + 2  # every published size in the tables


def short_run(workdir, seed):
  trial = [t for t in reproduce.trials('resnet_cifar10', 2)
           if t['name'] == f'resnet20,seed={seed}'][0]
  config = reproduce.config_of(trial)
  config.batch_size, config.num_train_steps = 8, 4
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  config.dataset.workers = 0
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    return train.train_and_evaluate(config, str(workdir / trial['name']))


def test_report_over_real_short_runs(tmp_path):
  sweep.save_plan(str(tmp_path), os.path.join(ROOT, 'reproduction/paper_tables.py:resnet_cifar10'),
                  reproduce.trials('resnet_cifar10', 2))
  finals = [short_run(tmp_path, seed) for seed in (0, 1)]
  text = reproduce.report('resnet_cifar10', str(tmp_path))
  errors = [100 * (1 - f['top1']) for f in finals]
  mean = sum(errors) / 2
  std = (sum((e - mean) ** 2 for e in errors)) ** 0.5  # sample std of two runs
  line = [l for l in text.splitlines() if l.startswith('| resnet20 |')][0]
  cells = [c.strip() for c in line.strip('|').split('|')]
  assert cells[1:3] == ['270K', '270K']             # params, ours and the paper's
  assert cells[5] == f'{mean:.2f} ± {std:.2f}'      # two seeds
  assert cells[6] == '8.75' and cells[7] == f'{mean - 8.75:+.2f}'
  assert cells[12] == 'done'
  assert '| resnet56 | 853K | 850K |' in text and text.count('not run') == 5
  with open(tmp_path / 'report.csv') as f:
    rows = {r['row']: r for r in csv.DictReader(f)}
  assert float(rows['resnet20']['top1_err']) == pytest.approx(mean)
  assert rows['resnet20']['runs'] == '2' and rows['resnet110']['runs'] == '0'
  png = (tmp_path / 'resnet_cifar10.png').read_bytes()
  assert png.startswith(b'\x89PNG') and len(png) > 10_000
  assert (tmp_path / 'report.md').read_text() == text


@pytest.mark.fast
def test_cli_run_dry_run_and_report(tmp_path):
  result = prewarmed.run([sys.executable, 'reproduce.py', 'lenet_mnist', 'run',
                          f'--workdir={tmp_path}', '--dry_run', '--allow_schedule_change'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert '2 trials in' in result.stdout and 'configs/lenet.py:mnist=true' in result.stdout
  commands = [l for l in result.stdout.splitlines() if 'train.py' in l]
  assert len(commands) == 2 and all(c.endswith(' --allow_schedule_change') for c in commands)
  result = prewarmed.run([sys.executable, 'reproduce.py', 'lenet_mnist', 'report',
                          f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert '| lenet5_mnist5k | 61.7K | 60K | 417K |' in result.stdout
  result = prewarmed.run([sys.executable, 'reproduce.py', 'resnet_cifar100', 'plan',
                          f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
  assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
  assert result.stderr.startswith("reproduce.py: error: no table 'resnet_cifar100' (did you "
                                  'mean resnet_cifar10?)'), result.stderr


def test_a_row_whose_rerun_failed_is_failed_not_done(tmp_path):
  """A row's workdir holds the final metrics of an earlier run, but its last attempt
  failed (train.py refused the row's config of now): the report says failed and shows
  no result, as for a row never finished."""
  row = tmp_path / 'lenet5_mnist5k'
  os.makedirs(row)
  (row / 'final_metrics.json').write_text(json.dumps({'top1': 0.99, 'top5': 1.0}))
  (row / 'trial.json').write_text(json.dumps({
      'state': 'failed', 'returncode': 2,
      'error': 'exit 2: train.py: error: num_train_steps 30 -> 40 changes the learning rate'}))
  text = reproduce.report('lenet_mnist', str(tmp_path))
  cells = [c.strip() for c in [l for l in text.splitlines()
                               if l.startswith('| lenet5_mnist5k |')][0].strip('|').split('|')]
  assert cells[5] == '' and cells[12] == 'failed', cells  # not 1.00 % error, not done


def test_cli_run_trains_the_missing_rows_and_reports(trained_lenet, tmp_path):
  """`reproduce.py lenet_mnist run`: the mnist5k row resumes and finishes (its workdir a
  copy of the session's LeNet-5 run, configs/lenet.py, cut back to its step-1000
  checkpoint); the full-MNIST row fails, offline, naming its dataset; the report shows
  both."""
  trained, _ = trained_lenet
  row = tmp_path / 'lenet5_mnist5k'
  shutil.copytree(trained, row)
  shutil.rmtree(row / 'checkpoints' / '1240')
  os.remove(row / 'final_metrics.json')
  result = prewarmed.run([sys.executable, 'reproduce.py', 'lenet_mnist', 'run',
                          f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, env={**os.environ, 'TFDS_DATA_DIR': str(tmp_path / 'tfds')})
  assert result.returncode == 1, result.stderr[-2000:]  # not every row finished
  assert 'from step 1000' in (row / 'train.log').read_text()
  final = json.load(open(row / 'final_metrics.json'))
  assert final['step'] == 1240 and final['num_examples'] == 1000
  failed = json.load(open(tmp_path / 'lenet5_mnist' / 'trial.json'))
  assert failed['state'] == 'failed' and 'mnist' in failed['error']
  line = [l for l in result.stdout.splitlines() if l.startswith('| lenet5_mnist5k |')][0]
  cells = [c.strip() for c in line.strip('|').split('|')]
  assert cells[5] == f"{100 * (1 - final['top1']):.2f}" and cells[12] == 'done'
  assert (tmp_path / 'report.md').read_text() in result.stdout
