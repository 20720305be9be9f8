"""Faults for real, through the CLI: kill -9 and resume, SIGTERM, NaN, a truncated
checkpoint, a full disk, two runs on one workdir, bad input, a dead peer process."""

import concurrent.futures
import itertools
import json
import os
import pathlib
import pwd
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pytest

from lib import checkpoints
from lib import workdir as workdir_lib
from tests.support import LENET_8_STEPS, free_port
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 60 steps of a small convnet on mnist5k; checkpoints every 7 steps (not aligned with
# the logs every 3), evaluations every 20.
CONFIG = '--config=configs/convnet.py:dataset=mnist5k,width=8,stages=2,depth=1,epochs=0.48'
ARGS = ['--config.batch_size=32', '--config.log_every_steps=3',
        '--config.eval_every_steps=20', '--config.checkpoint_every_steps=7']
# The runs that are signalled are 100 steps long and signalled before step 50: whatever
# the machine's speed, a signal lands while the run still has far to go.
SIGNALLED = CONFIG + ',epochs=0.8'
TOTAL = 100


LAUNCHES = itertools.count()


def launch(workdir, *extra, config=CONFIG, env=None, **popen):
  log_path = f'{workdir}.{next(LAUNCHES)}.log'  # a file: a pipe can fill up and block
  with open(log_path, 'w') as log:
    process = subprocess.Popen([sys.executable, 'train.py', config, *ARGS, *extra,
                                f'--workdir={workdir}'],
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, **popen)
  process.log_path, process.started = log_path, time.time()
  return process


def output(process):
  with open(process.log_path) as f:
    return f.read()


def run(workdir, *extra, config=CONFIG):
  """A run to its end, no signal sent: forked from a process that has imported JAX and
  the rest (tests/prewarmed.py); its exit status and its stdout, then its stderr."""
  result = prewarmed.run([sys.executable, 'train.py', config, *ARGS, *extra,
                          f'--workdir={workdir}'], cwd=ROOT, text=True, timeout=600)
  return result.returncode, result.stdout + result.stderr


def last_step(workdir, since):
  """The last step logged by a run started at `since` (earlier runs' records aside)."""
  try:
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      records = [json.loads(l) for l in f if l.endswith('\n')]
  except FileNotFoundError:
    return 0
  return max((r['step'] for r in records if r['wall_time'] >= since), default=0)


def wait_for_step(process, workdir, step, timeout=300):
  deadline = time.time() + timeout
  while last_step(workdir, process.started) < step:
    assert process.poll() is None, output(process)[-3000:]
    assert time.time() < deadline
    time.sleep(0.01)


def comparable(workdir):
  """metrics.jsonl without the fields that measure time."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [{k: v for k, v in json.loads(l).items()
             if k not in ('wall_time', 'images_per_sec')} for l in f]


def assert_same_run(a, b):
  assert comparable(a) == comparable(b)
  state_a, state_b = checkpoints.read_state(str(a)), checkpoints.read_state(str(b))
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b) and int(state_a['step']) == TOTAL
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('faults') / 'uninterrupted'
  code, out = run(workdir, config=SIGNALLED)
  assert code == 0, out[-3000:]
  return workdir


def test_kill_9_at_random_steps_then_resume_is_bitwise_identical(reference, tmp_path):
  workdir = tmp_path / 'killed'
  rng = random.Random(0)
  # Random steps, one of them just after a checkpoint step (its write in flight).
  targets = sorted(rng.sample(range(8, 50), 2) + [14])
  resumed = []
  for target in targets:
    process = launch(workdir, config=SIGNALLED)
    wait_for_step(process, workdir, target)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed.append('Resuming' in output(process))
  code, out = run(workdir, config=SIGNALLED)
  assert code == 0, out[-3000:]
  assert sum(resumed[1:]) + ('Resuming' in out) >= 2
  assert_same_run(reference, workdir)


def test_sigterm_saves_exits_0_and_a_truncated_checkpoint_falls_back(reference, tmp_path):
  workdir = tmp_path / 'preempted'
  process = launch(workdir, config=SIGNALLED)
  wait_for_step(process, workdir, 22)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=120) == 0
  out = output(process)
  assert 'SIGTERM received: stopped after step' in out and 'run the same command' in out
  steps = sorted(int(d) for d in os.listdir(workdir / 'checkpoints') if d.isdigit())
  latest, previous = steps[-1], steps[-2]
  assert 22 <= latest < TOTAL and int(checkpoints.read_state(str(workdir))['step']) == latest
  # Damage the checkpoint that SIGTERM saved: every file cut to half its length.
  for folder, _, files in os.walk(workdir / 'checkpoints' / str(latest)):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)
  code, out = run(workdir, config=SIGNALLED)
  assert code == 0, out[-3000:]
  assert f'checkpoint {latest} in' in out and 'cannot be read' in out
  assert f'Resuming {workdir} from step {previous}' in out
  assert any(n.startswith(f'{latest}-') for n in os.listdir(workdir / 'corrupt_checkpoints'))
  assert_same_run(reference, workdir)


def test_ctrl_c_stops_after_the_step_saves_and_resumes_exactly(reference, tmp_path):
  """Ctrl-C (SIGINT to the process group, as a terminal sends it) stops train.py after
  its current step with a checkpoint, exit 0; the same command resumes it."""
  workdir = tmp_path / 'interrupted'
  process = launch(workdir, config=SIGNALLED, process_group=0)  # its own group
  wait_for_step(process, workdir, 10)
  os.killpg(process.pid, signal.SIGINT)
  assert process.wait(timeout=120) == 0
  out = output(process)
  assert 'SIGINT received: stopped after step' in out and 'Traceback' not in out
  stopped = int(out.split('SIGINT received: stopped after step ')[1].split()[0])
  assert 10 <= stopped < TOTAL and checkpoints.saved_steps(str(workdir))[-1] == stopped
  code, out = run(workdir, config=SIGNALLED)
  assert code == 0 and f'Resuming {workdir} from step {stopped}' in out, out[-3000:]
  assert_same_run(reference, workdir)


NAN_AT_14 = ['--config.schedule.name=piecewise', '--config.schedule.boundaries=(12,)',
             '--config.schedule.multipliers=(1,2e31)']  # 0.05, then 1e30


def test_nan_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = tmp_path / 'nan'
  code, out = run(workdir, *NAN_AT_14)
  assert code == 1
  # (Where it was seen: it had said 'stopped at step N' of a later N, as if trained on.)
  assert 'the loss became NaN or Inf at step 14, seen at step ' in out
  assert 'the last good checkpoint is step 7' in out
  state = checkpoints.read_state(str(workdir))
  assert int(state['step']) == 7
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state['params']))


def test_nan_skip_counts_the_skipped_steps(tmp_path):
  workdir = tmp_path / 'skip'
  code, out = run(workdir, *NAN_AT_14, '--config.on_nonfinite=skip',
                  '--config.keep_checkpoints=10')
  assert code == 0, out[-3000:]
  records = [json.loads(l) for l in open(workdir / 'metrics.jsonl')]
  trains = [r for r in records if r['split'] == 'train']
  # Step 13 applies lr 1e30; from step 14 on every loss is NaN/Inf, so every step is
  # skipped: by step s, s - 13 of them.
  assert [r['nonfinite_steps'] for r in trains] == [max(0, r['step'] - 13) for r in trains]
  assert f'{60 - 13} NaN/Inf steps skipped' in out  # CONFIG: 60 steps
  # A skipped step changes nothing: the state at step 14 is the state at the end.
  first, last = (checkpoints.read_state(str(workdir), checkpoints.LATEST, step)
                 for step in (14, 60))
  for part in ('params', 'batch_stats', 'opt_state'):
    leaves = jax.tree.leaves(first[part])
    assert leaves and all(np.isfinite(x).all() for x in leaves)
    for x, y in zip(leaves, jax.tree.leaves(last[part]), strict=True):
      np.testing.assert_array_equal(x, y)


def test_full_disk_stops_in_one_line_naming_the_step_lost_and_the_step_intact(tmp_path):
  workdir = tmp_path / 'full'
  big = '--config=configs/convnet.py:dataset=mnist5k,width=64,stages=2,depth=1,epochs='
  code, out = run(workdir, '--config.checkpoint_every_steps=10', config=big + '0.16')
  assert code == 0, out[-3000:]
  # No file may grow past 64 KiB: the next checkpoint's array data cannot be written.
  # (The output goes to pipes, which the limit does not cut short as it would a file.)
  limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
  temporary = tmp_path / 'tmp'
  temporary.mkdir()
  # (JAX's compilation cache would warn that it cannot write either: its own line.)
  env = {**os.environ, 'TMPDIR': str(temporary), 'JAX_ENABLE_COMPILATION_CACHE': 'false'}
  result = subprocess.run([sys.executable, 'train.py', big + '0.32', *ARGS,
                           '--config.checkpoint_every_steps=10', f'--workdir={workdir}'],
                          cwd=ROOT, text=True, capture_output=True, preexec_fn=limit,
                          env=env, timeout=600)
  # 20 steps saved at 10 and 20; resumed to 40, the save at 30 fails (orbax writes
  # asynchronously, so the next save, at 40, finds it): one line says so.
  assert result.returncode == 1, result.stderr[-3000:]
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith('train.py: stopped: could not write checkpoint 30 in '
                             f'{workdir}/checkpoints ('), lines[0]
  assert f'checkpoint 20 in {workdir}/checkpoints is intact' in lines[0]
  assert 'tensorstore_spec' not in lines[0]
  assert int(checkpoints.read_state(str(workdir))['step']) == 20
  # The details: orbax's reports of the failed write, in the workdir, or where its disk
  # cannot take them either, in the temporary directory.
  log = lines[0].split('(details: ')[1].rstrip(')')
  assert os.path.dirname(log) in (str(workdir), str(temporary)), log
  with open(log) as f:
    details = f.read()
  assert 'File too large' in details and '30.orbax-checkpoint-tmp' in details
  assert 'Traceback (most recent call last)' in details


# ------------------------------------------------- corrupt checkpoints: one line each
# The session's 8-step LeNet run (conftest.py's lenet_8_steps), copied and broken by
# each test. A checkpoint is broken as an interrupted copy leaves it: its array data cut
# short, its metadata and commit markers intact, so orbax starts its reads and some
# fail while others are in flight (what flooded stderr with tracebacks).
LONGER = [*LENET_8_STEPS, '--config.num_train_steps=12', '--allow_schedule_change']  # a resume


def broken_copy(run_dir, tmp_path, *folders):
  workdir = tmp_path / 'run'
  shutil.copytree(run_dir, workdir)
  for folder in folders:
    for root, _, files in os.walk(workdir / folder):
      for name in files if os.path.basename(root) == 'd' else ():
        path = os.path.join(root, name)
        os.truncate(path, os.path.getsize(path) // 2)
  return workdir


def program(tmp_path, *argv):
  """A program's run, stdout and stderr apart; its temporary directory in tmp_path."""
  temporary = tmp_path / 'tmp'
  temporary.mkdir(exist_ok=True)
  return prewarmed.run([sys.executable, *argv], cwd=ROOT, text=True, capture_output=True,
                       env={**os.environ, 'TMPDIR': str(temporary)}, timeout=600)


def details_of(line: str) -> str:
  """The contents of the details log a message names."""
  with open(line.rsplit('details: ', 1)[1].split(')')[0]) as f:
    return f.read()


def files_of(workdir):
  return {os.path.relpath(os.path.join(d, f), workdir): open(os.path.join(d, f), 'rb').read()
          for d, _, fs in os.walk(workdir) for f in fs if f != '.lock'}


def test_a_corrupt_checkpoint_falls_back_to_the_one_before_in_one_line(lenet_8_steps,
                                                                       tmp_path):
  workdir = broken_copy(lenet_8_steps, tmp_path, 'checkpoints/8')
  result = program(tmp_path, 'train.py', *LONGER, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr == ''
  warnings = [l for l in result.stdout.splitlines() if l.startswith('WARNING')]
  assert len(warnings) == 1, result.stdout
  assert warnings[0].startswith(f'WARNING: checkpoint 8 in {workdir}/checkpoints cannot be '
                                'read (')
  assert f'moved it to {workdir}/corrupt_checkpoints/ and resumed from step 4' in warnings[0]
  assert warnings[0].endswith(f'(details: {workdir}/errors.log)')
  assert f'Resuming {workdir} from step 4' in result.stdout
  assert checkpoints.saved_steps(str(workdir)) == [8, 12]  # (8 trained again)
  details = details_of(warnings[0])
  assert 'Traceback (most recent call last)' in details
  assert f'{workdir}/checkpoints/8/default/' in details  # tensorstore's failed read


def test_a_checkpoint_cut_off_after_its_metadata_falls_back_too(lenet_8_steps, tmp_path):
  """Step 8 holding only its _CHECKPOINT_METADATA, as a copy cut off after its first file
  leaves it: orbax's manager, once it had refused that step, refused the sound step 4
  too, and the run stopped advising to start over."""
  workdir = broken_copy(lenet_8_steps, tmp_path)
  for path in (workdir / 'checkpoints' / '8').iterdir():
    if path.name != '_CHECKPOINT_METADATA':
      shutil.rmtree(path) if path.is_dir() else path.unlink()
  result = program(tmp_path, 'train.py', *LONGER, f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'moved it to {workdir}/corrupt_checkpoints/ and resumed from step 4' in result.stdout
  assert checkpoints.saved_steps(str(workdir)) == [8, 12]


def test_a_read_only_checkpoints_folder_is_refused_before_training(lenet_8_steps, tmp_path):
  """checkpoints/ this user cannot write: one line naming it, exit 2, the run untouched
  (it had resumed, trained and evaluated, rewritten config.json, then failed to save,
  saying to free space). Run as the user nobody, since root may write anywhere."""
  top = tempfile.mkdtemp(prefix='read-only-')  # (reachable by that user, unlike tmp_path)
  workdir = broken_copy(lenet_8_steps, pathlib.Path(top))
  command = ['train.py', *LONGER, f'--workdir={workdir}']
  if os.geteuid() == 0:  # (nobody, once the program's modules are loaded)
    nobody = pwd.getpwnam('nobody')
    command = ['-c', f'import os, runpy, sys; import train; os.setgroups([]); '
               f'os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid}); '
               f'sys.argv = {command!r}; runpy.run_path("train.py", run_name="__main__")']
  for path in (top, *(d for d, _, _ in os.walk(workdir))):
    os.chmod(path, 0o777)
  for name in files_of(workdir):
    os.chmod(workdir / name, 0o666)
  os.chmod(workdir / 'checkpoints', 0o555)
  try:
    before = files_of(workdir)
    result = program(tmp_path, *command)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f'train.py: error: --workdir={workdir}: {workdir}/checkpoints is not readable and '
        'writable by this user; fix its permissions or choose another --workdir']
    assert files_of(workdir) == before
  finally:
    shutil.rmtree(top)


def test_every_checkpoint_corrupt_refuses_in_one_line_and_changes_nothing(lenet_8_steps,
                                                                          tmp_path):
  workdir = broken_copy(lenet_8_steps, tmp_path, 'checkpoints/4', 'checkpoints/8')
  before = files_of(workdir)
  result = program(tmp_path, 'train.py', *LONGER, f'--workdir={workdir}')
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(f'train.py: error: no checkpoint in {workdir}/checkpoints can '
                             'be read (step 8: '), lines[0]
  assert '; step 4: ' in lines[0] and 'nothing was changed' in lines[0]
  assert files_of(workdir) == before  # the details are not in the workdir
  details = details_of(lines[0])
  assert os.path.dirname(lines[0].rsplit('details: ', 1)[1]) == str(tmp_path / 'tmp')
  for step in (4, 8):
    assert f'{workdir}/checkpoints/{step}/default/' in details


@pytest.mark.parametrize('reader', ['evaluate', 'init_from'])
def test_a_corrupt_checkpoint_read_is_one_line_naming_the_flag(lenet_8_steps, tmp_path,
                                                               reader):
  if reader == 'evaluate':  # its best checkpoint
    workdir = broken_copy(lenet_8_steps, tmp_path, 'best_checkpoint/8')
    argv, names = ['evaluate.py', f'--workdir={workdir}'], '--checkpoint=best: '
    broken = workdir / 'best_checkpoint'
  else:  # the latest checkpoint of the run a new one starts from
    workdir = broken_copy(lenet_8_steps, tmp_path, 'checkpoints/8')
    argv = ['train.py', *LENET_8_STEPS, f'--workdir={tmp_path / "new"}',
            f'--config.init_from={workdir}']
    names, broken = f'config.init_from={workdir}: ', workdir / 'checkpoints'
  before = files_of(workdir)
  result = program(tmp_path, *argv)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  program_name = argv[0]
  assert lines[0].startswith(f'{program_name}: error: {names}checkpoint 8 in {broken} cannot '
                             'be read ('), lines[0]
  assert '--mode' not in lines[0] and 'tensorstore_spec' not in lines[0]
  assert files_of(workdir) == before and not (tmp_path / 'new').exists()
  assert f'{broken}/8/default/' in details_of(lines[0])


def test_second_run_on_a_workdir_refuses_and_a_killed_run_does_not_block(tmp_path):
  workdir = tmp_path / 'shared'
  first = launch(workdir, config=CONFIG + ',epochs=40')
  wait_for_step(first, workdir, 3)
  code, out = run(workdir)
  assert code == 2 and f'{workdir} is in use by pid {first.pid}' in out
  first.send_signal(signal.SIGKILL)
  first.wait()
  # A few more steps than the killed run saved (its cosine made shorter: said so).
  steps = (checkpoints.saved_steps(str(workdir)) or [0])[-1] + 3
  code, out = run(workdir, f'--config.num_train_steps={steps}', '--allow_schedule_change',
                  config=CONFIG + ',epochs=40')
  assert code == 0 and 'in use' not in out and 'Done in' in out, out[-2000:]


def test_a_failed_lock_acquire_leaves_the_lock_as_it_was(tmp_path):
  held = workdir_lib.Lock(str(tmp_path)).acquire()
  second = workdir_lib.Lock(str(tmp_path))
  with pytest.raises(workdir_lib.WorkdirError, match='is in use by pid'):
    second.acquire()
  assert second.file is None  # (not a closed file that release would fail on)
  second.release()  # a no-op: it holds nothing, and the holder keeps the lock
  assert workdir_lib.is_locked(str(tmp_path))
  held.release()
  with second:  # the lock, free again, is taken by the same object
    assert second.file is not None and workdir_lib.is_locked(str(tmp_path))
  assert second.file is None and not workdir_lib.is_locked(str(tmp_path))


BAD_INPUTS = {
    'unknown model': (['--config.model.name=resnet21'], "unknown model 'resnet21'"),
    'unknown dataset': (['--config.dataset.name=cifar1O'], "unknown dataset 'cifar1O'"),
    'unknown schedule': (['--config.schedule.name=cosin'], "did you mean 'cosine'"),
    'misspelt key': (['--config.batch_sise=8'], "unknown config key 'batch_sise'"),
    'missing config file': (['configs/nope.py'], 'configs/nope.py: No such file'),
    'zero batch': (['--config.batch_size=0'], 'config.batch_size must be positive'),
    # (the other non-positive sizes: in-process, tests/test_train.py)
    # (an unknown optimizer, a collapsing stack: in-process, test_train.py, test_models.py)
    'fixed head size': (['--config=configs/alexnet.py:v1', '--config.dataset.name=mnist5k',
                         '--config.dataset.augment=none', '--config.dataset.image_size=224'],
                        'needs a 6x6 feature map'),
    'num_classes': (['--config.num_classes=100'], 'num_classes=100 but mnist5k has 10'),
}


def test_bad_inputs_are_one_line_exit_2_and_touch_nothing(tmp_path):
  workdir = tmp_path / 'existing'
  code, _ = run(workdir, '--config.checkpoint_every_steps=2', config=CONFIG + ',epochs=0.05')
  assert code == 0
  listing = lambda: sorted((f, os.path.getsize(os.path.join(d, f)))  # (.lock: who holds it)
                           for d, _, fs in os.walk(workdir) for f in fs if f != '.lock')
  before = listing()

  def attempt(item):
    name, (extra, expected) = item
    if extra[0].startswith('--config='):
      config, extra = extra[0], extra[1:]
    elif extra[0].startswith('configs/'):
      config, extra = f'--config={extra[0]}', extra[1:]
    else:
      config = CONFIG
    result = prewarmed.run([sys.executable, 'train.py', config, *ARGS, *extra,
                            f'--workdir={workdir}'], cwd=ROOT, text=True,
                           capture_output=True, timeout=300)
    return name, expected, result

  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    results = list(pool.map(attempt, BAD_INPUTS.items()))
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  results.append(('workdir is a file', 'is a file, not a directory', prewarmed.run(
      [sys.executable, 'train.py', CONFIG, *ARGS, f'--workdir={a_file}'], cwd=ROOT, text=True,
      capture_output=True, timeout=300)))
  for name, expected, result in results:
    lines = [l for l in result.stderr.splitlines() if l.startswith('train.py:')]
    assert result.returncode == 2, (name, result.stderr[-2000:])
    assert len(lines) == 1 and expected in lines[0], (name, result.stderr[-2000:])
    # Nothing else: the suggestion for a misspelt dataset had imported TensorFlow,
    # whose log came first.
    assert result.stderr.splitlines() == lines, (name, result.stderr[-2000:])
  assert listing() == before

  # Checkpoints that all fail to read: an error, never a silent start from scratch.
  for folder, _, files in os.walk(workdir / 'checkpoints'):
    for name in files:
      if 'commit_success' not in name and 'CHECKPOINT_METADATA' not in name:
        open(os.path.join(folder, name), 'w').close()  # empty every data file
  before = listing()
  code, out = run(workdir, config=CONFIG + ',epochs=0.8')
  assert code == 2 and 'can be read' in out and 'nothing was changed' in out
  assert 'Traceback' not in out and listing() == before



def test_a_dead_peer_ends_the_other_process(tmp_path):
  port, workdir = free_port(), tmp_path / 'pair'
  env = lambda i: {'JAX_PLATFORMS': 'cpu', 'JAX_COORDINATOR_ADDRESS': f'localhost:{port}',
                   'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': str(i)}
  survivor = launch(workdir, config=CONFIG + ',epochs=40', env=env(0))
  victim = subprocess.Popen([sys.executable, 'train.py', CONFIG + ',epochs=40', *ARGS,
                             f'--workdir={workdir}'], cwd=ROOT, env={**os.environ, **env(1)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  wait_for_step(survivor, workdir, 10)
  victim.send_signal(signal.SIGKILL)
  killed_at = time.time()
  code = survivor.wait(timeout=300)
  assert code == 1 and time.time() - killed_at < 60
  assert 'lost contact with the other processes' in output(survivor)
