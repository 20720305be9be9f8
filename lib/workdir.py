"""The workdir as a resource: checked before anything runs, and held by one run at a time.

The lock is an advisory `flock` on `workdir/.lock`: the kernel drops it when its holder
dies, even by SIGKILL, so a killed run never blocks the next one (no stale lock to
clean). The file also records who holds it, for the message a second run prints.
"""

import contextlib
import fcntl
import json
import os
import socket
import time


# Files of a run's workdir that other programs read (README: "The workdir").
METRICS = 'metrics.jsonl'             # one JSON record per training log line and
                                      # evaluation (train.py's alone)
FINAL_METRICS = 'final_metrics.json'  # written once the run has finished: its presence
                                      # says so (sweep.py, reproduce.py read it)
TRIAL_STATUS = 'trial.json'           # a sweep trial's state, error and wall time
CHECKPOINTS = 'checkpoints'           # the last `keep_checkpoints` states
BEST_CHECKPOINT = 'best_checkpoint'   # the state with the best eval top-1
CORRUPT_CHECKPOINTS = 'corrupt_checkpoints'  # checkpoints a resume could not read
ERRORS_LOG = 'errors.log'             # what orbax and tensorstore said about a checkpoint
                                      # fault, kept off the console (lib/checkpoints.py)
DIRECTORIES = (CHECKPOINTS, BEST_CHECKPOINT, CORRUPT_CHECKPOINTS)


class WorkdirError(ValueError):
  """A workdir that cannot be used, with what to do about it."""


def check_usable(workdir: str):
  """Create the workdir if needed; a clear error if it is a file or not writable, or
  holds a file where its checkpoint directories go."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir={workdir} is a file, not a directory; choose another path')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f'--workdir={workdir} cannot be created ({e.strerror}); choose a '
                       'path you can write to') from None
  if not os.access(workdir, os.R_OK | os.W_OK | os.X_OK):
    raise WorkdirError(f'--workdir={workdir} is not readable and writable by this user; '
                       'fix its permissions or choose another path')
  for name in DIRECTORIES:  # (orbax would train, then fail at the first save)
    path = os.path.join(workdir, name)
    if os.path.exists(path) and not os.path.isdir(path):
      raise WorkdirError(f'--workdir={workdir}: {path} is a file, not the directory of '
                         'checkpoints a run keeps there; move it away or choose another '
                         '--workdir')
    if os.path.isdir(path) and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
      raise WorkdirError(f'--workdir={workdir}: {path} is not readable and writable by '
                         'this user; fix its permissions or choose another --workdir')


class Lock:
  """Exclusive use of a workdir by one run (process 0 of a multi-process run)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, '.lock')
    self.file = None

  def acquire(self):
    f = open(self.path, 'a+')  # (self.file only once held: a failed acquire changes nothing)
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.close()
      holder = read_json(self.path, {})
      since = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.get('since', 0)))
      who = (f"pid {holder.get('pid')} on {holder.get('host')} since {since}" if holder
             else 'another process')
      raise WorkdirError(f'{os.path.dirname(self.path)} is in use by {who}; wait for that '
                         'run to finish or stop it, or choose another --workdir') from None
    f.truncate(0)  # (what follows is written at the end: 'a+')
    f.write(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(), 'since': time.time()}))
    f.flush()
    self.file = f
    return self

  def release(self):
    if self.file:
      fcntl.flock(self.file, fcntl.LOCK_UN)
      self.file.close()
      self.file = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def is_locked(workdir: str) -> bool:
  """Whether a run holds the workdir now (its lock is taken)."""
  try:
    with open(os.path.join(workdir, '.lock'), 'a+') as f:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (closing the file lets it go)
      return False
  except BlockingIOError:
    return True
  except OSError:
    return False


def read_json(path: str, default=None):
  """A JSON file's contents, or `default` if it is missing or unreadable."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
    return default


def write_json(path: str, value):
  """Write through a temporary file and rename: readers never see half a file."""
  with open(path + '.tmp', 'w') as f:
    json.dump(value, f, indent=2)
  os.replace(path + '.tmp', path)


def read_metrics(workdir: str) -> list[dict]:
  """The records of a run's metrics.jsonl ([] if it has none yet)."""
  records = []
  with contextlib.suppress(FileNotFoundError), open(os.path.join(workdir, METRICS)) as f:
    for line in f:
      with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a kill
        records.append(json.loads(line))
  return records
