"""Helpers shared by the config files."""


KINDS = {int: 'an integer', float: 'a number'}  # (str takes anything)
BOOLEANS = {'true': True, '1': True, 'yes': True, 'false': False, '0': False, 'no': False}


def parse_arg(arg: str | None, **defaults):
  """'depth=56,imagenet' -> {'depth': 56, 'imagenet': True, ...defaults}.

  The `file.py:arg` syntax of ml_collections config files, as in big_vision: comma
  separated `key=value` pairs and bare words (True); values take the default's type.
  """
  result = dict(defaults)
  for item in filter(None, (arg or '').split(',')):
    key, eq, value = item.partition('=')
    key = key.strip()
    if not defaults:
      raise ValueError(f'this config file takes no argument; got {arg!r}: drop the :{arg}')
    if key not in defaults:
      raise ValueError(f'config argument {key!r} is not one of {sorted(defaults)}')
    kind = str if defaults[key] is None else type(defaults[key])
    if not eq and kind is not bool:
      raise ValueError(f'config argument {key} needs a value: {key}=VALUE, like its '
                       f'default {key}={defaults[key]}')
    if kind is bool:
      if eq and value.lower() not in BOOLEANS:
        raise ValueError(f'config argument {key}={value!r}: give true or false (or 1/0, '
                         'yes/no), or the bare word for true')
      result[key] = BOOLEANS[value.lower()] if eq else True
    else:
      try:
        result[key] = kind(value)
      except ValueError:
        raise ValueError(f'config argument {key}={value!r}: give '
                         f'{KINDS.get(kind, kind.__name__)}, like its default '
                         f'{key}={defaults[key]!r}') from None
  return result


def in_epochs(c, num_epochs, eval_every=None, checkpoint_every=None):
  """Train for `num_epochs`; evaluate and checkpoint every so many epochs (None: the
  config's steps stay). The step keys of each pair become None."""
  c.num_epochs, c.num_train_steps = num_epochs, None
  for what, every in (('eval', eval_every), ('checkpoint', checkpoint_every)):
    if every is not None:
      c[f'{what}_every_epochs'], c[f'{what}_every_steps'] = every, None


def imagenet(c, augment: str, batch_size: int, image_size: int = 224):
  """ImageNet (ILSVRC-2012): trained on its training set, evaluated on its validation set."""
  c.dataset.name = 'imagenet2012'
  c.dataset.eval_split = 'validation'
  c.dataset.image_size = image_size
  c.dataset.augment = augment
  c.batch_size = batch_size


def plateau_recipe(c):
  """The Caffe-era ImageNet recipe of AlexNet (section 5) and VGG (section 3.1): SGD with
  momentum 0.9 (the default), weight decay 5e-4, learning rate 0.01 divided by 10 each
  time the validation accuracy stops improving (evaluated once an epoch): the defaults'
  factor 0.1 and patience 1."""
  c.optimizer.weight_decay = 5e-4
  c.schedule.name = 'plateau'
  c.schedule.learning_rate = 0.01
  c.log_every_steps = 200


def adamw_cosine_recipe(c, learning_rate: float, warmup_steps: int):
  """A modern short recipe for the small networks: AdamW (the default weight decay 1e-4,
  decoupled: Loshchilov & Hutter 2019) on a cosine schedule after a linear warm-up."""
  c.optimizer.name = 'adamw'
  c.schedule.name = 'cosine'
  c.schedule.learning_rate = learning_rate
  c.schedule.warmup_steps = warmup_steps
