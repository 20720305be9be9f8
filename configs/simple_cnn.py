"""The tutorial SimpleCNN (two strided 5x5 convs, channel dropout, one linear layer) on
CIFAR-10: a first network that trains in minutes on a CPU. AdamW, cosine, 30 epochs.
`mnist5k`: on the offline MNIST sample instead.
  python train.py --config=configs/simple_cnn.py --workdir=runs/simple_cnn
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, mnist5k=False)
  c = base_config()
  c.model = {'name': 'simple_cnn'}
  c.dataset.name = 'mnist5k' if a['mnist5k'] else 'cifar10'
  c.dataset.augment = 'none' if a['mnist5k'] else 'cifar'
  common.in_epochs(c, 30)
  common.adamw_cosine_recipe(c, learning_rate=1e-3, warmup_steps=100)
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  return c
