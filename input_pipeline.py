"""Input pipeline: random-access sources -> one sampler -> Grain -> uint8 global batches.

Step s's global batch is stream positions [s*B, (s+1)*B), each mapped to an example by
the sampler (data/sampler.py), of which process p takes its slice: a run resumed at step
k reads only what it trains on, and the batches are the same for any number of processes.
Two ways to feed the step (`resident`): Grain workers decode and augment on the host
(data/transforms.py), or a fixed-size split that fits sits on every device as uint8 and
each step gathers and augments its batch inside jit (data/device.py); both run the same
array ops, keyed by the stream position. Evaluation visits every example once
(eval_dataset). Nothing here imports TensorFlow.
"""

import concurrent.futures
import contextlib
import ctypes
import functools
import itertools
from multiprocessing import resource_tracker
import struct
import sys
from typing import Iterator
import zlib

import grain
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from PIL import Image

from data import device
from data import sampler
from data import sources
from data import transforms
from data.sources import DatasetError, DatasetInfo, STATS, dataset_info  # noqa: F401  (API)
from data.transforms import DENSE_SIZE_MULTIPLE  # noqa: F401
from lib import parallel
from lib.cli import host_cpus

EVAL_VIEWS = ('center', '10crop', 'full')
RESOURCE_TRACKER_QUIET = 'ignore::UserWarning:multiprocessing.resource_tracker'


def check_config(config, info: DatasetInfo, splits=('train', 'eval')):
  """Dataset-related config errors, each naming the field and the fix; then, where the
  data will be resident, `splits` decoded into memory now (kept in info.decoded), so that
  a file that cannot be decoded stops the run before anything is written."""
  d = config.dataset
  transforms.augmentation(config)  # (its errors: transforms.parse names them)
  sources.channel_stats(d, d.channels)  # (its error: a dataset.stats of no statistics)
  if d.on_corrupt not in ('stop', 'skip'):
    raise ValueError(f"config.dataset.on_corrupt must be 'stop' or 'skip'; got {d.on_corrupt!r}")
  if d.channels not in (1, 3):
    raise ValueError(f'config.dataset.channels must be 1 or 3; got {d.channels}')
  if transforms.has_op(config, transforms.COLOUR_NOISE) and d.channels != 3:
    raise ValueError(f'config.dataset.augment={d.augment!r} adds RGB colour noise '
                     f'({transforms.COLOUR_NOISE}): it needs config.dataset.channels=3')
  if config.num_classes and config.num_classes != info.num_classes:
    raise ValueError(f'config.num_classes={config.num_classes} but {info.name} has '
                     f'{info.num_classes} classes; remove the override or set it to '
                     f'{info.num_classes}')
  if sources.is_encoded(config) and resident(config, info):
    for split in splits:
      info.decoded[split] = _split_source(config, info, split)


def _local_batch(config, process_count: int) -> int:
  if config.batch_size % process_count:
    raise ValueError(f'config.batch_size={config.batch_size} must be divisible by the '
                     f'{process_count} processes')
  return config.batch_size // process_count


def _processes(process_index, process_count):
  return (jax.process_index() if process_index is None else process_index,
          jax.process_count() if process_count is None else process_count)


# ---------------------------------------------------------------------- host pipeline


def _train_batch(step, *, source, config, process_index, local):
  """This process's part of training step `step`: the augmented examples at its global
  positions. The batch, not the example, is what the pipeline maps: the sampler walks
  its positions in one vectorised call and the array ops run once over it (per example,
  their numpy calls on scalars cost a fifth of a JPEG's decode)."""
  positions = step * config.batch_size + process_index * local + np.arange(local)
  indices = sampler.example_index(positions, len(source), config.seed, np)
  crops, labels = zip(*(
      _decoded(source, index, lambda image, q=q: transforms.train_crop(image, config, q))
      for q, index in zip(positions.tolist(), indices.tolist())))
  return {'image': transforms.train_batch(crops, config, positions, indices, len(source)),
          'label': np.array(labels, np.int32)}


# What Pillow raises for a file it cannot decode (a damaged zlib stream, an unknown
# format, data that ends early, an image too large).
DECODE_ERRORS = (OSError, SyntaxError, EOFError, zlib.error, struct.error,
                 Image.DecompressionBombError)


def _decoded(source, index: int, decode):
  """(decode(example `index`'s image), its label); a file that cannot be read or that
  Pillow cannot decode is a DatasetError naming it and the fix (sources.undecodable)."""
  try:
    item = source[index]
  except OSError as e:  # (gone, or its permission changed, since it was listed)
    raise DatasetError(f'{sources.example_name(source, index)} cannot be read '
                       f'({e.strerror or e}); restore it or make it readable, and run the '
                       'same command') from None
  try:
    return decode(item['image']), item['label']
  except DECODE_ERRORS as e:
    raise sources.undecodable(source, index, e) from None


def _eval_batch(b, *, source, config, indices, local):
  """Batch b of this process's eval part; the slots past the part's end are blanks with
  mask=False."""
  part = indices[b * local:(b + 1) * local]
  size, channels = config.dataset.image_size, config.dataset.channels
  batch = {'image': np.zeros((local, size, size, channels), np.uint8),
           'label': np.zeros(local, np.int32), 'mask': part >= 0}
  for k, index in enumerate(part[part >= 0].tolist()):  # (the blanks are at the end)
    batch['image'][k], batch['label'][k] = _decoded(
        source, index, lambda image: transforms.eval_example(image, config))
  return batch


def num_workers(config) -> int:
  """Grain worker processes: config.dataset.workers, or (-1) one per core for sources
  that decode files, none for arrays (slicing them is cheaper than a process hop)."""
  if config.dataset.workers >= 0:
    return config.dataset.workers
  return min(host_cpus(), 32) if sources.is_encoded(config) else 0


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def _keep_freed_memory(worker_index: int, worker_count: int):  # pylint: disable=unused-argument
  """A Grain worker's start: glibc told to keep the memory it frees for the next batch.
  Otherwise each batch's arrays (4.8 MB at 224 px and batch 32) are mapped afresh and
  their pages faulted in one by one: transforms.train_batch took 161 us an image instead
  of 53. (Another libc, without mallopt, keeps its own ways.)"""
  with contextlib.suppress(OSError, AttributeError):
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)  # (arrays below it come from the heap,
    libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)  # which keeps up to this much free)


def _iterate(dataset: grain.MapDataset, config) -> grain.IterDataset:
  """The batches (or eval_views' examples) of `dataset` computed ahead: by threads in
  this process, one per core (Pillow releases the GIL), or by worker processes, one per
  core, each with two threads so that one reads while the other decodes."""
  workers = num_workers(config)
  threads = 2 if workers else max(2, min(host_cpus(), 16))
  ds = dataset.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                                 prefetch_buffer_size=threads))
  if workers:
    from absl import flags  # pylint: disable=import-outside-toplevel
    if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags (app.run parses
      flags.FLAGS(sys.argv[:1])      # them; a bare script or a test has not)
    # Python's resource tracker (the process that unlinks what worker processes leave in
    # shared memory) warns of every segment it cleans up at exit; Grain leaves the batches
    # in flight there whenever a run ends, and the warnings would bury the run's last line.
    # The tracker copies its warning filters from sys.warnoptions when it starts.
    if RESOURCE_TRACKER_QUIET not in sys.warnoptions:
      sys.warnoptions.append(RESOURCE_TRACKER_QUIET)
    resource_tracker.ensure_running()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=2),
                        worker_init_fn=_keep_freed_memory)
  return ds


def train_dataset(config, start_step: int = 0, process_index=None, process_count=None,
                  source=None, info: DatasetInfo | None = None) -> grain.IterDataset:
  """This process's slice of the global uint8 training batches from `start_step` on
  ({'image': (local, H, W, C) uint8, 'label': int32}): nothing before it is read.
  (The split is `source`, or the one `info` opened, or opened here.)"""
  pi, pc = _processes(process_index, process_count)
  local = _local_batch(config, pc)
  source = source if source is not None else sources.open_split(config, 'train', info)
  end = np.iinfo(np.int32).max // config.batch_size  # positions fit the device's uint32
  return _iterate(grain.MapDataset.range(start_step, end).map(functools.partial(
      _train_batch, source=source, config=config, process_index=pi, local=local)), config)


def eval_dataset(config, info: DatasetInfo | None = None, process_index=None,
                 process_count=None) -> grain.IterDataset:
  """This process's part of the eval split in uint8 batches, padded with mask=False;
  every process yields the same number of batches, ceil(largest part / local batch)."""
  pi, pc = _processes(process_index, process_count)
  local = _local_batch(config, pc)
  source = _split_source(config, info, 'eval')
  parts = np.array_split(np.arange(len(source)), pc)  # each process's contiguous part
  num_batches = -(-len(parts[0]) // local)
  indices = np.full(num_batches * local, -1)
  indices[:len(parts[pi])] = parts[pi]
  return _iterate(grain.MapDataset.range(num_batches).map(functools.partial(
      _eval_batch, source=source, config=config, indices=indices, local=local)), config)


def _split_source(config, info: DatasetInfo | None, split: str):
  """A split as a source. Where the data is resident, image files are decoded into memory
  with threads (by check_config, which keeps them in info.decoded; else by each call
  here): a file that cannot be decoded, or that decodes to another size than its index
  recorded, is a DatasetError naming it."""
  info = info or dataset_info(config)
  if split in info.decoded:
    return info.decoded[split]
  source = sources.open_split(config, split, info)
  if not (sources.is_encoded(config) and resident(config, info)):
    return source
  shape, channels = info.image_shape[:2], config.dataset.channels

  def load(i):
    array, label = _decoded(source, i, lambda image: transforms.as_array(image, channels))
    if array.shape[:2] != tuple(shape):
      raise DatasetError(
          f'{sources.example_name(source, i)} '
          f'decodes to {array.shape[1]}x{array.shape[0]} pixels, but {shape[1]}x{shape[0]} '
          f'when it was indexed: it changed since; {sources.RESCAN}')
    return array, label

  with concurrent.futures.ThreadPoolExecutor(min(16, host_cpus())) as pool:
    images, labels = zip(*pool.map(load, range(len(source))))
  return sources.ArraySource(np.stack(images), np.array(labels, np.int32))


def first_train_images(config, info: DatasetInfo, count: int) -> np.ndarray:
  """The training split's first `count` images in its own order, as the model sees them
  at test time: float32 (N, H, W, C), (x/255 - mean)/std with the dataset's statistics
  (as data/device.normalize does on the device)."""
  source = sources.open_split(config, 'train', info)
  images = np.stack([_decoded(source, i, lambda image: transforms.eval_example(image, config))[0]
                     for i in range(min(count, len(source)))])
  mean, std = sources.channel_stats(config.dataset, images.shape[-1])
  return ((images / 255. - np.array(mean)) / np.array(std)).astype(np.float32)


# ---------------------------------------------------------------------- to the devices


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P('data'))


def to_global(batch: dict, mesh: Mesh) -> dict:
  """Process-local numpy batch -> global jax.Arrays sharded over the batch axis."""
  sharding = batch_sharding(mesh)
  with parallel.host_to_devices():  # the batch's copy, ahead of the step (device_iterator)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v, SPEC_DTYPES[k]))
            for k, v in batch.items()}


SPEC_DTYPES = {'image': np.uint8, 'label': np.int32, 'mask': np.bool_}


def device_iterator(batches, mesh: Mesh, prefetch: int = 2) -> Iterator[dict]:
  """Global device batches, `prefetch` ahead, so a step never waits on a host copy.
  Grain's iterator is closed when they end or fail: its workers stop and free their
  shared memory, which a process that exits at once would leave to the resource
  tracker's warnings."""
  queue, iterator = [], iter(batches)
  try:
    for batch in iterator:
      queue.append(to_global(batch, mesh))
      if len(queue) > prefetch:
        yield queue.pop(0)
    yield from queue
  finally:
    if hasattr(iterator, 'close'):
      iterator.close()


def resident(config, info: DatasetInfo) -> bool:
  """Whether the training split goes on the devices: asked for, fixed-size images, no
  decode-time op (data/device.py runs the array ops inside jit as the host does), and at
  most config.dataset.device_resident_max_mb."""
  d, (h, w, _) = config.dataset, info.image_shape
  if not (d.device_resident and None not in (h, w) and transforms.decode_op(config) is None):
    return False
  return (max(h, w) <= d.image_size  # (a larger one would need a resize: the host's work)
          and info.num_train * h * w * d.channels <= d.device_resident_max_mb * 2**20)


def train_model_input(config, info: DatasetInfo, mesh: Mesh):
  """(model_input, sharding) of the train step's second argument: model_input(step,
  inputs, dtype) -> {'image': the model's input, 'label'}, traced inside the jitted
  step, from a uint8 batch (host pipeline) or from the resident dataset (gathered and
  augmented)."""
  on_device = resident(config, info)
  noisy = transforms.has_op(config, transforms.COLOUR_NOISE)

  def model_input(step, inputs, dtype):
    batch = inputs
    if on_device:  # each device gathers and augments its own part of the global batch
      batch = jax.lax.with_sharding_constraint(device.gather_batch(inputs, step, config, mesh),
                                               batch_sharding(mesh))
    images = device.colour_noise(batch['image'], config, step) if noisy else batch['image']
    return {'image': device.normalize(images, config, dtype), 'label': batch['label']}

  return model_input, NamedSharding(mesh, P()) if on_device else batch_sharding(mesh)


def train_spec(config, info: DatasetInfo, mesh: Mesh) -> dict:
  """The shapes of the train step's second argument, to compile it before any data."""
  if resident(config, info):
    n, (h, w, _) = info.num_train, info.image_shape
    shapes = {'image': (n, h, w, config.dataset.channels), 'label': (n,)}
    return {k: jax.ShapeDtypeStruct(shape, SPEC_DTYPES[k], sharding=NamedSharding(mesh, P()))
            for k, shape in shapes.items()}
  return batch_spec(config, mesh)


def batch_spec(config, mesh: Mesh, with_mask: bool = False) -> dict:
  """The shapes of a global uint8 batch (with the eval mask), to compile before data."""
  size, channels, n = config.dataset.image_size, config.dataset.channels, config.batch_size
  shapes = {'image': (n, size, size, channels), 'label': (n,), 'mask': (n,)}
  return {k: jax.ShapeDtypeStruct(shape, SPEC_DTYPES[k], sharding=batch_sharding(mesh))
          for k, shape in shapes.items() if with_mask or k != 'mask'}


def train_inputs(config, info: DatasetInfo, mesh: Mesh, start_step: int = 0) -> Iterator:
  """The train step's second argument for each step from `start_step` on: global uint8
  batches prefetched to the devices, or the resident dataset (the same arrays each step,
  put on the devices once)."""
  if resident(config, info):
    split = _split_source(config, info, 'train')
    return itertools.repeat(device.put_resident(split, config, mesh))
  return device_iterator(train_dataset(config, start_step, info=info), mesh)


def eval_model_input(batch, config, dtype=jnp.float32) -> dict:
  """An eval batch's model input (no augmentation), traced inside the eval step."""
  return {**batch, 'image': device.normalize(batch['image'], config, dtype)}


# --------------------------------------------------------------------- test-time views


def eval_views(config, kind: str, scale: int | None = None, process_index=None,
               process_count=None, info: DatasetInfo | None = None):
  """This process's part of the eval split, each example as its test-time views:
  (index in the split, uint8 views (V, H, W, C), label), in order. See
  transforms.views for the kinds: center, 10crop, full (at test scale `scale`)."""
  if kind not in EVAL_VIEWS:
    raise ValueError(f'views must be one of {EVAL_VIEWS}; got {kind!r}')
  pi, pc = _processes(process_index, process_count)
  source = _split_source(config, info, 'eval')
  part = np.array_split(np.arange(len(source)), pc)[pi]

  examples = grain.MapDataset.source(part).map(functools.partial(
      _views_example, source=source, config=config, kind=kind, scale=scale))
  return iter(_iterate(examples, config))


def _views_example(index, *, source, config, kind, scale):
  views, label = _decoded(source, int(index), lambda image: transforms.views(
      image, config, kind, scale))
  return int(index), views, int(label)
