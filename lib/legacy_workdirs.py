"""Workdirs written by the Linen version of this code: found, refused, converted.

Until commit 52aaa4a every model was a Linen module (Flax's older API), and its
checkpoints name arrays by Linen's module paths: `params/layer1_0/conv1/kernel`, where
the NNX model's are `params/layer1/0/conv1/kernel`. Restoring such a checkpoint into an
NNX model fails deep inside orbax, or, where the names happen to agree, could restore
part of a run.
So a workdir is told apart by what the NNX version writes into every run.json it makes:

  "model_api": "nnx"

A workdir with a checkpoint (workdir/checkpoints or workdir/best_checkpoint) and a
run.json without that marker (or no run.json: the Linen version wrote none before
issue 27) was written by the Linen version. `check_workdir` refuses it in one line
naming the way on:

  python -m lib.legacy_workdirs convert OLD NEW

writes NEW, the same run as the NNX version keeps it: each checkpoint of OLD (the latest
ones and the best one) with every tree of model variables renamed (the parameters and
BatchNorm statistics, the optimizer's moments, the lookahead average), the files beside
them copied (config.json, metrics.jsonl, TensorBoard events ...) and run.json marked.
train.py resumes NEW where OLD stopped; evaluate.py, predict.py and visualize.py read it.
OLD is not changed. A workdir without a checkpoint holds nothing the NNX version could
misread: train.py starts it afresh, as the Linen version did.

The renaming is a few rules per model family (RENAMES), checked before anything is
written: the renamed tree must be exactly the NNX model's (every path, every shape),
else the workdir is refused as one that cannot be converted, naming the first
difference (train again in a new workdir). tests/test_legacy_workdirs.py checks the rules
against every registered model's Linen tree (tests/data/linen_trees.json, recorded from
the Linen commit) and that the renamed values compute the Linen model's logits.
"""

import dataclasses
import fnmatch
import json
import os
import re
import shutil
import sys

from absl import logging as absl_logging
import jax
import numpy as np

from lib import checkpoints
from lib import run_contract
from lib import workdir as workdir_lib

API_KEY, API = run_contract.MODEL_API  # the marker in run.json
LINEN_COMMIT = '52aaa4a'  # the last commit whose models were Linen modules
PROGRAM = 'python -m lib.legacy_workdirs'
KINDS = (checkpoints.LATEST, checkpoints.BEST)
COLLECTIONS = ('params', 'batch_stats')
# What the conversion does not copy: the checkpoints (it writes them converted), those
# a resume set aside as unreadable, the lock of whoever runs there now, and what orbax
# said about the old version's checkpoints.
NOT_COPIED = (*KINDS, workdir_lib.CORRUPT_CHECKPOINTS, '.lock', workdir_lib.ERRORS_LOG)


@dataclasses.dataclass(frozen=True)
class Ordinal:
  """Linen's numbered modules (`conv1`, `conv2`, ... or `conv1_1`, `bn1_1`, ...) that
  are, in their order, the children holding arrays of an NNX Sequential (`features/0`,
  `features/3`, ...; PyTorch numbers a Sequential's layers, ReLUs and pools included).
  `patterns` match a Linen top-level name; their groups, as numbers, then the pattern's
  place in the tuple (a conv before its BN), give the order."""
  patterns: tuple
  container: str


# Linen's module paths -> NNX's, per model family (the first pattern that matches the
# registered name): Ordinal pairings, then regular expressions applied in turn to each
# '/'-joined path (in this order: GoogLeNet's conv2 becomes conv3 before conv2_reduce
# becomes conv2). Models not named keep their names (LeNet-5's C1 ... F6, airbench's).
# Linen named a list's elements `layer1_0`; an nnx.List's are `layer1/0`.
_RESNET = [(r'^(layer\d+)_(\d+)/', r'\1/\2/'),
           (r'/downsample_conv/', '/downsample/0/'), (r'/downsample_bn/', '/downsample/1/')]
_ALEXNET = [Ordinal((r'conv(\d+)',), 'features'), Ordinal((r'fc(\d+)',), 'classifier')]
RENAMES = {
    'resnet*': _RESNET,
    'se_resnet*': _RESNET,
    'alexnet*': _ALEXNET,
    'zfnet': _ALEXNET,
    'vgg*': [Ordinal((r'conv(\d+)_(\d+)', r'bn(\d+)_(\d+)'), 'features'),
             Ordinal((r'fc(\d+)',), 'classifier')],
    'tutorial_resnet': [Ordinal((r'block(\d+)', r'down(\d+)'), 'blocks')],
    'googlenet': [  # torchvision's names: aux1, aux2; conv2 (1x1) and conv3 (3x3)
        (r'^aux4a/', 'aux1/'), (r'^aux4d/', 'aux2/'),
        (r'^conv2/', 'conv3/'), (r'^conv2_reduce/', 'conv2/'),
        (r'/branch1x1/', '/branch1/'),
        (r'/branch3x3_reduce/', '/branch2/0/'), (r'/branch3x3/', '/branch2/1/'),
        (r'/branch5x5_reduce/', '/branch3/0/'), (r'/branch5x5/', '/branch3/1/'),
        (r'/pool_proj/', '/branch4/1/')],  # (branch4/0 is the pool)
    'convnet': [(r'^stage(\d+)_', r'stage\1/'), (r'^head_out/', 'fc/'),
                (r'^head_fc(\d+)/', lambda m: f'hidden/{int(m[1]) - 1}/')],
}


class LinenWorkdirError(ValueError):
  """A workdir of the Linen version, or one that cannot be converted: one line."""


# ------------------------------------------------------------------------------ detection


def read_marker(workdir: str) -> tuple[bool, str | None]:
  """(whether run.json says the NNX version wrote this workdir, why run.json cannot be
  read: None when it can, or when there is none)."""
  path = os.path.join(workdir, run_contract.RUN)
  if not os.path.exists(path):
    return False, None
  try:
    with open(path) as f:
      facts = json.load(f)
  except (OSError, ValueError) as e:  # (JSONDecodeError and UnicodeDecodeError too)
    return False, f'{type(e).__name__}: {e}'
  if not isinstance(facts, dict):
    return False, f'it holds a {type(facts).__name__}'
  return facts.get(API_KEY) == API, None


def marked(workdir: str) -> bool:
  """Whether run.json says the NNX version wrote this workdir."""
  return read_marker(workdir)[0]


def mark(facts: dict) -> dict:
  """run.json's facts with the marker (what run_contract.run_facts returns)."""
  return {**facts, API_KEY: API}


def has_checkpoint(workdir: str) -> bool:
  return any(checkpoints.saved_steps(workdir, kind) for kind in KINDS)


def is_linen(workdir: str) -> bool:
  """A workdir holding checkpoints that the NNX version did not write."""
  return os.path.isdir(workdir) and has_checkpoint(workdir) and not marked(workdir)


def check_workdir(workdir: str, flag: str | None = '--workdir'):
  """LinenWorkdirError (one line: what it is and the way on) for a workdir written by
  the Linen version; nothing for any other. `flag` names where the user gave it
  (--workdir, --config.init_from) for the message; None: the directory alone."""
  if not is_linen(workdir):
    return
  given = f'{flag}={workdir}' if flag else workdir
  unreadable = read_marker(workdir)[1]
  if unreadable:  # (the NNX version's, damaged, or the Linen version's: unknown)
    raise LinenWorkdirError(
        f'{given}: its {run_contract.RUN} cannot be read ({unreadable}), and it says which '
        'version of this code wrote the checkpoints; restore it from a backup')
  why = (f'{given} was written by the Linen version of this code (commit {LINEN_COMMIT} '
         f'or before: its run.json has no "{API_KEY}": "{API}")')
  try:
    renames = plan(workdir)
  except LinenWorkdirError as e:
    raise LinenWorkdirError(f'{why}, and it cannot be converted: {e}; train again in '
                            'a new directory') from None
  new = suggested_name(workdir)
  # One renamed module, for the reader to see why the checkpoints do not fit as they are.
  example = next(((a.rsplit('/', 1)[0], b.rsplit('/', 1)[0]) for a, b in renames.items()
                  if a != b), None)
  named = f', whose checkpoints name {example[0]} what is now {example[1]}' if example else ''
  then = f'give {flag}={new}' if flag else f'use {new} in its place'
  raise LinenWorkdirError(f'{why}{named}; convert it once with `{PROGRAM} convert '
                          f'{workdir} {new}` and {then}')


def suggested_name(workdir: str) -> str:
  return os.path.normpath(workdir) + '_nnx'


# ------------------------------------------------------------------------------ the plan


def rules(model_name: str) -> list:
  for pattern, family in RENAMES.items():
    if fnmatch.fnmatchcase(model_name, pattern):
      return family
  return []  # the same names in both versions


def renaming(model_name: str, linen_paths, nnx_paths) -> dict:
  """{Linen path: NNX path} of the arrays a Linen `model_name` kept at `linen_paths`,
  where today's model keeps `nnx_paths` (which the Ordinal rules count on); unchecked:
  plan() compares the result with the NNX model's tree."""
  family = rules(model_name)
  top = {}  # Linen top-level module -> NNX path, from the Ordinal rules
  for rule in (r for r in family if isinstance(r, Ordinal)):
    def order(name, rule=rule):
      for i, pattern in enumerate(rule.patterns):
        m = re.fullmatch(pattern, name)
        if m:
          return (*map(int, m.groups()), i)
      return None
    linen = sorted({p.split('/')[0] for p in linen_paths if order(p.split('/')[0])},
                   key=order)
    prefix = rule.container + '/'
    children = sorted({int(p[len(prefix):].split('/')[0]) for p in nnx_paths
                       if p.startswith(prefix) and p[len(prefix):].split('/')[0].isdigit()})
    top.update({name: f'{prefix}{index}' for name, index in zip(linen, children)})
  out = {}
  for path in linen_paths:
    head, _, rest = path.partition('/')
    new = f'{top[head]}/{rest}' if head in top else path
    for rule in family:
      if not isinstance(rule, Ordinal):
        new = re.sub(rule[0], rule[1], new)
    out[path] = new
  return out


def flat_shapes(tree) -> dict:
  """{'/'-joined path: shape} of a tree's arrays (or orbax's metadata of them)."""
  return {jax.tree_util.keystr(path, simple=True, separator='/'): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def nnx_shapes(config, num_classes: int) -> dict:
  """{collection: {path: shape}} of the NNX model `config` describes (shapes only)."""
  import models  # pylint: disable=import-outside-toplevel  (jax, flax: only when asked)
  d = config.dataset
  net = models.functional(lambda rngs: models.create_model_from_config(
      config.model, num_classes, image_size=d.image_size, in_channels=d.channels,
      rngs=rngs))
  variables = jax.eval_shape(net.init, jax.random.key(0))
  return {c: flat_shapes(variables.get(c, {})) for c in COLLECTIONS}


def saved_shapes(workdir: str) -> dict:
  """{collection: {path: shape}} of the model in the workdir's newest checkpoint, from
  orbax's metadata (no array is read)."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  for kind in KINDS:
    steps = checkpoints.saved_steps(workdir, kind)
    if steps:
      path = os.path.abspath(os.path.join(workdir, kind, str(steps[-1]), 'default'))
      try:
        # (Orbax warns that the step's metadata file is one level up, as
        # checkpoints.read_state explains: not for the console.)
        verbosity = absl_logging.get_verbosity()
        absl_logging.set_verbosity(absl_logging.ERROR)
        try:
          tree = ocp.StandardCheckpointer().metadata(path).item_metadata.tree
        finally:
          absl_logging.set_verbosity(verbosity)
      except Exception as e:  # pylint: disable=broad-except  (orbax's errors vary)
        raise LinenWorkdirError(f'its checkpoint {path} cannot be read '
                                f'({checkpoints.reason(e)})') from None
      return {c: flat_shapes(dict(tree).get(c) or {}) for c in COLLECTIONS}
  raise LinenWorkdirError(f'{workdir} has no checkpoint')


def _num_classes(config, facts, saved) -> int:
  """The run's classes: run.json's, else the config's, else the width of the saved
  model's classifier (the arrays whose shape the class count sets)."""
  if facts and facts.get('dataset', {}).get('num_classes'):
    return int(facts['dataset']['num_classes'])
  if config.num_classes:
    return int(config.num_classes)
  two, three = (nnx_shapes(config, k)['params'] for k in (2, 3))
  names = renaming(config.model.name, saved['params'], two)
  linen = {names[p]: s for p, s in saved['params'].items()}
  found = {linen[p][axis] for p in two if p in linen and len(linen[p]) == len(two[p])
           for axis, (a, b) in enumerate(zip(two[p], three[p])) if a != b}
  if len(found) != 1:
    raise LinenWorkdirError('its number of classes is neither in run.json nor in '
                            'config.json, and its classifier does not say')
  return found.pop()


def difference(expected: dict, found: dict, what: str) -> str | None:
  """The first path where two {path: shape} trees differ, in words; None if none."""
  for path in sorted(set(expected) | set(found)):
    if path not in found:
      return f'the model has {path} {expected[path]}, which {what} lacks'
    if path not in expected:
      return f'{what} has {path} {found[path]}, which the model lacks'
    if tuple(expected[path]) != tuple(found[path]):
      return (f'{what} has {path} of shape {tuple(found[path])} where the model has '
              f'{tuple(expected[path])}')
  return None


def check_renaming(model_name: str, linen: dict, expected: dict) -> dict:
  """{Linen path: NNX path} for the {collection: {path: shape}} tree `linen` of a Linen
  `model_name`, checked against today's model's tree `expected`: every array renamed
  onto one of the same shape, every one of the model's arrays found. LinenWorkdirError
  naming the first difference otherwise."""
  renames = {}
  for collection in COLLECTIONS:
    names = renaming(model_name, linen[collection], expected[collection])
    renamed = {names[p]: s for p, s in linen[collection].items()}
    if len(renamed) != len(names):
      raise LinenWorkdirError(f'{model_name}: two of its {collection} arrays would get '
                              'the same name')
    wrong = difference(expected[collection], renamed, f'its {collection} (renamed)')
    if wrong:
      raise LinenWorkdirError(f'{model_name}: {wrong}')
    renames.update(names)
  return renames


def plan(workdir: str) -> dict:
  """{Linen path: NNX path} of every array of the workdir's model (parameters and
  BatchNorm statistics), checked (check_renaming) against the NNX model config.json
  describes."""
  try:
    config = run_contract.read_saved(workdir)
  except run_contract.ContractError as e:
    raise LinenWorkdirError(str(e)) from None
  if config is None:
    raise LinenWorkdirError(f'it has no {run_contract.CONFIG} to say which model its '
                            'checkpoints are of')
  name = config.model.name
  saved = saved_shapes(workdir)
  try:
    expected = nnx_shapes(config, _num_classes(config, run_contract.read_facts(workdir),
                                               saved))
  except ValueError as e:  # a model or argument the NNX version does not have
    if isinstance(e, LinenWorkdirError):
      raise
    raise LinenWorkdirError(f'its model ({name}) cannot be built today: {e}') from None
  return check_renaming(name, saved, expected)


# ------------------------------------------------------------------------ the conversion


def rename_state(state, renames: dict):
  """`state` (nested dicts and lists, as checkpoints.read_state gives) with each tree of
  model variables in it renamed: every dict whose arrays all sit at Linen paths of the
  model (params, batch_stats, the optimizer's moments of them, ema's) is rebuilt at the
  NNX paths; everything else (the step, counters, metrics) is kept as it is."""
  if isinstance(state, dict):
    flat = _flatten(state)
    if flat and all(path in renames for path in flat):
      return _unflatten({renames[path]: value for path, value in flat.items()})
    return {key: rename_state(value, renames) for key, value in state.items()}
  if isinstance(state, (list, tuple)):
    return type(state)(rename_state(value, renames) for value in state)
  return state


def _flatten(tree, prefix: str = '') -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flatten(value, f'{prefix}{key}/'))
    elif isinstance(value, (dict, list, tuple)):
      return {}  # a list or an empty dict inside: no tree of model variables
    else:
      out[f'{prefix}{key}'] = value
  return out


def _unflatten(flat: dict) -> dict:
  tree = {}
  for path, value in flat.items():
    *parents, leaf = path.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def convert(old: str, new: str) -> dict:
  """Write `new`, the NNX version's copy of the Linen workdir `old` (see the module's
  docstring); `old` is left as it was. Nothing is written unless every checkpoint
  converts: the copy is made in a temporary directory beside `new`, renamed at the end.
  Returns {kind: [steps]} of the checkpoints converted."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  if not os.path.isdir(old):
    raise LinenWorkdirError(f'{old} is not a directory')
  if marked(old):
    raise LinenWorkdirError(f'{old} was written by the NNX version already: use it as '
                            'it is')
  if not has_checkpoint(old):
    raise LinenWorkdirError(f'{old} has no checkpoint, so nothing to convert: train.py '
                            'starts it afresh as it is')
  if os.path.exists(new) and (not os.path.isdir(new) or os.listdir(new)):
    raise LinenWorkdirError(f'{new} exists and is not empty; give a new directory')
  try:
    renames = plan(old)
  except LinenWorkdirError as e:
    raise LinenWorkdirError(f'{old} cannot be converted: {e}; train again in a new '
                            'directory') from None

  parent = os.path.dirname(os.path.abspath(new))
  os.makedirs(parent, exist_ok=True)
  staging = os.path.join(parent, f'.{os.path.basename(os.path.abspath(new))}'
                         f'.converting-{os.getpid()}')
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  done = {}
  try:
    for name in sorted(set(os.listdir(old)) - set(NOT_COPIED)):
      source = os.path.join(old, name)
      if os.path.isdir(source):
        shutil.copytree(source, os.path.join(staging, name), symlinks=True)
      else:
        shutil.copy2(source, os.path.join(staging, name))
    facts = run_contract.read_facts(old) or {}
    workdir_lib.write_json(os.path.join(staging, run_contract.RUN),
                           mark({**facts, 'converted_from': os.path.abspath(old)}))
    for kind in KINDS:
      steps = checkpoints.saved_steps(old, kind)
      if not steps:
        continue
      manager = ocp.CheckpointManager(os.path.join(staging, kind))
      for step in steps:
        state = rename_state(checkpoints.read_state(old, kind, step), renames)
        left = unrenamed(state, renames)
        if left:  # a tree of the model's arrays that was not recognised as one
          raise LinenWorkdirError(f'{old} cannot be converted: {left} in its {kind} '
                                  f'{step} was not renamed (a state this program does '
                                  'not know); train again in a new directory')
        manager.save(step, args=ocp.args.StandardSave(state))
      manager.wait_until_finished()
      manager.close()
      done[kind] = steps
    if os.path.isdir(new):
      os.rmdir(new)  # (empty: checked above)
    os.replace(staging, new)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return done


def unrenamed(state, renames: dict) -> str | None:
  """The first path of `state` that still ends in a Linen path the renaming changes."""
  changed = {a for a, b in renames.items() if a != b}
  for path in _flatten_all(state):
    parts = path.split('/')
    if any('/'.join(parts[i:]) in changed for i in range(1, len(parts))):
      return path
  return None


def _flatten_all(tree, prefix: str = '') -> list:
  """Every leaf's '/'-joined path in nested dicts and lists."""
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, (list, tuple)):
    items = enumerate(tree)
  else:
    return [prefix.rstrip('/')]
  return [p for key, value in items for p in _flatten_all(value, f'{prefix}{key}/')]


# ----------------------------------------------------------------------- the command line


USAGE = f"""usage: {PROGRAM} convert OLD NEW     (NEW: a new directory)
       {PROGRAM} check DIR

convert  writes NEW, the Linen version's workdir OLD as the NNX version keeps it: its
         checkpoints with the model's arrays renamed, its config, metrics and events
         copied; train.py resumes NEW where OLD stopped. OLD is left as it is.
check    says whether DIR was written by the Linen version and whether it converts."""


def main(argv: list[str]) -> int:
  program = PROGRAM
  if len(argv) == 3 and argv[0] == 'convert':
    old, new = argv[1], argv[2]
    try:
      done = convert(old, new)
    except (LinenWorkdirError, checkpoints.CorruptCheckpointError) as e:
      print(f'{program}: error: {e}', file=sys.stderr)
      return 2
    steps = '; '.join(f'{kind} {", ".join(map(str, s))}' for kind, s in done.items())
    print(f'Converted {old} to {new} ({steps}). Continue with --workdir={new}')
    return 0
  if len(argv) == 2 and argv[0] == 'check':
    try:
      check_workdir(argv[1], None)
    except LinenWorkdirError as e:
      print(e)
      return 1
    print(f'{argv[1]} is not a workdir of the Linen version: nothing to convert')
    return 0
  print(USAGE, file=sys.stderr)
  return 2


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
