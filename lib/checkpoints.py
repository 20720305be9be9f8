"""Checkpoints of a workdir: orbax managers for training, and reading one anywhere.

  workdir/checkpoints/<step>/       the last `keep_checkpoints` states (asynchronous)
  workdir/best_checkpoint/<step>/   the state with the best eval top-1 so far
"""

import os
import time

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

LATEST, BEST = 'checkpoints', 'best_checkpoint'


def manager(workdir: str, kind: str = LATEST, keep: int = 1) -> ocp.CheckpointManager:
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
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


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


def read_state(workdir: str, kind: str = LATEST, step: int | None = None) -> dict:
  """A saved state as a dict of host numpy arrays, whatever devices or processes saved it.

  For evaluation, tests and inspection; training restores into its own sharding instead.
  """
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, kind)))
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {os.path.join(workdir, kind)}')
  path = os.path.join(mngr.directory, str(step), 'default')
  checkpointer = ocp.StandardCheckpointer()
  # Orbax warns that the step's _CHECKPOINT_METADATA is not in the item's directory (it
  # is one level up, and reading the item does not need it): keep that off the console.
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.ERROR)
  try:
    metadata = checkpointer.metadata(path).item_metadata
  finally:
    logging.set_verbosity(verbosity)
  here = SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                        metadata)
  return jax.tree.map(np.asarray, checkpointer.restore(path, target))


def restore_latest(workdir: str, mngr: ocp.CheckpointManager, target, keep: int):
  """(state, step, manager) from the newest readable checkpoint; (None, None, mngr) if
  there is none.

  A checkpoint that fails to restore (truncated, damaged) is reported and moved to
  workdir/corrupt_checkpoints/, and the one before it is tried: never a crash loop, and
  never a silent restart from scratch: if checkpoints exist but none can be read, the
  run stops and moves nothing.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  failures = []
  for step in steps:
    try:
      state = mngr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:  # pylint: disable=broad-except
      failures.append((step, f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'))
      continue
    if failures:
      mngr.wait_until_finished()
      mngr.close()
      aside = os.path.join(workdir, 'corrupt_checkpoints')
      for bad, why in failures:
        if jax.process_index() == 0:
          os.makedirs(aside, exist_ok=True)
          os.replace(os.path.join(mngr.directory, str(bad)),
                     os.path.join(aside, f'{bad}-{int(time.time())}'))
        print(f'WARNING: checkpoint {bad} in {mngr.directory} is unreadable ({why}); '
              f'moved it to {aside}/ and resumed from step {step}', flush=True)
      multihost_sync('corrupt_checkpoints_moved')
      mngr = manager(workdir, LATEST, keep)
    return state, step, mngr
  if failures:
    raise CorruptCheckpointError(
        f'no checkpoint in {mngr.directory} can be read ('
        + '; '.join(f'step {s}: {why}' for s, why in failures)
        + '); nothing was changed. Restore them from a backup, or move the directory '
        'away to start over')
  return None, None, mngr


class CorruptCheckpointError(ValueError):
  """Checkpoints exist but none can be read."""


def multihost_sync(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)
