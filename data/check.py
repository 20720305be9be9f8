"""Inspect every image file of a folder dataset with every core; print the corrupt ones.

  python -m data.check folder:/data/imagenet      # or a plain path
  python -m data.check --decode folder:/data/imagenet

One line per corrupt file, `path: why`, then a summary; exit status 1 if any is corrupt,
2 if the folder cannot be read as a dataset. The default reads each file's ends and
header (as a training launch does); --decode decodes every image too (a few times
slower). The folder's cached index (data/folder_index.py) keeps what was found, so the
next training launch opens no file and, with on_corrupt='skip', leaves those out.
"""

import sys

from data import sources

USAGE = 'usage: python -m data.check [--decode] folder:/path'


def main(argv: list[str]) -> int:
  decode = '--decode' in argv[1:]
  args = [a for a in argv[1:] if a != '--decode']
  if len(args) != 1 or args[0].startswith('-'):
    print(f'data.check: error: {USAGE}', file=sys.stderr)
    return 2
  root = args[0].removeprefix('folder:')
  try:
    sources._folder.cache_clear()  # pylint: disable=protected-access
    folder = sources._folder(root, 'skip', True, decode)  # pylint: disable=protected-access
  except sources.DatasetError as e:
    print(f'data.check: error: {e}', file=sys.stderr)
    return 2
  for path, why in folder.corrupt:
    print(f'{path}: {why}')
  total = sum(folder.sizes.values()) + len(folder.corrupt)
  print(f'{total:,} image files in {len(folder.classes)} classes '
        f'({", ".join(f"{s}: {n:,}" for s, n in folder.sizes.items())} whole'
        f'{", decoded" if decode else ""}); {len(folder.corrupt)} corrupt'
        + (f'; not read: {sources.extension_counts(folder.other_files)}'
           if folder.other_files else '')
        + ('' if decode or folder.corrupt else
           '; --decode decodes every image too, to find damage inside the files'),
        file=sys.stderr)
  return 1 if folder.corrupt else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
