"""summary.py, as a user runs it."""

import csv
import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_summary(*args):
  return subprocess.run([sys.executable, 'summary.py', *args], cwd=ROOT, text=True,
                        capture_output=True, timeout=300)


def test_csv_rows_and_totals_for_alexnet():
  result = run_summary('--model=alexnet', '--image_size=224', '--format=csv')
  assert result.returncode == 0, result.stderr
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  by_name = {r['layer']: r for r in rows}
  assert by_name['conv1']['output shape'] == '55x55x64'
  assert (by_name['conv1']['rf'], by_name['conv1']['jump']) == ('11', '4')
  assert by_name['pool5']['rf'] == '195'
  assert by_name['total']['params'] == '61100840'
  assert int(by_name['total']['mult-adds']) == sum(
      int(r['mult-adds']) for r in rows if r['layer'] != 'total')


def test_collapse_is_one_line_error():
  result = run_summary('--model=alexnet', '--image_size=32')
  assert result.returncode == 2
  assert 'pool5' in result.stderr and 'Traceback' not in result.stderr
  result = run_summary('--model=alexnett')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert "summary.py: error: unknown model 'alexnett'; did you mean alexnet" in result.stderr


def test_model_of_a_config_file():
  result = run_summary('--config=configs/lenet.py', '--format=csv')
  assert result.returncode == 0, result.stderr[-2000:]
  total = list(csv.DictReader(io.StringIO(result.stdout)))[-1]
  assert total['params'] == '61706'  # one input channel, 10 classes from mnist5k
