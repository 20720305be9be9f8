"""Write an ImageNet-shaped folder dataset of small random JPEGs, to measure what a
folder's size costs (benchmark.py --input_only, a launch's listing).

  python -m data.synthetic_folder /tmp/inet110k --classes=1000 --train=100 --val=10

Class c's images are DIR/train/nXXXXXXXX/*.JPEG and DIR/val/nXXXXXXXX/*.JPEG, as in
ILSVRC-2012's folder layout; every image is one random `--size`-pixel JPEG.
"""

import argparse
import io
import os

import numpy as np
from PIL import Image


def write(root: str, classes: int, train: int, val: int, size: int = 32):
  rng = np.random.default_rng(0)
  pool = []  # a few distinct encodings, reused: writing, not encoding, is what scales
  for _ in range(16):
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(out, 'JPEG')
    pool.append(out.getvalue())
  for c in range(classes):
    wnid = f'n{c:08d}'
    for split, count in (('train', train), ('val', val)):
      folder = os.path.join(root, split, wnid)
      os.makedirs(folder, exist_ok=True)
      for i in range(count):
        with open(os.path.join(folder, f'{wnid}_{i}.JPEG'), 'wb') as f:
          f.write(pool[(c + i) % len(pool)])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('root')
  parser.add_argument('--classes', type=int, default=1000)
  parser.add_argument('--train', type=int, default=100, help='images per class in train/')
  parser.add_argument('--val', type=int, default=10, help='images per class in val/')
  parser.add_argument('--size', type=int, default=32)
  args = parser.parse_args()
  write(args.root, args.classes, args.train, args.val, args.size)
  print(f'wrote {args.classes * (args.train + args.val):,} {args.size}x{args.size} JPEG files '
        f'in {args.classes:,} classes to {os.path.abspath(args.root)}: train/ '
        f'{args.classes * args.train:,} ({args.train} per class), val/ '
        f'{args.classes * args.val:,} ({args.val} per class); use it as '
        f'--config.dataset.name=folder:{os.path.abspath(args.root)}')


if __name__ == '__main__':
  main()
