"""`benchmark.py --input_only`'s yardstick: one plain Pillow process doing a training
image's work in a loop, as a training script without this pipeline would: open, decode
(at reduced size where the crop allows, Pillow's `draft`, as ours does), the decode-time
op's crop resized to image_size, a mirror image for half. Written in Pillow calls, none
of our decoding or array code (only the Inception box's arithmetic is shared), so that a
cost our per-image code gains shows in the ratio instead of slowing both sides (the
mirror's per-pixel gather on numpy went unseen so). Only the lists Pillow alone can do
are timed: a decode-time op, then at most a flip (and colour noise, which the device
adds); for any other the figure is None."""

import io
import time

import numpy as np
from PIL import Image

from data import transforms

FLIPS = ('flip', 'alternating_flip')


def _scaled(image, box, width, height, mode):
  """`box` of `image` resized to width x height, decoded at the smallest DCT scale that
  still leaves the box at least that size."""
  full_w, full_h = image.size
  scale = max(min((box[2] - box[0]) / width, (box[3] - box[1]) / height), 1)
  image.draft(mode, (max(1, int(full_w / scale)), max(1, int(full_h / scale))))
  fx, fy = image.size[0] / full_w, image.size[1] / full_h
  image = image if image.mode == mode else image.convert(mode)
  return image.resize((width, height), Image.BILINEAR,
                      box=(box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy))


def _random_crop(image, size, rng):
  w, h = image.size
  top, left = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
  return image.crop((left, top, left + size, top + size))


# Each decode-time op in Pillow: (image, config.dataset, mode, rng) -> Pillow image.

def _inception(image, d, mode, rng):
  box = transforms._random_resized_crop_box(*image.size, rng)  # pylint: disable=protected-access
  return _scaled(image, box, d.image_size, d.image_size, mode)


def _vgg(image, d, mode, rng):
  side = int(rng.integers(d.scale_min, d.scale_max + 1))  # the shorter side's new length
  scale = side / min(image.size)
  width, height = (max(side, round(n * scale)) for n in image.size)  # (the shorter: side)
  image = _scaled(image, (0, 0, *image.size), width, height, mode)
  return _random_crop(image, d.image_size, rng)


def _alexnet(image, d, mode, rng):
  return _random_crop(_scaled(image, (0, 0, *image.size), 256, 256, mode), d.image_size, rng)


CROPS = {'random_resized_crop': _inception, 'scale_jitter': _vgg, 'resize256_crop': _alexnet}


def rate(config, source, count: int) -> float | None:
  """Images/s of one process doing `count` training images of `source` one after
  another in Pillow, or None where config.dataset.augment has more than Pillow does."""
  ops = [op.name for op in transforms.parse(config.dataset.augment)
         if op.name != transforms.COLOUR_NOISE]  # (added on the device, not here)
  if not ops or ops[0] not in CROPS or any(op not in FLIPS for op in ops[1:]):
    return None
  crop, flips = CROPS[ops[0]], len(ops) > 1
  d, mode = config.dataset, transforms.image_mode(config.dataset.channels)
  rng = np.random.default_rng(config.seed)
  t = time.perf_counter()
  for q in range(count):
    image = crop(Image.open(io.BytesIO(source[q % len(source)]['image'])), d, mode, rng)
    if flips and rng.random() < 0.5:
      image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    np.asarray(image)  # (the uint8 array a batch is made of)
  return count / (time.perf_counter() - t)
