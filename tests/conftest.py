"""Test set-up shared by every test module."""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types

import filelock
import pytest

# The repository root on the path, so tests import `models`, `train`, ... as users do.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tests import prewarmed  # pylint: disable=wrong-import-position
from tests.support import (  # pylint: disable=wrong-import-position
    GUARDED, LENET_8_STEPS, XLA_FLAGS)
# TensorFlow (tf.data only) must never take an accelerator, nor flood the log.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# One XLA:CPU device per entry point (not one per core): the suite's workers already
# keep the cores busy, and its recorded values are one device's. A test that wants more
# sets XLA_FLAGS' count (tests/support.xla_devices, which wins) or drops this.
os.environ['CLASSIC_CPU_DEVICES'] = '1'
os.environ['XLA_FLAGS'] = XLA_FLAGS  # (tests/support.py: a quicker compile)
# The suite's own caches (JAX's compiled programs, folder manifests; every process it
# starts inherits them): a test neither reads what the user's runs left in ~/.cache nor
# leaves anything there, and each session starts from nothing, as CI does.
CACHE = tempfile.mkdtemp(prefix='classic-convnets-tests-')
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)
os.environ['XDG_CACHE_HOME'] = CACHE
os.environ['JAX_COMPILATION_CACHE_DIR'] = os.path.join(CACHE, 'jax')
# PyPI's torchvision is a CUDA build whose compiled ops are missing on a CPU-only torch;
# its model definitions are pure Python, and only `_meta_registrations` needs the ops.
sys.modules.setdefault('torchvision._meta_registrations',
                       types.ModuleType('torchvision._meta_registrations'))


def shared_run(tmp_path_factory, name, args, env=None):
  """`python train.py ARGS` run once for the whole session into the workdir `name`: its
  workdir and the completed process. None of the tests that read it may change it. With
  pytest-xdist's workers (-n), the first to ask trains and the others read its run (a
  lock beside their temporary directories, which share a parent)."""
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):  # (a worker's: the session's, under it)
    shared = shared.parent
  workdir, record = shared / name, shared / f'{name}.json'
  with filelock.FileLock(str(shared / f'{name}.lock')):
    if not record.exists():
      result = prewarmed.run([sys.executable, 'train.py', *args, f'--workdir={workdir}'],
                             cwd=ROOT, text=True, timeout=900, env={**os.environ, **(env or {})})
      record.write_text(json.dumps([result.args, result.returncode, result.stdout,
                                    result.stderr]))
  return workdir, subprocess.CompletedProcess(*json.loads(record.read_text()))


@pytest.fixture(scope='session')
def trained_lenet(tmp_path_factory):
  """`python train.py --config=configs/lenet.py` (about a minute; under GUARDED, so
  tests/test_device_programs.py reads its transfers and compilations): the trainer's
  accuracy test and evaluate.py's tests read it."""
  return shared_run(tmp_path_factory, 'trained_lenet', ['--config=configs/lenet.py'], GUARDED)


@pytest.fixture(scope='session')
def lenet_8_steps(tmp_path_factory):
  """An 8-step LeNet-5 run (checkpoints 4 and 8, best_checkpoint/8) that the tests of
  corrupt checkpoints and of bad input copy, then break."""
  workdir, result = shared_run(tmp_path_factory, 'lenet_8_steps', LENET_8_STEPS)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir
