"""The run contract: a workdir resumes only the run its config.json describes.

A finished 8-step LeNet run is resumed with a changed batch size, model or cosine
length (refused, config.json untouched), with longer durations (resumed, the change
recorded), and started afresh from its weights with --config.init_from. evaluate.py
and predict.py refuse configs whose model differs from the checkpoint's.
"""

import json
import os
import shutil
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
from tests import prewarmed
from tests.support import xla_devices

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
  result = prewarmed.run([sys.executable, 'train.py', '--config=configs/lenet.py',
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


def resume_on(devices, workdir):
  """train.py's run of lenet() on `workdir` in a process of `devices` CPU devices."""
  code = (f'import sys; sys.path.insert(0, {ROOT!r}); import train; '
          'from tests.test_run_contract import lenet; '
          f'train.train_and_evaluate(lenet(), {workdir!r})')
  env = {**os.environ, 'XLA_FLAGS': xla_devices(devices)}
  result = prewarmed.run([sys.executable, '-c', code], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout


def test_a_resume_on_another_device_count_says_so_and_is_recorded(finished, tmp_path):
  """The run stopped after its checkpoint at step 4 (as a kill leaves it): resumed on 2
  devices, where it trained on 1, the same batches are summed in another order, so it is
  no longer bit-identical to an uninterrupted run: one line says so, and the history and
  run.json keep it. On the same device count a resume says nothing."""
  workdirs = {}
  for devices in (1, 2):
    workdir = workdirs[devices] = str(tmp_path / str(devices))
    os.system(f'cp -r {finished} {workdir}')
    shutil.rmtree(os.path.join(workdir, 'checkpoints', '8'))
    assert checkpoints.saved_steps(workdir) == [4]
  out = resume_on(2, workdirs[2])
  warnings = [l for l in out.splitlines() if 'WARNING' in l]
  assert warnings == [f'WARNING: resuming {workdirs[2]} at step 4, the device count changed '
                      'from 1 to 2: the same batches are now summed in another order, so its '
                      "results are no longer bit-identical to an uninterrupted run's "
                      f'(recorded in {run_contract.HISTORY})'], out
  history = [json.loads(l) for l in open(os.path.join(workdirs[2], run_contract.HISTORY))]
  assert [(h['step'], h['changed'], h['devices']) for h in history] == [(4, {}, [1, 2])]
  assert run_contract.read_facts(workdirs[2])['devices'] == 2
  assert checkpoints.saved_steps(workdirs[2])[-1] == 8
  out = resume_on(1, workdirs[1])
  assert f'Resuming {workdirs[1]} from step 4' in out and 'WARNING' not in out, out
  assert not os.path.exists(os.path.join(workdirs[1], run_contract.HISTORY))


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


def _with_marks(finished, tmp_path, **marks):
  """A copy of the finished run whose run.json carries these format marks (None: none)."""
  workdir = str(tmp_path / 'old')
  shutil.copytree(finished, workdir)
  path = os.path.join(workdir, run_contract.RUN)
  facts = json.load(open(path))
  for mark, value in marks.items():
    facts.pop(mark) if value is None else facts.update({mark: value})
  json.dump(facts, open(path, 'w'))
  return workdir


def test_checkpoints_of_an_earlier_state_format_start_runs_but_do_not_resume(finished,
                                                                             tmp_path):
  """Before the learning rate was a schedule optax calls, the optimizer state had another
  layout: such a run cannot resume (named, with the way on), but its weights are what
  they were, so evaluation and --config.init_from read them."""
  old = _with_marks(finished, tmp_path, state_format=None)
  before = snapshot(old)
  with pytest.raises(train.SetupError, match=rf'--workdir={old} was written before commit '
                     rf'{run_contract.FORMAT["state_format"][1]}, when the learning rate '
                     rf'became .*: it cannot be resumed.*--config.init_from={old}'):
    train.train_and_evaluate(lenet(12, **{'schedule.name': 'constant'}), old)
  assert snapshot(old) == before
  assert evaluate.evaluate(run_contract.read_saved(old), old)['num_examples'] == 1000
  config = lenet(1, **{'schedule.name': 'constant', 'init_from': old})
  assert train.train_and_evaluate(config, str(tmp_path / 'new'))['step'] == 1


@pytest.mark.parametrize('marks', [{'model_api': None}, {'model_api': 'linen'}])
def test_weights_of_the_linen_version_are_refused_with_the_way_on(finished, tmp_path, marks):
  """A workdir without today's model mark (the Linen version's, before commit 52aaa4a)
  is refused by a resume, by --config.init_from and by the tools, naming the commit whose
  tools convert it."""
  old = _with_marks(finished, tmp_path, **marks)
  way_on = (rf'was written before commit 52aaa4a, when the models became Flax NNX modules'
            rf'.*git worktree add ../convert {run_contract.CONVERTER_COMMIT}.*'
            r'--config.init_from=NEW')
  with pytest.raises(train.SetupError, match=f'--workdir={old} {way_on}'):
    train.train_and_evaluate(lenet(12, **{'schedule.name': 'constant'}), old)
  with pytest.raises(train.SetupError, match=f'--config.init_from={old} {way_on}'):
    train.train_and_evaluate(lenet(1, init_from=old), str(tmp_path / 'new'))
  assert not os.path.exists(tmp_path / 'new')
  with pytest.raises(trained.LoadError, match=f'--workdir={old} {way_on}'):
    trained.check_source(old)


@pytest.mark.parametrize('damage', ['removed', 'cut short'])
def test_a_run_json_removed_or_damaged_is_named_as_such(finished, tmp_path, damage):
  """run.json gone or unreadable is said to be so, with the way on, not taken for a
  workdir of the Linen version (which sent its user to that version's converter)."""
  workdir = tmp_path / 'run'
  shutil.copytree(finished, workdir)
  if damage == 'removed':
    os.remove(workdir / 'run.json')
    expected = f'--workdir={workdir} has no run.json: restore it if it was removed; else'
  else:
    (workdir / 'run.json').write_text('{"datas')
    expected = f'{workdir}/run.json cannot be read, .*: restore it from a backup'
  with pytest.raises(trained.LoadError, match=expected):
    trained.check_source(str(workdir))


def test_evaluation_refuses_a_config_of_another_model(finished):
  saved = run_contract.read_saved(finished)
  saved.model.activation = 'tanh'
  with pytest.raises(trained.LoadError,
                     match=r'trained with another model than this config asks for: '
                           r'model.activation "relu" -> "tanh"'):
    trained.check_before_loading(saved, finished)
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
  result = prewarmed.run([sys.executable, program, f'--workdir={finished}', *args],
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


def test_relative_paths_are_saved_absolute(tmp_path, monkeypatch):
  config = lenet()
  config.dataset.name = 'folder:ds'
  config.dataset.data_dir = 'tfds'
  config.init_from = 'runs/lenet'  # (saved as typed, a relaunch from elsewhere was refused)
  monkeypatch.chdir(tmp_path)
  run_contract.resolve_paths(config)
  assert config.dataset.name == f'folder:{tmp_path}/ds'
  assert config.dataset.data_dir == f'{tmp_path}/tfds'
  assert config.init_from == f'{tmp_path}/runs/lenet'


# ------------------------------------------------------------ the run as resolved


def write_images(folder, count, seed):
  """`count` random 32x32 greyscale PNGs in folder (made if absent)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  for i in range(count):
    Image.fromarray(rng.integers(0, 256, (32, 32), np.uint8)).save(
        os.path.join(folder, f'{seed}_{i}.png'))


@pytest.fixture(scope='module')
def folder_run(tmp_path_factory):
  """A finished run measured in epochs on a folder of 3 classes, 12 training images each
  (36: 4 steps of 8 an epoch, 2 epochs), and the command's config."""
  base = tmp_path_factory.mktemp('folder_run')
  for split, count in (('train', 12), ('test', 4)):
    for c in range(3):
      write_images(str(base / 'data' / split / f'c{c}'), count, seed=10 * c + len(split))
  config = lenet(8)
  config.dataset.name = f"folder:{base / 'data'}"
  config.batch_size = 8
  config.num_train_steps, config.num_epochs = None, 2.0
  workdir = str(base / 'w')
  train.train_and_evaluate(config, workdir)
  return base, config


def copy_of(folder_run, tmp_path):
  """A copy of the folder run's dataset and workdir, and the config pointing at it."""
  base, config = folder_run
  os.system(f"cp -r {base / 'data'} {base / 'w'} {tmp_path}")
  config = config.copy_and_resolve_references()
  config.dataset.name = f"folder:{tmp_path / 'data'}"
  saved = json.load(open(tmp_path / 'w' / 'config.json'))
  saved['dataset']['name'] = config.dataset.name
  json.dump(saved, open(tmp_path / 'w' / 'config.json', 'w'))
  return config, str(tmp_path / 'w')


def test_the_run_keeps_its_dataset_and_length(folder_run):
  base, _ = folder_run
  facts = json.load(open(base / 'w' / run_contract.RUN))
  assert facts == {'model_api': 'nnx', 'state_format': 3,  # (run_contract.FORMAT)
                   'dataset': {'num_train': 36, 'num_eval': 12, 'num_classes': 3,
                               'classes': ['c0', 'c1', 'c2']},
                   'steps_per_epoch': 4, 'total_steps': 8,  # 36 // 8, 2 epochs of 4
                   'devices': 1, 'processes': 1}


def test_a_dataset_grown_under_a_run_is_refused(folder_run, tmp_path):
  """The same command after 24 images were added: 60 // 8 = 7 steps an epoch would make
  it a 14-step run, its learning rate jumping back; refused, naming the sizes."""
  config, workdir = copy_of(folder_run, tmp_path)
  write_images(str(tmp_path / 'data' / 'train' / 'c1'), 24, seed=99)
  before = snapshot(workdir)
  with pytest.raises(train.SetupError) as e:
    train.train_and_evaluate(config, workdir)
  assert 'the train split had 36 images, now 60' in str(e.value), e.value
  assert f'--config.init_from={workdir}' in str(e.value) and '\n' not in str(e.value)
  assert snapshot(workdir) == before


def test_a_class_added_under_a_run_is_named_before_anything_compiles(folder_run, tmp_path,
                                                                       monkeypatch):
  config, workdir = copy_of(folder_run, tmp_path)
  for split in ('train', 'test'):
    write_images(str(tmp_path / 'data' / split / 'c3'), 12, seed=7)
  before = snapshot(workdir)
  compiled = []
  monkeypatch.setattr(train, 'train_loop', lambda *a: compiled.append(1))
  with pytest.raises(train.SetupError) as e:
    train.train_and_evaluate(config, workdir)
  assert 'it had 3 classes (c0, c1, c2), now 4 (c0, c1, c2, c3)' in str(e.value), e.value
  assert 'checkpoint' not in str(e.value).split(':')[1]  # (not blamed on the checkpoints)
  assert not compiled and snapshot(workdir) == before


def renamed_first_class(folder_run, tmp_path):
  """A copy of the folder run whose class c0 is now z0, in train/ and test/ (as train.py
  refuses to resume it): sorted, the classes are c1, c2, z0, so each label of today's
  data names another class than the one the run learned under it."""
  config, workdir = copy_of(folder_run, tmp_path)
  for split in ('train', 'test'):
    os.rename(tmp_path / 'data' / split / 'c0', tmp_path / 'data' / split / 'z0')
  return config, workdir


def run_program(*argv):
  return prewarmed.run([sys.executable, *map(str, argv)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)


def test_predict_names_the_classes_the_run_was_trained_on(folder_run, tmp_path):
  _, workdir = renamed_first_class(folder_run, tmp_path)
  folder = tmp_path / 'data' / 'test' / 'c1'
  result = run_program('predict.py', f'--workdir={workdir}', '--json', '--top_k=3',
                       folder / sorted(os.listdir(folder))[0])
  assert result.returncode == 0, result.stderr[-2000:]
  (image,) = json.loads(result.stdout)
  assert sorted(p['label'] for p in image['predictions']) == [0, 1, 2]
  for p in image['predictions']:
    assert p['name'] == ['c0', 'c1', 'c2'][p['label']], image  # (not c1, c2, z0)


def test_evaluate_refuses_data_whose_classes_differ_and_writes_nothing(folder_run, tmp_path):
  _, workdir = renamed_first_class(folder_run, tmp_path)
  before = snapshot(workdir)
  result = run_program('evaluate.py', f'--workdir={workdir}', '--checkpoint=latest')
  assert result.returncode == 2 and result.stdout == '', result.stdout
  (line,) = result.stderr.splitlines()
  assert line.startswith(f'evaluate.py: error: --workdir={workdir} was trained on other '
                         f"classes than folder:{tmp_path / 'data'} has now: its classes were "
                         'c0, c1, c2, now c1, c2, z0; '), line
  assert snapshot(workdir) == before and not os.path.exists(os.path.join(workdir, 'eval'))


def test_evaluate_on_other_data_keeps_the_runs_own_record(folder_run, tmp_path):
  """Another folder (the same classes) is evaluated into a file of its own, named for it:
  it had overwritten eval/best_center.json, the record reproduce.py's tables read."""
  config, workdir = copy_of(folder_run, tmp_path)
  own = evaluate.evaluate(config, workdir)
  shutil.copytree(tmp_path / 'data' / 'train', tmp_path / 'other' / 'train')
  shutil.copytree(tmp_path / 'data' / 'train', tmp_path / 'other' / 'test')
  config.dataset.name = f"folder:{tmp_path / 'other'}"
  other = evaluate.evaluate(config, workdir)
  assert (own['num_examples'], other['num_examples']) == (12, 36)
  named = 'best_center_folder_' + str(tmp_path / 'other').replace('/', '_') + '.json'
  assert sorted(os.listdir(os.path.join(workdir, 'eval'))) == ['best_center.json', named]
  assert json.load(open(os.path.join(workdir, 'eval', 'best_center.json'))) == own
  assert other['dataset'] == config.dataset.name


def test_other_data_is_normalised_as_the_run_was(finished):
  """A model trained on mnist5k, loaded to be shown other data (here a name without
  statistics of its own, which gets ImageNet's): its inputs are normalised with the
  run's mean and std, which it was trained on, not the new data's (they had been)."""
  from data import device  # pylint: disable=import-outside-toplevel
  import input_pipeline  # pylint: disable=import-outside-toplevel
  config = run_contract.read_saved(finished)
  config.dataset.name = 'folder:/digits'
  trained.load(config, 10, finished)
  assert config.dataset.stats == 'mnist5k'
  images = np.full((1, 2, 2, 1), 255, np.uint8)
  np.testing.assert_allclose(device.normalize(images, config), (1 - 0.1307) / 0.3081,
                             rtol=1e-6)
  config.dataset.stats = 'cifar1O'  # (given by hand: one it has no statistics of)
  with pytest.raises(ValueError, match=r"config.dataset.stats must be '' or one of "
                     r"\['cifar10', .*got 'cifar1O'"):
    input_pipeline.check_config(config, input_pipeline.dataset_info(run_contract.read_saved(
        finished)))


def test_visualize_names_the_class_it_shows_as_the_run_was_trained(folder_run, tmp_path):
  _, workdir = renamed_first_class(folder_run, tmp_path)
  folder = tmp_path / 'data' / 'test' / 'c2'
  image = folder / sorted(os.listdir(folder))[0]
  for mode, label in (('saliency', ['--label=0']), ('occlusion', [])):
    result = run_program('visualize.py', mode, f'--workdir={workdir}', f'--image={image}',
                         f'--out={tmp_path}/{mode}.png', *label)
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout.splitlines()[-1])['class']
    assert shown['name'] == ['c0', 'c1', 'c2'][shown['label']], shown
    if label:
      assert shown['label'] == 0 and shown['name'] == 'c0'


def test_rescan_is_an_operation_and_never_blocks_a_resume(folder_run, tmp_path, capsys):
  config, workdir = copy_of(folder_run, tmp_path)
  config.dataset.rescan = True
  final = train.train_and_evaluate(config, workdir)
  assert final['step'] == 8 and 'is already finished at step 8' in capsys.readouterr().out


def test_an_explicit_num_classes_equal_to_the_datasets_resumes(finished, tmp_path, capsys):
  workdir = str(tmp_path / 'copy')
  os.system(f'cp -r {finished} {workdir}')
  final = train.train_and_evaluate(lenet(num_classes=10), workdir)  # mnist: 10 classes
  assert final['step'] == 8 and 'is already finished' in capsys.readouterr().out


def test_a_fine_tune_run_resumes_once_its_source_has_moved(finished, tmp_path, capsys):
  source = str(tmp_path / 'source')
  os.system(f'cp -r {finished} {source}')
  workdir = str(tmp_path / 'tune')
  constant = {'schedule.name': 'constant', 'init_from': source}
  train.train_and_evaluate(lenet(4, **constant), workdir)
  assert f'Starting from the weights of {source} (its step 8)' in capsys.readouterr().out
  os.rename(source, source + '.moved')
  final = train.train_and_evaluate(lenet(8, **constant), workdir)
  assert final['step'] == 8
  out = capsys.readouterr().out
  assert f'Resuming {workdir} from step 4' in out and 'Starting from' not in out
  # A new run does read it: there is nothing there now.
  with pytest.raises(train.SetupError, match=f'config.init_from={source}: no checkpoint'):
    train.train_and_evaluate(lenet(4, **constant), str(tmp_path / 'new'))


@pytest.mark.parametrize('content,named', [
    ('{"batch_size": 32, "mod', 'config.json cannot be read (JSONDecodeError'),
    ('{"batch_size": "64"}', 'config.json: "batch_size" is "64", of type str where the '
                             'config has type int'),
    ('{"schedule": {"learning_rate": [1]}}', '"schedule.learning_rate" is [1]'),
    ('[1, 2]', 'config.json holds a list, not a config'),
])
@pytest.mark.fast
def test_a_broken_config_json_is_named_with_the_fix(tmp_path, content, named):
  (tmp_path / 'config.json').write_text(content)
  with pytest.raises(run_contract.ContractError) as e:
    run_contract.read_saved(str(tmp_path))
  assert named in str(e.value) and str(tmp_path) in str(e.value), e.value
  assert 'restore it from a backup, or fix it by hand' in str(e.value)


def test_throughput_leaves_out_the_evaluations_and_nothing_else(tmp_path, monkeypatch):
  """A clock that moves 1 s per training step and 100 s per evaluation batch: 8 steps of
  32 images are 32 img/s however the evaluation at step 4 falls between log lines."""
  clock = [0.0]

  class Clock:
    time = staticmethod(lambda: clock[0])

  def ticking(step_fn, seconds):
    class Ticking:
      lower = step_fn.lower

      def __call__(self, *args):
        clock[0] += seconds
        return step_fn(*args)
    return Ticking()

  setup = train.experiment.setup

  def slow_setup(*args):
    exp = setup(*args)
    exp.train_step, exp.eval_step = ticking(exp.train_step, 1.0), ticking(exp.eval_step, 100.0)
    return exp
  monkeypatch.setattr(train.experiment, 'setup', slow_setup)
  monkeypatch.setattr(train, 'time', Clock)
  workdir = str(tmp_path / 'w')
  train.train_and_evaluate(lenet(8, log_every_steps=8), workdir)
  rates = [r['images_per_sec'] for r in workdir_lib.read_metrics(workdir)
           if r['split'] == 'train']
  assert rates == [pytest.approx(32.0)], rates
