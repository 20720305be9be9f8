"""Processes and devices: jax.distributed for multi-host jobs, and the one mesh axis.

Every entry point that touches a device (train, evaluate, predict, benchmark) calls
`maybe_initialize_distributed` first, so a job started with one process per host (or
per GPU) sees every device of every host.
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh


def maybe_initialize_distributed(config):
  """jax.distributed for multi-process runs, before anything touches a device.

  Explicit: JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and
  JAX_PROCESS_ID, for any set of machines (or several processes on one). Detected: a
  SLURM job step with several tasks, a TPU pod; or forced by config.distributed.
  Raises ValueError (one line, the fix) for an incomplete set of variables.
  """
  env = os.environ
  if 'JAX_NUM_PROCESSES' in env:
    missing = [k for k in ('JAX_COORDINATOR_ADDRESS', 'JAX_PROCESS_ID') if k not in env]
    if missing:
      raise ValueError(f'JAX_NUM_PROCESSES is set but {" and ".join(missing)} not; set '
                       'all three, or none to let SLURM/TPU detection work')
    jax.distributed.initialize(env['JAX_COORDINATOR_ADDRESS'], int(env['JAX_NUM_PROCESSES']),
                               int(env['JAX_PROCESS_ID']))
  elif (config.get('distributed') or int(env.get('SLURM_NTASKS', '1')) > 1
        or env.get('TPU_WORKER_HOSTNAMES')):
    jax.distributed.initialize()


def data_mesh(local: bool = False) -> Mesh:
  """All devices (or this process's) on one 'data' axis: batches split over it, the
  state replicated, so BatchNorm statistics are over the global batch."""
  return Mesh(np.array(jax.local_devices() if local else jax.devices()), ('data',))


def is_primary() -> bool:
  """Process 0 writes the files a job shares (metrics, configs, results)."""
  return jax.process_index() == 0


def host_to_devices():
  """A context for a deliberate host-to-device copy that JAX does not itself count as
  explicit (`jax.make_array_from_callback`, `make_array_from_process_local_data`: the
  ways to build one global array from each process's part). Everything else in a run
  moves with `jax.device_put` and `jax.device_get`, so a run holds under
  JAX_TRANSFER_GUARD=disallow: any other transfer is a bug that the guard names."""
  return jax.transfer_guard_host_to_device('allow')


def one_step_at_a_time(mesh) -> bool:
  """Whether each step must wait for the one before: several XLA:CPU devices in this
  process (--xla_force_host_platform_device_count, as the tests and laptops simulate a
  mesh). XLA:CPU runs each device's part of a step on threads of a shared pool and meets
  the others at every collective; with steps queued ahead (asynchronous dispatch), a
  later step's collective can hold the threads an earlier one waits for, and the run
  aborts ("Termination timeout for all reduce"; seen with 2 devices on 2 cores and 8 on
  2). GPUs and TPUs, and a single CPU device, queue steps ahead as usual."""
  return mesh.devices.flat[0].platform == 'cpu' and jax.local_device_count() > 1
