"""Evaluate a checkpoint (or torchvision weights) the way the papers evaluated.

  python evaluate.py --workdir=runs/lenet                         # best checkpoint, centre crop
  python evaluate.py --workdir=runs/r50 --checkpoint=latest --mode=10crop
  python evaluate.py --workdir=runs/vgg16 --mode=multiscale --scales=256,384,512
  python evaluate.py --torchvision=resnet50 --weights=resnet50-0676ba61.pth \
      --config=configs/resnet.py:imagenet,depth=50 --workdir=runs/tv_r50 --mode=10crop

Modes: center (one crop, as in training's evaluation); 10crop (four corners and the
centre and their mirror images, softmax averaged: AlexNet section 4.1, ResNet Table 3);
flip and tta (airbench's test-time augmentation, levels 1 and 2: the logits of the
centre view and its mirror image averaged; tta adds 1-pixel translations);
dense (VGG section 3.2: the whole image at test scale Q, FC layers as convolutions, class
scores averaged over the map, and the mirror image); multiscale (dense at each Q of
--scales, posteriors averaged: VGG Table 4). The config is the workdir's config.json
unless --config is given; --config.KEY=VALUE overrides either (e.g. the data_dir).
Data whose classes are not those the run was trained with (run.json) is refused, naming
both. Results: DIR/eval/<checkpoint>_<mode>.json, one file per checkpoint and mode (with
_<dataset> and _<split> added for a dataset or split other than the run's own; never in
DIR/metrics.jsonl: that is training's own record, which its best and final metrics and
the sweep reports read).
"""

import os
import re
import sys
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

import input_pipeline
from lib import cli
from lib import experiment
from lib import formatting
from lib import parallel
from lib import run_contract
from lib import steps
from lib import trained
from lib import workdir as workdir_lib

FLAGS = flags.FLAGS
# Each mode's forward passes per example (a batch holds config.batch_size of them).
VIEWS_PER_EXAMPLE = {'center': 1, '10crop': 10, 'dense': 2, 'multiscale': 2, 'flip': 2, 'tta': 6}
MODES = tuple(VIEWS_PER_EXAMPLE)
TTA_LEVEL = {'flip': 1, 'tta': 2}  # airbench's test-time augmentation levels


# Bad input to evaluate.py: one line naming the flag and the fix (the loader's own type).
EvalError = trained.LoadError


def _batches(examples, examples_per_batch: int):
  """Examples of equal view shape, grouped: (indices, views (B, V, H, W, C), labels),
  padded to whole batches (index -1), so each shape compiles once."""
  groups = {}
  for index, views, label in examples:
    group = groups.setdefault(views.shape, [])
    group.append((index, views, label))
    if len(group) == examples_per_batch:
      yield _stack(groups.pop(views.shape), examples_per_batch)
  for group in groups.values():
    yield _stack(group, examples_per_batch)


def _stack(group, size):
  pad = [(-1, np.zeros_like(group[0][1]), 0)] * (size - len(group))
  indices, images, labels = zip(*(group + pad))
  return np.array(indices), np.stack(images), np.array(labels)


def predict(config, model, variables, mode: str, scales=(256, 384, 512),
            examples_per_batch: int | None = None,
            info: input_pipeline.DatasetInfo | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(posteriors averaged over the mode's views, (N, classes); labels (N,)), in the
  eval split's order. By default a batch holds config.batch_size views. Each process
  evaluates its own part of the split on its own devices; the parts are gathered. `info`,
  when the caller has it, saves opening the dataset (and decoding it) a second time."""
  if mode not in MODES:
    raise EvalError(f'--mode={mode}: one of {", ".join(MODES)}')
  mesh = parallel.data_mesh(local=True)
  per_batch = examples_per_batch or max(1, config.batch_size // VIEWS_PER_EXAMPLE[mode])
  # Whole batches of views split evenly over the local devices.
  per_batch = -(-per_batch // mesh.size) * mesh.size
  if mode in ('center', '10crop'):
    passes = [(mode, None)]  # (views, test scale Q of a whole-image pass)
  elif mode in TTA_LEVEL:
    passes = [('center', None)]  # augmented on the device
  else:
    qs = scales if mode == 'multiscale' else [config.dataset.eval_resize or 256]
    passes = [('full', q) for q in qs]
  probs, labels = {}, {}
  for views_kind, q in passes:
    dense = q is not None
    posteriors = trained.posteriors_fn(model, config, mesh, dense, TTA_LEVEL.get(mode, 0))
    if dense:
      _check_any_size(posteriors, variables, model, config, mode, q)
    examples = input_pipeline.eval_views(config, views_kind, q, info=info)
    for indices, views, y in _batches(examples, per_batch):
      b, v = views.shape[:2]
      p = posteriors(variables, views.reshape(b * v, *views.shape[2:]))
      for i, example_probs, label in zip(indices, p.reshape(b, v, -1).mean(axis=1), y):
        if i >= 0:
          probs[i] = probs.get(i, 0.) + example_probs / len(passes)
          labels[i] = label
  return _gather_parts(probs, labels)


def _gather_parts(probs: dict, labels: dict) -> tuple[np.ndarray, np.ndarray]:
  """Every process's {index: posteriors}, in index order (one process: its own)."""
  order = sorted(probs)
  p = np.stack([probs[i] for i in order])
  y = np.array([labels[i] for i in order])
  if jax.process_count() == 1:
    return p, y
  # Parts differ in size by at most one: pad to the largest with index -1.
  most = int(np.max(multihost_utils.process_allgather(np.array(len(order)))))
  pad = most - len(order)
  index = np.array(order + [-1] * pad)
  p, y = (np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in (p, y))
  # (stacked, (processes, most, ...): the mask of the first two axes picks the examples)
  index, p, y = multihost_utils.process_allgather((index, p, y))
  keep = index >= 0
  order = np.argsort(index[keep])
  return p[keep][order], y[keep][order]


def _check_any_size(posteriors, variables, model, config, mode, q):
  """Whole images need a model that takes any size: say so before compiling. (Probed
  at one such size, Q by Q plus a step of the longer side.)"""
  shape = (jax.local_device_count(), q, q + input_pipeline.DENSE_SIZE_MULTIPLE,
           config.dataset.channels)
  try:
    jax.eval_shape(posteriors.on_devices, variables, jax.ShapeDtypeStruct(shape, jnp.uint8))
  except Exception as e:  # pylint: disable=broad-except  (flax shape errors vary)
    raise EvalError(
        f'--mode={mode} runs {type(model.module).__name__} on whole images at test scale Q={q} '
        f'(the shorter side {q} pixels, the longer one as the image has it), which it '
        f'cannot take: its classifier is fixed to '
        f'{config.dataset.image_size}x{config.dataset.image_size} inputs '
        f'({type(e).__name__}); use --mode=center or 10crop') from None


def metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
  """Top-1, top-5 (as the training's evaluation counts them) and the mean loss."""
  hits = steps.topk_hits(probs, labels, np)
  picked = probs[np.arange(len(labels)), labels]
  return {'top1': float(np.mean(hits['top1'])), 'top5': float(np.mean(hits['top5'])),
          'loss': float(np.mean(-np.log(np.maximum(picked, 1e-12)))),
          'num_examples': int(len(labels))}


def evaluate(config, workdir: str, mode: str = 'center', checkpoint: str = 'best',
             scales=(256, 384, 512), torchvision: str | None = None,
             weights: str | None = None) -> dict:
  """Evaluate and record; returns the record written to DIR/eval/*.json. Whatever needs
  no data is checked first: the weights to load, where the result goes."""
  if mode not in MODES:
    raise EvalError(f'--mode={mode}: one of {", ".join(MODES)}')
  trained.check_source(workdir, checkpoint, torchvision, weights)
  if not torchvision:
    experiment.check(config, training=False)
  which = (f'torchvision_{torchvision}' if torchvision else
           trained.checkpoint_to_load(workdir, checkpoint)[2])
  # _<dataset>, _<split> added for data other than the run's own, so that neither
  # overwrites the other (the run's own record is what reproduce.py's tables read)
  saved = run_contract.read_saved(workdir)
  suffix = ''.join('_' + re.sub(r'[^\w.-]', '_', config.dataset[k])
                   for k in ('name', 'eval_split')
                   if saved is not None and saved.dataset[k] != config.dataset[k])
  path = os.path.join(workdir, 'eval', f'{which}_{mode}{suffix}.json')
  if parallel.is_primary():
    check_writable(path)
  info = input_pipeline.dataset_info(config)
  if not torchvision:  # (a label is scored as the class the run trained under it)
    trained.check_classes(workdir, info)
  input_pipeline.check_config(config, info, splits=('eval',))  # (the train split unread)
  loaded = trained.load(config, info.num_classes, workdir, checkpoint, torchvision, weights)
  start = time.time()
  probs, labels = predict(config, loaded.net, loaded.variables, mode, scales, info=info)
  record = {'dataset': config.dataset.name, 'split': config.dataset.eval_split, 'mode': mode,
            'checkpoint': which, 'step': loaded.step, **metrics(probs, labels),
            'seconds': time.time() - start}
  if mode == 'multiscale':
    record['scales'] = list(scales)
  if not parallel.is_primary():  # every process holds the whole result; one writes it
    return record
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    workdir_lib.write_json(path, record)
  except OSError as e:  # (checked above; a disk that filled up meanwhile)
    raise UnsavedError(record, f'{path}: {e.strerror or e}') from None
  return record


class UnsavedError(OSError):
  """An evaluation done whose record could not be written: the record, and why."""

  def __init__(self, record: dict, why: str):
    super().__init__(why)
    self.record = record


def check_writable(path: str):
  """An EvalError naming `path` unless its folder exists and is writable, or can be made:
  refused before evaluating, not after (a read-only workdir, a file where a folder goes)."""
  folder = existing = os.path.dirname(path)
  while existing and not os.path.exists(existing):
    existing = os.path.dirname(existing)
  existing = existing or '.'
  if not os.path.isdir(existing):
    why = f'{existing} is a file, not a folder'
  elif os.path.exists(path) and not os.path.isfile(path):
    why = f'{path} is a folder'
  elif not os.access(existing, os.W_OK | os.X_OK) or (
      os.path.isfile(path) and not os.access(path, os.W_OK)):
    why = f'{path if os.path.isfile(path) else existing} is not writable by this user'
  else:
    return
  raise EvalError(f'--workdir: cannot save the result to {path} ({why}); make {folder} a '
                  'folder this user can write, or evaluate a copy of the workdir')


def main(argv):
  if len(argv) > 1:
    cli.fail('evaluate.py', f'unexpected arguments: {" ".join(argv[1:])} (flags only: '
             '--workdir=DIR, --mode=..., ...)')
  if FLAGS.workdir is None:
    cli.fail('evaluate.py', 'give --workdir=DIR (a training run, or where torchvision '
             'results go)')
  try:
    config, _ = trained.check_from_flags(FLAGS, classes=False)
  except ValueError as e:
    cli.fail('evaluate.py', str(e))
  try:
    scales = tuple(int(s) for s in FLAGS.scales)
  except ValueError:
    cli.fail('evaluate.py', f'--scales={",".join(FLAGS.scales)}: give integers, e.g. '
             '256,384,512')
  try:
    record = evaluate(config, FLAGS.workdir, FLAGS.mode, FLAGS.checkpoint, scales,
                      FLAGS.torchvision, FLAGS.weights)
  except (EvalError, input_pipeline.DatasetError, FileNotFoundError) as e:
    cli.fail('evaluate.py', str(e))
  except ValueError as e:  # e.g. a fixed-size head asked for a dense evaluation
    cli.fail('evaluate.py', f'--mode={FLAGS.mode}: {e}')
  except UnsavedError as e:  # the result stands; only its file is missing
    print(summary_line(e.record), flush=True)
    print(f'evaluate.py: error: the result above could not be saved: {e}', file=sys.stderr,
          flush=True)
    sys.exit(1)
  print(summary_line(record), flush=True)


def summary_line(record: dict) -> str:
  return (f"{record['checkpoint']} (step {record['step']}), {record['mode']}: top-1 "
          f"{100 * record['top1']:.2f}%, top-5 {100 * record['top5']:.2f}%, loss "
          f"{record['loss']:.4f} on {record['num_examples']} examples in "
          f"{formatting.duration(record['seconds'])}")


if __name__ == '__main__':
  trained.define_flags(sys.argv, 'evaluate.py',
                       'a training workdir (or where torchvision results go)')
  flags.DEFINE_enum('mode', 'center', MODES, 'test-time views')
  flags.DEFINE_list('scales', ['256', '384', '512'], 'multiscale: test scales Q')
  cli.run(main, 'evaluate.py')
