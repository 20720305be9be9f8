"""Classify image files with a trained model: the top classes with names and probabilities.

  python predict.py --workdir=runs/lenet digit.png photos/          # best checkpoint
  python predict.py --workdir=runs/lenet --checkpoint=latest --top_k=3 --json digit.png
  python predict.py --torchvision=resnet18 --weights=resnet18-f37072fd.pth \
      --config=configs/resnet.py:imagenet,depth=18 cat.jpg

Each image (any size, grey or colour; a folder is read for its .png/.jpg files) goes
through the config's evaluation view, as in training's evaluation: the preset's resize and
centre crop, the config's channels, normalised on the device. Batches are split over all
local devices. One line per image: `path: name (prob), ...`, best first, each name a class
the run was trained with (its run.json: a class folder renamed since does not move the
labels); with --json, a list of {path, predictions: [{label, name, prob}]}. An image that
cannot be read is named on stderr and the others are still predicted (exit status 1); when
none can be read, that is bad input (one line, exit status 2, before the model compiles).
"""

import json
import os
import sys

from absl import flags
import numpy as np

from data import folder_index
from lib import cli
from lib import trained

FLAGS = flags.FLAGS


def image_files(paths: list[str]) -> tuple[list[str], list[str]]:
  """(the files named and the PNG/JPEG files under each folder named, in sorted order and
  hidden ones left out; the folders named that hold none)."""
  files, empty = [], []
  for path in paths:
    if os.path.isdir(path):
      found = []
      for root, dirs, names in os.walk(path):
        dirs[:] = folder_index.visible(dirs)
        found += [os.path.join(root, f) for f in folder_index.visible(names)
                  if f.lower().endswith(folder_index.IMAGE_EXTENSIONS)]
      files += sorted(found)
      empty += [] if found else [path]
    else:
      files.append(path)
  return files, empty


def eval_views(files: list[str], config) -> tuple[list[str], list[np.ndarray], list[str]]:
  """(files read, their uint8 evaluation views (S, S, C), one line per unreadable file)."""
  read, views, errors = [], [], []
  for path in files:
    try:
      views.append(trained.read_image(path, config))
      read.append(path)
    except ValueError as e:
      errors.append(str(e))
  return read, views, errors


def main(argv):
  paths = argv[1:]
  if not paths:
    cli.fail('predict.py', 'give one or more image files or folders after the flags, e.g. '
             'predict.py --workdir=DIR digit.png')
  if FLAGS.workdir is None and FLAGS.torchvision is None:
    cli.fail('predict.py', 'give --workdir=DIR (a training run), or --torchvision=NAME '
             '--weights=FILE.pth --config=configs/FILE.py')
  if FLAGS.top_k < 1:
    cli.fail('predict.py', f'--top_k={FLAGS.top_k}: give the number of classes to show '
             'per image, 1 or more')
  files, empty = image_files(paths)
  if not files:
    cli.fail('predict.py', f'no PNG or JPEG image in {", ".join(paths)}; name image files '
             'or folders that hold them')
  try:
    config, names = trained.check_from_flags(FLAGS)
  except ValueError as e:  # LoadError, DatasetError, a bad config
    cli.fail('predict.py', str(e))
  read, views, errors = eval_views(files, config)  # (decoded before the model compiles)
  errors += [f'{path}: a folder with no PNG or JPEG image' for path in empty]
  if not read:  # nothing to predict: the one bad input, in one line
    cli.fail('predict.py', errors[0] if len(errors) == 1 else
             f'none of the {len(files)} images can be read ({errors[0]}; ...)')
  try:
    model = trained.load_from_flags(FLAGS, config, names)
  except ValueError as e:  # a checkpoint of another model
    cli.fail('predict.py', str(e))
  for line in errors:
    print(f'predict.py: {line}', file=sys.stderr, flush=True)
  probs = trained.posteriors_in_batches(model.net, config, model.variables, np.stack(views),
                                         config.batch_size)
  orders = np.argsort(-probs, axis=1)[:, :FLAGS.top_k]  # each image's best classes first
  results = [{'path': path, 'predictions': [{'label': int(i), 'name': names[i],
                                             'prob': float(p[i])} for i in order]}
             for path, p, order in zip(read, probs, orders)]
  if FLAGS.json:
    print(json.dumps(results, indent=1))
  else:
    for r in results:
      print(f"{r['path']}: " + ', '.join(f"{p['name']} ({p['prob']:.3f})"
                                         for p in r['predictions']))
  if errors:
    sys.exit(1)


if __name__ == '__main__':
  trained.define_flags(sys.argv, 'predict.py')
  flags.DEFINE_integer('top_k', 5, 'classes to show per image')
  flags.DEFINE_bool('json', False, 'print a JSON list instead of lines')
  cli.run(main, 'predict.py')
