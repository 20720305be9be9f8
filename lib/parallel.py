"""Processes and devices: jax.distributed for multi-host jobs, one XLA device per CPU
core, and the one mesh axis.

Every entry point that trains or evaluates (train, evaluate, predict) calls
`maybe_initialize_distributed` first, so a job started with one process per host (or
per GPU) sees every device of every host, and a CPU-only run every core; benchmark.py,
always one process, calls `use_cpu_cores` alone.
"""

import contextlib
import importlib.metadata
import importlib.util
import os

import jax
import numpy as np
from jax.sharding import Mesh

from lib.cli import CPU_DEVICES, host_cpus  # (the pin's variable; the cores we may use)


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
  else:  # one process (a multi-process job's keep one CPU device each)
    use_cpu_cores()


def use_cpu_cores():
  """One XLA:CPU device per core this process may use (cli.host_cpus), or
  $CLASSIC_CPU_DEVICES; set before JAX's backend starts, and only on a CPU-only host (no
  accelerator in JAX_PLATFORMS nor a JAX plugin installed). A device count already in
  XLA_FLAGS (--xla_force_host_platform_device_count) wins. docs/CPU_SPEED.md: two
  devices on two cores train LeNet-5 and ResNet-20 faster than one."""
  platforms = jax.config.jax_platforms  # (JAX_PLATFORMS; else any plugin installed)
  accelerator = (set(platforms.split(',')) != {'cpu'} if platforms else
                 any(importlib.util.find_spec(m) for m in ('jax_plugins', 'libtpu'))
                 or bool(importlib.metadata.entry_points(group='jax_plugins')))
  if accelerator or 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    return
  pinned = os.environ.get(CPU_DEVICES, '').strip()
  if pinned and not (pinned.isdigit() and int(pinned) > 0):
    raise ValueError(f'{CPU_DEVICES}={pinned}: give a positive count of XLA CPU devices '
                     '(1: one device), or unset it for one per core')
  with contextlib.suppress(RuntimeError):  # (JAX's backend has started: its devices stay)
    jax.config.update('jax_num_cpu_devices', int(pinned or host_cpus()))


def mesh_size(batch_size: int | None = None) -> int:
  """How many devices a `batch_size` trains on: every device, but for one process on
  the CPU the most that divide the batch (batch 7 on 2 cores: 1), so any batch runs."""
  n = jax.device_count()
  if batch_size and jax.process_count() == 1 and jax.devices()[0].platform == 'cpu':
    return max(d for d in range(1, n + 1) if batch_size % d == 0)
  return n


def data_mesh(batch_size: int | None = None, local: bool = False) -> Mesh:
  """The devices that train `batch_size` (mesh_size; all without one), or this process's,
  on one 'data' axis: batches split over it, the state replicated, so BatchNorm
  statistics are over the global batch."""
  devices = jax.local_devices() if local else jax.devices()
  return Mesh(np.array(devices[:mesh_size(batch_size)]), ('data',))


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
  """Whether each step must wait for the one before: several of this process's XLA:CPU
  devices in the mesh (one per core, use_cpu_cores, or XLA_FLAGS' count). XLA:CPU runs
  each device's part of a step on threads of a shared pool and meets the others at
  every collective; with steps queued ahead (asynchronous dispatch), a later step's
  collective can hold the threads an earlier one waits for, and the run aborts
  ("Termination timeout for all reduce"; seen with 2 devices on 2 cores and 8 on 2).
  GPUs and TPUs, and a single CPU device, queue steps ahead as usual."""
  return mesh.devices.flat[0].platform == 'cpu' and len(mesh.local_devices) > 1
