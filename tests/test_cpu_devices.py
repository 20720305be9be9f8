"""One XLA:CPU device per core (lib/parallel.use_cpu_cores), the pin that overrides it,
and the mesh of the most devices that divide the batch."""

import json
import os
import sys

import pytest

from lib import parallel
from tests import prewarmed
from tests.conftest import ROOT
from tests.support import LENET_8_STEPS

PIN = parallel.CPU_DEVICES
COUNT = """
import os, sys
sys.path.insert(0, {root!r})
os.sched_setaffinity(0, {cores})  # (the cores this process may use)
from lib import parallel
import jax
parallel.use_cpu_cores()
print(jax.config.jax_num_cpu_devices, jax.device_count() if {start} else '-')
"""


def cpu_devices(cores=None, start=True, **env):
  """(jax_num_cpu_devices as use_cpu_cores set it, the devices JAX then has) in a fresh
  process on `cores` (default: all of this one's), with the pin and XLA_FLAGS unset but
  for `env`."""
  environ = {k: v for k, v in os.environ.items() if k not in (PIN, 'XLA_FLAGS')}
  code = COUNT.format(root=ROOT, cores=cores or os.sched_getaffinity(0), start=start)
  result = prewarmed.run([sys.executable, '-c', code], cwd=ROOT, env={**environ, **env},
                         text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout.split()[-2:]


def test_a_cpu_run_has_a_device_per_core_unless_pinned():
  cores = str(len(os.sched_getaffinity(0)))
  assert cpu_devices() == [cores, cores]  # (2 on a 2-core CI machine)
  assert cpu_devices(cores={0}) == ['1', '1']  # its cores, not the machine's
  assert cpu_devices(**{PIN: '3'}) == ['3', '3']
  # A device count in XLA_FLAGS wins; an accelerator's platform is left alone.
  assert cpu_devices(**{PIN: '3', 'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
                     ) == ['-1', '4']
  assert cpu_devices(start=False, JAX_PLATFORMS='cuda') == ['-1', '-']


@pytest.mark.parametrize('program', ['train.py', 'benchmark.py'])
def test_a_bad_pin_is_one_line_error(tmp_path, program):
  args = ([*LENET_8_STEPS, f'--workdir={tmp_path}'] if program == 'train.py' else
          ['--config=configs/lenet.py', '--steps=1'])
  result = prewarmed.run([sys.executable, program, *args], cwd=ROOT, text=True,
                         timeout=300, env={**os.environ, PIN: 'two'})
  assert result.returncode == 2
  assert f'{PIN}=two: give a positive count of XLA CPU devices' in result.stderr
  assert 'Traceback' not in result.stderr


def test_a_batch_trains_on_the_most_devices_that_divide_it(tmp_path):
  """Batch 6 on 4 CPU devices: 3 of them, said in the start line and kept in run.json;
  batch 7: 1 device. Any batch is accepted on one process's CPU devices. evaluate.py,
  on all 4 (its eval batches padded to them), gives what training's evaluation gave."""
  for batch, devices in ((6, 3), (7, 1)):
    workdir = tmp_path / str(batch)
    result = prewarmed.run([sys.executable, 'train.py', *LENET_8_STEPS,
                            '--config.num_train_steps=2', '--config.eval_every_steps=2',
                            f'--config.batch_size={batch}', f'--workdir={workdir}'],
                           cwd=ROOT, text=True, timeout=600, env={**os.environ, PIN: '4'})
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'global batch {batch} over {devices} devices' in result.stdout, result.stdout
    assert json.load(open(workdir / 'run.json'))['devices'] == devices
  result = prewarmed.run([sys.executable, 'evaluate.py', f'--workdir={workdir}',
                          '--checkpoint=latest'], cwd=ROOT, text=True, timeout=600,
                         env={**os.environ, PIN: '4'})
  assert result.returncode == 0, result.stderr[-2000:]
  (record,) = [json.loads(f.read_text()) for f in (workdir / 'eval').iterdir()]
  final = json.load(open(workdir / 'final_metrics.json'))
  assert record['num_examples'] == final['num_examples']
  assert record['top1'] == pytest.approx(final['top1']), (record, final)
