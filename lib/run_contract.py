"""The run contract: a workdir holds one run, and its config.json says which.

The first launch saves the resolved config (the file plus its overrides, dataset paths
made absolute). A later launch on the same workdir compares its own, key by key:

  identical                     resume;
  (an operation, OPERATIONS)    ignored: it changes how a launch works, not the run;
  only durations and periods    resume, and say what changed (config_history.jsonl
  (RESUMABLE)                   keeps each change); a change that moves the learning
                                rate of steps still ahead (a cosine run made longer) is
                                refused unless it is made explicit
                                (train.py --allow_schedule_change);
  anything else                 refused, in one line naming each key with its old and
                                new value, and the ways out: a new --workdir, started
                                from this run's weights with --config.init_from=DIR.

Keys compare as resolved (num_classes None is the dataset's count). run.json keeps what
they resolved to as the first launch found it: the dataset's split sizes and classes,
the run's length in steps (a resume extends that, and refuses a changed dataset by
name), the devices and processes (a resume on other counts goes on, no longer
bit-identical), the checkpoints' format (FORMAT). Everything that depends on the run's
length goes through one check, `length_change`. A refused launch writes nothing.
docs/DESIGN.md ("Decisions": the run contract) has it whole, evaluate.py's side too.
"""

import json
import os
import time

import ml_collections

from configs import default, keys
from data import sources
from lib import workdir as workdir_lib

CONFIG = 'config.json'
RUN = 'run.json'  # the run as resolved: the dataset's sizes and classes, the length
HISTORY = 'config_history.jsonl'  # one line per launch that changed the saved config
                                  # or the device or process count

# What a resumed run may change: how long it runs, how often it logs, evaluates and
# checkpoints, how many checkpoints it keeps, and where and how it reads the same data.
RESUMABLE = frozenset({k for pair in keys.DURATIONS for k in pair}
                      | {'keep_checkpoints', 'dataset.workers', 'dataset.data_dir',
                         'distributed'})
# What changes how a launch works, not the run it continues: never compared.
OPERATIONS = frozenset({'dataset.rescan'})
# What shapes the model a checkpoint was trained as (evaluate, predict, visualize).
TRAINED_AS_KEYS = ('model', 'num_classes', 'dataset.channels')


class ContractError(ValueError):
  """A launch whose config does not match its workdir's: one line, the ways out."""


def resolve_paths(config, base: str | None = None):
  """Relative paths (`folder:ds`, `dataset.data_dir`, `init_from`) made absolute against
  `base` (the current directory), in place: config.json then names the same data from
  wherever it is read, and a sweep trial reads what its caller meant."""
  base = base or os.getcwd()
  d = config.dataset
  path = sources.path_of(d.name)
  if path is not None:
    d.name = (f'{sources.kind(d.name)}:' +
              os.path.normpath(os.path.join(base, os.path.expanduser(path))))
  for parent, key in ((d, 'data_dir'), (config, 'init_from')):
    if parent[key]:
      parent[key] = os.path.normpath(os.path.join(base, os.path.expanduser(parent[key])))


def as_json(config) -> dict:
  """A config as config.json holds it (tuples as lists)."""
  return json.loads(config.to_json_best_effort())


def read_saved(workdir: str) -> ml_collections.ConfigDict | None:
  """The workdir's saved config over today's defaults (a run from before a key existed
  gets that key's default), or None when it has none. ContractError naming the file
  (and the key) when it cannot be read: truncated, not JSON, a value of the wrong type."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.isfile(path):
    return None
  fix = ('restore it from a backup, or fix it by hand (it is the config the run was '
         'trained with)')
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
    raise ContractError(f'{path} cannot be read ({type(e).__name__}: {e}); {fix}') from None
  if not isinstance(saved, dict):
    raise ContractError(f'{path} holds a {type(saved).__name__}, not a config; {fix}')
  config = default.get_config()

  def merge(node, values, prefix=''):
    for key, value in values.items():
      if isinstance(value, dict) and key != 'model' and isinstance(
          node.get(key), ml_collections.ConfigDict):
        merge(node[key], value, f'{prefix}{key}.')
        continue
      try:
        node[key] = (tuple(value) if isinstance(value, list)
                     and isinstance(node.get(key), tuple) else value)
      except (TypeError, ValueError):
        expected = type(node.get(key)).__name__
        raise ContractError(
            f'{path}: "{prefix}{key}" is {json.dumps(value)}, of type {type(value).__name__} '
            f'where the config has type {expected}; {fix}') from None
  merge(config, saved)
  return config


# What run.json records of where a launch computes: a resume on another count sums the
# same batches in another order, so from there the run is not bit-identical to an
# uninterrupted one (train.py says so; README, "When things go wrong").
LAYOUT = {'devices': 'device', 'processes': 'process'}

# run.json's marks of the format its checkpoints are in: {mark: (value today, the
# commit that made it so, what changed)}. `model_api` covers the weights (the names and
# shapes of params and batch_stats: what evaluating or starting from a run reads),
# `state_format` the rest of the train state (what a resume restores).
FORMAT = {
    'model_api': ('nnx', '52aaa4a', 'the models became Flax NNX modules, their parameters '
                  'named as PyTorch names them'),
    'state_format': (3, '46c6e26', "the learning rate became a schedule optax calls "
                     "(the optimizer state's layout) and the lookahead average was named so "
                     "(TrainState.lookahead)"),
}
# A commit with the tools that convert checkpoints of model_api before "nnx".
CONVERTER_COMMIT = 'e499db3'


def check_format(workdir: str, flag: str, resuming: bool):
  """ContractError (one line: which change, and the way on) when the checkpoints in
  `workdir` (given as `flag`) are in a format this code cannot read: weights of another
  model API for anything, another train-state layout for a resume. A workdir without
  checkpoints passes."""
  from lib import checkpoints  # pylint: disable=import-outside-toplevel  (orbax, JAX)
  if not any(checkpoints.saved_steps(workdir, kind)
             for kind in (checkpoints.LATEST, checkpoints.BEST)):
    return
  facts, path = read_facts(workdir), os.path.join(workdir, RUN)
  if facts is None and os.path.exists(path):
    raise ContractError(f'{path} cannot be read, and it says what the checkpoints hold: '
                        'restore it from a backup, or train again in another workdir')
  for mark in ('model_api', 'state_format') if resuming else ('model_api',):
    value, commit, change = FORMAT[mark]
    if (facts or {}).get(mark) == value:
      continue
    if mark == 'model_api':
      raise ContractError(
          f'{flag}={workdir} ' + (f'has no {RUN}: restore it if it was removed; else it '
                                  if facts is None else '') +
          f'was written before commit {commit}, when {change}: its '
          'checkpoints do not fit today\'s models. Train again, or convert a copy with '
          f'that version\'s tools (`git worktree add ../convert {CONVERTER_COMMIT}`, then '
          f'in it `python -m lib.legacy_workdirs convert {workdir} NEW`) and start from '
          'it with --config.init_from=NEW')
    raise ContractError(
        f'{flag}={workdir} was written before commit {commit}, when {change}: it cannot '
        'be resumed. Train again in a new workdir, or start there from its weights with '
        f'--config.init_from={workdir}')


def run_facts(info, length, devices: int, processes: int) -> dict:
  """What run.json keeps: the format of its checkpoints (FORMAT), the dataset's split
  sizes and classes (the names evaluate.py, predict.py and visualize.py label with), the
  length in steps, and how many devices and processes this launch computes on
  (LAYOUT)."""
  return {**{mark: value for mark, (value, *_) in FORMAT.items()},
          'dataset': {'num_train': info.num_train, 'num_eval': info.num_eval,
                      'num_classes': info.num_classes, 'classes': list(info.label_names)},
          'steps_per_epoch': length.steps_per_epoch, 'total_steps': length.total_steps,
          'devices': devices, 'processes': processes}


def read_facts(workdir: str) -> dict | None:
  """run.json, or None where it is missing or unreadable (then check_format refuses it)."""
  facts = workdir_lib.read_json(os.path.join(workdir, RUN))
  return facts if isinstance(facts, dict) and 'dataset' in facts else None


def _names(classes: list, most: int = 12) -> str:
  """' (c0, c1, c2)' for a message ('' for a dataset without class names)."""
  if not classes:
    return ''
  return f" ({', '.join(map(str, classes[:most]))}{', ...' if len(classes) > most else ''})"


def class_change(saved: dict, info) -> str | None:
  """How the dataset's classes differ from those the run was trained on (its run.json
  facts): 'its classes were B_x, a_y, b_Z, now a_y, b_Z, z_x', or None. A class's label
  is its place in the sorted names, so a renamed class moves every label after it."""
  was = saved['dataset']
  if was['num_classes'] != info.num_classes:
    return (f"it had {was['num_classes']} classes{_names(was['classes'])}, now "
            f'{info.num_classes}{_names(list(info.label_names))}')
  if was['classes'] and list(info.label_names) and was['classes'] != list(info.label_names):
    return (f"its classes were {', '.join(was['classes'])}, now "
            f"{', '.join(info.label_names)}")
  return None


def dataset_change(saved: dict, info) -> str | None:
  """How the dataset differs from the one the run was trained on (its run.json facts):
  'the train split had 360 images, now 600', or None."""
  was = saved['dataset']
  changed = [c for c in [class_change(saved, info)] if c]
  for split, key in (('train', 'num_train'), ('eval', 'num_eval')):
    if was[key] != getattr(info, key):
      changed.append(f'the {split} split had {was[key]} images, now {getattr(info, key)}')
  return '; '.join(changed) or None


def changes(old, new) -> dict:
  """{dotted key: (old value, new value)} of every key whose value differs ('(absent)'
  where a key exists on one side only)."""
  a, b = keys.flatten(as_json(old)), keys.flatten(as_json(new))
  return {k: (a.get(k, '(absent)'), b.get(k, '(absent)')) for k in sorted(set(a) | set(b))
          if a.get(k, '(absent)') != b.get(k, '(absent)') and k not in OPERATIONS}


def describe(diff: dict) -> str:
  """'batch_size 64 -> 128, model.activation 'relu' -> 'tanh''."""
  return ', '.join(f'{k} {json.dumps(o)} -> {json.dumps(n)}' for k, (o, n) in diff.items())


def model_changes(diff: dict) -> dict:
  """The part of `diff` that changes the model a checkpoint holds."""
  return {k: v for k, v in diff.items()
          if any(k == m or k.startswith(m + '.') for m in TRAINED_AS_KEYS)}


def resolved(config, num_classes: int):
  """A copy of `config` with what None stands for filled in (num_classes: the dataset's),
  so that an explicit value equal to the default compares equal."""
  config = config.copy_and_resolve_references()
  if config.num_classes is None:
    config.num_classes = num_classes
  return config


def check_resume(saved, config, workdir: str, saved_classes: int, classes: int) -> dict:
  """The changes from `saved` to `config`, as resolved (`*_classes`: the dataset's class
  count then and now), if a resume may make them (RESUMABLE keys only); ContractError
  naming every other change and the ways out."""
  diff = changes(resolved(saved, saved_classes), resolved(config, classes))
  refused = {k: v for k, v in diff.items() if k not in RESUMABLE}
  if refused:
    raise ContractError(
        f'--workdir={workdir} holds a run with another config: {describe(refused)}. '
        'Its checkpoints are of that run, so it cannot resume with this one (only '
        'durations and periods may change on a resume). Choose a new --workdir, and add '
        f'--config.init_from={workdir} to start from its weights; or drop the overrides')
  return diff


def length_change(old: dict, new: dict, start: int, end: int) -> tuple[str, str] | None:
  """The first thing that depends on the run's length and differs between the saved run
  and the new config over the steps the resume will take, [start, end) (at least
  `start`): (what, 'step 200: 0.0011 -> 0.0035'), or None. `old`, `new`: {what:
  vectorised step -> value} (experiment.length_dependent), the same keys."""
  # (jax and numpy only here: sweep.py and reproduce.py read workdirs through this
  # module without importing jax)
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  ahead = np.arange(start, max(end, start + 1), dtype=np.int32)
  steps = jax.device_put(ahead)  # (the schedules are jnp functions: one explicit copy)
  for what in old:
    a, b = jax.device_get((jax.jit(old[what])(steps), jax.jit(new[what])(steps)))
    a, b = np.broadcast_to(a, ahead.shape), np.broadcast_to(b, ahead.shape)
    moved = np.flatnonzero(~np.isclose(a, b, rtol=1e-6, atol=0))
    if len(moved):
      i = moved[0]
      return what, f'step {int(ahead[i])}: {float(a[i]):.4g} -> {float(b[i]):.4g}'
  return None


def layout_change(saved: dict | None, facts: dict) -> dict:
  """{'devices': [old, new], 'processes': [old, new]}, the counts (LAYOUT) that differ
  between the launch that saved run.json and this one (`facts`); {} for a run.json saved
  before they were recorded."""
  return {k: [saved[k], facts[k]] for k in LAYOUT
          if saved and k in saved and saved[k] != facts[k]}


def describe_layout(moved: dict) -> str:
  """'the device count changed from 1 to 2' (and the process count's)."""
  return ' and '.join(f'the {LAYOUT[k]} count changed from {a} to {b}'
                      for k, (a, b) in moved.items())


def save(workdir: str, config, diff: dict | None = None, step: int = 0,
         facts: dict | None = None, moved: dict | None = None):
  """config.json and run.json (each atomically), and in the history the change from the
  previous config and of the device or process count (`moved`, layout_change's)."""
  workdir_lib.write_json(os.path.join(workdir, CONFIG), as_json(config))
  if facts is not None:
    workdir_lib.write_json(os.path.join(workdir, RUN), facts)
  if diff or moved:
    with open(os.path.join(workdir, HISTORY), 'a') as f:
      f.write(json.dumps({'step': step, 'time': time.time(),
                          'changed': {k: list(v) for k, v in (diff or {}).items()},
                          **(moved or {})}) + '\n')
