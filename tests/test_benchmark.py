"""benchmark.py as users run it: the three modes, its table and its JSON."""

import io
import json
import os
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from benchmarking import compare_commits
from benchmarking import gpu_suite
from benchmarking import pillow_baseline
from benchmarking import torch_cpu
from benchmarking import torch_nets
from data import transforms
from lib import compile_options
import models
from models import layer_stats
from tests import prewarmed
from tests.test_input_pipeline import make_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# XLA's quickest compile (compile_options.run_once), for the tests of the tools that time
# many programs a few steps each (--compare=torch, --against): they check what the tool
# reports, not how fast; compiling was most of their time (together 254-279 s, alternating
# with 95-149 s at this compile, on 2 loaded cores).
QUICK_COMPILE = {'XLA_FLAGS': compile_options.xla_flags(compile_options.run_once('cpu'))}


def run(tmp_path, *args, env=None):
  """benchmark.py's run (forked with its imports made: the timings start after them)."""
  out = tmp_path / 'bench.json'
  result = prewarmed.run([sys.executable, 'benchmark.py', *args, f'--json={out}'],
                         cwd=ROOT, text=True, capture_output=True, timeout=600,
                         env={**os.environ, **(env or {})})
  return result, (json.loads(out.read_text()) if out.exists() else None)


def test_train_step_two_models(tmp_path):
  result, rows = run(tmp_path, '--model=lenet5,simple_cnn', '--batch_size=16', '--steps=3',
                     '--warmup=1')
  assert result.returncode == 0, result.stderr[-2000:]
  assert [r['model'] for r in rows] == ['lenet5', 'simple_cnn']
  for r in rows:
    assert r['mode'] == 'train_step' and r['compile_s'] > 0 and r['steps'] == 3
    assert (r['batch_size'], r['precision'], r['dataset']) == (16, 'float32', 'synthetic')
    # images/s is the batch over the mean step time, both from the same clock.
    assert r['images_per_sec'] == pytest.approx(16 / (r['step_ms'] / 1000), rel=1e-9)
    assert r['peak_memory_kind'] == 'planned' and r['peak_memory_bytes'] > 0
  # The planned footprint holds at least the parameters and the optimizer's momentum.
  params = {m: layer_stats.count_params(models.create_model(m, num_classes=1000))
            for m in ('lenet5', 'simple_cnn')}
  for r in rows:
    assert r['peak_memory_bytes'] >= 2 * 4 * params[r['model']]
  assert 'images_per_sec' in result.stdout and 'simple_cnn' in result.stdout


def test_bfloat16_train_step(tmp_path):
  result, rows = run(tmp_path, '--model=simple_cnn', '--batch_size=8', '--steps=2',
                     '--warmup=0', '--precision=bfloat16', '--image_size=32')
  assert result.returncode == 0, result.stderr[-2000:]
  assert rows[0]['precision'] == 'bfloat16' and rows[0]['model'] == 'simple_cnn'


# benchmark.py --input_only, its pipeline's iterators recorded: the Pillow yardstick
# fails unless each is closed (its workers or threads stopped) before it is timed.
PIPELINE_CLOSED_FOR_PILLOW = """
import runpy, sys
import input_pipeline
from benchmarking import compare_commits
from benchmarking import pillow_baseline
from benchmarking import torch_cpu
from benchmarking import torch_nets

iterators = []

class Recorded:
  def __init__(self, iterator):
    self.iterator, self.closed = iterator, False
  def __iter__(self):
    return self
  def __next__(self):
    return next(self.iterator)
  def close(self):
    self.closed = True
    self.iterator.close()

class Dataset:
  def __init__(self, dataset):
    self.dataset = dataset
  def __iter__(self):
    iterators.append(Recorded(iter(self.dataset)))
    return iterators[-1]

make, rate = input_pipeline.train_dataset, pillow_baseline.rate
input_pipeline.train_dataset = lambda *a, **k: Dataset(make(*a, **k))

def rate_alone(*args):
  assert iterators and all(i.closed for i in iterators), 'the pipeline still runs'
  return rate(*args)

pillow_baseline.rate = rate_alone
sys.argv = ['benchmark.py', *sys.argv[1:]]
runpy.run_path('benchmark.py', run_name='__main__')
"""


def test_input_only_on_a_folder_of_jpegs_times_the_first_batch_and_pillow(tmp_path):
  """The pipeline's images/s, its first batch, and one plain Pillow process's images/s
  timed after the pipeline has stopped (its workers would otherwise go on decoding
  ahead on the same cores, slowing the yardstick and inflating the speed-up)."""
  from data import synthetic_folder  # pylint: disable=import-outside-toplevel
  synthetic_folder.write(str(tmp_path / 'jpegs'), classes=4, train=40, val=2, size=48)
  out = tmp_path / 'bench.json'
  result = prewarmed.run(
      [sys.executable, '-c', PIPELINE_CLOSED_FOR_PILLOW,
       '--config=configs/resnet.py:imagenet,depth=18',
       f'--config.dataset.name=folder:{tmp_path}/jpegs', '--input_only',
       '--config.batch_size=16', '--config.dataset.image_size=32',
       '--config.dataset.workers=0', '--steps=4', '--warmup=1', '--start_step=1000',
       f'--json={out}'], cwd=ROOT, text=True, capture_output=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  (row,) = json.loads(out.read_text())
  assert row['mode'] == 'input_only' and row['start_step'] == 1000
  assert 0 < row['first_batch_s'] < 60
  assert row['images_per_sec'] == pytest.approx(16 / (row['batch_ms'] / 1000), rel=1e-9)
  assert row['pillow_images_per_sec'] > 0
  assert row['speedup'] == pytest.approx(row['images_per_sec'] / row['pillow_images_per_sec'])
  assert 'pillow_images_per_sec' in result.stdout and 'speedup' in result.stdout


def jpeg(width, height, mode='RGB', seed=0):
  """A JPEG's bytes: smooth colour fields with some noise, as photographs compress."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width] / max(width, height)
  pixels = np.stack([128 + 90 * np.sin(x * rng.uniform(1, 6) + y * rng.uniform(1, 6))
                     for _ in range(3)], -1) + rng.normal(0, 8, (height, width, 3))
  out = io.BytesIO()
  Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode).save(out, 'JPEG')
  return out.getvalue()


@pytest.mark.parametrize('channels', [3, 1])
@pytest.mark.fast
def test_the_pillow_yardstick_crops_the_images_as_the_pipeline_does(channels):
  """--input_only's speed-up is over one plain Pillow process (benchmarking/
  pillow_baseline.py) doing the same work: each decode-time op's crop from the same
  draws is the pipeline's, pixel for pixel (the same DCT-scaled decode, box and resize);
  a list with more than Pillow does (Cutout) gets no figure, not one of other work."""
  config = make_config(scale_min=300, scale_max=600, image_size=224, channels=channels)
  mode = transforms.image_mode(channels)
  items = [jpeg(400, 350, seed=0), jpeg(350, 400, seed=1), jpeg(1200, 900, seed=2),
           jpeg(500, 375, 'L', seed=3)]  # (the third decoded at a reduced DCT scale)
  for name, crop in pillow_baseline.CROPS.items():
    for k, item in enumerate(items):
      for draw in range(3):
        ours = transforms.DECODE_OPS[name].train_crop(item, config, np.random.default_rng(draw))
        plain = crop(Image.open(io.BytesIO(item)), config.dataset, mode,
                     np.random.default_rng(draw))
        np.testing.assert_array_equal(np.asarray(plain).reshape(ours.shape), ours,
                                      err_msg=f'{name}, image {k}, draw {draw}')
  source = [{'image': item, 'label': 0} for item in items]
  for spec, timed in [('imagenet', True), ('vgg', True), ('alexnet', True),
                      ('random_resized_crop', True), ('imagenet,cutout(16)', False),
                      ('cifar', False), ('none', False)]:
    config.dataset.augment = spec
    rate = pillow_baseline.rate(config, source, 6)
    assert (rate is not None and rate > 0) if timed else rate is None, spec


def test_end_to_end_and_input_only_on_mnist5k(tmp_path):
  result, rows = run(tmp_path, '--config=configs/lenet.py', '--end_to_end', '--steps=3')
  assert result.returncode == 0, result.stderr[-2000:]
  assert rows[0]['mode'] == 'end_to_end' and rows[0]['dataset'] == 'mnist5k'
  result, rows = run(tmp_path, '--config=configs/lenet.py', '--input_only', '--steps=5')
  assert result.returncode == 0, result.stderr[-2000:]
  assert rows[0]['mode'] == 'input_only' and rows[0]['images_per_sec'] > 0


def test_the_step_time_includes_waiting_for_the_devices(tmp_path):
  """A step call returns once the step is dispatched; the devices may still be at work
  until block_until_ready returns. Here each wait takes a second longer (a device still
  busy), so the two timed steps must measure that second: a clock stopped before the
  wait would show the dispatch alone."""
  out = tmp_path / 'bench.json'
  busy_device = (
      'import sys, time, jax\n'
      'wait = jax.block_until_ready\n'
      'def busy(x):\n'
      '  time.sleep(1.0)\n'
      '  return wait(x)\n'
      'jax.block_until_ready = busy\n'
      'sys.argv = ["benchmark.py", "--model=lenet5", "--batch_size=16", "--steps=2", '
      f'"--warmup=0", "--json={out}"]\n'
      'import runpy\n'
      'runpy.run_path("benchmark.py", run_name="__main__")\n')
  result = prewarmed.run([sys.executable, '-c', busy_device], cwd=ROOT, text=True,
                         capture_output=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  (row,) = json.loads(out.read_text())
  assert 2 * row['step_ms'] >= 1000, row


@pytest.mark.fast
def test_the_gpu_suite_without_a_gpu_says_so_at_once(tmp_path):
  """The full suite's sizes on a CPU would run for hours without a word: one line
  pointing to --smoke, exit 2, within seconds (here JAX is held to the CPU)."""
  out = tmp_path / 'bench.json'
  start = time.time()
  result = prewarmed.run([sys.executable, 'benchmark.py', '--suite=gpu', f'--json={out}'],
                         cwd=ROOT, text=True, capture_output=True, timeout=120,
                         env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert result.returncode == 2 and not out.exists() and result.stdout == ''
  (line,) = result.stderr.splitlines()
  assert line.startswith('benchmark.py: error: --suite=gpu: JAX sees no GPU here') and \
      '--smoke' in line
  assert time.time() - start < 60


@pytest.mark.fast
def test_bad_model_is_one_line(tmp_path):
  result, rows = run(tmp_path, '--model=resnet21')
  assert result.returncode == 2 and rows is None
  assert "unknown model 'resnet21'" in result.stderr and 'Traceback' not in result.stderr


def test_a_loss_that_becomes_nan_stops_the_benchmark_in_one_line(tmp_path):
  """At a rate of 1e30 LeNet-5's loss is NaN from step 2: said in one line, exit 2. The
  check had read the mean loss, which leaves such steps out, and timed the run."""
  result, rows = run(tmp_path, '--config=configs/lenet.py', '--steps=4', '--warmup=2',
                     '--config.schedule.learning_rate=1e30')
  assert result.returncode == 2 and rows is None, result.stderr[-2000:]
  assert result.stderr.splitlines() == [
      'benchmark.py: error: lenet5: the loss became NaN or Inf at step 2 during the benchmark']


def test_gpu_suite_smoke(tmp_path):
  """`--suite=gpu --smoke`: the GPU suite's code at toy sizes on the CPU, every row."""
  result, rows = run(tmp_path, '--suite=gpu', '--smoke')
  assert result.returncode == 0, result.stderr[-3000:]
  assert [(r['name'], r['framework']) for r in rows] == [
      ('resnet50_train_bf16', 'jax'),
      ('resnet50_train_bf16', 'torch (AMP bf16, channels_last, torch.compile)'),
      ('resnet20_cifar_epoch', 'jax'), ('resnet20_cifar_epoch', 'torch (eager)'),
      ('resnet20_cifar_epoch', 'torch (torch.compile)'), ('airbench94_epoch', 'jax'),
      ('airbench94_epoch', 'airbench 0.1.8 (PyTorch)'), ('jpeg_pipeline', rows[-1]['framework'])]
  assert not any(r.get('skipped') for r in rows)
  for r in rows:
    assert r['images_per_sec'] > 0 and r['device']
    assert r['step_ms'] == pytest.approx(1000 * r['batch'] / r['images_per_sec'])
  assert [r['batch'] for r in rows] == [4, 4, 16, 16, 16, 16, 16, 4]
  assert rows[0]['model'] == rows[1]['model'] == 'resnet18'  # ResNet-50's toy stand-in
  for r in rows[2:5]:
    assert r['epoch_s'] == pytest.approx(50_000 / r['images_per_sec'])
  for r in rows[5:7]:  # airbench's epochs: 48 steps of 1024
    assert r['epoch_s'] == pytest.approx(48 * 1024 / r['images_per_sec'])
  pipeline = rows[-1]
  assert pipeline['framework'].startswith('grain, ')
  assert pipeline['resnet50_images_per_sec'] == rows[0]['images_per_sec']
  assert pipeline['keeps_up'] == (pipeline['images_per_sec'] >= rows[0]['images_per_sec'])
  assert 'resnet20_cifar_epoch' in result.stdout  # the table
  # Each measurement says what it runs as it starts, and its rate when it ends.
  lines = result.stdout.splitlines()
  at = lambda i, r, ends: [n for n, l in enumerate(lines) if l.startswith(
      f"[{i}/8] {r['name']}") and (l.endswith(' ...') != ends)]
  previous_end = -1
  for i, r in enumerate(rows, start=1):
    (start,), (end,) = at(i, r, ends=False), at(i, r, ends=True)
    assert previous_end < start < end, (i, lines)
    assert f"{r['images_per_sec']:,.0f} images/s" in lines[end]
    previous_end = end
  assert 'compile, 0 warm-up and 1 timed steps' in lines[at(1, rows[0], ends=False)[0]]


@pytest.mark.fast
def test_gpu_suite_without_torchvision_skips_only_its_row():
  """PyTorch without torchvision: the ImageNet row, torchvision's ResNet, is a skipped
  row saying why (it had stopped the suite), not an error."""
  torch, _ = torch_nets.import_torch()
  r = gpu_suite.torch_imagenet(torch, None, gpu_suite.SMOKE, smoke=True)
  assert r['skipped'] == 'torchvision is not installed' and r['images_per_sec'] is None


def test_against_another_checkout_alternates_and_takes_the_best(tmp_path):
  """--against: this checkout beside another, both sides each round, the first one
  swapped each round, the best of the rounds, ratio ours / theirs. The other checkout
  is a stand-in whose benchmark.py reports 1,000 images/s and whose train.py exits at
  once, so each figure is seen to land on its own side (and only ours pays JAX)."""
  theirs = tmp_path / 'theirs'
  theirs.mkdir()
  (theirs / 'benchmark.py').write_text(
      'import json, sys\n'
      'out = next(a for a in sys.argv if a.startswith("--json=")).split("=", 1)[1]\n'
      'json.dump([{"images_per_sec": 1000.0}], open(out, "w"))\n')
  (theirs / 'train.py').write_text('')
  result, report = run(tmp_path, f'--against={theirs}', '--model=lenet5', '--batch_size=16',
                       '--steps=3', '--warmup=1', '--repeats=2', env=QUICK_COMPILE)
  assert result.returncode == 0, result.stderr[-3000:]
  assert report['order'] == ['ours', 'theirs', 'ours', 'theirs',
                             'theirs', 'ours', 'theirs', 'ours']
  step, launch = report['rows']
  assert (step['model'], step['measure'], step['batch']) == ('lenet5', 'step images/s', 16)
  assert step['ours'] == max(step['ours_samples']) and len(step['ours_samples']) == 2
  assert step['theirs_samples'] == [1000.0, 1000.0] and step['theirs'] == 1000.0
  assert step['ours'] != 1000.0
  assert step['ratio'] == pytest.approx(step['ours'] / step['theirs'])
  assert step['within'] == (step['ratio'] >= 0.97)
  assert launch['measure'] == 'launch s' and launch['ours'] == min(launch['ours_samples'])
  assert launch['theirs'] == min(launch['theirs_samples'])
  # Ours imports JAX and compiles a step; theirs is an empty script.
  assert 0 < launch['theirs'] < 2 < launch['ours'] < 600
  assert launch['within'] == (launch['ratio'] <= 1.1)
  assert 'launch s' in result.stdout and 'step images/s' in result.stdout


@pytest.mark.fast
def test_against_bad_flags_are_one_line(tmp_path):
  for args, expected in [
      ([f'--against={tmp_path}'], f'--against={tmp_path}: no train.py there'),
      ([f'--against={ROOT}', '--model=vgg16'], '--against times lenet5, resnet20; not vgg16'),
      ([f'--against={ROOT}', '--input_only'], '--against times the train step'),
      ([f'--against={ROOT}', '--repeats=0'], '--repeats=0: give 1 or more')]:
    result, report = run(tmp_path, *args)
    assert result.returncode == 2 and report is None, args
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith('benchmark.py: error: ') and expected in line, line


def test_compare_torch_alternates_and_takes_the_best(tmp_path):
  """--compare=torch: ours, ours compiled with the other choice of XLA's fusion pass
  (lib/compile_options: off for ResNet-20's shortcuts, on for LeNet-5) and PyTorch's
  same network (NCHW and channels_last) each round, the first one swapped each round,
  the best of the rounds, ratio ours / torch."""
  result, report = run(tmp_path, '--compare=torch', '--model=lenet5,resnet20',
                       '--batch_size=8', '--steps=2', '--repeats=2', env=QUICK_COMPILE)
  assert result.returncode == 0, result.stderr[-3000:]
  assert report['torch'].startswith('2.') and report['threads'] >= 1
  assert [r['model'] for r in report['rows']] == ['lenet5', 'resnet20']
  for r in report['rows']:
    assert (r['batch'], r['steps'], r['threads']) == (8, 2, report['threads'])
    for key in ('ours', 'other_fusion', 'torch', 'torch_nhwc'):
      assert len(r['samples'][key]) == 2 and r[key] == max(r['samples'][key]) > 0
    assert r['fusion'] == {'lenet5': 'on', 'resnet20': 'off'}[r['model']]
    assert r['ratio'] == pytest.approx(r['ours'] / r['torch'])
    assert r['ratio_nhwc'] == pytest.approx(r['ours'] / r['torch_nhwc'])
  lines = result.stdout.splitlines()
  assert any(l.startswith('lenet5 round 2/2: ours ') for l in lines)
  assert any('ratio = ours / torch' in l for l in lines) and 'ratio_nhwc' in result.stdout


def test_compare_torch_without_torch_times_ours_and_says_so(tmp_path):
  """Without PyTorch (hidden here: None in sys.modules fails its import) ours is still
  timed, and one line says why PyTorch's columns are empty."""
  out = tmp_path / 'bench.json'
  hidden = ('import runpy, sys\n'
            'sys.modules["torch"] = None\n'
            'sys.argv = ["benchmark.py", *sys.argv[1:]]\n'
            'runpy.run_path("benchmark.py", run_name="__main__")\n')
  result = prewarmed.run(
      [sys.executable, '-c', hidden, '--compare=torch', '--model=lenet5', '--batch_size=8',
       '--steps=1', '--repeats=1', f'--json={out}'], cwd=ROOT, text=True,
      capture_output=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report['torch'] is None
  (row,) = report['rows']
  assert row['ours'] > 0 and 'torch' not in row and 'ratio' not in row
  assert 'PyTorch is not installed (pip install torch==2.13.0)' in result.stdout


@pytest.mark.fast
def test_compare_torch_bad_flags_are_one_line(tmp_path):
  for args, expected in [
      (['--compare=torch', '--model=resnet50'],
       '--compare=torch times lenet5, resnet20, vgg_a; not resnet50'),
      (['--compare=torch', '--end_to_end'], '--compare=torch times the bare train step'),
      (['--compare=torch', '--repeats=0'], '--repeats=0: give 1 or more')]:
    result, report = run(tmp_path, *args)
    assert result.returncode == 2 and report is None, args
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith('benchmark.py: error: ') and expected in line, line


@pytest.mark.fast
def test_profile_names_where_the_step_spends_its_time(tmp_path):
  """--profile: the traced step's operations summed by kind. LeNet-5 has convolutions
  forward and back (both gradients), tanh and pooling, and an optimizer update: each
  of those kinds takes time, and together they account for every traced operation."""
  result, (report,) = run(tmp_path, '--profile', '--model=lenet5', '--batch_size=16',
                          '--steps=3', '--warmup=1')
  assert result.returncode == 0, result.stderr[-3000:]
  kinds = report['kinds']
  assert list(kinds) == ['conv forward', 'conv input grad', 'conv weight grad',
                         'layout copies', 'reductions', 'pad and slice', 'matmul',
                         'elementwise, activations', 'elementwise, parameters', 'other']
  for kind in ('conv forward', 'conv input grad', 'conv weight grad', 'matmul',
               'elementwise, activations', 'elementwise, parameters'):
    assert kinds[kind] > 0, (kind, kinds)
  assert 0 < report['overlap'] <= report['cores'] and report['wall_ms'] > 0
  assert sum(ms for _, _, ms in report['top']) <= sum(kinds.values()) + 1e-6
  assert 'conv weight grad' in result.stdout and 'longest operations' in result.stdout


@pytest.mark.fast
@pytest.mark.parametrize('name', sorted(torch_cpu.MODELS))
def test_the_pytorch_networks_timed_beside_ours_have_our_parameters(name):
  """--compare=torch and the GPU suite time PyTorch's copy of each network: the same
  parameter count as ours built from the same config."""
  torch, _ = torch_nets.import_torch()
  theirs = torch_nets.NETS[name](torch)
  config = torch_cpu.config_for(name, batch=8)
  ours = models.create_model_from_config(config.model, config.num_classes, image_size=32)
  assert layer_stats.count_params(ours) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.fast
def test_against_names_each_checkouts_commit_and_tables_the_ratio(tmp_path):
  head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                        capture_output=True, check=True).stdout.strip()
  assert compare_commits.revision(ROOT) == head
  assert compare_commits.revision(str(tmp_path)) is None  # (not a git checkout)
  table = compare_commits.format_table({'rows': [{
      'model': 'lenet5', 'measure': 'step images/s', 'batch': 16, 'steps': 3,
      'theirs': 1000.0, 'ours': 1250.0, 'ratio': 1.25, 'bound': 0.97, 'within': True}]})
  assert ' 1,250.00 ' in table and ' 1.250 ' in table and ' 1,000.00 ' in table, table
