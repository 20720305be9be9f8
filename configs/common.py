"""Helpers shared by the config files."""


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
      result[key] = value.lower() in ('1', 'true', 'yes')
    elif defaults[key] is None:
      result[key] = value
    else:
      result[key] = kind(value)
  return result


def in_epochs(c, num_epochs, eval_every=None, checkpoint_every=None):
  """Train for `num_epochs`; evaluate and checkpoint every so many epochs (None: the
  config's steps stay). The step keys of each pair become None."""
  c.num_epochs, c.num_train_steps = num_epochs, None
  if eval_every is not None:
    c.eval_every_epochs, c.eval_every_steps = eval_every, None
  if checkpoint_every is not None:
    c.checkpoint_every_epochs, c.checkpoint_every_steps = checkpoint_every, None
