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
from tests.support import GUARDED  # pylint: disable=wrong-import-position
# TensorFlow (tf.data only) must never take an accelerator, nor flood the log.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
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


@pytest.fixture(scope='session')
def trained_lenet(tmp_path_factory):
  """`python train.py --config=configs/lenet.py` run once for the whole session (about a
  minute; under GUARDED, so tests/test_device_programs.py reads its transfers and
  compilations): its workdir and the completed process. The trainer's accuracy test and
  evaluate.py's tests read it; none may change it. With pytest-xdist's workers (-n), the
  first to ask trains and the others read its run (a lock beside their temporary
  directories, which share a parent)."""
  shared = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):  # (a worker's: the session's, under it)
    shared = shared.parent
  workdir, record = shared / 'trained_lenet', shared / 'trained_lenet.json'
  with filelock.FileLock(str(shared / 'trained_lenet.lock')):
    if not record.exists():
      result = subprocess.run([sys.executable, 'train.py', '--config=configs/lenet.py',
                               f'--workdir={workdir}'], cwd=ROOT, text=True,
                              capture_output=True, timeout=900, env={**os.environ, **GUARDED})
      record.write_text(json.dumps([result.args, result.returncode, result.stdout,
                                    result.stderr]))
  return workdir, subprocess.CompletedProcess(*json.loads(record.read_text()))
