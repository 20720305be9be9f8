"""VGG (Simonyan & Zisserman 2015), configurations A-E of Table 1.

ImageNet (default), section 3.1: batch 256, SGD momentum 0.9, weight decay 5e-4,
dropout 0.5 on the first two FC layers, learning rate 1e-2 divided by 10 when the
validation accuracy stops improving (three times in all, 74 epochs); single-scale
training at S = 256 and testing at Q = 256 (Table 3), or `jitter` for S in [256, 512]
and Q = 384. `cifar`: CIFAR-10 with a one-layer head (see models/vgg.py), SGD at 0.1
with `bn` (0.01 without) on a cosine schedule for 200 epochs.
  python train.py --config=configs/vgg.py:config=D --workdir=runs/vgg16
  python train.py --config=configs/vgg.py:config=A,cifar,bn --workdir=runs/vgg11_bn_cifar
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, config='D', bn=False, cifar=False, jitter=False)
  c = base_config()
  name = 'vgg_' + a['config'].lower().replace('-', '_') + ('_bn' if a['bn'] else '')
  c.optimizer.weight_decay = 5e-4
  if a['cifar']:
    c.model = {'name': name, 'head': 'linear'}
    # (CIFAR-10 and the cifar augmentation are the defaults)
    common.in_epochs(c, 200, eval_every=5, checkpoint_every=5)
    c.schedule.name = 'cosine'
    c.schedule.learning_rate = 0.1 if a['bn'] else 0.01
    return c
  c.model = {'name': name}
  common.imagenet(c, 'vgg', 256)
  c.dataset.scale_min, c.dataset.scale_max = (256, 512) if a['jitter'] else (256, 256)
  c.dataset.eval_resize = 384 if a['jitter'] else 256
  common.in_epochs(c, 74, eval_every=1, checkpoint_every=1)
  common.plateau_recipe(c)
  return c
