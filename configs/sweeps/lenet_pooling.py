"""LeNet-5 on mnist5k: max or average pooling, ReLU or tanh (4 trials).

The 1998 network subsampled by a trainable average and squashed with a scaled tanh;
modern LeNets use max pooling and ReLU. Offline, 4 x ~1 minute on a 2-core CPU.
  python sweep.py --config=configs/sweeps/lenet_pooling.py --workdir=sweeps/lenet_pooling
`:quick` (one epoch each) is the smoke test of the sweep machinery (tests/test_sweep.py).
"""

from configs import common, hyper
from configs.lenet import get_config  # the trials' config: configs/lenet.py's arguments


def get_sweep(arg=None):
  a = common.parse_arg(arg, quick=False)
  trials = hyper.product(hyper.sweep('pooling', ['max', 'avg']),
                         hyper.sweep('activation', ['relu', 'tanh']))
  if a['quick']:
    trials = hyper.product(trials, hyper.fixed('config.num_epochs', 1.0),  # 62 steps
                           hyper.fixed('config.log_every_steps', 20),
                           hyper.fixed('config.eval_every_steps', 30),
                           hyper.fixed('config.checkpoint_every_steps', 30))
  return trials


def get_slurm(arg=None):
  """Resources of one trial: LeNet needs no GPU."""
  del arg
  return {'gpus_per_task': 0, 'cpus_per_task': 1, 'time': '00:30:00'}
