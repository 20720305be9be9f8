"""Test set-up shared by every test module."""

import os
import subprocess
import sys
import types

import pytest

# The repository root on the path, so tests import `models`, `train`, ... as users do.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# TensorFlow (tf.data only) must never take an accelerator, nor flood the log.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# PyPI's torchvision is a CUDA build whose compiled ops are missing on a CPU-only torch;
# its model definitions are pure Python, and only `_meta_registrations` needs the ops.
sys.modules.setdefault('torchvision._meta_registrations',
                       types.ModuleType('torchvision._meta_registrations'))


@pytest.fixture(scope='session')
def trained_lenet(tmp_path_factory):
  """`python train.py --config=configs/lenet.py` run once for the whole session (about a
  minute): its workdir and the completed process. The trainer's accuracy test and
  evaluate.py's tests read it; none may change it."""
  workdir = tmp_path_factory.mktemp('lenet')
  result = subprocess.run([sys.executable, 'train.py', '--config=configs/lenet.py',
                           f'--workdir={workdir}'], cwd=ROOT, text=True,
                          capture_output=True, timeout=900)
  return workdir, result
