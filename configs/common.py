"""Helpers shared by the config files."""


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
    if key not in defaults:
      raise ValueError(f'config argument {key!r} is not one of {sorted(defaults)}')
    if not eq:
      result[key] = True
      continue
    kind = type(defaults[key])
    if kind is bool:
      if value.lower() not in BOOLEANS:
        raise ValueError(f'config argument {key}={value!r}: give true or false (or 1/0, '
                         'yes/no), or the bare word for true')
      result[key] = BOOLEANS[value.lower()]
    elif defaults[key] is None:
      result[key] = value
    else:
      try:
        result[key] = kind(value)
      except ValueError:
        raise ValueError(f'config argument {key}={value!r}: give a {kind.__name__}, '
                         f'like its default {defaults[key]!r}') from None
  return result


def in_epochs(c, num_epochs, eval_every=None, checkpoint_every=None):
  """Train for `num_epochs`; evaluate and checkpoint every so many epochs (None: the
  config's steps stay). The step keys of each pair become None."""
  c.num_epochs, c.num_train_steps = num_epochs, None
  if eval_every is not None:
    c.eval_every_epochs, c.eval_every_steps = eval_every, None
  if checkpoint_every is not None:
    c.checkpoint_every_epochs, c.checkpoint_every_steps = checkpoint_every, None
