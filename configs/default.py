"""The shared base config: every key a run can set, with the default value.

Other config files start from `get_config()` and change what their paper says.
Override any key on the command line: --config.schedule.learning_rate=0.05; None is
written --config.num_epochs=None.
"""

import ml_collections

from configs import common


DURATIONS = [('num_train_steps', 'num_epochs'), ('log_every_steps', 'log_every_epochs'),
             ('eval_every_steps', 'eval_every_epochs'),
             ('checkpoint_every_steps', 'checkpoint_every_epochs')]


def _maybe(value, kind):
  """A key that may be None and takes `kind` from the command line."""
  return ml_collections.FieldReference(value, field_type=kind)


def clear_duration_partners(config, given):
  """For each duration key in `given` (dotted keys set on the command line or by a
  sweep), set its partner to None unless it was given too: `--config.num_train_steps=500`
  turns a config in epochs into one in steps."""
  for pair in DURATIONS:
    for key, partner in (pair, pair[::-1]):
      if key in given and partner not in given and config.get(key) is not None:
        config[partner] = None


def get_config(arg=None):
  common.parse_arg(arg)  # (takes none: an argument would change nothing)
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.model = ml_collections.ConfigDict({'name': 'resnet20'})  # + constructor arguments
  c.num_classes = ml_collections.FieldReference(None, field_type=int)  # None: dataset's

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = 'cifar10'        # TFDS name, 'folder:/path', 'mnist5k', 'synthetic'
  c.dataset.data_dir = ''           # TFDS data_dir ('' = ~/tensorflow_datasets)
  c.dataset.train_split = 'train'   # TFDS slices work: 'train[:45000]'
  c.dataset.eval_split = 'test'     # 'train[45000:]' for the ResNet paper's validation
  c.dataset.image_size = 32
  c.dataset.channels = 3            # input channels the model takes (grey -> RGB)
  c.dataset.augment = 'cifar'       # cifar | imagenet | vgg | alexnet | none
  c.dataset.pad_mode = 'zeros'      # cifar preset: zeros | reflect
  c.dataset.scale_min = 256         # vgg preset: training scale S in [min, max]
  c.dataset.scale_max = 512
  c.dataset.eval_resize = 256       # vgg preset: test scale Q
  c.dataset.device_resident = True  # a fixed-size training split that fits (MNIST,
                                    # CIFAR, SVHN) lives on the devices, gathered and
                                    # augmented in jit (cifar and none presets)
  c.dataset.device_resident_max_mb = 1024  # ... up to this many MB as uint8
  c.dataset.workers = -1            # Grain decoding processes; -1: one per core for
                                    # files (folders, TFDS), none for in-memory arrays
  c.dataset.on_corrupt = 'stop'     # folder datasets: a corrupt image file stops the
                                    # run naming it; 'skip' leaves it out, counted
  c.dataset.rescan = False          # folder datasets: inspect every file again instead
                                    # of trusting the cached index (data/folder_index.py)
  c.dataset.synthetic_size = 1024   # examples of the synthetic source

  c.batch_size = 128                # global, over all devices and hosts
  # Durations, each in steps or in epochs: one of a pair set, the other None. Setting
  # one on the command line (or in a sweep) clears its partner (clear_duration_partners).
  c.num_train_steps = _maybe(64000, int)
  c.num_epochs = _maybe(None, float)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'sgd'          # sgd | adamw
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.weight_decay = 1e-4
  c.optimizer.decay_style = 'l2'    # l2: added to the gradient; decoupled: AdamW-style
  c.optimizer.decay_params = 'kernels'  # kernels: conv/dense kernels only (the Caffe
                                    # recipes: AlexNet, VGG, GoogLeNet); all: every
                                    # parameter, BatchNorm's and biases too (torchvision's
                                    # and fb.resnet.torch's ResNet recipes)
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.grad_clip_norm = 0.0  # 0: no clipping
  c.optimizer.norm_bias_lr_scale = 1.0  # sgd: BatchNorm biases step this many times
                                    # farther, their weight decay unchanged (airbench's
                                    # bias_scaler, 64)
  c.label_smoothing = 0.0

  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = 'piecewise'     # piecewise | step | cosine | plateau | triangle |
                                    # constant
  c.schedule.learning_rate = 0.1    # base rate
  c.schedule.boundaries = (32000, 48000)  # piecewise: in steps, or epochs if below
  c.schedule.boundaries_in_epochs = False
  c.schedule.multipliers = (1.0, 0.1, 0.01)  # piecewise: learning_rate times these,
                                    # len(boundaries) + 1 of them
  c.schedule.step_epochs = 30       # step: divide by `factor` every step_epochs epochs
  c.schedule.factor = 0.1           # step and plateau
  c.schedule.warmup_steps = 0       # cosine: linear warm-up
  c.schedule.patience = 1           # plateau: evaluations without improvement
  c.schedule.min_learning_rate = 0.0
  c.schedule.triangle = (0.2, 0.23, 0.07)  # triangle: learning_rate times a line from
                                    # start up to 1 at this fraction of the run, then
                                    # down to end at its last step (airbench94)

  c.lookahead = ml_collections.ConfigDict()  # airbench94's parameter averaging
  c.lookahead.every = 0             # steps between its updates; 0: none
  c.lookahead.decay = 0.95          # the average keeps decay**every * (t/T)**power
  c.lookahead.power = 3.0

  c.precision = 'float32'           # float32 | bfloat16 (compute; params stay float32)
  c.log_every_steps = _maybe(100, int)
  c.log_every_epochs = _maybe(None, float)
  c.eval_every_steps = _maybe(2000, int)
  c.eval_every_epochs = _maybe(None, float)
  c.checkpoint_every_steps = _maybe(2000, int)
  c.checkpoint_every_epochs = _maybe(None, float)
  c.keep_checkpoints = 2
  c.on_nonfinite = 'stop'           # NaN/Inf loss: 'stop' (keep the last good checkpoint)
                                    # or 'skip' the step (counted in metrics.jsonl)
  c.distributed = False             # force jax.distributed.initialize()
  c.init_from = ''                  # a workdir: start from its latest checkpoint's
                                    # weights (params, BatchNorm statistics) at step 0,
                                    # with a fresh optimizer; '' = random initialisation
  return c


def admits_none(config, key: str) -> bool:
  """Whether the dotted `key` may be set to None: a duration (one of each pair is None),
  or a key that is None by default here or in `config` (num_classes: the dataset's)."""
  if any(key in pair for pair in DURATIONS):
    return True
  return any(_value(c, key) is None for c in (get_config(), config))


def _value(config, key: str):
  """The value of a dotted key, or _MISSING."""
  for part in key.split('.'):
    if not hasattr(config, 'items') or part not in config:
      return _MISSING
    config = config[part]
  return config


_MISSING = object()
