"""A folder dataset's index: listed and inspected once, kept outside the dataset, and
noticed when the folder changes."""

import builtins
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from configs import default
from data import folder_index
from data import sources
import input_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def png(value: int, size=(8, 8)) -> bytes:
  out = io.BytesIO()
  Image.fromarray(np.full(size, value, np.uint8)).save(out, format='PNG')
  return out.getvalue()


def write(root, layout: dict):
  """{split: {class: count}} of small PNGs."""
  for split, classes in layout.items():
    for name, count in classes.items():
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      data = png(len(name))
      for i in range(count):
        with open(os.path.join(root, split, name, f'{i:05d}.png'), 'wb') as f:
          f.write(data)
  return str(root)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))


def launch(root, **dataset):
  """What a new train.py launch learns of the folder: its info, and its Folder."""
  sources._folder.cache_clear()  # pylint: disable=protected-access
  c = default.get_config()
  c.dataset.update(name=f'folder:{root}', augment='none', workers=0, on_corrupt='skip',
                   **dataset)
  return input_pipeline.dataset_info(c), sources._folder_of(c)  # pylint: disable=protected-access


def test_a_seen_folder_opens_no_image_file(tmp_path, monkeypatch):
  root = write(tmp_path / 'ds', {'train': {f'c{i}': 500 for i in range(8)},
                                 'val': {f'c{i}': 125 for i in range(8)}})
  before = sorted(os.listdir(root))
  info, folder = launch(root)
  assert (info.num_classes, info.num_train, info.num_eval) == (8, 4000, 1000)
  assert folder.inspected == 5000  # every core's processes (5,000 files and more)
  opened = []
  real_open = builtins.open
  monkeypatch.setattr(builtins, 'open', lambda path, *a, **k: (
      opened.append(path), real_open(path, *a, **k))[1])
  again, folder = launch(root)
  assert folder.inspected == 0
  assert not [p for p in opened if str(p).endswith('.png')], opened[:5]
  assert again == info and again.image_shape == (8, 8, 1)
  assert sorted(os.listdir(root)) == before  # nothing written into the dataset
  assert os.listdir(tmp_path / 'cache' / 'classic-convnets' / 'folders')


def test_changes_are_noticed_and_only_changed_files_inspected(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 6, 'b': 6}, 'test': {'a': 2, 'b': 2}})
  info, folder = launch(root)
  assert folder.inspected == 16
  with open(os.path.join(root, 'train', 'a', 'new.png'), 'wb') as f:  # added
    f.write(png(3))
  info, folder = launch(root)
  assert (info.num_train, folder.inspected) == (13, 1)
  with open(os.path.join(root, 'train', 'b', '00001.png'), 'r+b') as f:  # truncated
    f.truncate(40)
  info, folder = launch(root)
  assert (info.num_train, info.num_corrupt, folder.inspected) == (12, 1, 1)
  assert folder.corrupt[0][0].endswith('train/b/00001.png')
  os.remove(os.path.join(root, 'train', 'b', '00001.png'))  # removed
  info, folder = launch(root)
  assert (info.num_train, info.num_corrupt, folder.inspected) == (12, 0, 0)
  write(root, {'train': {'c': 3}, 'test': {'c': 1}})  # a class added
  info, folder = launch(root)
  assert (info.num_classes, info.num_train, info.num_eval, folder.inspected) == (3, 15, 5, 4)
  assert info.label_names == ('a', 'b', 'c')
  _, folder = launch(root, rescan=True)
  assert folder.inspected == 20


def test_a_read_only_dataset_folder(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  for path, dirs, files in os.walk(root):
    for name in files + dirs:
      os.chmod(os.path.join(path, name), 0o555 if name in dirs else 0o444)
  os.chmod(root, 0o555)
  try:
    info, _ = launch(root)
    _, folder = launch(root)
  finally:
    os.chmod(root, 0o755)
  assert info.num_train == 6 and folder.inspected == 0
  assert sorted(os.listdir(root)) == ['test', 'train']


def test_a_split_reaches_grain_workers_as_file_names_not_paths(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 300, 'b': 300}, 'test': {'a': 1, 'b': 1}})
  info, _ = launch(root)
  source = info.opened['train']
  sent = pickle.dumps(source)
  assert len(sent) < 1000 < len(source.paths.blob)  # the manifest's name, not 600 paths
  received = pickle.loads(sent)
  assert list(received.paths) == list(source.paths) and received.paths[599].endswith(
      'b/00299.png')
  assert [received[i]['label'] for i in (0, 599)] == [0, 1]
  part = pickle.loads(pickle.dumps(sources.FileSource(source.paths[10:20], source.labels[10:20])))
  assert list(part.paths) == list(source.paths)[10:20] and len(pickle.dumps(part)) < 1000


def test_data_check_prints_the_corrupt_files(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  with open(os.path.join(root, 'train', 'a', '00002.png'), 'r+b') as f:
    f.truncate(30)
  result = subprocess.run([sys.executable, '-m', 'data.check', f'folder:{root}'], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, 'XDG_CACHE_HOME': str(tmp_path / 'cache')})
  assert result.returncode == 1, result.stderr
  assert result.stdout == f'{root}/train/a/00002.png: truncated PNG (no IEND chunk)\n'
  assert '8 image files in 2 classes' in result.stderr and '1 corrupt' in result.stderr
