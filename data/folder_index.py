"""A folder dataset's index, listed and inspected once, then kept in a cache.

root/SPLIT/CLASS/[SUBFOLDERS/]IMAGE, as torchvision's ImageFolder reads it: classes are
train/'s class folders, sorted; hidden files (dotfiles, macOS's `._*`) are skipped;
files other than PNG and JPEG are counted by extension. Each image file is inspected
once (`inspect_image`) and the verdict kept in a manifest under the user's cache
(`manifest_dir`), never in the dataset folder, which may be read-only.

A later launch lists and stats the folder (no file is opened) and inspects only the
files that are new or whose size, mtime or ctime changed. The ctime catches a same-size
replacement given its old mtime back (`touch -r`, `cp -p`, `rsync -t`): the kernel sets
it on every write, chmod or rename, and no call sets it back. config.dataset.rescan
inspects every file again; `python -m data.check --decode` decodes them too, and keeps
what it finds. The listing refuses, naming the path and the fix, what would otherwise
end in a traceback or a hang (`_entries`, `_utf8`, `_list_class`).
"""

import concurrent.futures
import dataclasses
import errno
import functools
import hashlib
import json
import os
import shutil
import stat
import sys
import time

import numpy as np

from data import errors
from lib.cli import host_cpus

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
VERSION = 2  # 2: files keyed by their ctime too; verdicts of unread files not kept
PROCESS_POOL_FROM = 5_000  # files: fewer are inspected by threads in this process
SPLIT_ARRAYS = ('labels', 'sizes', 'mtimes', 'ctimes', 'shapes')  # a Split's, besides its paths


def manifest_dir(root: str) -> str:
  return os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')),
                      'classic-convnets', 'folders',
                      hashlib.sha1(os.path.abspath(root).encode()).hexdigest())


def mapped(directory: str, split: str, name: str) -> np.ndarray:
  """A manifest's array `name` ('paths', 'offsets' or one of SPLIT_ARRAYS) of `split`."""
  return np.load(os.path.join(directory, f'{split}.{name}.npy'), mmap_mode='r')


class Paths:
  """A sequence of path strings held as one uint8 array and int64 offsets (1.33M files:
  tens of MB, not Python strings); slicing shares the arrays. Pickled (to a Grain worker)
  as the manifest files it was read from, when it was, so the worker maps them from the
  page cache instead of unpickling its own copy."""

  def __init__(self, blob: np.ndarray, offsets: np.ndarray, root: str, origin=None):
    # (np.asarray: plain views of a mapped file, still shared, but indexed at ndarray speed)
    self.blob, self.offsets = np.asarray(blob), np.asarray(offsets)
    self.root, self.origin, self._prefix = root, origin, os.path.join(root, '')

  @classmethod
  def of(cls, names: list[str], root: str) -> 'Paths':
    encoded = [n.encode() for n in names]
    offsets = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
    return cls(np.frombuffer(b''.join(encoded), np.uint8), offsets, root)

  @classmethod
  def mapped(cls, directory: str, split: str, root: str, start: int = 0, stop=None):
    offsets = mapped(directory, split, 'offsets')
    stop = len(offsets) - 1 if stop is None else stop
    return cls(mapped(directory, split, 'paths'), offsets[start:stop + 1], root,
               (directory, split, start, stop))

  def __len__(self):
    return len(self.offsets) - 1

  def __getitem__(self, index):
    if isinstance(index, slice):
      start, stop, step = index.indices(len(self))
      if step != 1:
        raise ValueError('Paths take contiguous slices only')
      origin = self.origin and (*self.origin[:2], self.origin[2] + start,
                                self.origin[2] + max(start, stop))
      return Paths(self.blob, self.offsets[start:max(start, stop) + 1], self.root, origin)
    index = index + len(self) if index < 0 else index
    return self._prefix + bytes(self.blob[self.offsets[index]:self.offsets[index + 1]]).decode()

  def __iter__(self):
    return (self[i] for i in range(len(self)))

  def __eq__(self, other):
    return list(self) == list(other)

  def __reduce__(self):
    if self.origin:
      directory, split, start, stop = self.origin
      return Paths.mapped, (directory, split, self.root, start, stop)
    return Paths, (np.asarray(self.blob), np.asarray(self.offsets), self.root)


@dataclasses.dataclass(frozen=True)
class Split:
  """One split's image files, corrupt ones included (shapes[i, 0] < 0)."""
  paths: Paths
  labels: np.ndarray   # int32
  sizes: np.ndarray    # int64 bytes, to notice a changed file
  mtimes: np.ndarray   # int64 ns
  ctimes: np.ndarray   # int64 ns: the inode's change time, which no tool sets back
  shapes: np.ndarray   # int32 (n, 3): width, height, channels; -1 corrupt, NOT_INSPECTED unread


@dataclasses.dataclass(frozen=True)
class Index:
  root: str
  classes: tuple
  split_classes: dict  # split -> its class folders
  splits: dict         # split -> Split
  corrupt: dict        # path relative to root -> why
  other_files: dict    # extension -> count
  inspected: int       # files opened by this launch (0 for a seen, unchanged folder)
  recalled: frozenset = frozenset()  # corrupt paths whose verdict an earlier launch found


def visible(names) -> list[str]:
  """Names that are not hidden: no dotfiles, nor macOS's ._ resource forks."""
  return sorted(n for n in names if not n.startswith('.'))


def shown(path: str) -> str:
  """A path as a message prints it: a name that is not UTF-8 with its bytes escaped."""
  return os.fsencode(path).decode('utf-8', 'backslashreplace')


def _unreadable(error: OSError, path: str) -> errors.DatasetError:
  """What a listing error means for the dataset, naming the path and the fix."""
  where = shown(path)
  if error.errno == errno.ENOENT and os.path.islink(path):
    why = (f'{where} is a symbolic link to {shown(os.readlink(path))}, which does not exist; '
           'fix or remove the link')
  elif error.errno == errno.ELOOP:
    why = (f'{where}: too many levels of symbolic links (a link that leads to itself); '
           'fix or remove the link')
  elif error.errno in (errno.EACCES, errno.EPERM):
    why = (f'cannot read {where} ({error.strerror}); make it readable (chmod -R a+rX '
           f'{where}) or move it out of the dataset')
  else:
    why = f'cannot read {where} ({error.strerror}); fix it or move it out of the dataset'
  return errors.DatasetError(f'folder dataset: {why}')


def _entries(directory: str) -> list:
  """The visible entries of a directory, by name, each with its stat (links followed):
  [(entry, stat)]; a DatasetError naming the entry that cannot be read or is not UTF-8."""
  try:
    with os.scandir(directory) as scan:
      entries = sorted((e for e in scan if not e.name.startswith('.')), key=lambda e: e.name)
    return [(entry, entry.stat()) for entry in entries]
  except OSError as e:  # (its filename: the directory's, or the entry's whose stat failed)
    raise _unreadable(e, e.filename) from None


def _utf8(path: str) -> str:
  """The path, if its name is UTF-8 (the index stores names as UTF-8 bytes)."""
  try:
    path.encode()
  except UnicodeEncodeError:
    raise errors.DatasetError(
        f'folder dataset: the name of {shown(path)} is not UTF-8 text; rename it (e.g. '
        '`convmv -f latin1 -t utf8 -r --notest DIR` renames a whole folder)') from None
  return path


def _subfolders(path: str) -> list[str]:
  return [os.path.basename(_utf8(entry.path)) for entry, st in _entries(path)
          if stat.S_ISDIR(st.st_mode)]


def _list_class(root: str, folder: str, other: dict) -> list[tuple]:
  """(path relative to root, size, mtime_ns, ctime_ns) of the PNG and JPEG files under a
  class folder, its subfolders included, sorted; other files counted by extension. A
  folder reached twice (a symbolic link loop) is refused: its images would count twice."""
  found, stack, cut = [], [folder], len(root) + 1  # (paths below root: slice, not relpath)
  top = os.stat(folder)
  reached = {(top.st_dev, top.st_ino): folder}
  while stack:
    for entry, st in _entries(stack.pop()):
      if stat.S_ISDIR(st.st_mode):
        first = reached.setdefault((st.st_dev, st.st_ino), entry.path)
        if first != entry.path:
          raise errors.DatasetError(
              f'folder dataset: {shown(entry.path)} is {shown(first)} again (a symbolic link '
              'loop, or two links to one folder), so its images would count twice; remove '
              'the link')
        stack.append(_utf8(entry.path))
        continue
      ext = os.path.splitext(entry.name)[1].lower() or '(none)'
      if ext not in IMAGE_EXTENSIONS:
        other[ext] = other.get(ext, 0) + 1
      elif not stat.S_ISREG(st.st_mode):
        kind = ('named pipe (FIFO)' if stat.S_ISFIFO(st.st_mode)
                else 'socket' if stat.S_ISSOCK(st.st_mode) else 'device')
        raise errors.DatasetError(
            f'folder dataset: {shown(entry.path)} is not a regular file but a {kind}, which '
            'reading would block on or fail; remove it or move it out of the dataset')
      else:
        found.append((_utf8(entry.path)[cut:], st.st_size, st.st_mtime_ns, st.st_ctime_ns))
  return sorted(found)


# A file's verdict: the index keeps what the file's bytes decide (whole, with its size
# and channels; or corrupt, and why). A file that could not be read at all (a permission,
# an I/O error) has no verdict: it is left out of this launch, and inspected again at the
# next, whatever its size and times say.
UNREAD = 'unreadable'
NOT_INSPECTED = -2  # shapes[i, 0]: no verdict kept (-1: corrupt; >= 0: its width)


def inspect_image(path: str, decode: bool = False):
  """(why the file is not a whole PNG or JPEG or None, (width, height), channels).

  Checks the signature and the end marker, which a truncated or overwritten file lacks,
  and reads the size and colour mode from the header alone; `decode`: decodes the image
  too (data.check --decode), which finds damage inside a file whose ends look whole."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with open(path, 'rb') as f:
      head = f.read(8)
      f.seek(max(os.path.getsize(path) - 1024, 0))
      tail = f.read()
    jpeg, png = head.startswith(b'\xff\xd8\xff'), head.startswith(b'\x89PNG\r\n\x1a\n')
    why = ('not a PNG or JPEG file' if not (jpeg or png)
           else 'truncated JPEG (no end-of-image marker)' if jpeg and b'\xff\xd9' not in tail
           else 'truncated PNG (no IEND chunk)' if png and b'IEND' not in tail else None)
    if why:
      return why, None, None
    with Image.open(path) as image:
      size, channels = image.size, 1 if image.mode in ('L', 'I', 'I;16', '1') else 3
      if decode:
        try:
          image.load()
        except Exception as e:  # pylint: disable=broad-except  (Pillow's errors vary)
          return f'cannot be decoded ({type(e).__name__}: {e})', None, None
      return None, size, channels
  except Exception as e:  # pylint: disable=broad-except  (Pillow's errors vary)
    if isinstance(e, OSError) and e.errno is not None:  # the file failed, not its bytes
      return f'{UNREAD}: {e.strerror}', None, None
    return f'unreadable header ({type(e).__name__})', None, None


def _inspect_all(paths: list[str], decode: bool = False) -> list:
  """inspect_image of each path: threads for a few files (small reads, I/O bound),
  every core's process for many, with a progress line."""
  inspect = functools.partial(inspect_image, decode=decode)
  if len(paths) < PROCESS_POOL_FROM:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      return list(pool.map(inspect, paths))
  import multiprocessing  # pylint: disable=import-outside-toplevel
  results, last = [], time.time()
  # spawn: this process may already run JAX's threads, which a fork would copy mid-lock.
  spawn = multiprocessing.get_context('spawn')
  with concurrent.futures.ProcessPoolExecutor(host_cpus(), mp_context=spawn) as pool:
    for result in pool.map(inspect, paths, chunksize=512):
      results.append(result)
      if time.time() - last > 5 or len(results) == len(paths):
        last = time.time()
        print(f'{"decoding" if decode else "inspecting"} the image files: '
              f'{len(results):,}/{len(paths):,}', flush=True)
  return results


def _load(directory: str, root: str):
  """A manifest's (meta, {split: Split}), or None if there is none or it is unreadable."""
  try:
    with open(os.path.join(directory, 'meta.json')) as f:
      meta = json.load(f)
    if meta.get('version') != VERSION or meta.get('root') != root:
      return None
    return meta, {split: Split(Paths.mapped(directory, split, root),
                               *(mapped(directory, split, n) for n in SPLIT_ARRAYS))
                  for split in meta['splits']}
  except (OSError, ValueError, KeyError):
    return None


def _save(directory: str, meta: dict, splits: dict) -> bool:
  """Write the manifest beside its old one, then swap it in (readers never see half)."""
  tmp = f'{directory}.tmp{os.getpid()}'
  try:
    os.makedirs(tmp, exist_ok=True)
    for split, s in splits.items():
      arrays = {'paths': s.paths.blob, 'offsets': s.paths.offsets,
                **{name: getattr(s, name) for name in SPLIT_ARRAYS}}
      for name, array in arrays.items():
        np.save(os.path.join(tmp, f'{split}.{name}.npy'), np.asarray(array))
    with open(os.path.join(tmp, 'meta.json'), 'w') as f:
      json.dump(meta, f)
    old = f'{directory}.old{os.getpid()}'
    if os.path.exists(directory):
      os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return True
  except OSError as e:
    shutil.rmtree(tmp, ignore_errors=True)
    print(f'WARNING: cannot keep the index of {meta["root"]} in {directory} ({e.strerror}); '
          'the next launch inspects its files again', file=sys.stderr, flush=True)
    return False


def build(root: str, eval_names, rescan: bool = False, decode: bool = False) -> Index:
  """The index of the folder dataset at `root` (its train/ checked to exist by the
  caller) with whichever of the eval split names it has: listed now, inspected where the
  cached manifest does not already know a file as it is (`decode`: every file inspected
  and decoded)."""
  root = os.path.abspath(root)
  rescan = rescan or decode
  split_names = ['train'] + [n for n in eval_names if os.path.isdir(os.path.join(root, n))]
  split_classes = {n: tuple(_subfolders(os.path.join(root, n))) for n in split_names}
  classes, other, listed = split_classes['train'], {}, {}
  for split in split_names:
    listed[split] = [(*row, label) for label, name in enumerate(classes)
                     if name in split_classes[split]
                     for row in _list_class(root, os.path.join(root, split, name), other)]
  directory = manifest_dir(root)
  cached = None if rescan else _load(directory, root)
  cached_splits = cached[1] if cached else {}
  same = {split for split, rows in listed.items()
          if split in cached_splits and _same_listing(cached_splits[split], rows)}
  known = {}  # what the cache knows of each file, where its split's listing changed
  for split, s in cached_splits.items():
    if split not in same:
      known.update({s.paths[i]: (int(s.sizes[i]), int(s.mtimes[i]), int(s.ctimes[i]),
                                 tuple(s.shapes[i])) for i in range(len(s.paths))})
  splits, todo = {}, []
  for split, rows in listed.items():
    if split in same:
      kept_split = cached_splits[split]
      again = np.flatnonzero(np.asarray(kept_split.shapes[:, 0]) == NOT_INSPECTED)
      if len(again):  # files that could not be read last time: try them again
        kept_split = dataclasses.replace(kept_split, shapes=np.array(kept_split.shapes))
        todo += [(split, int(i), rows[i][0]) for i in again]
      splits[split] = kept_split
      continue
    shapes = np.full((len(rows), 3), -1, np.int32)
    for i, (rel, size, mtime, ctime, _) in enumerate(rows):
      seen = known.get(os.path.join(root, rel))
      if seen and seen[:3] == (size, mtime, ctime) and seen[3][0] != NOT_INSPECTED:
        shapes[i] = seen[3]
      else:
        todo.append((split, i, rel))
    names, sizes, mtimes, ctimes, labels = zip(*rows) if rows else ((),) * 5
    splits[split] = Split(Paths.of(names, root), np.array(labels, np.int32),
                          *(np.array(c, np.int64) for c in (sizes, mtimes, ctimes)), shapes)
  corrupt = dict(cached[0]['corrupt']) if cached else {}
  results = _inspect_all([os.path.join(root, rel) for _, _, rel in todo], decode)
  for (split, i, rel), (why, size, channels) in zip(todo, results):
    corrupt.pop(rel, None)
    if not why:
      splits[split].shapes[i] = (*size, channels)
      continue
    corrupt[rel] = why  # (a passing failure to read is no verdict on the bytes: kept unread)
    splits[split].shapes[i] = NOT_INSPECTED if why.startswith(f'{UNREAD}:') else -1
  listed_names = {r[0] for rows in listed.values() for r in rows}
  corrupt = {rel: why for rel, why in corrupt.items() if rel in listed_names}
  meta = json.loads(json.dumps({
      'version': VERSION, 'root': root, 'classes': classes, 'splits': list(splits),
      'split_classes': split_classes, 'corrupt': corrupt, 'other_files': other}))
  if (todo or not cached or cached[0] != meta) and _save(directory, meta, splits):
    loaded = _load(directory, root)  # the arrays mapped, as workers will map them
    splits = loaded[1] if loaded else splits
  return Index(root, classes, split_classes, splits, corrupt, other, len(todo),
               frozenset(corrupt) - {rel for _, _, rel in todo})


def _same_listing(cached: Split, rows: list) -> bool:
  """Whether a cached split lists exactly these (path, size, mtime, ctime, label) rows."""
  names, *columns = zip(*rows) if rows else ((),) * 5
  kept_columns = (cached.sizes, cached.mtimes, cached.ctimes, cached.labels)
  return (all(map(np.array_equal, kept_columns, columns))
          and bytes(cached.paths.blob) == b''.join(n.encode() for n in names))
