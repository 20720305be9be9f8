"""LeNet-5 on MNIST (LeCun et al. 1998).

Default: the 5,000 real digits of `mnist5k` (4,000 train / 1,000 test), offline, in a
couple of minutes on a 2-core CPU: ReLU and max pooling, Adam-style training (AdamW
with a small decoupled decay) and a cosine schedule, as a modern short recipe.
`mnist`: the full TFDS MNIST (60k/10k). The 28x28 digits are centred in a 32x32 field,
as in the paper (section II.B).
  python train.py --config=configs/lenet.py --workdir=runs/lenet
"""

from configs import common
from configs.default import get_config as base_config


def get_config(arg=None):
  a = common.parse_arg(arg, mnist=False, activation='relu', pooling='max')
  c = base_config()
  c.model = {'name': 'lenet5', 'activation': a['activation'], 'pooling': a['pooling']}
  c.dataset.name = 'mnist' if a['mnist'] else 'mnist5k'
  c.dataset.channels = 1
  c.dataset.augment = 'none'
  c.batch_size = 64
  common.in_epochs(c, 20 if not a['mnist'] else 10)
  common.adamw_cosine_recipe(c, learning_rate=2e-3, warmup_steps=50)
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  return c
