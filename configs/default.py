"""The shared base config: every key a run can set, with its default, as configs/keys.py
declares them (each key's meaning, type, range and when it is read are there too).

Other config files start from `get_config()` and change what their paper says.
Override any key on the command line: --config.schedule.learning_rate=0.05; None is
written --config.num_epochs=None.
"""

import ml_collections

from configs import common
from configs import keys


def clear_duration_partners(config, given):
  """For each duration key in `given` (dotted keys set on the command line or by a
  sweep), set its partner to None unless it was given too: `--config.num_train_steps=500`
  turns a config in epochs into one in steps."""
  for pair in keys.DURATIONS:  # (each a pair: steps, epochs)
    for key, partner in (pair, pair[::-1]):
      if key in given and partner not in given and config.get(key) is not None:
        config[partner] = None


def get_config(arg=None):
  common.parse_arg(arg)  # (takes none: an argument would change nothing)
  tree = {}
  for key in keys.KEYS.values():  # (in their order, which the config keeps)
    *groups, leaf = key.name.split('.')
    node = tree
    for group in groups:  # (model: its name here, a config file's constructor arguments)
      node = node.setdefault(group, {})
    # (a key that admits None takes its type from the command line as a FieldReference)
    node[leaf] = (ml_collections.FieldReference(key.default, field_type=key.type)
                  if key.admits_none else key.default)
  return ml_collections.ConfigDict(tree)


def changed_keys(config) -> set[str]:
  """The declared keys whose value in `config` is not the default's: those a config
  file (or its argument) set, as far as the config can tell."""
  values, base = keys.flatten(config), keys.flatten(get_config())
  return {k for k in keys.KEYS if k in values and values[k] != base[k]}


def admits_none(config, key: str) -> bool:
  """Whether the dotted `key` may be set to None: one keys.py says admits it (a duration,
  one of each pair being None; num_classes, None for the dataset's), or a key that is
  None in `config` (a config file's own None, such as a model argument)."""
  declared, values = keys.KEYS.get(key), keys.flatten(config)
  return ((declared is not None and declared.admits_none)
          or (key in values and values[key] is None))
