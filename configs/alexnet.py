"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler & Fergus 2014) on ImageNet.

Section 5: batch 128, SGD momentum 0.9, weight decay 5e-4, learning rate 0.01 divided by
10 when the validation error stops improving (three times, about 90 epochs); section
4.1's augmentation: 224 crops of the 256x256 image, flips, PCA colour noise. Default:
torchvision's single-tower AlexNet; `v1`: the paper's 227-input network with LRN;
`zfnet`: ZFNet, trained the same way (its section 3: lr 0.01, momentum 0.9, batch 128,
70 epochs).
  python train.py --config=configs/alexnet.py --workdir=runs/alexnet
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, v1=False, zfnet=False)
  c = base_config()
  c.model = {'name': 'zfnet' if a['zfnet'] else 'alexnet_v1' if a['v1'] else 'alexnet'}
  common.imagenet(c, 'alexnet', 128, image_size=227 if a['v1'] else 224)
  common.in_epochs(c, 70 if a['zfnet'] else 90, eval_every=1, checkpoint_every=1)
  common.plateau_recipe(c)
  return c
