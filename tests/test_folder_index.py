"""A folder dataset's index: listed and inspected once, kept outside the dataset, and
noticed when the folder changes."""

import builtins
import contextlib
import io
import os
import pickle
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from configs import default
from data import folder_index
from data import sources
import input_pipeline
from tests import prewarmed

pytestmark = pytest.mark.fast  # (the fast lane: README)

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
  c.dataset.update(**{'name': f'folder:{root}', 'augment': 'none', 'workers': 0,
                      'on_corrupt': 'skip', **dataset})
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


def test_classes_and_files_are_sorted_whatever_order_the_file_system_lists(tmp_path,
                                                                           monkeypatch):
  """Labels are the sorted class folders' indices, as torchvision's ImageFolder gives,
  whatever order a file system lists (ext4 by hash, others as created or newest first):
  the folders are made out of order here, and listed in reverse."""
  root = write(tmp_path / 'ds', {'train': {'c': 2, 'a': 2, 'b': 2}, 'test': {'b': 1, 'a': 1}})
  listed, scandir = [], os.scandir

  class Reversed:  # os.scandir, its entries in reverse order of their names
    def __init__(self, path):
      self.scan = scandir(path)

    def __enter__(self):
      entries = sorted(self.scan, key=lambda e: e.name, reverse=True)
      listed.append([e.name for e in entries])
      return iter(entries)

    def __exit__(self, *exc):
      self.scan.close()

  monkeypatch.setattr(os, 'scandir', Reversed)
  info, _ = launch(root)
  assert ['c', 'b', 'a'] in listed
  assert info.label_names == ('a', 'b', 'c')
  for split in ('train', 'eval'):
    paths, labels = info.opened[split].paths, info.opened[split].labels
    assert list(paths) == sorted(paths)
    assert [p.split(os.sep)[-2] for p in paths] == [info.label_names[i] for i in labels]


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
  result = prewarmed.run([sys.executable, '-m', 'data.check', f'folder:{root}'], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, 'XDG_CACHE_HOME': str(tmp_path / 'cache')})
  assert result.returncode == 1, result.stderr
  assert result.stdout == f'{root}/train/a/00002.png: truncated PNG (no IEND chunk)\n'
  assert '8 image files in 2 classes' in result.stderr and '1 corrupt' in result.stderr


def _zero_idat(path):
  """32 bytes of the IDAT chunk's data zeroed: the signature, header and IEND stay whole,
  so only decoding finds it (zlib's stream is broken)."""
  with open(path, 'rb') as f:
    data = f.read()
  start = data.index(b'IDAT') + 4
  with open(path, 'wb') as f:
    f.write(data[:start] + bytes(32) + data[start + 32:])


@contextlib.contextmanager
def reading_denied(locked: str):
  """Inside the block, opening `locked` is refused as a permission would refuse it (as
  root, chmod refuses nothing, so the refusal is the open's)."""
  real_open = builtins.open

  def denied(path, *args, **kwargs):
    if str(path) == locked:
      raise PermissionError(13, 'Permission denied', str(path))
    return real_open(path, *args, **kwargs)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(builtins, 'open', denied)
    yield


def break_header(path: str):
  """Zeros over a PNG's IHDR chunk, after the signature: its ends look whole."""
  with open(path, 'r+b') as f:
    f.seek(8)
    f.write(b'\0' * 16)


def test_an_unreadable_file_is_read_again_once_it_can_be(tmp_path):
  """A permission is not the file's bytes: no verdict kept."""
  root = write(tmp_path / 'ds', {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  with reading_denied(os.path.join(root, 'train', 'a', '00001.png')):
    with pytest.raises(sources.DatasetError,
                       match=r'00001\.png \(unreadable: Permission denied'):
      launch(root, on_corrupt='stop')
    info, _ = launch(root)  # skip: left out while it cannot be read
    assert (info.num_train, info.num_corrupt) == (5, 1)
  # Then `chmod 644`: its size and times unchanged.
  info, folder = launch(root, on_corrupt='stop')
  assert (info.num_train, info.num_corrupt, folder.inspected) == (6, 0, 1)


def test_a_file_unreadable_then_found_corrupt_keeps_that_verdict(tmp_path):
  """Read at last and found corrupt, a file that could not be read before is a verdict
  the next launch recalls (it had kept its unread mark and was inspected at every
  launch)."""
  root = write(tmp_path / 'ds', {'train': {'a': 3}, 'test': {'a': 1}})
  bad = os.path.join(root, 'train', 'a', '00001.png')
  break_header(bad)
  with reading_denied(bad):
    launch(root)  # skip: left out while it cannot be read
  info, folder = launch(root)
  assert (info.num_corrupt, folder.inspected) == (1, 1)
  assert dict(folder.corrupt)[bad].startswith('unreadable header')
  info, folder = launch(root)
  assert (info.num_corrupt, folder.inspected) == (1, 0)


def test_a_bad_header_is_a_verdict_kept_not_a_file_to_read_again(tmp_path):
  """A file whose ends look whole but whose header Pillow cannot parse is corrupt by its
  bytes: the next launch recalls the verdict and opens nothing (only a failed read, such
  as a permission, is tried again)."""
  root = write(tmp_path / 'ds', {'train': {'a': 3}, 'test': {'a': 1}})
  bad = os.path.join(root, 'train', 'a', '00001.png')
  break_header(bad)
  info, folder = launch(root)
  assert (info.num_train, info.num_corrupt, folder.inspected) == (2, 1, 4)
  assert dict(folder.corrupt)[bad].startswith('unreadable header')
  info, folder = launch(root)
  assert (info.num_train, info.num_corrupt, folder.inspected) == (2, 1, 0)


def test_a_same_size_replacement_given_its_old_mtime_is_inspected_again(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  launch(root)
  path = os.path.join(root, 'train', 'b', '00002.png')
  old = os.stat(path)
  with open(path, 'wb') as f:  # random bytes, as many as before
    f.write(np.random.default_rng(0).bytes(old.st_size))
  os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
  with pytest.raises(sources.DatasetError, match=r'00002\.png \(not a PNG or JPEG file\)'):
    launch(root, on_corrupt='stop')
  bigger = io.BytesIO()  # a 40x40 PNG padded to the old size, the old mtime again
  Image.fromarray(np.zeros((40, 40), np.uint8)).save(bigger, format='PNG')
  with open(path, 'wb') as f:
    f.write(bigger.getvalue().ljust(old.st_size, b'\0'))
  os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
  info, folder = launch(root, on_corrupt='stop')
  assert folder.inspected == 1 and info.image_shape == (None, None, 1)  # 8x8 and 40x40


def test_a_cached_verdict_names_rescan(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  with open(os.path.join(root, 'train', 'a', '00000.png'), 'r+b') as f:
    f.truncate(30)
  with pytest.raises(sources.DatasetError) as fresh:
    launch(root, on_corrupt='stop')
  assert 'rescan' not in str(fresh.value)  # inspected by this launch
  with pytest.raises(sources.DatasetError, match=r'1 of these verdicts are from an earlier '
                                                 r'launch: --config\.dataset\.rescan=True'):
    launch(root, on_corrupt='stop')


def _broken_link(root):
  os.symlink(os.path.join(root, 'nowhere.png'), os.path.join(root, 'train', 'a', 'x.png'))
  return r"train/a/x\.png is a symbolic link to .*/nowhere\.png, which does not exist; fix or"


def _self_link(root):
  os.symlink('x.png', os.path.join(root, 'train', 'a', 'x.png'))
  return r'train/a/x\.png: too many levels of symbolic links .*; fix or remove the link'


def _loop(root):
  os.symlink('..', os.path.join(root, 'train', 'b', 'up'))
  return r'train/b/up/b is .*/train/b again \(a symbolic link loop.*remove the link'


def _latin1(root):
  with open(os.fsencode(os.path.join(root, 'train', 'a')) + b'/caf\xe9.png', 'wb') as f:
    f.write(png(1))
  return r'the name of .*/train/a/caf\\xe9\.png is not UTF-8 text; rename it'


def _fifo(root):
  path = os.path.join(root, 'train', 'a', 'x.png')
  os.mkfifo(path)
  # (Without the refusal a reader would block for ever: a writer set to open it lets the
  # test fail instead, reading an empty file.)
  threading.Thread(target=lambda: open(path, 'wb').close(), daemon=True).start()
  return r'train/a/x\.png is not a regular file but a named pipe \(FIFO\).*remove it'


def _unreadable_folder(root, monkeypatch):
  locked, real_scandir = os.path.join(root, 'train', 'b'), os.scandir
  def denied(path='.'):
    if str(path) == locked:  # (as root, chmod 000 refuses nothing: the call refuses)
      raise PermissionError(13, 'Permission denied', str(path))
    return real_scandir(path)
  monkeypatch.setattr(os, 'scandir', denied)
  return r'cannot read .*/train/b \(Permission denied\); make it readable \(chmod -R a\+rX'


@pytest.mark.parametrize('fault', [_broken_link, _self_link, _loop, _latin1, _fifo,
                                   _unreadable_folder])
def test_a_listing_fault_names_the_path_and_the_fix(tmp_path, monkeypatch, fault):
  root = write(tmp_path / 'ds', {'train': {'a': 2, 'b': 2}, 'test': {'a': 1, 'b': 1}})
  args = (root, monkeypatch) if fault is _unreadable_folder else (root,)
  message = fault(*args)
  with pytest.raises(sources.DatasetError, match=r'^folder dataset: .*' + message):
    launch(root)


def test_data_check_decode_finds_damage_that_the_header_check_cannot(tmp_path):
  root = write(tmp_path / 'ds', {'train': {'a': 3, 'b': 3}, 'test': {'a': 1, 'b': 1}})
  damaged = os.path.join(root, 'train', 'b', '00001.png')
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), np.uint8)).save(damaged)
  _zero_idat(damaged)  # (noise: its IDAT is long enough for 32 bytes to miss IEND)
  with pytest.raises(OSError, match='broken data stream'):  # the reference: Pillow itself
    Image.open(damaged).load()
  env = {**os.environ, 'XDG_CACHE_HOME': str(tmp_path / 'cache')}
  check = lambda *flags: prewarmed.run([sys.executable, '-m', 'data.check', *flags, root],
                                       cwd=ROOT, capture_output=True, text=True,
                                       timeout=120, env=env)
  quick = check()
  assert quick.returncode == 0 and '0 corrupt' in quick.stderr and '--decode' in quick.stderr
  full = check('--decode')
  assert full.returncode == 1, full.stderr
  assert full.stdout == (f'{damaged}: cannot be decoded (OSError: broken data stream when '
                         'reading image file)\n')
  assert '1 corrupt' in full.stderr
  info, folder = launch(root)  # the verdict is kept: skip leaves it out, opening nothing
  assert (info.num_train, info.num_corrupt, folder.inspected) == (5, 1, 0)
  assert damaged not in list(info.opened['train'].paths)
