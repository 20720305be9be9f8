"""The generic convnet (models/convnet.py) on CIFAR-10, shaped by the config argument:
the design-space questions of the sweeps (which kernel, what stride, pool or strided
conv, how deep, which padding, how many groups) as one-word settings.

  kernel=3      kernel size of every conv          stride=1   stride of each stage's first conv
  depth=2       convs per stage                    width=32   width of stage 1 (doubles)
  stages=3      number of stages                   pool=max   max | avg | conv | none
  padding=zeros zeros | reflect | edge | circular  dilation=1
  groups=1      groups of the kxk convs of stage 2 on (it must divide width)
  dataset=cifar10 (or mnist5k, offline)            epochs=30

Stage 1 stays a full convolution whatever `groups` says: it reads the image's 3
channels, as MobileNet's first layer (Howard et al. 2017, Table 1) is a full 3x3 conv
before its depthwise ones. A grouped stage's convs read and write the previous stage's
width and its own, so groups=width makes stage 2's first conv depthwise (each channel
its own 2 filters) and the later ones 2, 4, ... channels a group.

Every stage ends with the chosen downsampling (2x2/2 pool or a 3x3/2 strided conv), then
global average pooling and one linear layer. SGD 0.9, lr 0.05 cosine, weight decay 5e-4.
  python train.py --config=configs/convnet.py:kernel=5,pool=conv --workdir=runs/k5conv
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, kernel=3, stride=1, depth=2, width=32, stages=3, pool='max',
                       padding='zeros', dilation=1, groups=1, dataset='cifar10',
                       epochs=30.0)
  c = base_config()
  downsample = ({'type': 'conv', 'kernel': 3, 'stride': 2, 'padding': 1}
                if a['pool'] == 'conv' else {'type': a['pool'], 'kernel': 2, 'stride': 2})
  # (a stage holds the keys the arguments set; the model's defaults fill the others, so
  # an ungrouped stage has no groups key)
  grouped = {'groups': a['groups']} if a['groups'] != 1 else {}
  c.model = {'name': 'convnet', 'head': {'pool': 'gap'}, 'stages': tuple(
      {'width': a['width'] * 2 ** i, 'depth': a['depth'], 'kernel': a['kernel'],
       'stride': a['stride'], 'dilation': a['dilation'], 'padding_mode': a['padding'],
       'downsample': downsample, **(grouped if i else {})} for i in range(a['stages']))}
  c.dataset.name = a['dataset']
  c.dataset.augment = 'none' if a['dataset'] == 'mnist5k' else 'cifar'
  common.in_epochs(c, a['epochs'], eval_every=5, checkpoint_every=5)
  c.optimizer.weight_decay = 5e-4
  c.schedule.name = 'cosine'
  c.schedule.learning_rate = 0.05
  c.schedule.warmup_steps = 200
  return c
