"""Test set-up shared by every test module."""

import os
import sys
import types

# The repository root on the path, so tests import `models`, `train`, ... as users do.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# TensorFlow (tf.data only) must never take an accelerator, nor flood the log.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# PyPI's torchvision is a CUDA build whose compiled ops are missing on a CPU-only torch;
# its model definitions are pure Python, and only `_meta_registrations` needs the ops.
sys.modules.setdefault('torchvision._meta_registrations',
                       types.ModuleType('torchvision._meta_registrations'))
