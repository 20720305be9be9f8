"""Record every shipped config as the hand-written configs/default.py built it, for the
test that the key table (configs/keys.py) builds the same configs.

Run inside a checkout of the last commit before the table (17e5fa6), with this file's
path:

  git worktree add /tmp/before-keys 17e5fa6
  cd /tmp/before-keys && python /path/to/tests/data/record_configs.py \
      > /path/to/tests/data/configs_before_keys.json

For each config file (configs/*.py with a `get_config`), the arguments of CASES and
the trials of the sweep files (SWEEP_ARGS), each file's default among them: every
key in the order the config holds it, with its value's repr (a tuple stays a tuple), its
type, and for a key held by a FieldReference the type it takes from the command line
(what lets `--config.num_epochs=2` parse and `--config.num_epochs=None` be set).
tests/test_configs.py compares today's configs with it.
"""

import glob
import importlib
import json
import os
import sys

# (file, arg) beyond each file's default and its sweeps' trials: tests/test_configs.py's
# CONFIGS and DOCUMENTED, and every `configs/F.py:arg` the README and the config files
# showed when this was recorded.
CASES = [
    ('resnet', 'depth=110'), ('resnet', 'imagenet,depth=50'), ('resnet', 'depth=56'),
    ('resnet', 'imagenet'), ('resnet', 'imagenet,depth=18'), ('resnet', 'val'),
    ('resnet', 'imagenet,depth=50,stride_in_1x1'),
    ('lenet', 'mnist,activation=tanh,pooling=avg'), ('lenet', 'mnist'),
    ('vgg', 'config=A-LRN'), ('vgg', 'config=E,bn,jitter'), ('vgg', 'config=A,cifar,bn'),
    ('vgg', 'config=D'), ('alexnet', 'v1'), ('alexnet', 'zfnet'), ('googlenet', 'bn'),
    ('simple_cnn', 'mnist5k'), ('convnet', 'kernel=7,stride=2,pool=conv,padding=reflect,depth=1'),
    ('convnet', 'pool=avg,stages=4,dataset=mnist5k'), ('convnet', 'kernel=5,pool=conv'),
    ('convnet', 'kernel=5,pool=conv,padding=reflect,stages=2'), ('airbench', 'variant=95'),
]
# Each sweep file's trials of these arguments (the kernel_stride_pool sweep's 108 full
# trials are convnet.py arguments as `small`'s 8 are).
SWEEP_ARGS = {'kernel_stride_pool': ['small'], 'resnet_depth': ['1202'],
              'lenet_pooling': [None], 'vgg_configs': [None]}


def describe(config, prefix: str = '') -> list:
  """[dotted key, repr of its value, its type's name, the FieldReference's type or None]
  for every key of `config`, in its order (ConfigDicts opened, other values as repr)."""
  out = []
  fields = config._fields  # pylint: disable=protected-access  (the references themselves)
  for name, held in fields.items():
    key = prefix + name
    value = config[name]
    if hasattr(value, 'items') and not isinstance(value, dict):
      out += describe(value, key + '.')
      continue
    field_type = getattr(held, 'get_type', None)
    out.append([key, repr(value), type(value).__name__,
                field_type().__name__ if field_type else None])
  return out


def format_value(value) -> str:  # (as sweeping/sweeps.py passes a trial's arguments)
  return str(value).lower() if isinstance(value, bool) else str(value)


def cases(root: str) -> list:
  """Every (module, arg) recorded."""
  out = []
  for path in sorted(glob.glob(os.path.join(root, 'configs', '*.py'))):
    name = os.path.basename(path)[:-3]
    if 'def get_config(' in open(path).read():
      out.append((f'configs.{name}', None))
  out += [(f'configs.{name}', arg) for name, arg in CASES]
  for sweep, sweep_args in SWEEP_ARGS.items():
    module = importlib.import_module(f'configs.sweeps.{sweep}')
    for sweep_arg in sweep_args:
      for trial in module.get_sweep(sweep_arg):
        arg = ','.join(f'{k}={format_value(v)}' for k, v in trial.items()
                       if not k.startswith('config.'))
        out.append((f'configs.sweeps.{sweep}', arg or None))
  return list(dict.fromkeys(out))


def main():
  root = os.getcwd()
  sys.path.insert(0, root)
  record = []
  for module, arg in cases(root):
    config = importlib.import_module(module).get_config(arg)
    record.append({'module': module, 'arg': arg, 'keys': describe(config)})
  # (a line per key, so that a recorded change reads as one)
  sys.stdout.write('[\n' + ',\n'.join(
      json.dumps({k: r[k] for k in ('module', 'arg')})[:-1] + ', "keys": [\n'
      + ',\n'.join(json.dumps(row) for row in r['keys']) + ']}' for r in record) + '\n]\n')


if __name__ == '__main__':
  main()
