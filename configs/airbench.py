"""airbench94 (Keller Jordan, arXiv 2404.00498; the `airbench` 0.1.8 package's
train94): CIFAR-10 in 9.9 epochs of batch 1024. The reference reports 94.01% test
accuracy (with its test-time augmentation) in 3.09 s on an A100; those are its figures,
not measured here.
  python train.py --config=configs/airbench.py --workdir=runs/airbench94
  python evaluate.py --workdir=runs/airbench94 --checkpoint=latest --mode=tta

The recipe, in the package's decoupled form (per 1024 examples, so that each knob is
tuned alone) and in this codebase's keys (tests/test_airbench.py runs it against the
package, step by step):
  SGD, Nesterov momentum 0.85; lr 11.5 and weight decay 0.0153 per 1024 examples, the
    decay added to the gradient before momentum; BatchNorm biases at 64x the rate
    (bias_scaler), their decay unchanged; label smoothing 0.2
  the triangle schedule: 0.2 -> 1 at 23% of the run -> 0.07
  lookahead: every 5 steps the average of params and BatchNorm statistics keeps
    0.95**5 * (t/T)**3 of itself, and the network takes it; it ends on the average
  the whitening conv's kernel from the first 5,000 training images, frozen; its bias
    trains for 3 epochs
  translate by up to 2 pixels (reflect padding) and alternating flip, on the device
`variant=95`: airbench95 (widths 128-384-384, 15 epochs, lr 10). airbench96 also needs
cutout (12 pixels), which is not here.
"""

from configs import common
from configs.default import get_config as base_config

# The package's hyper-parameters (hyp['opt'] of lib_airbench94.py and lib_airbench95.py).
RECIPES = {94: {'epochs': 9.9, 'lr': 11.5}, 95: {'epochs': 15.0, 'lr': 10.0}}
BATCH, MOMENTUM, WEIGHT_DECAY, BIAS_SCALER = 1024, 0.85, 0.0153, 64.0


def get_config(arg=None):
  a = common.parse_arg(arg, variant=94)
  if a['variant'] not in RECIPES:
    raise ValueError(f'configs/airbench.py: variant must be one of {sorted(RECIPES)}; got '
                     f"{a['variant']} (airbench96 needs cutout, which is not here)")
  recipe = RECIPES[a['variant']]
  c = base_config()
  c.model = {'name': f"airbench{a['variant']}", 'whiten_bias_epochs': 3.0}
  c.dataset.augment = 'airbench'
  c.batch_size = BATCH
  # 50,000 // 1,024 = 48 steps an epoch (the last partial batch dropped, as the
  # package's loader does): ceil(9.9 * 48) = 476 steps, the package's count.
  common.in_epochs(c, recipe['epochs'], eval_every=1.0, checkpoint_every=1.0)
  c.log_every_steps = 12
  c.label_smoothing = 0.2
  # (CIFAR-10, SGD and its decay added to the gradient, 'l2', are the defaults)
  c.optimizer.momentum = MOMENTUM
  c.optimizer.nesterov = True
  # PyTorch's SGD on the package's summed loss takes lr / (1024 (1 + 1/(1 - momentum)))
  # and weight_decay = decay * batch / lr; on this codebase's mean loss that is a rate
  # `batch` times larger and a decay `batch` times smaller.
  c.optimizer.weight_decay = WEIGHT_DECAY / recipe['lr']
  c.optimizer.decay_params = 'all'
  c.optimizer.norm_bias_lr_scale = BIAS_SCALER
  c.schedule.name = 'triangle'  # (its default (0.2, 0.23, 0.07) is airbench94's)
  c.schedule.learning_rate = recipe['lr'] * BATCH / (1024 * (1 + 1 / (1 - MOMENTUM)))
  c.lookahead.every, c.lookahead.decay, c.lookahead.power = 5, 0.95, 3.0
  c.precision = 'bfloat16'  # the package trains in float16
  return c
