"""The convnet design space on CIFAR-10: kernel size x first-conv stride x downsampling x
depth per stage x padding mode, 3 x 2 x 3 x 3 x 2 = 108 trials of configs/convnet.py.

Questions it answers: does a bigger kernel pay for its multiply-adds; does a stride-2
first conv lose more than it saves; max pool, average pool or a strided 3x3 conv to
downsample (Springenberg et al. 2015, "all convolutional net"); how deep per stage; do
reflected borders beat zeros. `:small` (kernel 3/5, max pool/conv, depth 1/2: 8 trials,
10 epochs) is a first look; `epochs=N` sets every trial's length.
  python sweep.py --config=configs/sweeps/kernel_stride_pool.py --workdir=sweeps/ksp \
      --launcher=slurm --gpus_per_task=1 --parallel=16
"""

from configs import common, hyper
from configs.convnet import get_config  # the trials' config: configs/convnet.py's arguments


def get_sweep(arg=None):
  a = common.parse_arg(arg, small=False, epochs=30.0)
  if a['small']:
    return hyper.product(hyper.sweep('kernel', [3, 5]), hyper.sweep('pool', ['max', 'conv']),
                         hyper.sweep('depth', [1, 2]), hyper.fixed('epochs', 10.0))
  return hyper.product(hyper.sweep('kernel', [3, 5, 7]), hyper.sweep('stride', [1, 2]),
                       hyper.sweep('pool', ['max', 'avg', 'conv']),
                       hyper.sweep('depth', [1, 2, 3]),
                       hyper.sweep('padding', ['zeros', 'reflect']),
                       hyper.fixed('epochs', a['epochs']))


def get_slurm(arg=None):
  del arg
  return {'gpus_per_task': 1, 'cpus_per_task': 8, 'time': '2:00:00'}
