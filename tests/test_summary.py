"""summary.py, as a user runs it."""

import csv
import io
import os
import re
import sys

import pytest

from tests import prewarmed

pytestmark = pytest.mark.fast  # (the fast lane: README)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_summary(*args):
  return prewarmed.run([sys.executable, 'summary.py', *args], cwd=ROOT, text=True,
                       capture_output=True, timeout=300)


def test_csv_rows_and_totals_for_alexnet():
  result = run_summary('--model=alexnet', '--image_size=224', '--format=csv')
  assert result.returncode == 0, result.stderr
  rows = list(csv.DictReader(io.StringIO(result.stdout)))
  by_name = {r['layer']: r for r in rows}  # torchvision's names: features.0 is conv1
  assert by_name['features.0']['output shape'] == '55x55x64'
  assert (by_name['features.0']['rf'], by_name['features.0']['jump']) == ('11', '4')
  assert by_name['features.12']['rf'] == '195'  # pool5
  assert by_name['total']['params'] == '61100840'
  assert int(by_name['total']['mult-adds']) == sum(
      int(r['mult-adds']) for r in rows if r['layer'] != 'total')


def test_receptive_fields_through_branches_and_shortcuts():
  """A branch's field grows from the block's input, not from a sibling branch's output;
  a concatenation has its widest branch's; a residual add its longer path's. GoogLeNet
  (Table 1) by the arithmetic of the module docstring: maxpool2 27 px at a jump of 8,
  then in inception (3a) 1x1 27, 3x3 27 + 2 * 8 = 43, 5x5 59, the pool branch's 3x3
  max pool 43; (3b) on 3a's 59 px, to maxpool3's 91 + 2 * 8 = 107. ResNet-18's last
  convolution sees 435 px."""
  result = run_summary('--model=googlenet', '--image_size=224', '--format=csv')
  assert result.returncode == 0, result.stderr
  rf = {r['layer']: r['rf'] for r in csv.DictReader(io.StringIO(result.stdout))}
  assert (rf['maxpool2'], rf['inception3a.branch1.conv'], rf['inception3a.branch2.1.conv'],
          rf['inception3a.branch3.0.conv'], rf['inception3a.branch3.1.conv'],
          rf['inception3a.branch4.0']) == ('27', '27', '43', '27', '59', '43')
  assert (rf['inception3b.branch3.0.conv'], rf['inception3b.branch3.1.conv'],
          rf['inception3b.branch4.0'], rf['maxpool3']) == ('59', '91', '75', '107')
  result = run_summary('--model=resnet18', '--image_size=224', '--format=csv')
  rf = {r['layer']: r['rf'] for r in csv.DictReader(io.StringIO(result.stdout))}
  assert (rf['layer4.0.downsample.0'], rf['layer4.1.conv2']) == ('211', '435')


def test_collapse_is_one_line_error():
  result = run_summary('--model=alexnet', '--image_size=32')
  assert result.returncode == 2
  assert 'features.12' in result.stderr and 'Traceback' not in result.stderr  # pool5
  result = run_summary('--model=alexnett')
  assert result.returncode == 2 and 'Traceback' not in result.stderr
  assert "summary.py: error: unknown model 'alexnett'; did you mean alexnet" in result.stderr


def test_model_of_a_config_file():
  result = run_summary('--config=configs/lenet.py', '--format=csv')
  assert result.returncode == 0, result.stderr[-2000:]
  total = list(csv.DictReader(io.StringIO(result.stdout)))[-1]
  assert total['params'] == '61706'  # one input channel, 10 classes from mnist5k
  # --model and --channels beside a config, which names both: refused (they had been
  # ignored, the config's LeNet-5 on one channel summarised).
  for flag in ('--model=alexnet', '--channels=3'):
    result = run_summary('--config=configs/lenet.py', flag)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        'summary.py: error: --model and --channels go without --config: drop them, or give '
        '--config.model.name= or --config.dataset.channels=']


LENET_ROWS = [  # LeNet-5 (the paper's Figure 2) on a 32x32 RGB image, summary.py's default
    ('C1', 'Conv', '28x28x6', '456', '352,800', '5', '1'),
    ('S2', 'AvgPool', '14x14x6', '0', '0', '6', '2'),
    ('C3', 'Conv', '10x10x16', '2,416', '240,000', '14', '2'),
    ('S4', 'AvgPool', '5x5x16', '0', '0', '16', '4'),
    ('C5', 'Conv', '1x1x120', '48,120', '48,000', '32', '4'),
    ('F6', 'Linear', '84', '10,164', '10,080', '', ''),
    ('output', 'Linear', '10', '850', '840', '', ''),
    ('total', '', '', '62,006', '651,720', '', '')]


def test_default_table_and_markdown():
  """The default text table and --format=markdown hold the same cells: each layer's
  parameters (C1: 5*5*3*6 + 6 = 456), multiply-adds (C1: 28*28 * 6 * 5*5*3 = 352,800),
  receptive field and jump."""
  header = ('layer', 'type', 'output shape', 'params', 'mult-adds', 'rf', 'jump')
  result = run_summary('--model=lenet5')
  assert result.returncode == 0, result.stderr
  lines = [l for l in result.stdout.splitlines() if l.strip() and set(l) != {'-'}]
  cells = [re.split(r'\s{2,}', l.strip()) for l in lines]  # columns: 2+ spaces apart
  assert cells[0] == list(header)
  assert cells[1:] == [[c for c in row if c] for row in LENET_ROWS]
  result = run_summary('--model=lenet5', '--format=markdown')
  assert result.returncode == 0, result.stderr
  rows = [[c.strip() for c in l.strip().strip('|').split('|')]
          for l in result.stdout.splitlines() if l.startswith('|')]
  assert rows[0] == list(header) and set(''.join(rows[1])) <= set('-: ')
  assert [tuple(r) for r in rows[2:]] == LENET_ROWS
