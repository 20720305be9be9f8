"""Inspect every image file of a folder dataset with every core; print the corrupt ones.

  python -m data.check folder:/data/imagenet      # or a plain path

One line per corrupt file, `path: why`, then a summary; exit status 1 if any is corrupt.
The folder's cached index (data/folder_index.py) is rebuilt on the way, so the next
training launch on it opens no file.
"""

import sys

from data import sources


def main(argv: list[str]) -> int:
  if len(argv) != 2:
    print('usage: python -m data.check folder:/path', file=sys.stderr)
    return 2
  root = argv[1].removeprefix('folder:')
  try:
    sources._folder.cache_clear()  # pylint: disable=protected-access
    folder = sources._folder(root, 'skip', True)  # pylint: disable=protected-access
  except sources.DatasetError as e:
    print(f'data.check: error: {e}', file=sys.stderr)
    return 2
  for path, why in folder.corrupt:
    print(f'{path}: {why}')
  total = sum(folder.sizes.values()) + len(folder.corrupt)
  print(f'{total:,} image files in {len(folder.classes)} classes '
        f'({", ".join(f"{s}: {n:,}" for s, n in folder.sizes.items())} whole); '
        f'{len(folder.corrupt)} corrupt'
        + (f'; not read: {", ".join(f"{n} {e}" for e, n in folder.other_files.items())}'
           if folder.other_files else ''), file=sys.stderr)
  return 1 if folder.corrupt else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
