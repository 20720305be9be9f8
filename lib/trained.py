"""A trained model, as evaluate.py, predict.py and visualize.py load it: the config (the
workdir's config.json, or --config), the variables of a checkpoint (best, latest, a step)
or of a torchvision weights file, and a jitted function from uint8 images to posteriors.
"""

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
from ml_collections import config_flags
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import default
import input_pipeline
from lib import checkpoints
from lib import cli
from lib import experiment
from lib import parallel
import models
from models import torchvision_import


class LoadError(ValueError):
  """A checkpoint or weights file that cannot be used: one line naming the flag and fix."""


@dataclasses.dataclass
class Trained:
  model: Any
  variables: dict
  step: int
  which: str     # 'best', 'latest', 'step<N>' or 'torchvision_<name>'


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


def define_config_flag(argv: list[str], program: str):
  """--config is a config file when given, else the workdir's config.json (a config
  flag must exist before parsing, so the workdir is read from argv first)."""
  if any(a == '--config' or a.startswith('--config=') for a in argv):
    config_flags.DEFINE_config_file('config', None, 'config file (file.py[:arg])',
                                    lock_config=True)
    return
  workdir = next((a.split('=', 1)[1] for a in argv if a.startswith('--workdir=')), None)
  path = os.path.join(workdir, 'config.json') if workdir else ''
  config = load_config_json(path) if os.path.isfile(path) else ml_collections.ConfigDict()
  cli.check_overrides(program, argv, config)
  config_flags.DEFINE_config_dict('config', config, 'overrides of the workdir config')


def prepare(config, workdir: str | None, torchvision: str | None = None):
  """What every command on a trained model does before loading it: a config to use, the
  compilation cache, jax.distributed for a multi-process job, the checks without data."""
  if 'model' not in config:
    raise LoadError(f'--workdir={workdir} has no config.json: give the workdir of a '
                    'training run, or --config=configs/FILE.py')
  cli.use_compilation_cache()
  parallel.maybe_initialize_distributed(config)
  if not torchvision:
    experiment.check(config, training=False)


def variables_from_checkpoint(workdir: str, which: str) -> tuple[dict, int, str]:
  """(params and batch_stats, step, 'best'|'latest'|'step<N>') of `which`: best, latest
  or a step number."""
  if which in ('best', 'latest'):
    kind = checkpoints.BEST if which == 'best' else checkpoints.LATEST
    step = None
  else:
    if not which.isdigit():
      raise LoadError(f"--checkpoint={which}: give best, latest or a step number")
    step, kind = int(which), checkpoints.LATEST
    if not os.path.isdir(os.path.join(workdir, kind, which)):
      kind = checkpoints.BEST
  directory = os.path.join(workdir, kind)
  if not os.path.isdir(directory) or not any(d.isdigit() for d in os.listdir(directory)):
    raise LoadError(f'--workdir={workdir} has no checkpoint in {kind}/; train first '
                    '(python train.py ...) or give --checkpoint=latest')
  if step is None:
    step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  elif not os.path.isdir(os.path.join(directory, str(step))):
    steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, checkpoints.LATEST))
                   if d.isdigit())
    raise LoadError(f'--checkpoint={step}: no such step in {workdir}; it has {steps}')
  state = checkpoints.read_state(workdir, kind, step)
  variables = {'params': state['params']}
  if state.get('batch_stats'):
    variables['batch_stats'] = state['batch_stats']
  return variables, step, which if which in ('best', 'latest') else f'step{step}'


def load(config, num_classes: int, workdir: str | None, checkpoint: str = 'best',
         torchvision: str | None = None, weights: str | None = None) -> Trained:
  """The model and variables of a checkpoint of `workdir`, or of torchvision weights."""
  if torchvision:
    if not weights:
      raise LoadError('--torchvision needs --weights=FILE.pth (torchvision state dict)')
    if torchvision not in torchvision_import.SUPPORTED:
      raise LoadError(f'--torchvision={torchvision}: one of '
                      f'{", ".join(torchvision_import.SUPPORTED)}')
    if not os.path.isfile(weights):
      raise LoadError(f'--weights={weights}: no such file')
    variables = torchvision_import.convert(torchvision,
                                           torchvision_import.load_pth(weights))
    return Trained(models.create_model(torchvision, num_classes=num_classes), variables, 0,
                   f'torchvision_{torchvision}')
  model = experiment.create_model(config, num_classes)
  variables, step, which = variables_from_checkpoint(workdir, checkpoint)
  return Trained(model, variables, step, which)


def posteriors_fn(model, config, mesh, dense: bool = False):
  """uint8 images (N, H, W, C) -> softmax posteriors, normalised on the device and sharded
  over the mesh's devices; with `dense`, a model that declares dense evaluation runs its
  classifier as convolutions over the whole image (VGG section 3.2)."""
  kwargs = {'dense': True} if dense and models.dense_evaluation(model) else {}

  @functools.partial(jax.jit, in_shardings=(NamedSharding(mesh, P()),
                                            input_pipeline.batch_sharding(mesh)))
  def posteriors(variables, images):
    images = input_pipeline.prepare_eval({'image': images}, config)['image']
    logits = model.apply(variables, images, train=False, **kwargs)
    return jax.nn.softmax(logits.astype(jnp.float32))
  return posteriors


def posteriors_in_batches(model, config, variables, views, batch_size: int):
  """Posteriors (N, classes) of uint8 views (N, H, W, C), in batches split over the local
  devices; the last batch is padded, so every batch has one shape and compiles once."""
  mesh = parallel.data_mesh(local=True)
  posteriors = posteriors_fn(model, config, mesh)
  batch = -(-max(1, batch_size) // mesh.size) * mesh.size  # whole batches per device
  out = []
  for start in range(0, len(views), batch):
    chunk = views[start:start + batch]
    padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]),
                                             chunk.dtype)])
    out.append(np.asarray(posteriors(variables, padded))[:len(chunk)])
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
