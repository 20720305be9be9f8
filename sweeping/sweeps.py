"""Sweeps as data and as processes: expand a sweep file into trials, run them locally
(a process each, on its share of the GPUs) or as a SLURM job array, and record each
trial's state. sweep.py and reproduce.py are its command lines.
"""

import concurrent.futures
import ctypes
import difflib
import hashlib
import itertools
import json
import math
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from configs import default, hyper, keys
from lib import formatting
from lib.cli import REPO, load_module  # (the repository; a config or sweep file as a module)
from lib.cli import CPU_DEVICES, host_cpus  # (the pin's variable; the cores we may use)
from lib import run_contract
from lib import workdir as workdir_lib

PLAN = 'sweep.json'      # DIR/sweep.json: the sweep file and its trials
LOG = 'train.log'        # DIR/<trial>/train.log
CONFIG_PREFIX = 'config.'

FLAGS = flags.FLAGS


def define_launch_flags():
  """The flags of running trials (sweep.py, reproduce.py): where they run and with what."""
  flags.DEFINE_string('workdir', None, 'directory of the sweep: one subdirectory per trial')
  flags.DEFINE_enum('launcher', 'local', ['local', 'slurm'], 'where the trials run')
  flags.DEFINE_integer('parallel', None, 'local: trials at once (default 1), each on its '
                       'share of the GPUs (more than the GPUs: k to a GPU, 1/k of its memory '
                       'each); slurm: most array tasks running at once', lower_bound=1)
  flags.DEFINE_bool('dry_run', False,
                    'print the plan (local) or the sbatch script; run nothing')
  flags.DEFINE_string('partition', None, 'slurm: partition')
  flags.DEFINE_integer('gpus_per_task', None, 'slurm: GPUs of each trial (--gres=gpu:N)')
  flags.DEFINE_integer('cpus_per_task', None, 'slurm: CPU cores of each trial')
  flags.DEFINE_string('mem', None, 'slurm: memory of each trial, e.g. 64G')
  flags.DEFINE_string('time', None, 'slurm: time limit of each trial, e.g. 12:00:00')
  flags.DEFINE_multi_string('slurm_directive', [], 'slurm: an extra #SBATCH directive, '
                            'e.g. --account=lab (repeatable)')
  flags.DEFINE_bool('allow_schedule_change', False, "passed on to each trial's train.py: "
                    'resume a trial whose new run length changes the learning rate of '
                    'the steps ahead (its base config was made longer)')


class SweepError(ValueError):
  """Bad input to a sweep: one line naming the field and the fix."""


def did_you_mean(word: str, choices) -> str:
  """' (did you mean X?)' for the closest of `choices` to a misspelt word, or ''."""
  close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
  return f' (did you mean {close[0]}?)' if close else ''


def error_line(error: BaseException) -> str:
  """The last line of an exception's traceback: 'RuntimeError: no GPU'."""
  text = str(error).strip().splitlines()
  return type(error).__name__ + (f': {text[-1]}' if text else '')


# ------------------------------------------------------------------------- the plan


def load_sweep_file(spec: str):
  """The module of `path[:arg]` and its arg."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise SweepError(f'--config={spec}: no such sweep file')
  try:
    module = load_module(path)
  except Exception as e:  # pylint: disable=broad-except  (a sweep file is the user's code)
    raise SweepError(f'sweep file {path} failed to load: {error_line(e)}') from None
  for fn in ('get_config', 'get_sweep'):
    if not callable(getattr(module, fn, None)):
      raise SweepError(f'{path} defines no {fn}(arg); a sweep file defines get_config(arg) '
                       'and get_sweep(arg) (see configs/sweeps/)')
  return module, os.path.abspath(path), arg or None


def format_value(value) -> str:
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, (int, float, str)):
    return str(value)
  raise SweepError(f'sweep value {value!r} is a {type(value).__name__}; sweeps take '
                   'numbers, strings and booleans')


MAX_NAME = 200  # characters of a trial's directory name (file systems allow 255)


def trial_name(overrides: dict, first: list[str] = ()) -> str:
  """`kernel=5,pool=avg,num_train_steps=600`: overrides as a directory name, the keys in
  `first` (the swept ones) first. Every override is in it, so a trial whose settings
  change is a new trial; a name too long for a directory keeps a hash of the rest."""
  keys = list(first) + [k for k in overrides if k not in first]
  name = ','.join(f'{k.removeprefix(CONFIG_PREFIX)}={format_value(overrides[k])}'
                  for k in keys)
  name = re.sub(r'[^\w.=,+-]', '_', name) or 'default'
  if len(name) > MAX_NAME:
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    name = f'{name[:MAX_NAME - 12]},#{digest}'
  return name


def config_keys(overrides: dict) -> dict:
  """The overrides of config keys, by their dotted path: {'model.depth': 20}."""
  return {k[len(CONFIG_PREFIX):]: v for k, v in overrides.items()
          if k.startswith(CONFIG_PREFIX)}


def make_trial(config_path: str, overrides: dict, swept: list[str]) -> dict:
  """A trial as the runner needs it, run in the caller's directory (so that relative
  paths mean what they meant there)."""
  args = {k: v for k, v in overrides.items() if not k.startswith(CONFIG_PREFIX)}
  for key, value in args.items():
    if re.search(r'[,=:]', format_value(value)):
      raise SweepError(f'sweep value {key}={value!r} contains one of , = : which the '
                       '`file.py:arg` syntax cannot carry; set it through a config. key')
  arg = ','.join(f'{k}={format_value(v)}' for k, v in args.items())
  return {'name': trial_name(overrides, swept), 'cwd': os.getcwd(), 'overrides': overrides,
          'config': config_path + (f':{arg}' if arg else ''),
          'config_overrides': {k: format_value(v) for k, v in config_keys(overrides).items()}}


def build_config(module, trial: dict):
  """The trial's config, built as train.py will build it (catches bad keys up front)."""
  config = module.get_config(trial['config'].partition(':')[2] or None)
  keys.check_declared(config, origin=f"config file {trial['config']}")
  overrides = config_keys(trial['overrides'])
  keys.add_model_arguments(config, set(overrides), overrides.get('model.name'))
  for path, value in overrides.items():
    parent, _, leaf = path.rpartition('.')
    node = config.get(parent, {}) if parent else config  # (a ConfigDict reads a dotted key)
    if leaf not in node:
      raise ValueError(keys.unknown_key(path, keys.declared(config)))
    node[leaf] = value
  default.clear_duration_partners(config, set(overrides))
  keys.check_declared(config)  # (a model argument's value, a sweep's new model name)
  run_contract.resolve_paths(config, trial.get('cwd'))  # as train.py will, where it runs
  return config


def expand(spec: str) -> list[dict]:
  """The trials of a sweep file, each checked by building its config."""
  module, path, arg = load_sweep_file(spec)
  try:
    overrides = module.get_sweep(arg)
  except (ValueError, TypeError, KeyError) as e:  # (a bad `:arg`, as parse_arg says)
    raise SweepError(f'--config={spec}: get_sweep({arg!r}) failed: {e}') from None
  except Exception as e:  # pylint: disable=broad-except  (the user's code)
    raise SweepError(f'--config={spec}: get_sweep({arg!r}) in {path} raised '
                     f'{error_line(e)}') from None
  if not overrides:
    raise SweepError(f'--config={spec}: get_sweep({arg!r}) returned no trials')
  if not isinstance(overrides, list) or not all(isinstance(o, dict) for o in overrides):
    raise SweepError(f'--config={spec}: get_sweep({arg!r}) returned a '
                     f'{type(overrides).__name__}; it returns a list of trials, each a dict '
                     'of overrides (configs/hyper.py builds them)')
  swept, _ = hyper.swept_and_fixed(overrides)
  trials = [make_trial(path, o, swept) for o in overrides]
  names = [t['name'] for t in trials]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise SweepError(f'--config={spec}: trials {duplicates} appear more than once')
  for trial in trials:
    try:
      build_config(module, trial)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
      message = f'unknown config key {e}' if isinstance(e, KeyError) else str(e)
      raise SweepError(f"trial {trial['name']}: {message.strip()}") from None
    except Exception as e:  # pylint: disable=broad-except  (get_config: the user's code)
      raise SweepError(f"trial {trial['name']}: get_config in {path} raised "
                       f'{error_line(e)}') from None
  return trials


def _plan_config(spec: str) -> str:
  path, sep, arg = spec.partition(':')
  return os.path.abspath(path) + sep + arg


def check_plan(sweep_dir: str, spec: str):
  """Refuse a --workdir that holds something else than this sweep: another sweep file's
  trials, or a train.py run (its config.json)."""
  if os.path.exists(os.path.join(sweep_dir, PLAN)):
    old = load_plan(sweep_dir)['config']
    if old != _plan_config(spec):  # names leave out what all trials share: keep sweeps apart
      raise SweepError(f'--workdir={sweep_dir} holds the sweep of {old}; choose another '
                       '--workdir for this sweep')
  elif os.path.exists(os.path.join(sweep_dir, run_contract.CONFIG)):
    raise SweepError(f'--workdir={sweep_dir} is the workdir of a train.py run (it holds '
                     f'{run_contract.CONFIG}), not a sweep directory; choose another '
                     '--workdir for the sweep')


def save_plan(sweep_dir: str, spec: str, trials: list[dict]):
  """DIR/sweep.json; a sweep directory holds one sweep file's trials."""
  check_plan(sweep_dir, spec)
  workdir_lib.write_json(os.path.join(sweep_dir, PLAN),
                         {'config': _plan_config(spec), 'trials': trials})


def load_plan(sweep_dir: str) -> dict:
  path = os.path.join(sweep_dir, PLAN)
  if not os.path.exists(path):
    raise SweepError(f'--workdir={sweep_dir} holds no sweep ({PLAN} is missing); run '
                     'sweep.py --config=... --workdir=... first')
  with open(path) as f:
    return json.load(f)


# ------------------------------------------------------------------------- one trial


def command(sweep_dir: str, trial: dict, allow_schedule_change: bool = False) -> list[str]:
  return ([sys.executable, os.path.join(REPO, 'train.py'), f"--config={trial['config']}"]
          + [f'--config.{k}={v}' for k, v in trial['config_overrides'].items()]
          + [f"--workdir={os.path.join(os.path.abspath(sweep_dir), trial['name'])}"]
          + (['--allow_schedule_change'] if allow_schedule_change else []))


def read_status(trial_dir: str) -> dict:
  return workdir_lib.read_json(os.path.join(trial_dir, workdir_lib.TRIAL_STATUS), {})


def write_status(trial_dir: str, status: dict):
  workdir_lib.write_json(os.path.join(trial_dir, workdir_lib.TRIAL_STATUS), status)


def is_done(trial_dir: str) -> bool:
  return os.path.exists(os.path.join(trial_dir, workdir_lib.FINAL_METRICS))


def final_result(trial_dir: str) -> dict | None:
  """A trial's final metrics if its last attempt finished, else None: a rerun that failed
  or is queued or running leaves the previous config's final_metrics.json behind. A
  workdir without trial.json (a train.py run copied in) has finished if the file is there."""
  final = workdir_lib.read_json(os.path.join(trial_dir, workdir_lib.FINAL_METRICS))
  return final if final and read_status(trial_dir).get('state', 'done') == 'done' else None


ATTEMPT = '=== attempt'  # the line train.log starts each attempt with


def failure(log_path: str, returncode: int) -> str:
  """What ended a trial, in one line: train.py's own message, or how the process died
  (the last attempt's output only: train.log holds every attempt)."""
  if returncode < 0:
    name = signal.Signals(-returncode).name
    return f'killed by {name}' + (' (out of memory?)' if name == 'SIGKILL' else '')
  with open(log_path, errors='replace') as f:
    lines = f.readlines()
  starts = [i for i, l in enumerate(lines) if l.startswith(ATTEMPT)]
  lines = [l.strip() for l in lines[starts[-1] + 1 if starts else 0:][-300:] if l.strip()]
  ours = [l for l in lines if l.startswith(('train.py: error:', 'train.py: stopped:'))]
  last = ours[-1] if ours else (lines[-1] if lines else 'no output')
  return f'exit {returncode}: {last[:500]}'


class Children:
  """The trials' processes, so that a stop request (SIGINT, SIGTERM) reaches them all
  (Popen.send_signal passes over those that have ended)."""

  def __init__(self):
    self.procs, self.lock, self.stopping = set(), threading.Lock(), threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
      signal.signal(sig, self.stop)

  def add(self, proc):
    with self.lock:
      self.procs.add(proc)
      if self.stopping.is_set():
        proc.send_signal(signal.SIGTERM)

  def stop(self, signum, frame):
    del frame
    if self.stopping.is_set():  # a second Ctrl-C: do not wait for the checkpoints
      sig = signal.SIGKILL
    else:
      sig = signal.SIGTERM  # train.py saves and exits
      print(f'sweep.py: {signal.Signals(signum).name}: stopping the running trials (they '
            'save a checkpoint); run the same command to resume', flush=True)
    with self.lock:
      self.stopping.set()
      for proc in self.procs:
        proc.send_signal(sig)


# What a trial's process runs before train.py starts: SIGTERM it when the runner's
# thread that started it dies, even by SIGKILL, so that no trial outlives its runner
# (train.py then saves a checkpoint and exits). Linux's prctl; elsewhere None, and
# sweep.py stops its trials on SIGINT/SIGTERM only. Resolved here, in the runner: the
# child between fork and exec must not import or allocate.
try:
  _prctl = ctypes.CDLL(None, use_errno=True).prctl
  _end_with_parent = lambda: _prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
except (OSError, AttributeError):
  _end_with_parent = None


def run_trial(sweep_dir: str, trial: dict, children: Children, env=None,
              allow_schedule_change: bool = False) -> dict:
  """Run (or resume) one trial as its own train.py process; returns its trial.json.
  The trial is done only when its train.py succeeded for the trial's config of now."""
  trial_dir = os.path.join(sweep_dir, trial['name'])
  os.makedirs(trial_dir, exist_ok=True)
  status = read_status(trial_dir)
  if trial_state(sweep_dir, trial) == 'done':
    if status.get('state', 'done') != 'done':  # (a failed rerun's config was put back)
      status.update(state='done', error=None)
      write_status(trial_dir, status)
    status['state'] = 'done'
    return status
  cmd, env = command(sweep_dir, trial, allow_schedule_change), env or {}
  fraction = env.get('XLA_PYTHON_CLIENT_MEM_FRACTION')
  # Where it ran: its GPUs (None: the CPU, or every GPU) and the share of their memory;
  # its cores (this thread's, which its process inherits: run_local pins CPU trials).
  status.update(name=trial['name'], overrides=trial['overrides'], command=cmd,
                cores=sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                else None,
                gpus=env.get('CUDA_VISIBLE_DEVICES'),
                gpu_memory_fraction=float(fraction) if fraction else (
                    1.0 if 'CUDA_VISIBLE_DEVICES' in env else None),
                state='running', host=socket.gethostname(), started=time.time(),
                attempts=status.get('attempts', 0) + 1, error=None,
                slurm_job=os.environ.get('SLURM_ARRAY_JOB_ID', '') and
                f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}")
  write_status(trial_dir, status)
  log_path = os.path.join(trial_dir, LOG)
  start = time.time()
  with open(log_path, 'a') as log:
    log.write(f"{ATTEMPT} {status['attempts']} on {status['host']} at "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(cmd)}\n")
    log.flush()
    # Its own session: a terminal's Ctrl-C reaches sweep.py only, which stops each trial
    # once, with SIGTERM (train.py saves a checkpoint and exits).
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            cwd=trial.get('cwd', REPO), env={**os.environ, **env},
                            start_new_session=True, preexec_fn=_end_with_parent)
    children.add(proc)
    returncode = proc.wait()
  status['wall_time'] = status.get('wall_time', 0.0) + time.time() - start
  status['returncode'] = returncode
  if returncode == 0 and is_done(trial_dir):
    # train.py succeeded: it checked the config against the saved one and removed the
    # old final metrics if it trained on, so these are this config's.
    status['state'] = 'done'
  elif returncode == 0 or children.stopping.is_set():
    status['state'] = 'stopped'  # by a signal; a checkpoint was saved
  else:  # a refusal (exit 2) included: train.py's line says why and what to pass
    status['state'], status['error'] = 'failed', failure(log_path, returncode)
  write_status(trial_dir, status)
  return status


# ------------------------------------------------------------------------- launchers


def visible_gpus() -> list[str]:
  """This machine's GPUs, without initialising JAX here (it would claim their memory)."""
  if 'CUDA_VISIBLE_DEVICES' in os.environ:
    return [d for d in os.environ['CUDA_VISIBLE_DEVICES'].split(',') if d.strip()]
  try:  # (no nvidia-smi: FileNotFoundError, an OSError)
    out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30,
                         check=True).stdout
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith('GPU'))]


def assign_slots(count: int, gpus: list[str]) -> list[dict]:
  """The environment of each of `count` trials that run at once on `gpus`. Up to one
  trial per GPU, every GPU is used (3 GPUs, 2 trials: GPU 0 and GPUs 1,2). More share
  them, trial i on GPU i mod n, each without preallocation and up to 1/k of its memory
  with k on that GPU: a LeNet or ResNet-20 uses a sliver of an H100. On the CPU, each
  trial trains on its share of the cores, an XLA device each, unless the user pinned the
  count (CPU_DEVICES)."""
  if not gpus:
    share = max(1, host_cpus() // count)
    return [{CPU_DEVICES: os.environ.get(CPU_DEVICES) or str(share)}
            for _ in range(count)]
  if count <= len(gpus):
    bounds = [len(gpus) * i // count for i in range(count + 1)]
    return [{'CUDA_VISIBLE_DEVICES': ','.join(gpus[bounds[i]:bounds[i + 1]])}
            for i in range(count)]
  sharing = [len(range(g, count, len(gpus))) for g in range(len(gpus))]  # trials per GPU
  fractions = [math.floor(1000 / k) / 1000 for k in sharing]  # rounded down: all fit
  return [{'CUDA_VISIBLE_DEVICES': gpus[i % len(gpus)],
           'XLA_PYTHON_CLIENT_PREALLOCATE': 'false',
           'XLA_PYTHON_CLIENT_MEM_FRACTION': f'{fractions[i % len(gpus)]:g}'}
          for i in range(count)]


def assign_cores(count: int) -> list[tuple[int, ...]]:
  """The cores of each of `count` CPU trials that run at once: this process's cores
  (cli.host_cpus) in even contiguous groups, or one each, taken in turn, when the trials
  outnumber them. A trial pinned to its cores keeps XLA's and Grain's threads off the
  others' (each process would otherwise size its thread pools to every core)."""
  cores = sorted(os.sched_getaffinity(0))
  if count >= len(cores):
    return [(cores[i % len(cores)],) for i in range(count)]
  bounds = [len(cores) * i // count for i in range(count + 1)]
  return [tuple(cores[bounds[i]:bounds[i + 1]]) for i in range(count)]


def describe_slot(env: dict) -> str:
  """' on GPU 0 (up to 0.5 of its memory)', ' on GPUs 0,1', or ' on 2 CPU devices'."""
  if 'CUDA_VISIBLE_DEVICES' not in env:
    count = env[CPU_DEVICES]
    return f" on {count} CPU device{'' if count == '1' else 's'}"
  gpus = env['CUDA_VISIBLE_DEVICES']
  where = f" on GPU{'s' if ',' in gpus else ''} {gpus}"
  fraction = env.get('XLA_PYTHON_CLIENT_MEM_FRACTION')
  return where + (f' (up to {fraction} of its memory)' if fraction else '')


def describe_slots(envs: list[dict]) -> str:
  """The plan's GPUs: ' on GPUs 0,1 (2 trials per GPU, each up to 0.5 of its memory)',
  ' on GPUs 0,1 (3 trials on GPU 0, 2 on GPU 1, each up to 1/k of its memory with k on
  its GPU)', ' on GPUs 0,1 | 2,3' (two GPUs each), or ' on 1 CPU device each'."""
  if 'CUDA_VISIBLE_DEVICES' not in envs[0]:
    return describe_slot(envs[0]) + ' each'
  gpus = list(dict.fromkeys(env['CUDA_VISIBLE_DEVICES'] for env in envs))
  if not envs[0].get('XLA_PYTHON_CLIENT_MEM_FRACTION'):
    return f" on GPU{'s' if len(envs) > 1 or ',' in gpus[0] else ''} {' | '.join(gpus)}"
  sharing = {g: sum(env['CUDA_VISIBLE_DEVICES'] == g for env in envs) for g in gpus}
  if len(set(sharing.values())) == 1:
    return (f" on GPUs {','.join(gpus)} ({sharing[gpus[0]]} trials per GPU, each up to "
            f"{envs[0]['XLA_PYTHON_CLIENT_MEM_FRACTION']} of its memory)")
  counts = ', '.join(f'{k} on GPU {g}' for g, k in sharing.items())
  return (f" on GPUs {','.join(gpus)} ({counts.replace(' on', ' trials on', 1)}, each up "
          'to 1/k of its memory with k on its GPU)')


def trial_state(sweep_dir: str, trial: dict, move_stale: bool = False) -> str:
  """done, resume, new, the state trial.json records, or stale: its workdir holds a
  run of another config than the trial's now (its base config file was edited). With
  `move_stale`, a stale trial's workdir is moved to DIR/stale/ (named in a line), so
  that it runs again with its config of now: it is new."""
  trial_dir = os.path.join(sweep_dir, trial['name'])
  try:
    saved = run_contract.read_saved(trial_dir)
  except run_contract.ContractError:
    saved = None  # unreadable: the trial's train.py says so in its one line, and it fails
  if saved is not None:
    module = load_module(trial['config'].partition(':')[0])
    diff = run_contract.changes(saved, build_config(module, trial))
    if set(diff) - run_contract.RESUMABLE:
      if not move_stale:
        return 'stale'
      aside = os.path.join(sweep_dir, 'stale', f"{trial['name']}.{int(time.time())}")
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      os.replace(trial_dir, aside)
      print(f"{trial['name']}: ran with another config ({run_contract.describe(diff)}); "
            f'moved it to {aside} to run it again', flush=True)
      return 'new'
    if diff:
      return 'resume'  # a new length or period: train.py resumes (or says why not)
  if is_done(trial_dir):
    return 'done'
  if os.path.isdir(os.path.join(trial_dir, workdir_lib.CHECKPOINTS)):
    return 'resume'
  return read_status(trial_dir).get('state') or 'new'


_print_lock = threading.Lock()


def say(line: str):
  """One whole line at a time from the runner threads."""
  with _print_lock:
    print(line, flush=True)


def launch(sweep_dir: str, spec: str, trials: list[dict], parallel: int | None,
           dry_run: bool, slurm: dict | None = None, report=None,
           report_args: tuple = ('sweep.py', 'report'),
           allow_schedule_change: bool = False) -> bool:
  """Save the plan (DIR/sweep.json) and run its unfinished trials here, `parallel` at a
  time, and print `report()`; or submit them as a SLURM job array, and `report_args`
  after it, when `slurm` gives its options. False if a local trial failed. One runner
  per sweep directory at a time (a second would start the same trials); nothing is
  written before the flags and the --workdir are checked, nor by a dry run."""
  if slurm is not None and not dry_run and not shutil.which('sbatch'):
    raise SweepError('--launcher=slurm: sbatch is not on PATH (is this a SLURM login '
                     'node?); use --launcher=local to run here')

  def start(states):
    if slurm is None:
      return run_local(sweep_dir, trials, states, parallel or 1, dry_run,
                       allow_schedule_change)
    submit_slurm(sweep_dir, trials, states, slurm, parallel, dry_run, report_args,
                 allow_schedule_change)
    return True

  check_plan(sweep_dir, spec)  # (a dry run shows the refusal the run would meet)
  if dry_run:
    return start([trial_state(sweep_dir, t) for t in trials])
  workdir_lib.check_usable(sweep_dir)
  with workdir_lib.Lock(sweep_dir):
    save_plan(sweep_dir, spec, trials)
    no_failures = start([trial_state(sweep_dir, t, move_stale=True) for t in trials])
  if slurm is None and report:
    print(report(), end='')
  return no_failures


def run_local(sweep_dir: str, trials: list[dict], states: list[str], parallel: int,
              dry_run: bool, allow_schedule_change: bool = False) -> bool:
  """Run the trials not done here, `parallel` at a time (at most as many as there are
  to run: the GPUs are shared among those); False if one failed."""
  todo = [t for t, s in zip(trials, states) if s != 'done']
  at_once = max(1, min(parallel, len(todo)))
  gpus = visible_gpus()
  envs = assign_slots(at_once, gpus)
  pinned = hasattr(os, 'sched_setaffinity') and not gpus
  cores = assign_cores(at_once) if pinned else [()] * at_once
  print(f'{len(trials)} trials in {sweep_dir}: {len(trials) - len(todo)} done, '
        f'{len(todo)} to run, {at_once} at a time{describe_slots(envs)}', flush=True)
  if dry_run:
    for trial, state in zip(trials, states):
      print(f"[{state}] {trial['name']}\n    "
            f'{shlex.join(command(sweep_dir, trial, allow_schedule_change))}')
    return True
  slots = queue.Queue()
  for slot in zip(envs, cores):
    slots.put(slot)
  children = Children()
  counter = iter(range(1, len(todo) + 1))

  def work(trial):
    if children.stopping.is_set():
      return 'stopped'
    env, mine = slots.get()
    try:
      n = next(counter)
      if mine:  # this thread's cores, and so its trial's: a child inherits its forker's
        os.sched_setaffinity(0, mine)
      on = f" (core{'s' if len(mine) > 1 else ''} {','.join(map(str, mine))})" if mine else ''
      say(f"[{n}/{len(todo)}] {trial['name']}: started{describe_slot(env)}{on}")
      status = run_trial(sweep_dir, trial, children, env, allow_schedule_change)
    finally:
      slots.put((env, mine))
    state = status['state']
    if state == 'done':
      final = final_result(os.path.join(sweep_dir, trial['name'])) or {}
      detail = f"top-1 {final.get('top1', float('nan')):.2%}"
    else:
      detail = status['error'] if state == 'failed' else 'checkpoint saved'
    say(f"[{n}/{len(todo)}] {trial['name']}: {state} after "
        f"{formatting.duration(status['wall_time'])} ({detail})")
    return state

  with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
    outcomes = list(pool.map(work, todo))
  return 'failed' not in outcomes


def array_spec(indices: list[int]) -> str:
  """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (sbatch --array)."""
  parts = []
  for _, run in itertools.groupby(enumerate(indices), lambda pair: pair[1] - pair[0]):
    run = [n for _, n in run]  # consecutive indices: n - i is the same along a run
    parts.append(f'{run[0]}-{run[-1]}' if len(run) > 1 else f'{run[0]}')
  return ','.join(parts)


def slurm_options(spec: str | None = None) -> dict:
  """Flags over the get_slurm(arg) of the sweep file `spec` (file.py[:arg]), over defaults."""
  options = {'partition': None, 'gpus_per_task': 1, 'cpus_per_task': None, 'mem': None,
             'time': None, 'directives': []}
  module, _, arg = load_sweep_file(spec) if spec else (None, None, None)
  if callable(getattr(module, 'get_slurm', None)):
    try:
      from_file = module.get_slurm(arg)
    except Exception as e:  # pylint: disable=broad-except  (the user's code)
      raise SweepError(f'get_slurm({arg!r}) of the sweep file raised {error_line(e)}'
                       ) from None
    if not isinstance(from_file, dict):
      raise SweepError(f'get_slurm({arg!r}) returned a {type(from_file).__name__}; it '
                       f'returns a dict of {sorted(options)}')
    unknown = set(from_file) - set(options)
    if unknown:
      raise SweepError(f'get_slurm() returned unknown keys {sorted(unknown)}; it may set '
                       f'{sorted(options)}')
    options.update(from_file)
  for name in options:
    if name != 'directives' and FLAGS[name].present:
      options[name] = FLAGS[name].value
  for name, least in (('gpus_per_task', 0), ('cpus_per_task', 1)):
    if options[name] is not None and options[name] < least:
      raise SweepError(f'--{name}={options[name]}: give at least {least}')
  options['directives'] = list(options['directives']) + FLAGS.slurm_directive
  return options


def slurm_script(sweep_dir: str, name: str, indices: list[int], options: dict,
                 parallel: int | None, allow_schedule_change: bool = False) -> str:
  sweep_dir = os.path.abspath(sweep_dir)
  lines = ['#!/bin/bash', f'#SBATCH --job-name={name}',
           f"#SBATCH --array={array_spec(indices)}{f'%{parallel}' if parallel else ''}",
           f'#SBATCH --output={sweep_dir}/slurm/%A_%a.out', '#SBATCH --ntasks=1',
           # time to save a checkpoint before the time limit's SIGKILL
           '#SBATCH --signal=TERM@120']
  gres = options['gpus_per_task'] and f"gpu:{options['gpus_per_task']}"
  for key, value in (('partition', options['partition']), ('gres', gres),
                     ('cpus-per-task', options['cpus_per_task']), ('mem', options['mem']),
                     ('time', options['time'])):
    lines += [f'#SBATCH --{key}={value}'] if value else []
  lines += [f"#SBATCH {d if d.startswith('-') else '--' + d}" for d in options['directives']]
  lines += ['', '# Task i runs trial i of sweep.json: python train.py, logged in the '
            "trial's train.log", f'cd {REPO}',
            f'exec {sys.executable} {REPO}/sweep.py trial --workdir={sweep_dir} '
            '--index=$SLURM_ARRAY_TASK_ID'
            + (' --allow_schedule_change' if allow_schedule_change else ''), '']
  return '\n'.join(lines)


def submit_slurm(sweep_dir: str, trials: list[dict], states: list[str], options: dict,
                 parallel: int | None, dry_run: bool, report_args: tuple,
                 allow_schedule_change: bool = False):
  """Submit the trials not done as one job array, and `report_args` after it."""
  indices = [i for i, s in enumerate(states) if s != 'done']
  name = 'sweep-' + os.path.basename(os.path.abspath(sweep_dir))
  print(f'{len(trials)} trials in {sweep_dir}: {len(trials) - len(indices)} done, '
        f'{len(indices)} to submit', flush=True)
  if not indices:
    return
  script = slurm_script(sweep_dir, name, indices, options, parallel, allow_schedule_change)
  report = ['sbatch', '--parsable', '--dependency=afterany:{job}', f'--job-name={name}-report',
            f'--output={os.path.abspath(sweep_dir)}/slurm/report-%j.out', '--ntasks=1']
  report += [f"--partition={options['partition']}"] if options['partition'] else []
  report += ['--wrap', f'cd {REPO} && {sys.executable} {REPO}/{" ".join(report_args)} '
             f'--workdir={os.path.abspath(sweep_dir)}']
  if dry_run:
    print(script)
    print('then: ' + ' '.join(report[:-1]) + f" '{report[-1]}'")
    return
  os.makedirs(os.path.join(sweep_dir, 'slurm'), exist_ok=True)
  path = os.path.join(sweep_dir, 'slurm', 'sweep.sbatch')
  with open(path, 'w') as f:
    f.write(script)
  job = _sbatch(['sbatch', '--parsable', path])
  report_job = _sbatch([a.format(job=job) for a in report])
  for i in indices:
    trial_dir = os.path.join(sweep_dir, trials[i]['name'])
    os.makedirs(trial_dir, exist_ok=True)
    write_status(trial_dir, {**read_status(trial_dir), 'state': 'queued',
                             'slurm_job': f'{job}_{i}'})
  print(f'Submitted job array {job} ({len(indices)} tasks: {path}) and the report as job '
        f'{report_job}.\n  squeue -j {job}          # the trials\n'
        f'  python {" ".join(report_args)} --workdir={sweep_dir}   # results so far', flush=True)


def _sbatch(cmd: list[str]) -> str:
  result = subprocess.run(cmd, capture_output=True, text=True)
  if result.returncode:
    raise SweepError(f"sbatch failed: {(result.stderr or result.stdout).strip()}")
  return result.stdout.strip().split(';')[0]  # --parsable: 'jobid[;cluster]'
