"""GoogLeNet (Szegedy et al. 2015) on ImageNet.

Section 6 fixes SGD with momentum 0.9 and a learning rate decreased by 4% every 8
epochs, Inception-style crops (8%-100% of the area, aspect 3/4-4/3) and the auxiliary
classifiers' loss weight 0.3 (section 5, in train.py). It gives neither the base rate
nor the length (training was asynchronous on a CPU cluster): we use 0.01 at batch 256
and 120 epochs. `bn`: batch norm after every convolution (not in the paper).
  python train.py --config=configs/googlenet.py --workdir=runs/googlenet
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, bn=False)
  c = base_config()
  c.model = {'name': 'googlenet', 'batch_norm': a['bn']}
  common.imagenet(c, 'imagenet', 256)
  common.in_epochs(c, 120, eval_every=1, checkpoint_every=1)
  c.optimizer.weight_decay = 2e-4
  c.schedule.name = 'step'
  c.schedule.learning_rate = 0.1 if a['bn'] else 0.01
  c.schedule.step_epochs = 8
  c.schedule.factor = 0.96
  c.log_every_steps = 200
  return c
