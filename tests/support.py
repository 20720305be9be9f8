"""What several test modules share: the environment of a guarded run, loopback ports
for the multi-process tests' coordinators, and an optimizer's first updates."""

import random
import socket

# An implicit host-device transfer is an error, and every compilation is logged.
GUARDED = {'JAX_TRANSFER_GUARD': 'disallow', 'JAX_LOG_COMPILES': '1'}
# XLA compiles the suite's programs quicker than a user's run does (conftest.py sets this
# for every process): LLVM at level 1 and XLA:CPU's classic emitters. Most of the suite's
# runs are a few steps, where compiling is most of their time (an 8-step LeNet-5
# train.py: 5.6-6.1 s of CPU against 7.0-8.0). Not compile_options.run_once's level 0:
# it slows a few hundred steps by half, and moves the last bit of airbench's recorded
# learning rates. A test of the default compile asks for it back.
XLA_FLAGS = '--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false'


def xla_devices(devices: int) -> str:
  """XLA_FLAGS for a process with `devices` XLA:CPU devices (and the suite's compile)."""
  return f'{XLA_FLAGS} --xla_force_host_platform_device_count={devices}'


# train.py's arguments for an 8-step LeNet-5 run: checkpoints at 4 and 8 (conftest.py).
LENET_8_STEPS = ['--config=configs/lenet.py', '--config.num_train_steps=8',
                 '--config.log_every_steps=4', '--config.eval_every_steps=4',
                 '--config.checkpoint_every_steps=4', '--config.schedule.warmup_steps=2',
                 '--config.batch_size=64']

# Linux hands out ports for bind(0) and outgoing connections from 32768-60999
# (net.ipv4.ip_local_port_range): a port probed and released there can be taken by any
# process before the coordinator binds it. Ports below that range are handed out to
# no one unasked.
BELOW_EPHEMERAL = (20000, 32768)


def free_port(low: int = BELOW_EPHEMERAL[0], high: int = BELOW_EPHEMERAL[1]) -> int:
  """A port in [low, high) that nothing listens on now, chosen at random so that two
  tests running at once do not pick the same one."""
  rng = random.SystemRandom()
  for _ in range(100):
    port = rng.randrange(low, high)
    with socket.socket() as s:
      try:
        s.bind(('localhost', port))
      except OSError:
        continue
      return port
  raise RuntimeError(f'no free port in [{low}, {high})')


def slurm_job_id() -> int:
  """A SLURM_JOB_ID whose coordinator port is free: JAX's SLURM detection listens on
  61440 + job id % 4096 (jax/_src/clusters/slurm_cluster.py), above the ephemeral range."""
  return free_port(61440, 65536) - 61440


def optimizer_updates(tx, steps: int = 4) -> list:
  """The updates of the optax transformation `tx` over a few steps of a small
  kernel-and-bias tree, each step's gradient a fixed function of the parameters."""
  import jax  # pylint: disable=import-outside-toplevel  (the other helpers need none)
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  params = {'conv': {'kernel': jnp.full((3, 3), 0.5), 'bias': jnp.full((3,), 0.1)}}
  state, out = tx.init(params), []
  for i in range(steps):
    grads = jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)) + 0.01 * i, params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    out.append(updates)
  return out
