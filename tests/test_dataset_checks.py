"""Data that cannot train is an error before any file is written; split keys are
honoured by every source (or refused); hidden files are skipped, nested ones read."""

import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from configs import default
from data import sources
import input_pipeline
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.RandomState(0)


def image(path, fmt='PNG'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(RNG.randint(0, 255, (12, 12, 3), np.uint8)).save(path, format=fmt)


def folder(root, layout: dict, fmt='PNG', ext='png'):
  """{split: {class: count}} of images under root."""
  for split, classes in layout.items():
    os.makedirs(os.path.join(root, split), exist_ok=True)
    for name, count in classes.items():
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for i in range(count):
        image(os.path.join(root, split, name, f'{i}.{ext}'), fmt)
  return str(root)


def config_for(name, **dataset):
  c = default.get_config()
  c.dataset.update(name=name, augment='none', workers=0, **dataset)
  return c


def info(name, **dataset):
  sources._folder.cache_clear()  # pylint: disable=protected-access
  return input_pipeline.dataset_info(config_for(name, **dataset))


@pytest.mark.parametrize('case,message', [
    ('gif', r'2 class folder\(s\) of .*/train hold no PNG or JPEG image: a, b \(other '
            r'files, not read: 4 \.gif\)'),
    ('empty_class', r'1 class folder\(s\) of .*/train hold no PNG or JPEG image: b;'),
    ('no_classes', r'/train has no class folders'),
    ('other_classes', r'val/ has class folders that train/ lacks, so their images cannot '
                      r'be labelled: B \(train/ has b that val/ lacks\)'),
    ('empty_eval', r"config.dataset.eval_split='test' selects no examples \(test has 0\)"),
])
@pytest.mark.fast
def test_unusable_folders_are_refused_naming_what_is_wrong(tmp_path, case, message):
  root = tmp_path / case
  if case == 'gif':
    folder(root, {'train': {'a': 1, 'b': 1}, 'test': {'a': 1, 'b': 1}}, 'GIF', 'gif')
  elif case == 'empty_class':
    folder(root, {'train': {'a': 2, 'b': 0}, 'test': {'a': 1, 'b': 1}})
  elif case == 'no_classes':
    folder(root, {'train': {}, 'test': {}})
  elif case == 'other_classes':
    folder(root, {'train': {'a': 2, 'b': 2}, 'val': {'a': 1, 'B': 1}})
  else:
    folder(root, {'train': {'a': 2, 'b': 2}, 'test': {'a': 0, 'b': 0}})
  with pytest.raises(sources.DatasetError, match=message):
    info(f'folder:{root}')


def test_an_eval_split_lacking_a_class_is_a_warning_and_keeps_train_labels(tmp_path, capsys):
  """test/ without a folder for `three` evaluates the classes it has, each labelled as in
  train/ (`two` is 2, not 1: its accuracy is right), and says which class it lacks;
  README says why this is no error (a misnamed folder is refused as a class train/ lacks,
  above)."""
  root = folder(tmp_path / 'ds', {'train': {'one': 2, 'three': 2, 'two': 2},
                                  'test': {'one': 1, 'two': 2}})
  got = info(f'folder:{root}')
  assert got.label_names == ('one', 'three', 'two') and got.num_eval == 3
  assert list(got.opened['eval'].labels) == [0, 2, 2]
  assert capsys.readouterr().out.splitlines() == [
      f'WARNING: test/ of folder:{root} has no folder for 1 of the 3 classes: three; its '
      "images keep train/'s labels, so it evaluates the other 2"]


def test_an_unusable_folder_stops_train_py_before_any_file_is_written(tmp_path):
  root = folder(tmp_path / 'gif', {'train': {'a': 1}, 'test': {'a': 1}}, 'GIF', 'gif')
  result = prewarmed.run([sys.executable, 'train.py', '--config=configs/lenet.py',
                          f'--config.dataset.name=folder:{root}',
                          f'--workdir={tmp_path / "run"}'], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
  assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
  assert 'hold no PNG or JPEG image' in result.stderr
  assert not (tmp_path / 'run').exists()


def test_hidden_files_are_skipped_and_subfolders_read(tmp_path):
  root = folder(tmp_path / 'ds', {'train': {'a': 2, 'b': 2}, 'test': {'a': 1, 'b': 1}})
  for name in ('a', 'b'):
    with open(os.path.join(root, 'train', name, '._0.png'), 'wb') as f:
      f.write(b'\x00\x05\x16\x07 AppleDouble')  # macOS resource fork: not an image
    with open(os.path.join(root, 'train', name, '.DS_Store'), 'wb') as f:
      f.write(b'Bud1')
    image(os.path.join(root, 'train', name, 'more', 'deeper', 'n.png'))
    image(os.path.join(root, 'train', name, '.hidden', 'h.png'))
  os.makedirs(os.path.join(root, 'train', '.git'))
  got = info(f'folder:{root}')
  assert (got.num_classes, got.num_train, got.num_eval, got.num_corrupt) == (2, 6, 2, 0)
  paths = got.opened['train'].paths
  assert sum('deeper' in p for p in paths) == 2 and not any('/.' in p for p in paths)


@pytest.mark.fast
def test_folder_splits_take_slices(tmp_path):
  root = folder(tmp_path / 'ds', {'train': {'a': 5, 'b': 5}, 'val': {'a': 2, 'b': 2}})
  whole = info(f'folder:{root}')
  got = info(f'folder:{root}', train_split='train[:4]', eval_split='train[50%:]')
  assert (got.num_train, got.num_eval) == (4, 5)
  assert got.opened['train'].paths == whole.opened['train'].paths[:4]
  assert got.opened['eval'].paths == whole.opened['train'].paths[5:]
  assert list(got.opened['eval'].labels) == [1] * 5
  with pytest.raises(sources.DatasetError, match=r"config.dataset.train_split='trian': "
                                                 r".* has splits \['train', 'val'\]"):
    info(f'folder:{root}', train_split='trian')


@pytest.mark.fast
def test_mnist5k_honours_its_split_keys():
  whole = info('mnist5k')
  assert (whole.num_train, whole.num_eval) == (4000, 1000)
  part = info('mnist5k', train_split='train[:100]', eval_split='train[-500:]')
  assert (part.num_train, part.num_eval) == (100, 500)
  np.testing.assert_array_equal(part.opened['train'].images,
                                whole.opened['train'].images[:100])
  np.testing.assert_array_equal(part.opened['eval'].labels,
                                whole.opened['train'].labels[-500:])
  assert info('mnist5k', eval_split='validation').num_eval == 1000  # test's other names
  with pytest.raises(sources.DatasetError, match=r"config.dataset.eval_split='bogus': "
                                                 r"mnist5k has splits \['test', 'train'\]"):
    info('mnist5k', eval_split='bogus')
  with pytest.raises(sources.DatasetError, match=r"train_split='train\[4000:\]' selects no"):
    info('mnist5k', train_split='train[4000:]')


def test_synthetic_data_refuses_splits_it_does_not_have():
  assert info('synthetic', synthetic_size=40, train_split='train[:10]').num_train == 10
  with pytest.raises(sources.DatasetError, match="eval_split='holdout'"):
    info('synthetic', eval_split='holdout')


def test_a_class_emptied_by_skipped_corrupt_files_is_refused(tmp_path):
  root = folder(tmp_path / 'ds', {'train': {'a': 2, 'b': 2, 'c': 2}, 'test': {'a': 1, 'b': 1}})
  for name in os.listdir(os.path.join(root, 'train', 'b')):
    with open(os.path.join(root, 'train', 'b', name), 'wb') as f:
      f.write(b'not an image')
  with pytest.raises(sources.DatasetError, match=r"1 class folder\(s\) of .*/train hold only "
                                                 r"corrupt image files, all left out "
                                                 r"\(config.dataset.on_corrupt='skip'\): b;"):
    info(f'folder:{root}', on_corrupt='skip')


# TFDS's rule (tensorflow_datasets/core/splits.py): a percentage in [-100%, 100%], a count
# in [-n, n]; 10 examples here.
@pytest.mark.parametrize('split,fragment', [
    ('train[:150%]', '150% is out of range'), ('train[-101%:]', '-101% is out of range'),
    ('train[:11]', '11 is out of range'), ('train[-11:]', '-11 is out of range'),
    ('train[:10', 'is not a split'), ('train[a:b]', 'is not a split'),
    ('train[]', 'is not a split'), ('train[-:]', 'is not a split'),
])
def test_split_slices_out_of_range_or_malformed_are_refused(tmp_path, split, fragment):
  root = folder(tmp_path / 'ds', {'train': {'a': 5, 'b': 5}, 'val': {'a': 1, 'b': 1}})
  with pytest.raises(sources.DatasetError,
                     match=re.escape(f'config.dataset.train_split={split!r}') + '.*' + fragment):
    info(f'folder:{root}', train_split=split)


@pytest.mark.parametrize('split,size', [('train[:100%]', 10), ('train[-100%:]', 10),
                                        ('train[:10]', 10), ('train[-10:]', 10),
                                        ('train[-3:]', 3), ('train[20%:70%]', 5)])
def test_split_slices_at_the_edges_are_taken(tmp_path, split, size):
  root = folder(tmp_path / 'ds', {'train': {'a': 5, 'b': 5}, 'val': {'a': 1, 'b': 1}})
  assert info(f'folder:{root}', train_split=split).num_train == size


def _zero_idat(path):
  """Damage a PNG so that it decodes nowhere though its ends and header are whole: 32
  bytes of its IDAT chunk's data zeroed."""
  with open(path, 'rb') as f:
    data = f.read()
  start = data.index(b'IDAT') + 4
  with open(path, 'wb') as f:
    f.write(data[:start] + bytes(32) + data[start + 32:])


def _damaged_folder(root):
  """A grey folder whose train/b/1.png is damaged (_zero_idat)."""
  root = folder(root, {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  path = os.path.join(root, 'train', 'b', '1.png')
  _zero_idat(path)
  return root, path


def test_resident_data_is_decoded_by_the_checks_naming_a_file_that_fails(tmp_path):
  root, damaged = _damaged_folder(tmp_path / 'ds')
  config = config_for(f'folder:{root}', channels=1, image_size=12)
  got = info(f'folder:{root}', channels=1, image_size=12)
  assert input_pipeline.resident(config, got) and got.num_corrupt == 0  # the header passes
  with pytest.raises(sources.DatasetError, match=re.escape(damaged) + r' cannot be decoded '
                     r'\(OSError: broken data stream.*python -m data.check --decode folder:'):
    input_pipeline.check_config(config, got)


def test_a_streamed_file_that_fails_to_decode_is_named(tmp_path):
  root, damaged = _damaged_folder(tmp_path / 'ds')
  config = config_for(f'folder:{root}', channels=1, image_size=12, device_resident=False)
  config.batch_size = 6  # the whole split: the damaged file is in the first batch
  got = info(f'folder:{root}', channels=1, image_size=12, device_resident=False)
  input_pipeline.check_config(config, got)  # streamed: nothing decoded yet
  with pytest.raises(sources.DatasetError, match=re.escape(damaged) + ' cannot be decoded'):
    next(iter(input_pipeline.train_dataset(config, info=got, process_index=0,
                                           process_count=1)))


def test_a_file_damaged_mid_run_stops_train_py_in_one_line_keeping_the_checkpoints(tmp_path):
  """The streaming path (Grain workers): the run is made, a file damaged, the run made
  longer; it stops at the file with exit status 2, its checkpoint as it was."""
  root = folder(tmp_path / 'ds', {'train': {'a': 4, 'b': 4}, 'test': {'a': 2, 'b': 2}})
  workdir = tmp_path / 'run'
  run = lambda steps, *more: prewarmed.run(
      [sys.executable, 'train.py', '--config=configs/lenet.py', f'--workdir={workdir}',
       f'--config.dataset.name=folder:{root}', '--config.dataset.device_resident=False',
       '--config.dataset.workers=1', '--config.batch_size=8', '--config.schedule.name=constant',
       f'--config.num_train_steps={steps}', '--config.checkpoint_every_steps=2',
       '--config.eval_every_steps=2', '--config.log_every_steps=2', *more], cwd=ROOT,
      capture_output=True, text=True, timeout=300)
  first = run(2)
  assert first.returncode == 0, first.stderr[-2000:]
  checkpoint = workdir / 'checkpoints' / '2'
  before = {p: p.read_bytes() for p in checkpoint.rglob('*') if p.is_file()}
  damaged = os.path.join(root, 'train', 'b', '1.png')
  _zero_idat(damaged)
  second = run(4)
  assert second.returncode == 2, second.stderr[-2000:]
  assert second.stderr.count('\n') == 1, second.stderr
  assert second.stderr.startswith(f'train.py: error: {damaged} cannot be decoded')
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2']
  assert {p: p.read_bytes() for p in checkpoint.rglob('*') if p.is_file()} == before


@pytest.mark.fast
def test_synthetic_folder_says_what_it_wrote(tmp_path):
  result = prewarmed.run([sys.executable, '-m', 'data.synthetic_folder', str(tmp_path / 's'),
                          '--classes=3', '--train=4', '--val=2', '--size=8'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  on_disk = sum(len(files) for _, _, files in os.walk(tmp_path / 's'))
  assert on_disk == 18  # 3 classes x (4 + 2)
  assert result.stdout.startswith(f'wrote 18 8x8 JPEG files in 3 classes to {tmp_path / "s"}:'
                                  ' train/ 12 (4 per class), val/ 6 (2 per class)')
