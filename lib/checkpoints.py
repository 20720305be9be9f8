"""Checkpoints of a workdir: orbax managers for training, and reading one anywhere.

  workdir/checkpoints/<step>/       the last `keep_checkpoints` states (asynchronous)
  workdir/best_checkpoint/<step>/   the state with the best eval top-1 so far

A checkpoint that cannot be read or written is one line for the user, naming the steps
involved; what orbax and tensorstore report about it goes to a details log the line
names (see `save_details`).
"""

import atexit
import contextlib
import functools
import logging as pylogging
import os
import re
import sys
import tempfile
import threading
import time
import traceback

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from jax.sharding import SingleDeviceSharding

from lib import workdir as workdir_lib

LATEST, BEST = workdir_lib.CHECKPOINTS, workdir_lib.BEST_CHECKPOINT
# A step orbax is still writing (or failed to write): <step>.orbax-checkpoint-tmp...
UNFINISHED = re.compile(r'(\d+)\.orbax-checkpoint-tmp.*')


def manager(workdir: str, kind: str = LATEST, keep: int = 1) -> ocp.CheckpointManager:
  _divert_reports()
  _details.home = workdir
  # Both managers may save the same step at once; multi-process saves synchronise on
  # barriers named after the step, so each manager needs its own barrier names.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, enable_async_checkpointing=True,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=kind))
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, kind)), options=options)


def saved_steps(workdir: str, kind: str = LATEST) -> list[int]:
  """The steps saved in workdir/kind/, sorted ([] when there are none)."""
  directory = os.path.join(workdir, kind)
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory)
                if d.isdigit() and os.path.isdir(os.path.join(directory, d)))


def mismatch(expected, found, what: str = 'the checkpoint') -> str | None:
  """Where the arrays of `found` (a checkpoint's variables) differ from those a model
  expects, in one line; None when every path and shape matches."""
  def shapes(tree):
    return {jax.tree_util.keystr(path, simple=True, separator='/'): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  want, have = shapes(expected), shapes(found)
  for path in sorted(set(want) | set(have)):
    if path not in have:
      return f'the model has {path} {want[path]}, which {what} lacks'
    if path not in want:
      return f'{what} has {path} {have[path]}, which the model lacks'
    if want[path] != have[path]:
      return f'{what} has {path} of shape {have[path]} where the model has {want[path]}'
  return None


def _int_keys(tree):
  """The tree with its list indices as ints again: orbax writes a model's block lists
  ({0: ..., 1: ...} in the NNX state) with string keys."""
  if isinstance(tree, dict):
    return {int(k) if isinstance(k, str) and k.isdigit() else k: _int_keys(v)
            for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return type(tree)(map(_int_keys, tree))
  return tree


def read_state(workdir: str, kind: str = LATEST, step: int | None = None) -> dict:
  """A saved state as a dict of host numpy arrays, whatever devices or processes saved it.

  For evaluation, tests and inspection; training restores into its own sharding instead.
  FileNotFoundError when there is no checkpoint; CorruptCheckpointError (one line, with
  the details log's path) when the step cannot be read.
  """
  _divert_reports()
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, kind)))
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {os.path.join(workdir, kind)}')
  path = os.path.join(mngr.directory, str(step), 'default')
  checkpointer = ocp.StandardCheckpointer()
  try:
    # Orbax warns that the step's _CHECKPOINT_METADATA is not in the item's directory (it
    # is one level up, and reading the item does not need it): kept off the console.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
      metadata = checkpointer.metadata(path).item_metadata
    finally:
      logging.set_verbosity(verbosity)
    here = SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                          metadata)
    return _int_keys(jax.tree.map(np.asarray, checkpointer.restore(path, target)))
  except Exception as e:  # pylint: disable=broad-except  (orbax's and tensorstore's vary)
    _details.add(''.join(traceback.format_exception(e)))
    raise CorruptCheckpointError(
        f'checkpoint {step} in {mngr.directory} cannot be read ({reason(e)}; details: '
        f'{save_details()})') from None


def restore_latest(workdir: str, mngr: ocp.CheckpointManager, target, keep: int):
  """(state, step, manager) from the newest readable checkpoint; (None, None, mngr) if
  there is none.

  A checkpoint that fails to restore (truncated, damaged) is reported (one line, the
  details in workdir/errors.log) and moved to workdir/corrupt_checkpoints/, and the one
  before it is tried: never a crash loop, and never a silent restart from scratch: if
  checkpoints exist but none can be read, the run stops and changes nothing (the details
  then go to a file in the temporary directory).
  """
  failures = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      state = mngr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # pylint: disable=broad-except
      _details.add(''.join(traceback.format_exception(e)))
      failures.append((step, e))
      mngr.close()  # (a manager that failed one step can refuse a sound one after it)
      mngr = manager(workdir, LATEST, keep)
      continue
    if failures:
      mngr.wait_until_finished()
      mngr.close()
      aside = os.path.join(workdir, workdir_lib.CORRUPT_CHECKPOINTS)
      log = save_details(workdir)
      for bad, error in failures:
        if jax.process_index() == 0:
          os.makedirs(aside, exist_ok=True)
          os.replace(os.path.join(mngr.directory, str(bad)),
                     os.path.join(aside, f'{bad}-{int(time.time())}'))
        print(f'WARNING: checkpoint {bad} in {mngr.directory} cannot be read '
              f'({reason(error)}); moved it to {aside}/ and resumed from step {step} '
              f'(details: {log})', flush=True)
      if jax.process_count() > 1:
        multihost_utils.sync_global_devices('corrupt_checkpoints_moved')
      mngr = manager(workdir, LATEST, keep)
    return state, step, mngr
  if failures:
    raise CorruptCheckpointError(
        f'no checkpoint in {mngr.directory} can be read ('
        + '; '.join(f'step {s}: {reason(e, 120)}' for s, e in failures)
        + '); nothing was changed. Restore them from a backup, or move the directory '
        f'away to start over (details: {save_details()})')
  return None, None, mngr


def write_failure(workdir: str, mngr: ocp.CheckpointManager, step: int | None,
                  error: Exception) -> str:
  """The line for a checkpoint that could not be written (a full disk): the step that
  failed (orbax reports an asynchronous write's failure at the next save), the intact
  one a rerun resumes from, and where the details are (see _Details.save)."""
  _details.add(''.join(traceback.format_exception(error)))
  try:
    unfinished = sorted(int(m.group(1)) for m in map(UNFINISHED.fullmatch,
                                                     os.listdir(mngr.directory)) if m)
  except OSError:
    unfinished = []
  failed = unfinished[0] if unfinished else step
  what = f'checkpoint {failed}' if failed is not None else 'a checkpoint'
  intact = saved_steps(workdir, LATEST)
  kept = (f'checkpoint {intact[-1]} in {os.path.join(workdir, LATEST)} is intact: free '
          'space and run the same command to resume from it' if intact else
          'no checkpoint was complete yet: free space and run the same command')
  return (f'could not write {what} in {mngr.directory} ({reason(error)}); {kept} '
          f'(details: {save_details(workdir)})')


class CorruptCheckpointError(ValueError):
  """A checkpoint that cannot be read (or, resuming, none of them)."""


def reason(error: Exception, length: int = 200) -> str:
  """An orbax or tensorstore error in a few words: its first line without tensorstore's
  spec (a page of JSON); when long, its kind and its last clauses (where tensorstore
  names the file and what is wrong with it)."""
  line = (str(error).strip().splitlines() or [''])[0].split(' [tensorstore_spec')[0]
  kind, clauses = type(error).__name__, line.split(': ') if line else []
  if not clauses:
    return kind
  kept = clauses.pop()
  kept = kept if len(kept) <= length else '...' + kept[-length:]
  while clauses and len(kept) + len(clauses[-1]) + 2 <= length:
    kept = f'{clauses.pop()}: {kept}'
  return f'{kind}: {"...: " if clauses else ""}{kept}'


# ------------------------------------------------------------------------ fault reports
# A checkpoint that cannot be read or written makes orbax and tensorstore report it at
# length, from their own threads: orbax logs each failed operation with its traceback
# (absl, ERROR; up to 9 for one full disk), and the reads or writes still in flight when
# orbax's per-call asyncio event loop ends find it closed: tensorstore's completion
# callbacks fail in `loop.call_soon_threadsafe` and it reports each as unraisable
# (sys.unraisablehook prints the traceback: dozens per corrupt checkpoint, some after
# the program's own message).
# These reports are kept off the console and written to the details log that the
# program's one-line message names.


class _Details:
  """The reports of this process: held until a message names their file, then appended
  to it as they come (late callbacks)."""

  def __init__(self):
    self.lock = threading.Lock()
    self.held = []
    self.path = None
    self.home = None  # the workdir this process writes checkpoints to, if any

  def add(self, text: str):
    with self.lock:
      if self.path is None:
        self.held.append(text)
        return
      with contextlib.suppress(OSError), open(self.path, 'a') as f:  # (full: said already)
        f.write(text)

  def save(self, workdir: str | None) -> str:
    """The file the reports go to: workdir/errors.log (appended to) for a run that
    writes its workdir anyway; a new file in the temporary directory for a program that
    changes nothing, or when the workdir cannot take it (a full disk)."""
    with self.lock:
      text = f'--- {time.strftime("%Y-%m-%d %H:%M:%S")} {" ".join(sys.argv)}\n' + ''.join(
          self.held)
      index = jax.process_index()
      name = workdir_lib.ERRORS_LOG if index == 0 else f'errors.process{index}.log'
      for path in ([os.path.join(workdir, name)] if workdir else []) + [None]:
        try:
          if path is None:
            fd, path = tempfile.mkstemp(prefix='checkpoint-errors-', suffix='.log')
            os.close(fd)
          with open(path, 'a') as f:
            f.write(text)
        except OSError:
          continue
        self.held, self.path = [], path
        return path
      return 'none saved: no writable file'


_details = _Details()


def save_details(workdir: str | None = None) -> str:
  """Where this process's fault reports are (see _Details.save), for a message to name."""
  return _details.path or _details.save(workdir)


class _OrbaxErrors(pylogging.Filter):
  """orbax's ERROR records (each a failed operation with its traceback; and asyncio's
  "Task exception was never retrieved" for an orbax coroutine or tensorstore read that
  failed beside another) to the details, not the console. Orbax's INFO and WARNING
  lines are left to --verbosity."""
  PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(ocp.__file__))) + os.sep
  format = pylogging.Formatter(
      '%(asctime)s %(levelname)s %(threadName)s %(filename)s:%(lineno)d] %(message)s').format

  def filter(self, record):
    if record.levelno < pylogging.ERROR:
      return True
    # (asyncio's name the failed future: orbax's frames in its traceback, or tensorstore's
    # spec, with which tensorstore's errors end)
    text = self.format(record)
    if not (record.pathname.startswith(self.PACKAGE) or self.PACKAGE in text
            or record.name == 'asyncio' and '[tensorstore_spec' in text):
      return True
    _details.add(text + '\n')
    return False


def _unraisablehook(previous, unraisable):
  """A tensorstore callback that found orbax's event loop closed (RuntimeError('Event
  loop is closed') raised in asyncio's `call_soon_threadsafe`, called from C: the
  traceback's first frame) to the details; anything else to `previous`."""
  error, tb = unraisable.exc_value, unraisable.exc_traceback
  if (type(error) is RuntimeError and str(error) == 'Event loop is closed'
      and tb is not None and tb.tb_frame.f_code.co_name == 'call_soon_threadsafe'):
    _details.add('late tensorstore callback: RuntimeError: Event loop is closed\n')
  else:
    previous(unraisable)


def _unexplained_reports():
  """At exit: reports no message named (a run that went on despite them) are saved and
  pointed to, not lost."""
  if _details.held and _details.path is None:
    print(f'orbax reported checkpoint errors; details: {_details.save(_details.home)}',
          file=sys.stderr, flush=True)


@functools.cache
def _divert_reports():
  """Once per process, before orbax first runs: its reports to the details log."""
  orbax_errors = _OrbaxErrors()
  pylogging.getLogger('absl').addFilter(orbax_errors)
  pylogging.getLogger('asyncio').addFilter(orbax_errors)
  sys.unraisablehook = functools.partial(_unraisablehook, sys.unraisablehook)
  atexit.register(_unexplained_reports)
