"""CIFAR-10 ResNets of depth 20, 32, 44, 56, 110: the ResNet paper's Table 6 and Fig. 6.

Each trial is configs/resnet.py:depth=N, the paper's recipe (64k iterations, batch 128).
`:1202` adds the 1202-layer network, `:seeds=3` repeats every depth with 3 seeds (the
paper reports ResNet-110 as best of 5 runs with mean and std).
  python sweep.py --config=configs/sweeps/resnet_depth.py --workdir=sweeps/resnet_depth \
      --launcher=slurm --gpus_per_task=1
"""

from configs import common, hyper
from configs.resnet import get_config  # the trials' config: configs/resnet.py's arguments


def get_sweep(arg=None):
  a = common.parse_arg(arg, seeds=1, **{'1202': False})
  depths = [20, 32, 44, 56, 110] + ([1202] if a['1202'] else [])
  trials = hyper.sweep('depth', depths)
  if a['seeds'] > 1:
    trials = hyper.product(trials, hyper.sweep('config.seed', range(a['seeds'])))
  return trials


def get_slurm(arg=None):
  del arg
  return {'gpus_per_task': 1, 'cpus_per_task': 8, 'time': '12:00:00'}
