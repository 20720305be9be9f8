"""ResNet recipes (He et al. 2016).

Default: the CIFAR-10 ResNet-20 of section 4.2: batch 128, SGD momentum 0.9, weight
decay 1e-4, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k; 4-pixel pad,
32x32 crop and flip. `depth=` 20, 32, 44, 56, 110, 1202 (ResNet-110 warms up at 0.01 for
the first 400 iterations, section 4.2). `val` trains on 45k and validates on 5k.
`imagenet,depth=50`: torchvision's recipe, 90 epochs, batch 256, lr 0.1 divided by 10
every 30 epochs, weight decay 1e-4, Inception-style crops; `stride_in_1x1` strides a
bottleneck in its first 1x1 conv, as the paper did, instead of torchvision's 3x3 (V1.5).
  python train.py --config=configs/resnet.py:depth=56 --workdir=runs/resnet56
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, depth=0, imagenet=False, val=False, stride_in_1x1=False)
  c = base_config()
  # Weight decay on every parameter, BatchNorm's included: the ResNet paper's own
  # reimplementation (fb.resnet.torch, whose optim.sgd decays all parameters) and
  # torchvision's reference recipe (--norm-weight-decay defaults to --wd) both do.
  c.optimizer.decay_params = 'all'
  depth = a['depth'] or (50 if a['imagenet'] else 20)
  c.model.name = f'resnet{depth}'
  if a['imagenet']:
    if a['stride_in_1x1']:  # the paper's bottleneck (Table 1's FLOPs), not torchvision's
      c.model.stride_in_1x1 = True
    common.imagenet(c, 'imagenet', 256)
    common.in_epochs(c, 90)
    c.schedule.name = 'step'  # (lr 0.1, divided by 10 every 30 epochs: the defaults)
    c.log_every_steps = 500
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    return c
  # The rest is the defaults (configs/keys.py), section 4.2's recipe: CIFAR-10 with the
  # cifar augmentation, 64k steps, lr 0.1 divided by 10 at 32k and 48k.
  if a['val']:
    c.dataset.train_split, c.dataset.eval_split = 'train[:45000]', 'train[45000:]'
  if depth == 110:  # "we use 0.01 to warm up the training until the training error is
    # below 80% (about 400 iterations), and then go back to 0.1"
    c.schedule.boundaries = (400, 32000, 48000)
    c.schedule.multipliers = (0.1, 1.0, 0.1, 0.01)
  return c
