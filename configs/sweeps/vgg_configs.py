"""VGG configurations A-E (Simonyan & Zisserman 2015, Table 1) on CIFAR-10.

Each trial is configs/vgg.py:config=X,cifar,bn: the conv stacks of Table 1 with batch
normalisation (which lets even E train from scratch, where the paper initialised the
deeper nets from A) and a linear head for 32x32 inputs. `:lrn` adds A-LRN.
  python sweep.py --config=configs/sweeps/vgg_configs.py --workdir=sweeps/vgg
"""

from configs import common, hyper
from configs.vgg import get_config  # the trials' config: configs/vgg.py's arguments


def get_sweep(arg=None):
  lrn = common.parse_arg(arg, lrn=False)['lrn']  # (a misspelt argument is refused)
  variants = ['A', 'B', 'C', 'D', 'E'] + (['A-LRN'] if lrn else [])
  return hyper.product(hyper.sweep('config', variants), hyper.fixed('cifar', True),
                       hyper.fixed('bn', True))


def get_slurm(arg=None):
  del arg
  return {'gpus_per_task': 1, 'cpus_per_task': 8, 'time': '8:00:00'}
