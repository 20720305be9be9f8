"""The run contract: a workdir holds one run, and its config.json says which.

The first launch saves the resolved config (the file plus its overrides, dataset paths
made absolute). A later launch on the same workdir compares its own, key by key:

  identical                     resume;
  only durations and periods    resume, and say what changed (config_history.jsonl
  (RESUMABLE)                   keeps each change); a change that moves the learning
                                rate of steps still ahead (a cosine run made longer) is
                                refused unless it is made explicit
                                (train.py --allow_schedule_change);
  anything else                 refused, in one line naming each key with its old and
                                new value, and the ways out: a new --workdir, started
                                from this run's weights with --config.init_from=DIR.

A refused launch writes nothing. evaluate.py, predict.py and visualize.py read the saved
config and refuse overrides of the keys that shape the model (MODEL_KEYS).
"""

import json
import os
import time

import ml_collections

from configs import default

CONFIG = 'config.json'
HISTORY = 'config_history.jsonl'  # one line per launch that changed the saved config

# What a resumed run may change: how long it runs, how often it logs, evaluates and
# checkpoints, how many checkpoints it keeps, and where and how it reads the same data.
RESUMABLE = frozenset({k for pair in default.DURATIONS for k in pair}
                      | {'keep_checkpoints', 'dataset.workers', 'dataset.data_dir',
                         'distributed'})
# What shapes the model a checkpoint was trained as (evaluate, predict, visualize).
MODEL_KEYS = ('model', 'num_classes', 'dataset.channels')


class ContractError(ValueError):
  """A launch whose config does not match its workdir's: one line, the ways out."""


def resolve_paths(config, base: str | None = None):
  """Relative dataset paths (`folder:ds`, `dataset.data_dir`) made absolute against
  `base` (the current directory), in place: config.json then names the same data from
  wherever it is read, and a sweep trial reads what its caller meant."""
  base = base or os.getcwd()
  d = config.dataset
  if d.name.startswith('folder:'):
    path = d.name.removeprefix('folder:')
    d.name = 'folder:' + os.path.normpath(os.path.join(base, os.path.expanduser(path)))
  if d.data_dir:
    d.data_dir = os.path.normpath(os.path.join(base, os.path.expanduser(d.data_dir)))


def as_json(config) -> dict:
  """A config as config.json holds it (tuples as lists)."""
  return json.loads(config.to_json_best_effort())


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'schedule': {'name': 'cosine'}} -> {'schedule.name': 'cosine'}; lists and the
  dicts inside them stay whole."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(flatten(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = value
  return out


def read_saved(workdir: str) -> ml_collections.ConfigDict | None:
  """The workdir's saved config over today's defaults (a run from before a key existed
  gets that key's default), or None when it has none."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  config = default.get_config()

  def merge(node, values):
    for key, value in values.items():
      if isinstance(value, dict) and key != 'model' and isinstance(
          node.get(key), ml_collections.ConfigDict):
        merge(node[key], value)
      elif isinstance(value, list) and isinstance(node.get(key), tuple):
        node[key] = tuple(value)
      else:
        node[key] = value
  merge(config, saved)
  return config


def changes(old, new) -> dict:
  """{dotted key: (old value, new value)} of every key whose value differs ('(absent)'
  where a key exists on one side only)."""
  a, b = flatten(as_json(old)), flatten(as_json(new))
  return {k: (a.get(k, '(absent)'), b.get(k, '(absent)')) for k in sorted(set(a) | set(b))
          if a.get(k, '(absent)') != b.get(k, '(absent)')}


def describe(diff: dict) -> str:
  """'batch_size 64 -> 128, model.activation 'relu' -> 'tanh''."""
  return ', '.join(f'{k} {json.dumps(o)} -> {json.dumps(n)}' for k, (o, n) in diff.items())


def model_changes(diff: dict) -> dict:
  """The part of `diff` that changes the model a checkpoint holds."""
  return {k: v for k, v in diff.items()
          if any(k == m or k.startswith(m + '.') for m in MODEL_KEYS)}


def check_resume(saved, config, workdir: str) -> dict:
  """The changes from `saved` to `config` if a resume may make them (RESUMABLE keys
  only); ContractError naming every other change and the ways out."""
  diff = changes(saved, config)
  refused = {k: v for k, v in diff.items() if k not in RESUMABLE}
  if refused:
    raise ContractError(
        f'--workdir={workdir} holds a run with another config: {describe(refused)}. '
        'Its checkpoints are of that run, so it cannot resume with this one (only '
        'durations and periods may change on a resume). Choose a new --workdir, and add '
        f'--config.init_from={workdir} to start from its weights; or drop the overrides')
  return diff


def schedule_change(old_rate, new_rate, old_total: int, start: int) -> str | None:
  """Where the learning rate of the steps still ahead of the saved run differs under the
  new config: 'step 200: 0.0011 -> 0.0035', or None. `*_rate`: vectorised step -> rate."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  ahead = np.arange(start, max(old_total, start + 1), dtype=np.int32)
  steps = jax.device_put(ahead)  # (the schedules are jnp functions: one explicit copy)
  old, new = jax.device_get((jax.jit(old_rate)(steps), jax.jit(new_rate)(steps)))
  moved = np.flatnonzero(~np.isclose(old, new, rtol=1e-6, atol=0))
  if not len(moved):
    return None
  i = moved[0]
  return f'step {int(ahead[i])}: {float(old[i]):.4g} -> {float(new[i]):.4g}'


def save(workdir: str, config, diff: dict | None = None, step: int = 0):
  """config.json (atomically), and the change from the previous one in the history."""
  from lib import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  workdir_lib.write_json(os.path.join(workdir, CONFIG), as_json(config))
  if diff:
    with open(os.path.join(workdir, HISTORY), 'a') as f:
      f.write(json.dumps({'step': step, 'time': time.time(),
                          'changed': {k: list(v) for k, v in diff.items()}}) + '\n')
