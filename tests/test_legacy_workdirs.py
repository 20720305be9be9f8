"""Workdirs of the Linen version (lib/legacy_workdirs.py): refused in one line, converted.

The fixtures were made by the last Linen commit (52aaa4a), whose code is not in the
repository any more:

  tests/data/linen_trees.json       every registered model's Linen variable tree, and
                                    its logits on a probe (tests/data/record_linen_trees.py)
  tests/data/linen_workdir/         a real workdir of that version: a two-stage convnet
                                    (width 4, BatchNorm, strided convs, lookahead) on
                                    mnist5k, 2 steps, checkpoints 1 and 2, best 2:
      python train.py --config=configs/convnet.py:dataset=mnist5k,width=4,stages=2,depth=1,pool=conv \
          --config.num_epochs=None --config.batch_size=8 --config.checkpoint_every_steps=1 \
          --config.eval_every_steps=2 --config.log_every_steps=1 --config.lookahead.every=2 \
          --config.schedule.warmup_steps=0 --workdir=tests/data/linen_workdir --config.num_train_steps=2
  tests/data/linen_workdir_continued.jsonl
                                    the Linen version's own log of that run resumed to
                                    step 4 (the same command, --config.num_train_steps=4
                                    --allow_schedule_change)
"""

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys

from flax import nnx
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import models
from lib import checkpoints
from lib import legacy_workdirs
from lib import run_contract
from tests.data import record_linen_trees as record

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, 'tests', 'data')
LINEN_WORKDIR = os.path.join(DATA, 'linen_workdir')


@functools.cache
def linen_trees() -> dict:
  with open(os.path.join(DATA, 'linen_trees.json')) as f:
    return json.load(f)


def create(name: str, **kw):
  """Today's model for a record of linen_trees.json (a registered name or a variant)."""
  tree = linen_trees()[name]
  return models.create_model(tree['model'], **tree['kwargs'], **kw)


def nnx_shapes(model) -> dict:
  """{collection: {path: shape}} of an NNX model."""
  return {c: legacy_workdirs.flat_shapes(nnx.to_pure_dict(nnx.state(model, kind)))
          for c, kind in zip(legacy_workdirs.COLLECTIONS, (nnx.Param, nnx.BatchStat))}


def linen_shapes(name: str) -> dict:
  return {c: {p: tuple(s) for p, s in linen_trees()[name][c].items()}
          for c in legacy_workdirs.COLLECTIONS}


# ----------------------------------------------------------- the renaming, every model

@pytest.mark.parametrize('name', sorted(linen_trees()))
def test_every_linen_tree_renames_onto_the_nnx_models(name):
  """Each Linen array gets the path of an NNX array of the same shape, and every NNX
  array has one: the conversion restores all of a model, or refuses. (Every registered
  model, at its defaults, and the convnet with every kind of layer it can have.)"""
  expected = nnx_shapes(nnx.eval_shape(lambda: create(name)))
  linen = linen_shapes(name)
  renames = legacy_workdirs.check_renaming(linen_trees()[name]['model'], linen, expected)
  for collection in legacy_workdirs.COLLECTIONS:
    assert {renames[p]: s for p, s in linen[collection].items()} == expected[collection]


def probed() -> list:
  """Every record with a probe, aliases (vgg11 = vgg_a) once."""
  seen, names = set(), []
  for name, tree in sorted(linen_trees().items()):
    key = json.dumps(tree, sort_keys=True)
    if tree['probe'] is not None and key not in seen:
      seen.add(key)
      names.append(name)
  return names


PROBED = probed()


def constructor(name: str):
  make = models.MODELS[name][0]
  return getattr(make, 'func', make)


def test_the_probe_covers_every_model_but_resnet1202():
  """Every model the Linen version had (each has a recorded tree; models added since,
  such as Wide ResNet, have no Linen workdirs to convert). ResNet-1202's probe overflows
  (600 blocks in eval mode grow its activations past float32); its renaming is
  ResNet-20's to ResNet-110's, which are probed."""
  linen_models = set(linen_trees()) - {'convnet[every layer kind]'}  # (a config, not a name)
  assert linen_models <= set(models.MODELS)
  assert set(models.MODELS) - linen_models == {'wrn16_4', 'wrn28_10', 'nin'}  # (added since)
  covered = {n for n in linen_models if any(
      linen_trees()[p]['params'] == linen_trees()[n]['params'] for p in PROBED)}
  assert linen_models - covered == {'resnet1202'}
  assert 'convnet[every layer kind]' in PROBED


@pytest.mark.parametrize('name', PROBED)
def test_renamed_values_compute_the_linen_logits(name):
  """The NNX model given each Linen array at its renamed path computes the Linen model's
  logits on the probe image: the renaming puts each array where its layer is (a swap of
  two arrays of one shape, bn1 and bn2, moves the logits by 7% to 230% of their spread;
  tests/data/record_linen_trees.py)."""
  tree = linen_trees()[name]
  net = models.functional(lambda rngs: create(name, rngs=rngs))
  linen = linen_shapes(name)
  renames = legacy_workdirs.check_renaming(tree['model'], linen, nnx_shapes(net.module))
  variables = {c: unflatten_like({renames[p]: record.probe_values(p, s)
                                  for p, s in linen[c].items()})
               for c in legacy_workdirs.COLLECTIONS}
  probe = tree['probe']
  logits = np.asarray(jax.jit(net.apply)(variables, record.probe_image(probe['image_size'])))
  got = record.summary(logits)
  # The same operations in both versions: equal to float32 rounding, relative to the
  # logits' spread (ResNets agree bit for bit).
  scale = probe['std']
  np.testing.assert_allclose(got['logits'], probe['logits'], rtol=0, atol=1e-5 * scale)
  assert got['mean'] == pytest.approx(probe['mean'], abs=1e-5 * scale)
  assert got['std'] == pytest.approx(probe['std'], rel=1e-5)


def unflatten_like(flat: dict) -> dict:
  """Nested dicts from '/'-joined paths, with the integer keys an nnx.List's state has."""
  return nnx.restore_int_paths(legacy_workdirs._unflatten(flat))


# ----------------------------------------------------------------- workdirs, refused


def linen_style_workdir(path, name: str = 'resnet20', step: int = 5):
  """A workdir as the Linen version left one for `name`: its config, run.json without
  the marker, and a checkpoint of the Linen tree (probe values) through orbax as the
  Linen trainer saved its state, the optimizer's momentum beside the parameters."""
  os.makedirs(path)
  config = json.load(open(os.path.join(LINEN_WORKDIR, run_contract.CONFIG)))
  config['model'] = {'name': name}
  json.dump(config, open(os.path.join(path, run_contract.CONFIG), 'w'))
  shutil.copy(os.path.join(LINEN_WORKDIR, run_contract.RUN), path)
  tree = linen_trees()[name]
  values = {c: record.unflatten({p: record.probe_values(p, tuple(s))
                                 for p, s in tree[c].items()})
            for c in legacy_workdirs.COLLECTIONS}
  momentum = jax.tree.map(lambda a: -a, values['params'])
  state = {'step': np.int32(step), 'params': values['params'],
           'batch_stats': values['batch_stats'],
           'opt_state': {'count': np.int32(step), 'inner_state': [
               {'inner_state': None}, {'trace': momentum}]},
           'metrics': {'loss': np.float32(2.5), 'steps': np.int32(1)}}
  manager = ocp.CheckpointManager(os.path.abspath(os.path.join(path, 'checkpoints')))
  manager.save(step, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()
  manager.close()
  return path


def copy_of_the_linen_workdir(tmp_path) -> str:
  path = str(tmp_path / 'old')
  shutil.copytree(LINEN_WORKDIR, path)
  return path


def test_the_real_linen_workdir_is_refused_in_one_line_with_the_command(tmp_path):
  old = copy_of_the_linen_workdir(tmp_path)
  with pytest.raises(legacy_workdirs.LinenWorkdirError) as caught:
    legacy_workdirs.check_workdir(old)
  message = str(caught.value)
  assert '\n' not in message
  assert message.startswith(f'--workdir={old} was written by the Linen version')
  assert f'`python -m lib.legacy_workdirs convert {old} {old}_nnx`' in message
  assert message.endswith(f'give --workdir={old}_nnx')


def test_a_linen_resnet_names_a_renamed_path(tmp_path):
  old = linen_style_workdir(str(tmp_path / 'old'))
  with pytest.raises(legacy_workdirs.LinenWorkdirError) as caught:
    legacy_workdirs.check_workdir(old, '--config.init_from')
  message = str(caught.value)
  assert message.startswith(f'--config.init_from={old} was written by the Linen version')
  assert 'whose checkpoints name layer1_0/bn1 what is now layer1/0/bn1;' in message
  assert message.endswith(f'give --config.init_from={old}_nnx')


def test_an_unconvertible_linen_workdir_says_to_train_again(tmp_path):
  """A Linen checkpoint whose renamed tree is not today's model (here its config.json
  says resnet32 of a resnet20's arrays) is refused as one to train again."""
  old = linen_style_workdir(str(tmp_path / 'old'))
  config_path = os.path.join(old, run_contract.CONFIG)
  config = json.load(open(config_path))
  config['model'] = {'name': 'resnet32'}
  json.dump(config, open(config_path, 'w'))
  with pytest.raises(legacy_workdirs.LinenWorkdirError) as caught:
    legacy_workdirs.check_workdir(old)
  message = str(caught.value)
  assert '\n' not in message and 'cannot be converted: resnet32: ' in message
  assert 'layer1/3/bn1/bias' in message  # ResNet-32's fourth block, which it lacks
  assert message.endswith('train again in a new directory')


def test_workdirs_that_are_not_linen_pass(tmp_path):
  legacy_workdirs.check_workdir(str(tmp_path / 'absent'))
  legacy_workdirs.check_workdir(str(tmp_path))  # empty: a new run
  # A Linen run stopped before its first checkpoint holds nothing to misread.
  os.makedirs(tmp_path / 'started')
  shutil.copy(os.path.join(LINEN_WORKDIR, run_contract.CONFIG), tmp_path / 'started')
  legacy_workdirs.check_workdir(str(tmp_path / 'started'))
  # The marker says NNX.
  marked = copy_of_the_linen_workdir(tmp_path)
  facts = json.load(open(os.path.join(marked, run_contract.RUN)))
  json.dump(legacy_workdirs.mark(facts), open(os.path.join(marked, run_contract.RUN), 'w'))
  legacy_workdirs.check_workdir(marked)


def test_a_checkpoint_without_run_json_is_linen(tmp_path):
  """The Linen version wrote no run.json before issue 27: a checkpoint without one."""
  old = copy_of_the_linen_workdir(tmp_path)
  os.remove(os.path.join(old, run_contract.RUN))
  assert legacy_workdirs.is_linen(old)
  os.makedirs(tmp_path / 'best_only' / 'best_checkpoint')
  shutil.copytree(os.path.join(old, 'best_checkpoint', '2'),
                  tmp_path / 'best_only' / 'best_checkpoint' / '2')
  assert legacy_workdirs.is_linen(str(tmp_path / 'best_only'))


def test_an_unreadable_run_json_is_named(tmp_path):
  """A damaged run.json cannot say which version wrote the checkpoints: named, not
  guessed (a damaged NNX workdir is no Linen one to convert)."""
  old = copy_of_the_linen_workdir(tmp_path)
  with open(os.path.join(old, run_contract.RUN), 'w') as f:
    f.write('{"dataset": {"num_tr')
  with pytest.raises(legacy_workdirs.LinenWorkdirError) as caught:
    legacy_workdirs.check_workdir(old)
  message = str(caught.value)
  assert message.startswith(f'--workdir={old}: its run.json cannot be read '
                            '(JSONDecodeError: ')
  assert message.endswith('restore it from a backup') and '\n' not in message


# ------------------------------------------------------------------------ conversion


def file_hashes(directory) -> dict:
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      out[os.path.relpath(path, directory)] = hashlib.sha256(
          open(path, 'rb').read()).hexdigest()
  return out


def test_convert_renames_every_tree_of_the_state_and_keeps_the_rest(tmp_path):
  old = linen_style_workdir(str(tmp_path / 'old'), step=5)
  before = file_hashes(old)
  new = str(tmp_path / 'new')
  assert legacy_workdirs.convert(old, new) == {'checkpoints': [5]}
  assert file_hashes(old) == before  # the old workdir is read only
  state = checkpoints.read_state(new)
  linen = linen_shapes('resnet20')
  renames = legacy_workdirs.check_renaming('resnet20', linen, nnx_shapes(create('resnet20')))
  for collection in legacy_workdirs.COLLECTIONS:
    got = flat(state[collection])
    want = {renames[p]: record.probe_values(p, s) for p, s in linen[collection].items()}
    assert got.keys() == want.keys()
    for path, value in want.items():
      np.testing.assert_array_equal(got[path], value, err_msg=path)
  trace = flat(state['opt_state']['inner_state'][1]['trace'])
  np.testing.assert_array_equal(trace['layer2/0/conv1/kernel'],
                                -flat(state['params'])['layer2/0/conv1/kernel'])
  assert int(state['step']) == 5 and int(state['opt_state']['count']) == 5
  assert float(state['metrics']['loss']) == 2.5
  facts = json.load(open(os.path.join(new, run_contract.RUN)))
  assert facts['model_api'] == 'nnx' and facts['converted_from'] == os.path.abspath(old)
  assert facts['dataset'] == json.load(open(os.path.join(old, run_contract.RUN)))['dataset']
  assert open(os.path.join(new, run_contract.CONFIG)).read() == \
      open(os.path.join(old, run_contract.CONFIG)).read()
  legacy_workdirs.check_workdir(new)  # marked: passes
  assert sorted(os.listdir(tmp_path)) == ['new', 'old']  # no staging directory left


def flat(tree) -> dict:
  return {jax.tree_util.keystr(p, simple=True, separator='/'): np.asarray(a)
          for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]}


# Where the Linen trainer's state keeps trees of the model's arrays (the fixture's
# optimizer is SGD with momentum, its second transformation's trace).
MODEL_TREES = ('params/', 'batch_stats/', 'ema/params/', 'ema/batch_stats/',
               'opt_state/inner_state/1/trace/')


def expected_path(renames: dict, path: str) -> str:
  for root in MODEL_TREES:
    if path.startswith(root):
      return root + renames[path.removeprefix(root)]
  return path


def test_the_real_linen_workdir_converts_every_checkpoint(tmp_path):
  old = copy_of_the_linen_workdir(tmp_path)
  new = str(tmp_path / 'new')
  assert legacy_workdirs.convert(old, new) == {'checkpoints': [1, 2], 'best_checkpoint': [2]}
  renames = legacy_workdirs.plan(old)
  assert renames['stage2_downconv/kernel'] == 'stage2/downconv/kernel'
  for kind, step in (('checkpoints', 1), ('checkpoints', 2), ('best_checkpoint', 2)):
    before, after = (flat(checkpoints.read_state(d, kind, step)) for d in (old, new))
    assert {expected_path(renames, p) for p in before} == set(after)
    for path, value in before.items():
      np.testing.assert_array_equal(after[expected_path(renames, path)], value)
  for name in ('metrics.jsonl', 'final_metrics.json', 'config.json'):
    assert open(os.path.join(new, name)).read() == open(os.path.join(old, name)).read()
  assert any(n.startswith('events.out.tfevents') for n in os.listdir(new))


def convert_command(*args):
  return subprocess.run([sys.executable, '-m', 'lib.legacy_workdirs', *args], cwd=ROOT,
                        text=True, capture_output=True, timeout=300)


def test_convert_refuses_in_one_line_and_writes_nothing(tmp_path):
  old = copy_of_the_linen_workdir(tmp_path)
  os.makedirs(tmp_path / 'full')
  (tmp_path / 'full' / 'x').write_text('')
  unconvertible = linen_style_workdir(str(tmp_path / 'wrong'))
  config_path = os.path.join(unconvertible, run_contract.CONFIG)
  config = json.load(open(config_path))
  config['model'] = {'name': 'resnet32'}
  json.dump(config, open(config_path, 'w'))
  before = sorted(os.listdir(tmp_path))
  cases = [
      ((old, str(tmp_path / 'full')), f'{tmp_path}/full exists and is not empty'),
      ((str(tmp_path / 'absent'), str(tmp_path / 'n1')), 'is not a directory'),
      ((str(tmp_path / 'full'), str(tmp_path / 'n2')), 'has no checkpoint, so nothing to '
                                                       'convert'),
      ((unconvertible, str(tmp_path / 'n3')), 'cannot be converted: resnet32: '),
  ]
  for args, expected in cases:
    result = convert_command('convert', *args)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith('python -m lib.legacy_workdirs: error: ') and expected in line
    assert 'Traceback' not in result.stderr
  assert sorted(os.listdir(tmp_path)) == before
  result = convert_command('convert', old)
  assert result.returncode == 2 and result.stderr.startswith('usage:')


def test_convert_command_then_check(tmp_path):
  old = copy_of_the_linen_workdir(tmp_path)
  new = str(tmp_path / 'new')
  result = convert_command('check', old)
  assert result.returncode == 1 and 'was written by the Linen version' in result.stdout
  result = convert_command('convert', old, new)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == (f'Converted {old} to {new} (checkpoints 1, 2; '
                                   f'best_checkpoint 2). Continue with --workdir={new}')
  assert result.stderr == ''
  result = convert_command('convert', new, str(tmp_path / 'again'))
  assert result.returncode == 2 and 'was written by the NNX version already' in result.stderr
  result = convert_command('check', new)
  assert result.returncode == 0 and 'not a workdir of the Linen version' in result.stdout


# ------------------------------------------------------------ what users run on them


def run(*args, **kw):
  return subprocess.run([sys.executable, *args], cwd=ROOT, text=True, capture_output=True,
                        timeout=600, **kw)


def test_the_tools_refuse_a_linen_workdir_in_one_line(tmp_path):
  old = copy_of_the_linen_workdir(tmp_path)
  before = file_hashes(old)
  config = '--config=configs/convnet.py:dataset=mnist5k,width=4,stages=2,depth=1,pool=conv'
  for args, flag in [
      (['train.py', config, f'--workdir={old}'], '--workdir'),
      (['evaluate.py', f'--workdir={old}'], '--workdir'),
      (['train.py', '--config=configs/lenet.py', f'--workdir={tmp_path}/fine',
        f'--config.init_from={old}'], '--config.init_from')]:
    result = run(*args)
    assert result.returncode == 2, (args, result.stderr[-2000:])
    (line,) = result.stderr.strip().splitlines()
    assert f'{flag}={old} was written by the Linen version' in line, line
    assert f'python -m lib.legacy_workdirs convert {old} {old}_nnx' in line
  assert file_hashes(old) == before


def test_a_converted_workdir_evaluates_and_resumes_as_the_linen_run_did(tmp_path):
  """evaluate.py on the converted workdir scores the Linen run's eval at step 2, and
  train.py resumes it to step 4 with the Linen version's own losses (same batches, the
  same math: within float32 rounding of the first steps, as the suite's habit)."""
  old = copy_of_the_linen_workdir(tmp_path)
  new = str(tmp_path / 'new')
  legacy_workdirs.convert(old, new)
  logged = [json.loads(l) for l in open(os.path.join(old, 'metrics.jsonl'))]
  (linen_eval,) = [r for r in logged if r['split'] == 'test']
  result = run('evaluate.py', f'--workdir={new}')
  assert result.returncode == 0, result.stderr[-2000:]
  scored = json.load(open(os.path.join(new, 'eval', 'best_center.json')))
  assert scored['step'] == 2
  assert scored['loss'] == pytest.approx(linen_eval['loss'], rel=1e-5)
  # The same examples right (the log keeps float32's 0.0949999988 for 95 of 1,000).
  assert round(scored['top1'] * 1000) == round(linen_eval['top1'] * 1000)

  config = '--config=configs/convnet.py:dataset=mnist5k,width=4,stages=2,depth=1,pool=conv'
  result = run('train.py', config, f'--workdir={new}', '--config.num_epochs=None',
               '--config.batch_size=8', '--config.checkpoint_every_steps=1',
               '--config.eval_every_steps=2', '--config.log_every_steps=1',
               '--config.lookahead.every=2', '--config.schedule.warmup_steps=0',
               '--config.num_train_steps=4', '--allow_schedule_change')
  assert result.returncode == 0, result.stderr[-2000:]
  assert f'Resuming {new} from step 2' in result.stdout
  resumed = [json.loads(l) for l in open(os.path.join(new, 'metrics.jsonl'))][len(logged):]
  continued = [json.loads(l) for l in open(os.path.join(DATA, 'linen_workdir_continued.jsonl'))]
  assert [(r['split'], r['step']) for r in resumed] == \
      [(r['split'], r['step']) for r in continued]
  for ours, theirs in zip(resumed, continued):
    assert ours['loss'] == pytest.approx(theirs['loss'], rel=1e-5), (ours, theirs)
