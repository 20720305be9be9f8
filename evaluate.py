"""Evaluate a checkpoint (or torchvision weights) the way the papers evaluated.

  python evaluate.py --workdir=runs/lenet                         # best checkpoint, centre crop
  python evaluate.py --workdir=runs/r50 --checkpoint=latest --mode=10crop
  python evaluate.py --workdir=runs/vgg16 --mode=multiscale --scales=256,384,512
  python evaluate.py --torchvision=resnet50 --weights=resnet50-0676ba61.pth \
      --config=configs/resnet.py:imagenet,depth=50 --workdir=runs/tv_r50 --mode=10crop

Modes: center (one crop, as in training's evaluation); 10crop (four corners and the
centre and their mirror images, softmax averaged: AlexNet section 4.1, ResNet Table 3);
dense (VGG section 3.2: the whole image at test scale Q, FC layers as convolutions, class
scores averaged over the map, and the mirror image); multiscale (dense at each Q of
--scales, posteriors averaged: VGG Table 4). The config is the workdir's config.json
unless --config is given; --config.KEY=VALUE overrides either (e.g. the data_dir).
Results: DIR/eval/<checkpoint>_<mode>.json and a record in DIR/metrics.jsonl.
"""

import functools
import json
import os
import sys
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from lib import checkpoints
from lib import cli
from lib import formatting
from lib import experiment
from configs import default
import input_pipeline
import models
from lib import parallel
from models import torchvision_import
from lib import workdir as workdir_lib

FLAGS = flags.FLAGS
MODES = ('center', '10crop', 'dense', 'multiscale')
VIEWS_PER_EXAMPLE = {'center': 1, '10crop': 10, 'dense': 2, 'multiscale': 2}  # + mirrors


class EvalError(ValueError):
  """Bad input to evaluate.py: one line naming the flag and the fix."""


def variables_from_checkpoint(workdir: str, which: str) -> tuple[dict, int, str]:
  """(params and batch_stats, step, 'best'|'latest') of `which`: best, latest or a step."""
  if which in ('best', 'latest'):
    kind = checkpoints.BEST if which == 'best' else checkpoints.LATEST
    step = None
  else:
    if not which.isdigit():
      raise EvalError(f"--checkpoint={which}: give best, latest or a step number")
    step, kind = int(which), checkpoints.LATEST
    if not os.path.isdir(os.path.join(workdir, kind, which)):
      kind = checkpoints.BEST
  directory = os.path.join(workdir, kind)
  if not os.path.isdir(directory) or not any(d.isdigit() for d in os.listdir(directory)):
    raise EvalError(f'--workdir={workdir} has no checkpoint in {kind}/; train first '
                    '(python train.py ...) or give --checkpoint=latest')
  if step is None:
    step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  elif not os.path.isdir(os.path.join(directory, str(step))):
    steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, checkpoints.LATEST))
                   if d.isdigit())
    raise EvalError(f'--checkpoint={step}: no such step in {workdir}; it has {steps}')
  state = checkpoints.read_state(workdir, kind, step)
  variables = {'params': state['params']}
  if state.get('batch_stats'):
    variables['batch_stats'] = state['batch_stats']
  return variables, step, which if which in ('best', 'latest') else f'step{step}'


def _apply_fn(model, config, dense: bool, mesh):
  """uint8 views -> softmax posteriors, normalised on the device and sharded over the
  mesh's devices; VGG's FC head runs as convolutions when `dense`."""
  kwargs = {'dense': True} if dense and models.dense_evaluation(model) else {}

  @functools.partial(jax.jit, in_shardings=(NamedSharding(mesh, P()),
                                            input_pipeline.batch_sharding(mesh)))
  def posteriors(variables, images):
    images = input_pipeline.prepare_eval({'image': images}, config)['image']
    logits = model.apply(variables, images, train=False, **kwargs)
    return jax.nn.softmax(logits.astype(jnp.float32))
  return posteriors


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
            examples_per_batch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(posteriors averaged over the mode's views, (N, classes); labels (N,)), in the
  eval split's order. By default a batch holds config.batch_size views. Each process
  evaluates its own part of the split on its own devices; the parts are gathered."""
  if mode not in MODES:
    raise EvalError(f'--mode={mode}: one of {", ".join(MODES)}')
  mesh = parallel.data_mesh(local=True)
  per_batch = examples_per_batch or max(1, config.batch_size // VIEWS_PER_EXAMPLE[mode])
  # Whole batches of views split evenly over the local devices.
  per_batch = -(-per_batch // mesh.size) * mesh.size
  if mode in ('center', '10crop'):
    passes = [(mode, None)]  # (views, test scale Q of a whole-image pass)
  else:
    qs = scales if mode == 'multiscale' else [config.dataset.eval_resize or 256]
    passes = [('full', q) for q in qs]
  probs, labels = {}, {}
  for views_kind, q in passes:
    dense = q is not None
    posteriors = _apply_fn(model, config, dense, mesh)
    if dense:
      _check_any_size(posteriors, variables, model, config, mode, q)
    examples = input_pipeline.eval_views(config, views_kind, q)
    for indices, views, y in _batches(examples, per_batch):
      b, v = views.shape[:2]
      p = np.asarray(posteriors(variables, views.reshape(b * v, *views.shape[2:])))
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
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  # Parts differ in size by at most one: pad to the largest with index -1.
  most = int(np.max(multihost_utils.process_allgather(np.array(len(order)))))
  pad = most - len(order)
  index = np.concatenate([np.array(order), -np.ones(pad, int)])
  p = np.concatenate([p, np.zeros((pad, p.shape[1]), p.dtype)])
  y = np.concatenate([y, np.zeros(pad, y.dtype)])
  index, p, y = (np.asarray(a).reshape(-1, *a.shape[1:]) for a in
                 multihost_utils.process_allgather((index, p, y)))
  keep = index >= 0
  order = np.argsort(index[keep])
  return p[keep][order], y[keep][order]


def _check_any_size(posteriors, variables, model, config, mode, q):
  """Whole images need a model that takes any size: say so before compiling."""
  shape = (jax.local_device_count(), q, q + input_pipeline.DENSE_SIZE_MULTIPLE,
           config.dataset.channels)
  try:
    jax.eval_shape(posteriors, variables, jax.ShapeDtypeStruct(shape, jnp.uint8))
  except Exception as e:  # pylint: disable=broad-except  (flax shape errors vary)
    raise EvalError(
        f'--mode={mode} runs {type(model).__name__} on whole images ({shape[1]}x{shape[2]} '
        f'here), which it cannot take: its classifier is fixed to '
        f'{config.dataset.image_size}x{config.dataset.image_size} inputs '
        f'({type(e).__name__}); use --mode=center or 10crop') from None


def metrics(probs: np.ndarray, labels: np.ndarray) -> dict:
  """Top-1, top-5 (as the training's evaluation counts them) and the mean loss."""
  hits = experiment.topk_hits(probs, labels, np)
  picked = probs[np.arange(len(labels)), labels]
  return {'top1': float(np.mean(hits['top1'])), 'top5': float(np.mean(hits['top5'])),
          'loss': float(np.mean(-np.log(np.maximum(picked, 1e-12)))),
          'num_examples': int(len(labels))}


def evaluate(config, workdir: str, mode: str = 'center', checkpoint: str = 'best',
             scales=(256, 384, 512), torchvision: str | None = None,
             weights: str | None = None) -> dict:
  """Evaluate and record; returns the record written to DIR/eval/*.json."""
  if not torchvision:
    experiment.check(config, training=False)  # before any data is opened
  info = input_pipeline.dataset_info(config)
  input_pipeline.check_config(config, info)
  if torchvision:
    if not weights:
      raise EvalError('--torchvision needs --weights=FILE.pth (torchvision state dict)')
    if torchvision not in torchvision_import.SUPPORTED:
      raise EvalError(f'--torchvision={torchvision}: one of '
                      f'{", ".join(torchvision_import.SUPPORTED)}')
    if not os.path.isfile(weights):
      raise EvalError(f'--weights={weights}: no such file')
    variables = torchvision_import.convert(torchvision,
                                           torchvision_import.load_pth(weights))
    model = models.create_model(torchvision, num_classes=info.num_classes)
    step, which = 0, f'torchvision_{torchvision}'
  else:
    model = experiment.create_model(config, info)
    variables, step, which = variables_from_checkpoint(workdir, checkpoint)
  start = time.time()
  probs, labels = predict(config, model, variables, mode, scales)
  record = {'split': f'{config.dataset.eval_split}', 'mode': mode, 'checkpoint': which,
            'step': step, **metrics(probs, labels), 'seconds': time.time() - start}
  if mode == 'multiscale':
    record['scales'] = list(scales)
  if not parallel.is_primary():  # every process holds the whole result; one writes it
    return record
  os.makedirs(os.path.join(workdir, 'eval'), exist_ok=True)
  workdir_lib.write_json(os.path.join(workdir, 'eval', f'{which}_{mode}.json'), record)
  workdir_lib.append_metrics(workdir, record)
  return record


def load_config_json(path: str) -> ml_collections.ConfigDict:
  """A workdir's config.json over today's defaults: a run from before a key existed
  gets that key's default."""
  with open(path) as f:
    saved = json.load(f)
  config = default.get_config()

  def merge(node, values):
    for key, value in values.items():
      if isinstance(value, dict) and key != 'model' and isinstance(
          node.get(key), ml_collections.ConfigDict):
        merge(node[key], value)
      elif isinstance(value, list) and isinstance(node.get(key), tuple):
        node[key] = tuple(value)
      else:
        node[key] = value
  merge(config, saved)
  return config


def define_flags(argv):
  """--config is a config file when given, else the workdir's config.json (a config
  flag must exist before parsing, so the workdir is read from argv first)."""
  flags.DEFINE_string('workdir', None, 'a training workdir (or where torchvision results go)')
  flags.DEFINE_string('checkpoint', 'best', 'best | latest | a step number')
  flags.DEFINE_enum('mode', 'center', MODES, 'test-time views')
  flags.DEFINE_list('scales', ['256', '384', '512'], 'multiscale: test scales Q')
  flags.DEFINE_string('torchvision', None, 'evaluate torchvision weights of this model')
  flags.DEFINE_string('weights', None, 'with --torchvision: the .pth state dict')
  if any(a == '--config' or a.startswith('--config=') for a in argv):
    config_flags.DEFINE_config_file('config', None, 'config file (file.py[:arg])',
                                    lock_config=True)
    return
  workdir = next((a.split('=', 1)[1] for a in argv if a.startswith('--workdir=')), None)
  path = os.path.join(workdir, 'config.json') if workdir else ''
  config = load_config_json(path) if os.path.isfile(path) else ml_collections.ConfigDict()
  cli.check_overrides('evaluate.py', argv, config)
  config_flags.DEFINE_config_dict('config', config, 'overrides of the workdir config')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if FLAGS.workdir is None:
    raise app.UsageError('give --workdir=DIR')
  cli.use_compilation_cache()
  config = FLAGS.config
  if 'model' not in config:
    cli.fail('evaluate.py', f'--workdir={FLAGS.workdir} has no config.json: give the '
             'workdir of a training run, or --config=configs/FILE.py')
  try:
    parallel.maybe_initialize_distributed(config)
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
  print(f"{record['checkpoint']} (step {record['step']}), {FLAGS.mode}: top-1 "
        f"{100 * record['top1']:.2f}%, top-5 {100 * record['top5']:.2f}%, loss "
        f"{record['loss']:.4f} on {record['num_examples']} examples in "
        f"{formatting.duration(record['seconds'])}", flush=True)


if __name__ == '__main__':
  define_flags(sys.argv)
  cli.run(main, 'evaluate.py')
