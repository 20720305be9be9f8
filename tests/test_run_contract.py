"""The run contract: a workdir resumes only the run its config.json describes.

A finished 8-step LeNet run is resumed with a changed batch size, model or cosine
length (refused, config.json untouched), with longer durations (resumed, the change
recorded), and started afresh from its weights with --config.init_from. evaluate.py
and predict.py refuse configs whose model differs from the checkpoint's.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import default
import evaluate
from lib import checkpoints
from lib import run_contract
from lib import trained
from lib import workdir as workdir_lib
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lenet(steps=8, **changes):
  c = default.get_config()
  c.model = {'name': 'lenet5', 'activation': 'relu'}
  c.dataset.update(name='mnist5k', image_size=32, channels=1, augment='none')
  c.batch_size = 32
  c.num_train_steps, c.log_every_steps, c.eval_every_steps = steps, 4, 4
  c.checkpoint_every_steps = 4
  c.optimizer.name = 'adamw'
  c.schedule.name = 'cosine'
  c.schedule.learning_rate = 2e-3
  for key, value in changes.items():
    *parents, leaf = key.split('.')
    node = c
    for part in parents:
      node = node[part]
    node[leaf] = value
  return c


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('contract') / 'w')
  train.train_and_evaluate(lenet(), workdir)
  return workdir


def snapshot(workdir):
  """Every file of a workdir with its bytes (checkpoints by listing)."""
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      path = os.path.join(root, f)
      out[os.path.relpath(path, workdir)] = open(path, 'rb').read() if f != '.lock' else b''
  return out


@pytest.mark.parametrize('changes,named', [
    ({'batch_size': 64}, 'batch_size 32 -> 64'),
    ({'model.activation': 'tanh'}, 'model.activation "relu" -> "tanh"'),
    ({'model': {'name': 'simple_cnn'}}, 'model.name "lenet5" -> "simple_cnn"'),  # shapes
    ({'optimizer.name': 'sgd'}, 'optimizer.name "adamw" -> "sgd"'),
])
def test_a_changed_config_is_refused_and_nothing_is_written(finished, changes, named):
  before = snapshot(finished)
  with pytest.raises(train.SetupError) as e:
    train.train_and_evaluate(lenet(12, **changes), finished)
  message = str(e.value)
  assert named in message and 'cannot resume' in message, message
  assert f'--config.init_from={finished}' in message  # the way to start from its weights
  assert '\n' not in message
  assert snapshot(finished) == before


def test_the_command_line_refusal_is_one_line_with_exit_2(finished):
  before = snapshot(finished)
  result = subprocess.run([sys.executable, 'train.py', '--config=configs/lenet.py',
                           '--config.num_train_steps=12', '--config.batch_size=128',
                           f'--workdir={finished}'], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 2, result.stderr
  assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr, result.stderr
  assert result.stderr.startswith(f'train.py: error: --workdir={finished} holds a run with '
                                  'another config:')
  assert snapshot(finished) == before


def test_a_longer_cosine_run_is_refused_unless_explicit(finished, tmp_path):
  before = snapshot(finished)
  with pytest.raises(train.SetupError,
                     match=r'num_train_steps 8 -> 12 changes the learning rate of the steps '
                           r'ahead .*\(step 8: 0 -> .*pass --allow_schedule_change'):
    train.train_and_evaluate(lenet(12), finished)
  assert snapshot(finished) == before
  # Past the run's last step: refused whatever the schedule.
  with pytest.raises(train.SetupError, match='is at step 8, past the 4 steps'):
    train.train_and_evaluate(lenet(4), finished)


def test_longer_durations_resume_and_are_recorded(finished, tmp_path, capsys):
  workdir = str(tmp_path / 'copy')
  os.system(f'cp -r {finished} {workdir}')
  final = train.train_and_evaluate(lenet(12), workdir, allow_schedule_change=True)
  out = capsys.readouterr().out
  assert 'Resuming with config changes: num_train_steps 8 -> 12; the learning rate changes' \
      in out and f'Resuming {workdir} from step 8' in out, out
  assert final['step'] == 12
  history = [json.loads(l) for l in open(os.path.join(workdir, run_contract.HISTORY))]
  assert [(h['step'], h['changed']) for h in history] == [(8, {'num_train_steps': [8, 12]})]
  assert json.load(open(os.path.join(workdir, 'config.json')))['num_train_steps'] == 12
  steps = [r['step'] for r in workdir_lib.read_metrics(workdir) if r['split'] == 'train']
  assert steps == [4, 8, 12]
  # A change of periods alone leaves the learning rate as it was: no flag needed.
  train.train_and_evaluate(lenet(12, eval_every_steps=6, keep_checkpoints=3), workdir)
  assert len(open(os.path.join(workdir, run_contract.HISTORY)).readlines()) == 1  # finished


def test_a_constant_schedule_extends_without_the_flag(tmp_path, capsys):
  workdir = str(tmp_path / 'w')
  train.train_and_evaluate(lenet(4, **{'schedule.name': 'constant'}), workdir)
  train.train_and_evaluate(lenet(8, **{'schedule.name': 'constant'}), workdir)
  assert 'the learning rate of the steps ahead is unchanged' in capsys.readouterr().out
  assert checkpoints.saved_steps(workdir)[-1] == 8


def test_init_from_starts_a_new_run_from_the_weights(finished, tmp_path):
  source = checkpoints.read_state(finished)
  workdir = str(tmp_path / 'tanh')
  config = lenet(1, **{'model.activation': 'tanh', 'schedule.name': 'constant',
                       'schedule.learning_rate': 1e-30, 'init_from': finished})
  train.train_and_evaluate(config, workdir)
  state = checkpoints.read_state(workdir)
  assert int(state['step']) == 1  # a new run, at its own step 1
  for a, b in zip(jax.tree.leaves(source['params']), jax.tree.leaves(state['params'])):
    np.testing.assert_allclose(a, b, atol=1e-20)
  # A model whose shapes differ is refused before anything is written.
  with pytest.raises(train.SetupError, match=r'config.init_from=.*: .*the checkpoint of .*; '
                                             r"its model differs from this config's"):
    train.train_and_evaluate(lenet(1, init_from=finished, model={'name': 'simple_cnn'}),
                             str(tmp_path / 'never'))
  assert not os.path.exists(tmp_path / 'never')


def test_evaluation_refuses_a_config_of_another_model(finished):
  saved = run_contract.read_saved(finished)
  saved.model.activation = 'tanh'
  with pytest.raises(trained.LoadError,
                     match=r'trained with another model than this config asks for: '
                           r'model.activation "relu" -> "tanh"'):
    trained.prepare(saved, finished)
  # Past that check (a config.json edited by hand): the shapes are compared, no flax trace.
  other = run_contract.read_saved(finished)
  other.model = {'name': 'simple_cnn'}
  with pytest.raises(trained.LoadError, match=r'the best checkpoint of .*: it was trained as '
                                             'another model'):
    evaluate.evaluate(other, finished)


@pytest.mark.parametrize('program,args', [
    ('evaluate.py', ['--config.model.activation=tanh']),
    ('evaluate.py', ['--config=configs/simple_cnn.py:mnist5k']),
    ('predict.py', ['--config=configs/simple_cnn.py:mnist5k', 'docs/digits']),
])
def test_entry_points_refuse_a_model_override_in_one_line(finished, program, args):
  result = subprocess.run([sys.executable, program, f'--workdir={finished}', *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr
  assert result.stderr.count('\n') == 1, result.stderr
  assert 'was trained with another model than this config asks for' in result.stderr


def test_evaluate_records_stay_out_of_training_results(finished, tmp_path):
  workdir = str(tmp_path / 'copy')
  os.system(f'cp -r {finished} {workdir}')
  metrics = open(os.path.join(workdir, workdir_lib.METRICS)).read()
  config = run_contract.read_saved(workdir)
  config.dataset.eval_split = 'train'  # scores better than the test split
  record = evaluate.evaluate(config, workdir)
  assert record['split'] == 'train' and record['num_examples'] == 4000
  assert open(os.path.join(workdir, workdir_lib.METRICS)).read() == metrics
  final = train.train_and_evaluate(lenet(), workdir)  # finished: reads its own records
  evals = [r for r in workdir_lib.read_metrics(workdir) if r['split'] == 'test']
  assert final['best_top1'] == max(r['top1'] for r in evals)
  assert os.path.exists(os.path.join(workdir, 'eval', 'best_center_train.json'))


def test_relative_dataset_paths_are_saved_absolute(tmp_path, monkeypatch):
  config = lenet()
  config.dataset.name = 'folder:ds'
  config.dataset.data_dir = 'tfds'
  monkeypatch.chdir(tmp_path)
  run_contract.resolve_paths(config)
  assert config.dataset.name == f'folder:{tmp_path}/ds'
  assert config.dataset.data_dir == f'{tmp_path}/tfds'
