"""Sweeps: expansion and naming, a local sweep with a failing trial, skip and resume, the
report and its plots, and the lenet_pooling sweep as a job array on a real SLURM."""

import csv
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from configs import hyper
from lib import workdir as workdir_lib
from sweeping import sweep_report
from sweeping import sweeps as sweep
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b'\x89PNG\r\n\x1a\n'


def run_sweep(*args, timeout=600, env=None):
  result = prewarmed.run([sys.executable, 'sweep.py', *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
  return result.returncode, result.stdout, result.stderr


# ------------------------------------------------------------------ expansion, naming


@pytest.mark.fast
def test_axis_helpers():
  grid = hyper.product(hyper.sweep('a', [1, 2]), hyper.sweep('b', ['x', 'y']),
                       hyper.fixed('config.seed', 0))
  assert grid == [{'a': 1, 'b': 'x', 'config.seed': 0}, {'a': 1, 'b': 'y', 'config.seed': 0},
                  {'a': 2, 'b': 'x', 'config.seed': 0}, {'a': 2, 'b': 'y', 'config.seed': 0}]
  assert hyper.zipped(hyper.sweep('a', [1, 2]), hyper.sweep('b', [3, 4])) == [
      {'a': 1, 'b': 3}, {'a': 2, 'b': 4}]
  assert hyper.chain(hyper.sweep('a', [1]), hyper.sweep('b', [2])) == [{'a': 1}, {'b': 2}]
  assert hyper.swept_and_fixed(grid) == (['a', 'b'], {'config.seed': 0})
  assert hyper.swept_and_fixed([{'a': 1}, {'a': 1, 'b': None}]) == (['b'], {'a': 1})
  with pytest.raises(ValueError, match='equal lengths'):
    hyper.zipped(hyper.sweep('a', [1, 2]), hyper.sweep('b', [3]))
  with pytest.raises(ValueError, match=r"both set \['a'\]"):
    hyper.product(hyper.sweep('a', [1]), hyper.sweep('a', [2]))


@pytest.mark.parametrize('spec, count, first', [
    ('kernel_stride_pool.py', 108,
     'kernel=3,stride=1,pool=max,depth=1,padding=zeros,epochs=30.0'),
    ('kernel_stride_pool.py:small', 8, 'kernel=3,pool=max,depth=1,epochs=10.0'),
    ('resnet_depth.py', 5, 'depth=20'),
    ('resnet_depth.py:seeds=3', 15, 'depth=20,seed=0'),
    ('vgg_configs.py', 5, 'config=A,cifar=true,bn=true'),
    ('vgg_configs.py:lrn', 6, 'config=A,cifar=true,bn=true'),
    ('lenet_pooling.py', 4, 'pooling=max,activation=relu'),
])
@pytest.mark.fast
def test_example_sweeps_expand(spec, count, first):
  trials = sweep.expand(os.path.join(ROOT, 'configs/sweeps', spec))  # builds every config
  assert len(trials) == count
  assert trials[0]['name'] == first
  assert len({t['name'] for t in trials}) == count


@pytest.mark.fast
def test_a_misspelt_sweep_argument_is_refused():
  with pytest.raises(ValueError, match=r"config argument 'lnr' is not one of \['lrn'\]"):
    sweep.expand(os.path.join(ROOT, 'configs/sweeps/vgg_configs.py:lnr'))  # (had been A-E)


@pytest.mark.fast
def test_trial_command_carries_args_and_config_keys():
  trial = sweep.make_trial('/c/s.py', {'kernel': 5, 'bn': True, 'config.seed': 3,
                                       'config.dataset.name': 'folder:/data/x'},
                           swept=['kernel', 'config.dataset.name'])
  assert trial['name'] == 'kernel=5,dataset.name=folder__data_x,bn=true,seed=3'
  assert trial['config'] == '/c/s.py:kernel=5,bn=true'
  cmd = sweep.command('/sweeps/s', trial)
  assert cmd[2:] == ['--config=/c/s.py:kernel=5,bn=true', '--config.seed=3',
                     '--config.dataset.name=folder:/data/x',
                     '--workdir=/sweeps/s/kernel=5,dataset.name=folder__data_x,bn=true,seed=3']


@pytest.mark.fast
def test_array_spec():
  assert sweep.array_spec([0, 1, 2, 5, 7, 8]) == '0-2,5,7-8'
  assert sweep.array_spec([3]) == '3'


def write_sweep_file(path, body):
  path.write_text('from configs import hyper\nfrom configs.lenet import get_config\n\n\n'
                  'def get_sweep(arg=None):\n  return ' + body + '\n')
  return str(path)


def shared(gpu, fraction):
  return {'CUDA_VISIBLE_DEVICES': gpu, 'XLA_PYTHON_CLIENT_PREALLOCATE': 'false',
          'XLA_PYTHON_CLIENT_MEM_FRACTION': fraction}


@pytest.mark.parametrize('gpus, count, want', [
    (['0', '1', '2', '3'], 2, [{'CUDA_VISIBLE_DEVICES': '0,1'},
                               {'CUDA_VISIBLE_DEVICES': '2,3'}]),
    (['4', '5'], 2, [{'CUDA_VISIBLE_DEVICES': '4'}, {'CUDA_VISIBLE_DEVICES': '5'}]),
    (['0', '1', '2'], 2, [{'CUDA_VISIBLE_DEVICES': '0'},    # no GPU idles
                          {'CUDA_VISIBLE_DEVICES': '1,2'}]),
    # 5 trials on 2 GPUs: trials 0, 2, 4 share GPU 0 (a third each), 1 and 3 GPU 1 (half)
    (['0', '1'], 5, [shared('0', '0.333'), shared('1', '0.5'), shared('0', '0.333'),
                     shared('1', '0.5'), shared('0', '0.333')]),
    (['7'], 4, [shared('7', '0.25')] * 4),
])
@pytest.mark.fast
def test_each_trial_gets_its_gpus_and_share(gpus, count, want):
  """Every GPU is used; more trials than GPUs share them: no preallocation, each up to
  1/k of its GPU's memory with k trials on that GPU."""
  assert sweep.assign_slots(count, gpus) == want


@pytest.mark.fast
def test_cpu_trials_share_the_cores(monkeypatch):
  """On the CPU, k trials at once each train on cores // k XLA devices (at least one),
  so that they do not oversubscribe the cores; a pinned count is kept."""
  monkeypatch.delenv('CLASSIC_CPU_DEVICES')
  monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3})
  assert sweep.assign_slots(2, []) == [{'CLASSIC_CPU_DEVICES': '2'}] * 2
  assert sweep.assign_slots(3, []) == [{'CLASSIC_CPU_DEVICES': '1'}] * 3
  assert sweep.assign_slots(8, []) == [{'CLASSIC_CPU_DEVICES': '1'}] * 8
  assert sweep.describe_slots(sweep.assign_slots(2, [])) == ' on 2 CPU devices each'
  assert sweep.describe_slots(sweep.assign_slots(4, [])) == ' on 1 CPU device each'
  monkeypatch.setenv('CLASSIC_CPU_DEVICES', '3')
  assert sweep.assign_slots(2, []) == [{'CLASSIC_CPU_DEVICES': '3'}] * 2
  # Each trial is pinned to cores of its own, so no trial's threads run on another's.
  assert sweep.assign_cores(2) == [(0, 1), (2, 3)]
  assert sweep.assign_cores(3) == [(0,), (1,), (2, 3)]  # (no core idles)
  assert sweep.assign_cores(6) == [(0,), (1,), (2,), (3,), (0,), (1,)]


def test_the_gpu_share_comes_from_the_trials_that_run(monkeypatch, tmp_path):
  """--parallel=1000 for 4 trials on one GPU: 4 at a time, a quarter of it each (not
  1/1000); the machine's GPUs come from CUDA_VISIBLE_DEVICES."""
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '4,6')
  assert sweep.assign_slots(2, sweep.visible_gpus()) == [{'CUDA_VISIBLE_DEVICES': '4'},
                                                         {'CUDA_VISIBLE_DEVICES': '6'}]
  code, out, err = run_sweep('--config=configs/sweeps/lenet_pooling.py:quick',
                             f'--workdir={tmp_path}/s', '--parallel=1000', '--dry_run',
                             env={'CUDA_VISIBLE_DEVICES': '7'})
  assert code == 0, err
  assert ('4 to run, 4 at a time on GPUs 7 (4 trials per GPU, each up to 0.25 of its '
          'memory)') in out, out


@pytest.mark.fast
def test_bad_sweeps_fail_before_anything_runs(tmp_path):
  bad_key = write_sweep_file(tmp_path / 'bad_key.py',
                             "hyper.product(hyper.sweep('pooling', ['max', 'avg']), "
                             "hyper.fixed('config.batch_sise', 3))")
  with pytest.raises(sweep.SweepError, match=r'trial pooling=max,batch_sise=3: unknown config '
                     r"key .*batch_sise"):
    sweep.expand(bad_key)
  bad_arg = write_sweep_file(tmp_path / 'bad_arg.py', "hyper.sweep('pool', ['max'])")
  with pytest.raises(sweep.SweepError, match=r"config argument 'pool' is not one of"):
    sweep.expand(bad_arg)
  dup = write_sweep_file(tmp_path / 'dup.py', "hyper.sweep('pooling', ['max', 'max'])")
  with pytest.raises(sweep.SweepError, match='more than once'):
    sweep.expand(dup)
  # Through the CLI: one line, exit 2, and no workdir made.
  code, out, err = run_sweep(f'--config={bad_key}', f'--workdir={tmp_path / "never"}')
  assert code == 2 and err.count('\n') == 1, err
  assert err.startswith('sweep.py: error: trial pooling=max,batch_sise=3: unknown config key'), err
  assert not (tmp_path / 'never').exists()
  code, _, err = run_sweep('--config=configs/sweeps/nope.py', f'--workdir={tmp_path}/x')
  assert code == 2 and 'no such sweep file' in err, err
  # A sweep file is code: whatever it raises is named with the file, in one line.
  raises = write_sweep_file(tmp_path / 'raises.py', "[] if arg else 1 / 0")
  with pytest.raises(sweep.SweepError, match=r'raises.py raised ZeroDivisionError: division '
                                             r'by zero$'):
    sweep.expand(raises)
  (tmp_path / 'syntax.py').write_text('def get_sweep(arg=None):\n  return [{)\n')
  with pytest.raises(sweep.SweepError, match=r'sweep file .*syntax.py failed to load: '
                                             r'SyntaxError: .*line 2'):
    sweep.expand(str(tmp_path / 'syntax.py'))


def test_a_failure_is_told_by_the_last_attempt_of_its_log(tmp_path):
  """train.log holds every attempt: an old refusal is not why the last one failed."""
  log = tmp_path / 'train.log'
  log.write_text('=== attempt 1 on h at t: train.py\ntrain.py: error: an old refusal\n'
                 '=== attempt 2 on h at t: train.py\nTraceback (most recent call last):\n'
                 '  File "train.py", line 1\nMemoryError: out of host memory\n')
  assert sweep.failure(str(log), 1) == 'exit 1: MemoryError: out of host memory'


@pytest.mark.fast
def test_slurm_script_from_file_and_flags(tmp_path):
  code, out, err = run_sweep('--config=configs/sweeps/resnet_depth.py', '--launcher=slurm',
                             f'--workdir={tmp_path}/rd', '--dry_run', '--partition=gpu',
                             '--time=1:00:00', '--parallel=2',
                             '--slurm_directive=--account=lab', '--allow_schedule_change')
  assert code == 0, err
  for line in ['#SBATCH --array=0-4%2', '#SBATCH --partition=gpu', '#SBATCH --gres=gpu:1',
               '#SBATCH --cpus-per-task=8',  # from the sweep file's get_slurm
               '#SBATCH --time=1:00:00',     # the flag over the file's 12:00:00
               '#SBATCH --account=lab',
               '--index=$SLURM_ARRAY_TASK_ID --allow_schedule_change\n',  # to train.py
               '--dependency=afterany:']:
    assert line in out, line
  assert not os.path.exists(f'{tmp_path}/rd'), 'a dry run writes nothing'


def test_slurm_without_sbatch_is_refused_before_anything_is_written(tmp_path):
  path = os.pathsep.join(d for d in os.environ['PATH'].split(os.pathsep)
                         if not os.path.exists(os.path.join(d, 'sbatch')))
  code, out, err = run_sweep('--config=configs/sweeps/lenet_pooling.py:quick',
                             '--launcher=slurm', f'--workdir={tmp_path}/s', env={'PATH': path})
  assert code == 2 and err.count('\n') == 1, err
  assert 'sbatch is not on PATH' in err and '--launcher=local' in err
  assert not os.path.exists(f'{tmp_path}/s'), os.listdir(f'{tmp_path}/s')  # no sweep.json


# ------------------------------------------------------------------- a local sweep

# Two LeNet-5 trials of 30 steps on mnist5k, and one whose dataset does not exist.
QUICK = ("hyper.product(hyper.fixed('config.num_epochs', 0.5), "
         "hyper.fixed('config.log_every_steps', 10), "
         "hyper.fixed('config.checkpoint_every_steps', 10), "
         "hyper.fixed('config.eval_every_steps', 20), hyper.chain("
         "hyper.product(hyper.sweep('pooling', ['max', 'avg']), "
         "hyper.fixed('config.dataset.name', 'mnist5k')), "
         "hyper.product(hyper.fixed('pooling', 'max'), "
         "hyper.fixed('config.dataset.name', 'folder:/nonexistent'))))")
FIXED = ',num_epochs=0.5,log_every_steps=10,checkpoint_every_steps=10,eval_every_steps=20'
GOOD, OTHER, BAD = ('pooling=max,dataset.name=mnist5k' + FIXED,
                    'pooling=avg,dataset.name=mnist5k' + FIXED,
                    'pooling=max,dataset.name=folder__nonexistent' + FIXED)


def test_local_sweep_isolates_a_failure_skips_and_resumes(tmp_path):
  spec = write_sweep_file(tmp_path / 'quick.py', QUICK)
  sweep_dir = tmp_path / 'sweep'
  # One (pretended) GPU for two trials at a time: they share it, half its memory each.
  # (JAX's CPU build ignores the variables; the trials run on the cores.)
  code, out, err = run_sweep(f'--config={spec}', f'--workdir={sweep_dir}', '--parallel=2',
                             env={'CUDA_VISIBLE_DEVICES': '3'})
  assert code == 1, out + err  # not every trial finished
  assert '2 at a time on GPUs 3 (2 trials per GPU, each up to 0.5 of its memory)' in out
  assert f'{GOOD}: started on GPU 3 (up to 0.5 of its memory)' in out
  status = {n: json.loads((sweep_dir / n / 'trial.json').read_text())
            for n in (GOOD, OTHER, BAD)}
  assert all((s['gpus'], s['gpu_memory_fraction']) == ('3', 0.5) for s in status.values())
  assert status[GOOD]['state'] == status[OTHER]['state'] == 'done'
  assert status[BAD]['state'] == 'failed'
  assert status[BAD]['error'].startswith('exit 2: train.py: error:'), status[BAD]['error']
  assert '/nonexistent' in status[BAD]['error']

  # The report: every trial, sorted by accuracy, the failure with its error; plots.
  with open(sweep_dir / 'results.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['status'] for r in rows] == ['done', 'done', 'failed']
  assert float(rows[0]['top1']) >= float(rows[1]['top1']) > 0.3
  finals = {n: json.loads((sweep_dir / n / workdir_lib.FINAL_METRICS).read_text())
            for n in (GOOD, OTHER)}
  assert {r['trial']: float(r['top1']) for r in rows[:2]} == {
      n: pytest.approx(f['top1']) for n, f in finals.items()}
  assert int(rows[0]['params']) == 61706  # LeNet-5 on 32x32: the paper's ~60k
  assert int(rows[0]['step']) == 31 and float(rows[0]['wall_time']) > 0
  md = (sweep_dir / 'results.md').read_text()
  assert md in out  # printed at the end of the sweep
  assert f'- {BAD}: exit 2: train.py: error:' in md
  assert '| pooling | dataset.name | status | top-1 % |' in md
  for plot in ('top1_vs_pooling.png', 'top1_vs_dataset.name.png', 'learning_curves.png'):
    data = (sweep_dir / 'plots' / plot).read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000, plot
  # `sweep.py report` on the finished sweep writes and prints the same report again.
  os.remove(sweep_dir / 'results.md')
  code, report, err = run_sweep('report', f'--workdir={sweep_dir}')
  assert code == 0, err
  assert (sweep_dir / 'results.md').read_text() == md and md in report

  # An interrupted trial: its last checkpoint and final metrics gone, as after a stop.
  good_log = (sweep_dir / GOOD / 'train.log').read_text()
  shutil.rmtree(sweep_dir / OTHER / 'checkpoints' / '31')
  os.remove(sweep_dir / OTHER / workdir_lib.FINAL_METRICS)
  code, out, err = run_sweep(f'--config={spec}', f'--workdir={sweep_dir}', '--parallel=2')
  assert '3 trials in' in out and '1 done, 2 to run, 2 at a time' in out, out
  # On the CPU, each of the two trials ran on its own cores (half of them each).
  halves = sweep.assign_cores(2)
  ran_on = {tuple(json.loads((sweep_dir / n / 'trial.json').read_text())['cores'])
            for n in (OTHER, BAD)}
  assert ran_on == set(halves), (ran_on, halves)
  assert f"{OTHER}: started on " in out and ' CPU device' in out and ' (core' in out, out
  assert (sweep_dir / GOOD / 'train.log').read_text() == good_log  # skipped
  other_log = (sweep_dir / OTHER / 'train.log').read_text()
  assert '=== attempt 2' in other_log and 'from step 30' in other_log, other_log[-2000:]
  assert json.loads((sweep_dir / OTHER / 'trial.json').read_text())['state'] == 'done'
  assert json.loads((sweep_dir / BAD / 'trial.json').read_text())['attempts'] == 2

  # Another sweep file in the same workdir is refused before anything changes, by its
  # dry run too (which had listed its trials as to run), and by reproduce.py's report.
  for dry_run in ([], ['--dry_run']):
    code, _, err = run_sweep('--config=configs/sweeps/lenet_pooling.py:quick',
                             f'--workdir={sweep_dir}', *dry_run)
    assert code == 2 and 'holds the sweep of' in err, err
  result = prewarmed.run([sys.executable, 'reproduce.py', 'lenet_mnist', 'report',
                          f'--workdir={sweep_dir}'], cwd=ROOT, capture_output=True, text=True)
  assert result.returncode == 2 and 'holds the sweep of' in result.stderr, result.stderr
  assert not os.path.exists(sweep_dir / 'report.md')


# --------------------------------------------------------------------- SLURM for real


def slurm_available() -> bool:
  try:
    result = subprocess.run(['sinfo', '-h', '-o', '%T'], capture_output=True, text=True,
                            timeout=30)
  except (OSError, subprocess.SubprocessError):
    return False
  return result.returncode == 0 and bool(result.stdout.strip())


def test_lenet_pooling_as_a_slurm_job_array(tmp_path):
  if not slurm_available():
    if os.environ.get('SWEEP_TEST_SLURM') == '1':  # CI: .ci/start_slurm must have worked
      pytest.fail('no SLURM cluster answers (sinfo); see .ci/start_slurm and '
                  '/var/log/slurm/')
    pytest.skip('no SLURM cluster here; `bash .ci/start_slurm` (root) starts a one-node '
                'cluster for this test')
  sweep_dir = tmp_path / 'lenet'
  code, out, err = run_sweep('--config=configs/sweeps/lenet_pooling.py:quick',
                             '--launcher=slurm', f'--workdir={sweep_dir}')
  assert code == 0, out + err
  assert 'Submitted job array' in out
  job = out.split('Submitted job array ')[1].split()[0]
  report_job = out.split('the report as job ')[1].split('.')[0]
  script = (sweep_dir / 'slurm' / 'sweep.sbatch').read_text()
  assert '#SBATCH --array=0-3' in script and '#SBATCH --cpus-per-task=1' in script
  deadline = time.time() + 600
  queued = lambda: subprocess.run(['squeue', '-h', '-j', f'{job},{report_job}'],
                                  capture_output=True, text=True).stdout.strip()
  while time.time() < deadline and queued():  # the array, then the report after it
    time.sleep(2)
  assert not queued(), subprocess.run(['squeue'], capture_output=True, text=True).stdout
  reports = glob.glob(f'{sweep_dir}/slurm/report-{report_job}.out')
  assert reports
  names = [t['name'] for t in sweep.load_plan(str(sweep_dir))['trials']]
  for i, name in enumerate(names):
    status = json.loads((sweep_dir / name / 'trial.json').read_text())
    assert status['state'] == 'done', (name, status)
    assert status['slurm_job'] == f'{job}_{i}'  # ran as array task i
    assert (sweep_dir / 'slurm' / f'{job}_{i}.out').exists()
  md = (sweep_dir / 'results.md').read_text()
  assert '4 trials: 4 done' in md, md
  assert open(reports[0]).read().strip().endswith(md.strip().splitlines()[-1])


def named_variants():
  """Every sweep variant the README and the sweep files' docstrings name: a backquoted
  `:arg` in a file's docstring or in its README row, and each `configs/sweeps/F.py:arg`
  written out (N in `:seeds=N` stands for a number)."""
  readme = open(os.path.join(ROOT, 'README.md')).read()
  specs = set()
  for path in sorted(glob.glob(os.path.join(ROOT, 'configs/sweeps/*.py'))):
    name = os.path.basename(path)
    if name == '__init__.py':
      continue
    rows = [l for l in readme.splitlines() if f'`{name}`' in l]
    text = '\n'.join([open(path).read().split('"""')[1]] + rows)
    specs.add(name)
    specs |= {f'{name}:{a}' for a in re.findall(r'`:([\w=,.-]+)`', text)}
  for text in [readme] + [open(p).read() for p in glob.glob(os.path.join(ROOT, 'configs/sweeps/*.py'))]:
    specs |= {f'{n}:{a}' for n, a in re.findall(r'configs/sweeps/(\w+\.py):([\w=,.-]+)', text)}
  return sorted(s.replace('=N', '=2') for s in specs)


@pytest.mark.fast
def test_every_named_sweep_variant_builds():
  specs = named_variants()
  assert 'resnet_depth.py:1202' in specs and 'lenet_pooling.py:quick' in specs  # found
  for spec in specs:
    trials = sweep.expand(os.path.join(ROOT, 'configs/sweeps', spec))  # builds each config
    assert trials, spec
  assert len(sweep.expand(os.path.join(ROOT, 'configs/sweeps/resnet_depth.py:1202'))) == 6


# ------------------------------------------------------------- trust in a sweep's trials


def test_a_trial_is_every_setting_so_an_edited_sweep_runs_what_changed(tmp_path):
  body = ("hyper.product(hyper.sweep('pooling', ['max', 'avg']), "
          "hyper.fixed('config.num_train_steps', {}))")
  before = sweep.expand(write_sweep_file(tmp_path / 's.py', body.format(600)))
  after = sweep.expand(write_sweep_file(tmp_path / 's.py', body.format(100)))
  assert [t['name'] for t in before] == ['pooling=max,num_train_steps=600',
                                         'pooling=avg,num_train_steps=600']
  assert not {t['name'] for t in before} & {t['name'] for t in after}
  long = sweep.trial_name({f'config.dataset.key{i}': 'x' * 20 for i in range(20)})
  assert len(long) <= sweep.MAX_NAME and long != sweep.trial_name(
      {f'config.dataset.key{i}': 'x' * 20 for i in range(19)})


def test_a_trial_run_with_another_config_is_stale(tmp_path):
  from lib import run_contract  # pylint: disable=import-outside-toplevel
  spec = write_sweep_file(tmp_path / 's.py', "hyper.sweep('pooling', ['max'])")
  trial, = sweep.expand(spec)
  sweep_dir = tmp_path / 'sweep'
  trial_dir = sweep_dir / trial['name']
  os.makedirs(trial_dir)
  config = sweep.build_config(sweep.load_module(str(tmp_path / 's.py')), trial)
  run_contract.save(str(trial_dir), config)
  workdir_lib.write_json(str(trial_dir / workdir_lib.FINAL_METRICS), {'top1': 0.5})
  assert sweep.trial_state(str(sweep_dir), trial) == 'done'
  config.num_epochs = 40.0  # the base config ran longer: resume, train.py extends it
  run_contract.save(str(trial_dir), config)
  assert sweep.trial_state(str(sweep_dir), trial) == 'resume'
  config.schedule.learning_rate = 0.5  # the base config file was edited
  run_contract.save(str(trial_dir), config)
  assert sweep.trial_state(str(sweep_dir), trial) == 'stale'
  assert sweep.trial_state(str(sweep_dir), trial, move_stale=True) == 'new'
  moved, = os.listdir(sweep_dir / 'stale')
  assert moved.startswith(trial['name'] + '.') and not trial_dir.exists()


def test_relative_paths_mean_what_they_meant_to_the_caller(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  spec = write_sweep_file(tmp_path / 's.py', "hyper.product(hyper.sweep('pooling', "
                          "['max']), hyper.fixed('config.dataset.name', 'folder:ds/basic'))")
  trial, = sweep.expand(os.path.basename(spec))
  assert trial['cwd'] == str(tmp_path)
  config = sweep.build_config(sweep.load_module(spec), trial)
  assert config.dataset.name == f'folder:{tmp_path}/ds/basic'


def test_one_runner_per_sweep_directory(tmp_path):
  spec = write_sweep_file(tmp_path / 's.py', "hyper.sweep('pooling', ['max'])")
  sweep_dir = tmp_path / 'sweep'
  os.makedirs(sweep_dir)
  with workdir_lib.Lock(str(sweep_dir)):
    code, out, err = run_sweep(f'--config={spec}', f'--workdir={sweep_dir}')
  assert code == 2 and err.count('\n') == 1, err
  assert f'sweep.py: error: {sweep_dir} is in use by pid {os.getpid()}' in err
  assert os.listdir(sweep_dir) == ['.lock']  # no plan written, no trial started


def test_a_trial_ends_with_its_killed_runner(tmp_path):
  spec = write_sweep_file(tmp_path / 's.py', "hyper.product(hyper.sweep('pooling', ['max']),"
                          " hyper.fixed('config.num_train_steps', 100000), "
                          "hyper.fixed('config.log_every_steps', 5))")
  sweep_dir = tmp_path / 'sweep'
  runner = subprocess.Popen([sys.executable, 'sweep.py', f'--config={spec}',
                             f'--workdir={sweep_dir}'], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  trial_dir = sweep_dir / 'pooling=max,num_train_steps=100000,log_every_steps=5'
  log = trial_dir / 'train.log'
  deadline = time.time() + 240
  while time.time() < deadline and not (log.exists() and 'train step' in log.read_text()):
    time.sleep(0.5)
  assert 'train step' in log.read_text(), log.read_text()[-2000:]
  runner.kill()  # SIGKILL: the runner cannot tell its trial anything
  runner.wait()
  deadline = time.time() + 120
  while time.time() < deadline and workdir_lib.is_locked(str(trial_dir)):
    time.sleep(0.5)
  assert not workdir_lib.is_locked(str(trial_dir)), 'the trial outlived its runner'
  assert 'SIGTERM received: stopped after step' in log.read_text()
  code, out, err = run_sweep('report', f'--workdir={sweep_dir}')
  assert code == 0, err
  rows = list(csv.DictReader(open(sweep_dir / 'results.csv')))
  assert rows[0]['status'] == 'interrupted', rows


def test_ctrl_c_stops_the_trials_with_a_checkpoint_and_the_same_command_resumes(tmp_path):
  """Ctrl-C in the terminal (SIGINT to the runner and its trials): each running trial
  saves and stops, the runner says how to resume, and the same command finishes it."""
  spec = write_sweep_file(tmp_path / 's.py', "hyper.product(hyper.sweep('pooling', ['max']),"
                          " hyper.fixed('config.num_train_steps', 400), "
                          "hyper.fixed('config.log_every_steps', 5))")
  sweep_dir = tmp_path / 'sweep'
  args = [sys.executable, 'sweep.py', f'--config={spec}', f'--workdir={sweep_dir}']
  trial_dir = sweep_dir / 'pooling=max,num_train_steps=400,log_every_steps=5'
  log = trial_dir / 'train.log'
  with open(tmp_path / 'runner.log', 'w') as out:
    runner = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              process_group=0)  # a terminal's foreground group
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and 'train step' in log.read_text()):
      time.sleep(0.2)
    assert 'train step' in log.read_text(), log.read_text()[-2000:]
    os.killpg(runner.pid, signal.SIGINT)
    runner.wait(timeout=120)
  said = (tmp_path / 'runner.log').read_text()
  assert 'sweep.py: SIGINT: stopping the running trials' in said, said[-2000:]
  assert 'run the same command to resume' in said
  stopped = re.search(r'received: stopped after step (\d+)', log.read_text())
  assert stopped, log.read_text()[-2000:]
  step = int(stopped.group(1))
  assert 5 <= step < 400 and not (trial_dir / workdir_lib.FINAL_METRICS).exists()
  code, out, err = run_sweep(f'--config={spec}', f'--workdir={sweep_dir}')
  assert code == 0, out + err
  assert f'from step {step}' in log.read_text().split('=== attempt 2')[1]
  assert json.loads((trial_dir / 'trial.json').read_text())['state'] == 'done'


# A sweep file whose base config (its get_config) sets the run's length: editing STEPS
# is editing the base config under a finished sweep.
LENGTH_SWEEP = '''from configs import hyper
from configs.lenet import get_config as lenet


def get_config(arg=None):
  c = lenet(arg)
  c.num_epochs, c.num_train_steps = None, STEPS
  c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 4
  c.schedule.warmup_steps = 2
  return c


def get_sweep(arg=None):
  return hyper.sweep('pooling', ['max'])
'''


def test_a_trial_train_py_refuses_is_failed_not_done_with_old_results(tmp_path):
  """The base config made longer (8 -> 12 steps of a cosine schedule) under a finished
  sweep: train.py refuses to resume (the learning rate ahead changes), so the trial has
  failed with train.py's line, whatever final_metrics.json its 8-step run left, and
  sweep.py exits non-zero; --allow_schedule_change is passed on and finishes it."""
  spec = tmp_path / 'length.py'
  spec.write_text(LENGTH_SWEEP.replace('STEPS', '8'))
  sweep_dir = tmp_path / 'sweep'
  trial_dir = sweep_dir / 'pooling=max'
  args = [f'--config={spec}', f'--workdir={sweep_dir}']
  code, out, err = run_sweep(*args)
  assert code == 0, out + err
  assert json.loads((trial_dir / workdir_lib.FINAL_METRICS).read_text())['step'] == 8

  spec.write_text(LENGTH_SWEEP.replace('STEPS', '12'))
  code, out, err = run_sweep(*args)
  assert code == 1, out + err
  status = json.loads((trial_dir / 'trial.json').read_text())
  assert (status['state'], status['returncode']) == ('failed', 2), status
  error = status['error']  # train.py's refusal: the key that changed and the flag to pass
  assert error.startswith('exit 2: train.py: error: ') and '8 -> 12' in error, error
  assert 'num_train_steps' in error and '--allow_schedule_change' in error, error
  assert 'pooling=max: failed after' in out and '1 trials: 1 failed.' in out, out
  row, = csv.DictReader(open(sweep_dir / 'results.csv'))
  assert (row['status'], row['step']) == ('failed', '8'), row  # how far it got
  code, _, _ = run_sweep('report', f'--workdir={sweep_dir}')  # the report alone says so too
  assert code == 0 and '1 trials: 1 failed.' in (sweep_dir / 'results.md').read_text()

  code, out, err = run_sweep(*args, '--allow_schedule_change')
  assert code == 0, out + err
  assert '--allow_schedule_change' in (trial_dir / 'train.log').read_text().split(
      '=== attempt 3')[1].splitlines()[0]
  status = json.loads((trial_dir / 'trial.json').read_text())
  assert (status['state'], status['error'], status['attempts']) == ('done', None, 3)
  assert json.loads((trial_dir / workdir_lib.FINAL_METRICS).read_text())['step'] == 12
  row, = csv.DictReader(open(sweep_dir / 'results.csv'))
  assert (row['status'], row['step']) == ('done', '12'), row
  assert row['error'] == ''  # (not 'None', as it was)


@pytest.mark.fast
def test_the_plots_legends_cover_no_data(tmp_path, monkeypatch):
  """learning_curves.png and top1_vs_<p>.png of a 2x2 sweep: each legend lies outside
  every plot's axes (the :quick sweep's legend covered its curves)."""
  trials = [{'name': f'pooling={p},activation={a}', 'overrides': {'pooling': p,
                                                                 'activation': a}}
            for p in ('max', 'avg') for a in ('relu', 'tanh')]
  for i, trial in enumerate(trials):
    os.makedirs(tmp_path / trial['name'])
    records = [{'split': 'train', 'step': s, 'loss': 2.0 / (s + i)} for s in (10, 20, 30)]
    records += [{'split': 'test', 'step': s, 'top1': 0.5 + s / 100 + i / 50, 'top5': 1.0,
                 'loss': 1.0} for s in (15, 30)]
    (tmp_path / trial['name'] / workdir_lib.METRICS).write_text(
        ''.join(json.dumps(r) + '\n' for r in records))
  figures = []
  monkeypatch.setattr(sweep_report.plt, 'close', figures.append)  # keep them to measure
  rows = [dict(t['overrides'], status='done', top1=0.9 - i / 100)
          for i, t in enumerate(trials)]
  sweep_report.plot_accuracy(rows, ['pooling', 'activation'], str(tmp_path / 'plots'))
  sweep_report.plot_learning_curves(str(tmp_path), trials, str(tmp_path / 'plots'))
  assert len(figures) == 3
  for fig in figures:
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for legend in legends:
      for ax in fig.axes:
        assert not legend.get_window_extent(renderer).overlaps(
            ax.get_window_extent(renderer)), (fig.axes[0].get_xlabel(), ax.get_ylabel())
