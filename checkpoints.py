"""Checkpoints of a workdir: orbax managers for training, and reading one anywhere.

  workdir/checkpoints/<step>/       the last `keep_checkpoints` states (asynchronous)
  workdir/best_checkpoint/<step>/   the state with the best eval top-1 so far
"""

import os

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
  metadata = checkpointer.metadata(path).item_metadata
  here = SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                        metadata)
  return jax.tree.map(np.asarray, checkpointer.restore(path, target))
