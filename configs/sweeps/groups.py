"""Grouped convolutions on CIFAR-10: the groups of configs/convnet.py's stages 2 and 3
(1, 2, 4, 8, 16, 32) x how each stage downsamples (max pool, or a strided 3x3 conv),
12 trials of 30 epochs.

Groups divide a kxk conv's parameters and multiply-adds by their number (summary.py
shows both): 32 groups make stage 2's first conv depthwise. What it costs is mixing:
a grouped conv's output sees its own group's channels only (ShuffleNet, Zhang et al.
2018, section 3.1), so with max pooling the channels of different groups meet again
only in the classifier, while a strided conv downsampling is a full conv that mixes
them at the end of every stage. `:small` (groups 1, 8 and 32 with the strided conv, 10
epochs: 3 trials) is a first look; `epochs=N` sets every trial's length.
  python sweep.py --config=configs/sweeps/groups.py --workdir=sweeps/groups \
      --launcher=slurm --gpus_per_task=1 --parallel=12
"""

from configs import common, hyper
from configs.convnet import get_config  # the trials' config: configs/convnet.py's arguments


def get_sweep(arg=None):
  a = common.parse_arg(arg, small=False, epochs=30.0)
  if a['small']:
    return hyper.product(hyper.sweep('groups', [1, 8, 32]), hyper.fixed('pool', 'conv'),
                         hyper.fixed('epochs', 10.0))
  return hyper.product(hyper.sweep('groups', [1, 2, 4, 8, 16, 32]),
                       hyper.sweep('pool', ['max', 'conv']),
                       hyper.fixed('epochs', a['epochs']))


def get_slurm(arg=None):
  del arg
  return {'gpus_per_task': 1, 'cpus_per_task': 8, 'time': '2:00:00'}
