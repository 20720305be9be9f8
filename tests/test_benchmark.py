"""benchmark.py as users run it: the three modes, its table and its JSON."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(tmp_path, *args):
  out = tmp_path / 'bench.json'
  result = subprocess.run([sys.executable, 'benchmark.py', *args, f'--json={out}'],
                          cwd=ROOT, text=True, capture_output=True, timeout=600)
  return result, (json.loads(out.read_text()) if out.exists() else None)


def test_train_step_two_models(tmp_path):
  result, rows = run(tmp_path, '--model=lenet5,simple_cnn', '--batch_size=16', '--steps=3',
                     '--warmup=1')
  assert result.returncode == 0, result.stderr[-2000:]
  assert [r['model'] for r in rows] == ['lenet5', 'simple_cnn']
  for r in rows:
    assert r['mode'] == 'train_step' and r['images_per_sec'] > 0 and r['compile_s'] > 0
    assert r['peak_memory_bytes'] > 0 and r['batch_size'] == 16
  assert 'images_per_sec' in result.stdout and 'simple_cnn' in result.stdout


def test_end_to_end_and_input_only_on_mnist5k(tmp_path):
  result, rows = run(tmp_path, '--config=configs/lenet.py', '--end_to_end', '--steps=3')
  assert result.returncode == 0, result.stderr[-2000:]
  assert rows[0]['mode'] == 'end_to_end' and rows[0]['dataset'] == 'mnist5k'
  result, rows = run(tmp_path, '--config=configs/lenet.py', '--input_only', '--steps=5')
  assert result.returncode == 0, result.stderr[-2000:]
  assert rows[0]['mode'] == 'input_only' and rows[0]['images_per_sec'] > 0


def test_bad_model_is_one_line(tmp_path):
  result, rows = run(tmp_path, '--model=resnet21')
  assert result.returncode == 2 and rows is None
  assert "unknown model 'resnet21'" in result.stderr and 'Traceback' not in result.stderr
