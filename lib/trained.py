"""A trained model, as evaluate.py, predict.py and visualize.py load it: the config (the
workdir's config.json, or --config), the names of its classes (those it was trained with),
the variables of a checkpoint (best, latest, a step) or of a torchvision weights file, a
user's image file through the evaluation view, and a jitted function from uint8 images to
posteriors.
"""

import dataclasses
import functools
import os
from typing import Any

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
from ml_collections import config_flags
from jax.sharding import NamedSharding, PartitionSpec as P
from PIL import UnidentifiedImageError

from data import sources, transforms
import input_pipeline
from lib import checkpoints
from lib import cli
from lib import experiment
from lib import parallel
from lib import run_contract
import models
from models import torchvision_import

flags.disclaim_key_flags()  # define_flags's flags are its caller's, whose --help lists them


class LoadError(ValueError):
  """A checkpoint or weights file that cannot be used: one line naming the flag and fix."""


@dataclasses.dataclass
class Trained:
  net: Any       # the model split into functions (models.functional)
  variables: dict
  step: int
  which: str     # 'best', 'latest', 'step<N>' or 'torchvision_<name>'
  classes: list = dataclasses.field(default_factory=list)  # names by label (class_names)


def define_flags(argv: list[str], program: str, workdir_help: str = 'a training workdir'):
  """The flags naming the trained model, which check_from_flags and load_from_flags read.
  --config is a config file when given, else the workdir's config.json (a config flag
  must exist before parsing, so the workdir is read from argv first)."""
  flags.DEFINE_string('workdir', None, workdir_help)
  flags.DEFINE_string('checkpoint', 'best', 'best | latest | a step number')
  flags.DEFINE_string('torchvision', None, 'use torchvision weights of this model')
  flags.DEFINE_string('weights', None, 'with --torchvision: the .pth state dict')
  if any(a == '--config' or a.startswith('--config=') for a in argv):
    config_flags.DEFINE_config_file('config', None, 'config file (file.py[:arg])',
                                    lock_config=True)
    return
  workdir = next((a.split('=', 1)[1] for a in argv if a.startswith('--workdir=')), None)
  try:
    config = (workdir and run_contract.read_saved(workdir)) or ml_collections.ConfigDict()
  except run_contract.ContractError as e:  # (before cli.run: a truncated, hand-edited file)
    cli.fail(program, str(e))
  # (ml_collections applies argv's overrides as the flag is defined: unknown keys first)
  unknown = cli.unknown_key(argv, 'config', config)
  if unknown:
    cli.fail(program, unknown)
  config_flags.DEFINE_config_dict('config', config, 'overrides of the workdir config')


def check_before_loading(config, workdir: str | None, torchvision: str | None = None,
            weights: str | None = None, checkpoint: str = 'best'):
  """What every command on a trained model does before loading it: a config to use (one
  that does not change the model the workdir's checkpoints hold), the checkpoint or
  weights file to load, the compilation cache, jax.distributed for a multi-process job,
  the checks without data."""
  if 'model' not in config:
    raise LoadError(f'--workdir={workdir} has no config.json: give the workdir of a '
                    'training run, or --config=configs/FILE.py')
  saved = workdir and not torchvision and run_contract.read_saved(workdir)
  changed = saved and run_contract.model_changes(run_contract.changes(saved, config))
  if changed:
    raise LoadError(f'--workdir={workdir} was trained with another model than this '
                    f'config asks for: {run_contract.describe(changed)}; drop those '
                    'settings (the workdir\'s config.json is used when --config is '
                    'not given)')
  check_source(workdir, checkpoint, torchvision, weights)
  cli.use_compilation_cache()
  parallel.maybe_initialize_distributed(config)
  if not torchvision:
    experiment.check(config, training=False)


def check_from_flags(values, classes: bool = True) -> tuple[Any, list[str] | None]:
  """check_before_loading on define_flags's flags: (config, class_names or None)."""
  config = values.config
  check_before_loading(config, values.workdir, values.torchvision, values.weights,
                       values.checkpoint)
  return config, class_names(config, values.workdir, values.torchvision) if classes else None


def load_from_flags(values, config, names: list[str]) -> Trained:
  """load on define_flags's flags: the model of the classes `names`, named."""
  model = load(config, len(names), values.workdir, values.checkpoint, values.torchvision,
               values.weights)
  return dataclasses.replace(model, classes=names)


def check_source(workdir: str | None, checkpoint: str = 'best',
                 torchvision: str | None = None, weights: str | None = None):
  """The weights to load exist: torchvision's model name and its weights file, or the
  workdir's checkpoint (a LoadError naming the flag otherwise). Reads no data and no
  checkpoint, so it goes before the dataset is opened."""
  if torchvision:
    if not weights:
      raise LoadError('--torchvision needs --weights=FILE.pth (torchvision state dict)')
    if torchvision not in torchvision_import.SUPPORTED:
      raise LoadError(f'--torchvision={torchvision}: one of '
                      f'{", ".join(torchvision_import.SUPPORTED)}')
    if not os.path.isfile(weights):
      raise LoadError(f'--weights={weights}: no such file')
  elif not workdir:
    raise LoadError('give --workdir=DIR (a training run), or --torchvision=NAME '
                    '--weights=FILE.pth')
  else:
    try:
      run_contract.check_format(workdir, '--workdir', resuming=False)
    except run_contract.ContractError as e:
      raise LoadError(str(e)) from None
    checkpoint_to_load(workdir, checkpoint)


def class_names(config, workdir: str | None, torchvision: str | None = None) -> list[str]:
  """The name of each class the model tells apart, by label: those the run was trained
  with (run.json, which check_source required), not today's dataset's, where a renamed,
  added or removed class folder moves the labels after it; numbers where there are no
  names. Torchvision weights: the dataset's, or without the dataset here ImageNet's
  1000, by number."""
  if not torchvision:
    dataset = run_contract.read_facts(workdir)['dataset']
    names, count = dataset.get('classes') or [], dataset['num_classes']
  else:
    try:
      info = sources.dataset_info(config)
      names, count = list(info.label_names), info.num_classes
    except sources.DatasetError:
      names, count = [], 1000
  count = config.num_classes or count
  return names if len(names) == count else [str(i) for i in range(count)]


def check_classes(workdir: str, info):
  """A LoadError naming both lists when the dataset's classes are not those the run was
  trained with (run.json): its labels would be scored against other classes."""
  changed = run_contract.class_change(run_contract.read_facts(workdir), info)
  if changed:
    raise LoadError(f'--workdir={workdir} was trained on other classes than {info.name} '
                    f'has now: {changed}; its outputs are those classes, by label, so it '
                    'cannot be scored on this data. Put the data back as it was, or point '
                    '--config.dataset.name at data with the classes it was trained on')


def read_image(path: str, config) -> np.ndarray:
  """A user's image file through the config's evaluation view, uint8 (S, S, C); a
  ValueError saying why not that names the file (Pillow's own message names a buffer)."""
  try:
    with open(path, 'rb') as f:
      return transforms.eval_example(f.read(), config)
  except FileNotFoundError:
    raise ValueError(f'{path}: no such file') from None
  except UnidentifiedImageError:
    why = 'not an image Pillow can read: give a PNG or JPEG file'
  except (OSError, ValueError, SyntaxError) as e:  # a truncated file, a directory, ...
    why = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else "no detail"}'
  raise ValueError(f'{path}: cannot read this image ({why})')


def checkpoint_to_load(workdir: str, which: str) -> tuple[str, int, str]:
  """(checkpoints.BEST or LATEST, step, 'best'|'latest'|'step<N>') of `which`: best,
  latest or a step number; a LoadError naming --checkpoint when there is none such."""
  if which in ('best', 'latest'):
    kind = checkpoints.BEST if which == 'best' else checkpoints.LATEST
    steps = checkpoints.saved_steps(workdir, kind)
    if not steps:
      other = ' or give --checkpoint=latest' if which == 'best' else ''
      raise LoadError(f'--workdir={workdir} has no checkpoint in {kind}/; train first '
                      f'(python train.py ...){other}')
    return kind, steps[-1], which
  if not which.isdigit():
    raise LoadError(f"--checkpoint={which}: give best, latest or a step number")
  step = int(which)
  kept = {kind: checkpoints.saved_steps(workdir, kind)
          for kind in (checkpoints.LATEST, checkpoints.BEST)}
  for kind, steps in kept.items():  # (the latest checkpoints' first)
    if step in steps:
      return kind, step, f'step{step}'
  raise LoadError(f'--checkpoint={which}: no such step in {workdir}; it has '
                  f'{sorted({s for steps in kept.values() for s in steps})}')


def variables_from_checkpoint(workdir: str, which: str) -> tuple[dict, int, str]:
  """(params and batch_stats, step, 'best'|'latest'|'step<N>') of `which`: best, latest
  or a step number."""
  kind, step, name = checkpoint_to_load(workdir, which)
  try:
    state = checkpoints.read_state(workdir, kind, step)
  except checkpoints.CorruptCheckpointError as e:
    raise LoadError(f'--checkpoint={which}: {e}; give another (best, latest or a step of '
                    f'{checkpoints.saved_steps(workdir)})') from None
  return {k: state[k] for k in ('params', 'batch_stats') if state.get(k)}, step, name


def load(config, num_classes: int, workdir: str | None, checkpoint: str = 'best',
         torchvision: str | None = None, weights: str | None = None) -> Trained:
  """The model and variables of a checkpoint of `workdir`, or of torchvision weights."""
  if torchvision:
    try:
      variables = torchvision_import.convert(torchvision, torchvision_import.load_pth(weights))
    except ValueError as e:
      raise LoadError(f'--weights={weights}: {e}; give torchvision\'s .pth for '
                      f'{torchvision}') from None
    net = models.create_functional(torchvision, num_classes=num_classes,
                                   image_size=config.dataset.image_size)
    trained = Trained(net, variables, 0, f'torchvision_{torchvision}')
    what = f'--weights={weights}'
  else:
    variables, step, which = variables_from_checkpoint(workdir, checkpoint)
    saved = run_contract.read_saved(workdir)
    if saved and not config.dataset.stats:  # (other data: normalised as the run's was)
      config.dataset.stats = sources.stats_name(saved.dataset)
    trained = Trained(experiment.create_net(config, num_classes), variables, step, which)
    what = f'the {which} checkpoint of {workdir}'
  expected = jax.eval_shape(lambda: trained.net.init(jax.random.key(0)))  # (key traced)
  wrong = checkpoints.mismatch({k: expected.get(k, {}) for k in variables}, variables, what)
  if wrong:
    raise LoadError(f'{wrong}: it was trained as another model than this config '
                    f'describes ({config.model.name}, {num_classes} classes)')
  # On every local device once, explicitly (each call would otherwise copy them there).
  replicated = NamedSharding(parallel.data_mesh(local=True), P())
  return dataclasses.replace(trained, variables=jax.device_put(trained.variables, replicated))


def tta_logits(logits_of, images, level: int):
  """Test-time augmentation of normalised NHWC images, as airbench's `infer` does it:
  level 0 the logits; 1 the mean of the image's and its mirror image's; 2 half of that
  plus half the mean of level 1 at two 1-pixel translations (reflect-padded by 1, the
  crops at offsets (0, 0) and (2, 2))."""
  if level == 0:
    return logits_of(images)
  mirror = lambda x: 0.5 * logits_of(x) + 0.5 * logits_of(x[:, :, ::-1])
  if level == 1:
    return mirror(images)
  h, w = images.shape[1:3]
  padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  shifted = [mirror(padded[:, t:t + h, t:t + w]) for t in (0, 2)]
  return 0.5 * mirror(images) + 0.5 * (shifted[0] + shifted[1]) / 2


def posteriors_fn(model, config, mesh, dense: bool = False, tta: int = 0):
  """posteriors(variables, uint8 images (N, H, W, C) numpy) -> softmax posteriors (N,
  classes) numpy: normalised on the device and sharded over the mesh's devices, the
  images put there and the posteriors fetched explicitly (no implicit transfer). With
  `dense`, a model that declares dense evaluation runs its classifier as convolutions
  over the whole image (VGG section 3.2); with `tta` 1 or 2, the softmax of
  `tta_logits` at that level. `posteriors.on_devices` is the jitted function (device
  arrays in and out), for shape checks."""
  kwargs = {'dense': True} if dense and model.module.dense_evaluation else {}
  images_sharding = input_pipeline.batch_sharding(mesh)

  @functools.partial(jax.jit, in_shardings=(NamedSharding(mesh, P()), images_sharding))
  def on_devices(variables, images):
    images = input_pipeline.eval_model_input({'image': images}, config)['image']
    logits = tta_logits(lambda x: model.apply(variables, x, **kwargs), images, tta)
    return jax.nn.softmax(logits.astype(jnp.float32))

  def posteriors(variables, images):
    return jax.device_get(on_devices(variables, jax.device_put(images, images_sharding)))
  posteriors.on_devices = on_devices
  return posteriors


def posteriors_in_batches(model, config, variables, views, batch_size: int):
  """Posteriors (N, classes) of uint8 views (N, H, W, C), in batches of at most
  `batch_size` split over the local devices; the last batch is padded, so every batch
  has one shape and compiles once (and a few images are not padded to a whole batch)."""
  mesh = parallel.data_mesh(local=True)
  posteriors = posteriors_fn(model, config, mesh)
  n = len(views)
  batch = -(-max(1, min(batch_size, n)) // mesh.size) * mesh.size  # whole per device
  views = np.pad(views, [(0, -n % batch)] + [(0, 0)] * (views.ndim - 1))
  out = [posteriors(variables, views[i:i + batch]) for i in range(0, len(views), batch)]
  return np.concatenate(out)[:n] if out else np.zeros((0, 0), np.float32)
