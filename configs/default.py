"""The shared base config: every key a run can set, with the default value.

Other config files start from `get_config()` and change what their paper says.
Override any key on the command line: --config.optimizer.learning_rate=0.05.
"""

import ml_collections


def get_config(arg=None):
  del arg
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
  c.dataset.synthetic_size = 1024   # examples of the synthetic source

  c.batch_size = 128                # global, over all devices and hosts
  c.num_epochs = ml_collections.FieldReference(None, field_type=float)
  c.num_train_steps = 64000         # used when num_epochs is None

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'sgd'          # sgd | adamw
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.weight_decay = 1e-4
  c.optimizer.decay_style = 'l2'    # l2: added to the gradient of conv/dense kernels;
                                    # decoupled: AdamW-style, also kernels only
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.grad_clip_norm = 0.0  # 0: no clipping
  c.label_smoothing = 0.0

  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = 'piecewise'     # piecewise | step | cosine | plateau | constant
  c.schedule.learning_rate = 0.1    # base rate
  c.schedule.boundaries = (32000, 48000)  # piecewise: in steps, or epochs if below
  c.schedule.boundaries_in_epochs = False
  c.schedule.rates = (0.1, 0.01, 0.001)  # piecewise: len(boundaries) + 1 rates
  c.schedule.step_epochs = 30       # step: divide by `factor` every step_epochs epochs
  c.schedule.factor = 0.1           # step and plateau
  c.schedule.warmup_steps = 0       # cosine: linear warm-up
  c.schedule.patience = 1           # plateau: evaluations without improvement
  c.schedule.min_learning_rate = 0.0

  c.precision = 'float32'           # float32 | bfloat16 (compute; params stay float32)
  c.log_every_steps = 100
  c.eval_every_steps = 2000
  c.checkpoint_every_steps = 2000
  c.keep_checkpoints = 2
  c.on_nonfinite = 'stop'           # NaN/Inf loss: 'stop' (keep the last good checkpoint)
                                    # or 'skip' the step (counted in metrics.jsonl)
  c.distributed = False             # force jax.distributed.initialize()
  return c
