"""Two processes over loopback (jax.distributed, gloo CPU collectives, 2 devices each)
train exactly as one process with 4 devices: same batches, same eval, same parameters."""

import json
import os
import subprocess
import sys

import jax
import numpy as np

from lib import checkpoints
from tests.support import free_port, slurm_job_id, xla_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 8 steps of a small convnet on mnist5k; the global batch of 24 leaves each process a
# 500-example half of the test set that its local batch of 12 does not divide. Few steps:
# the two jobs sum in different orders, and a longer run would amplify that rounding by an
# amount that depends on the processor; 8 steps stay at rounding level on any x86-64.
ARGS = ['--config=configs/convnet.py:dataset=mnist5k,width=8,stages=2,depth=1,epochs=0.048',
        '--config.batch_size=24', '--config.log_every_steps=2',
        '--config.eval_every_steps=4', '--config.checkpoint_every_steps=4']



def launch(workdir, devices, process_id=None, num_processes=None, port=None, args=ARGS,
           command=None, slurm_job=None):
  """train.py (or `command`, a program and its flags) with `devices` CPU devices; one of
  `num_processes` started by JAX's variables or, given `slurm_job`, by SLURM's (as srun
  sets them for a job step of that many tasks on one node)."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'JAX_'))}
  env.update(JAX_PLATFORMS='cpu', XLA_FLAGS=xla_devices(devices))
  if num_processes and slurm_job is not None:
    env.update(SLURM_JOB_ID=str(slurm_job), SLURM_STEP_NODELIST='localhost',
               SLURM_NTASKS=str(num_processes), SLURM_STEP_NUM_NODES='1',
               SLURM_PROCID=str(process_id), SLURM_LOCALID=str(process_id))
  elif num_processes:
    env.update(JAX_COORDINATOR_ADDRESS=f'localhost:{port}',
               JAX_NUM_PROCESSES=str(num_processes), JAX_PROCESS_ID=str(process_id))
  log = f'{workdir}.{process_id or 0}.log'  # a file: a pipe can fill up and block
  with open(log, 'w') as f:
    argv = command or ['train.py', *args, f'--workdir={workdir}']
    process = subprocess.Popen([sys.executable, *argv],
                               cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
  return process, log


def finish(launched):
  process, log = launched
  process.wait(timeout=600)
  with open(log) as f:
    out = f.read()
  assert process.returncode == 0, out[-3000:]
  return out


def test_two_processes_match_one(tmp_path):
  """Two processes of 2 devices each, started from SLURM's variables alone (as `srun
  --ntasks=2` sets them on one node; JAX_* variables: the evaluation test below), train
  as one process of 4 devices."""
  job = slurm_job_id()
  pair = [launch(tmp_path / 'two', 2, i, 2, slurm_job=job) for i in (0, 1)]
  outputs = [finish(p) for p in pair]
  finish(launch(tmp_path / 'one', 4))
  assert all('global batch 24 over 4 devices' in out for out in outputs)  # one job

  records = {k: [json.loads(l) for l in open(tmp_path / k / 'metrics.jsonl')]
             for k in ('one', 'two')}
  evals = {k: [r for r in v if r['split'] == 'test'] for k, v in records.items()}
  # Written once (by process 0), and every test example counted exactly once.
  assert [r['step'] for r in evals['one']] == [r['step'] for r in evals['two']] == [4, 8]
  assert all(r['num_examples'] == 1000 for r in evals['one'] + evals['two'])
  assert '1000 examples' in outputs[1]  # process 1 computed the same global eval
  for a, b in zip(evals['one'], evals['two'], strict=True):
    assert a['top1'] == b['top1'] and a['top5'] == b['top5']
    np.testing.assert_allclose(a['loss'], b['loss'], rtol=1e-5)
  trains = {k: [(r['step'], r['loss']) for r in v if r['split'] == 'train']
            for k, v in records.items()}
  assert [s for s, _ in trains['one']] == [s for s, _ in trains['two']] and trains['one']
  np.testing.assert_allclose([l for _, l in trains['two']], [l for _, l in trains['one']],
                             rtol=1e-5)
  one, two = (checkpoints.read_state(str(tmp_path / k)) for k in ('one', 'two'))
  assert int(one['step']) == int(two['step']) == 8
  for a, b in zip(jax.tree.leaves(one['params']), jax.tree.leaves(two['params']), strict=True):
    # Cross-process all-reduce (gloo) sums in another order than in-process: rounding.
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_evaluate_over_two_processes_matches_one(tmp_path):
  """evaluate.py --mode=10crop as a two-process job: each process views its own part of
  the test split, the parts are gathered, and the result is one process's."""
  workdir = tmp_path / 'run'
  finish(launch(workdir, 2, args=[*ARGS[:-1], '--config.num_epochs=0.024']))
  command = ['evaluate.py', f'--workdir={workdir}', '--checkpoint=latest', '--mode=10crop']
  finish(launch(tmp_path / 'eval_one', 2, command=command))
  one = json.load(open(workdir / 'eval' / 'latest_10crop.json'))
  port = free_port()
  pair = [launch(tmp_path / 'eval_two', 1, i, 2, port, command=command) for i in (0, 1)]
  outputs = [finish(p) for p in pair]
  two = json.load(open(workdir / 'eval' / 'latest_10crop.json'))
  assert one['num_examples'] == two['num_examples'] == 1000
  assert one['top1'] == two['top1'] and one['top5'] == two['top5']
  np.testing.assert_allclose(one['loss'], two['loss'], rtol=1e-6)
  assert all('on 1000 examples' in out for out in outputs)  # both hold the whole result
  records = [json.loads(l) for l in open(workdir / 'metrics.jsonl')]
  assert not any('mode' in r for r in records)  # evaluate.py keeps to eval/*.json
