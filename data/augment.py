"""The array augmentations, each written once over an array module: numpy on the host
(data/transforms.py, one example at a time), jax.numpy inside the jitted step for a
dataset resident on the devices (data/device.py, the whole batch).

An op maps a uint8 batch (N, H, W, C) to a uint8 batch: `op(images, examples, *args)`,
its arguments those written in config.dataset.augment (`pad_crop(4, reflect)`: pad=4,
mode='reflect'). Its randomness is a counter-based hash of (seed, the example's position
in the training stream, the op's own salt), uint32 arithmetic that wraps alike in numpy
and jax.numpy (the sampler's murmur3 finaliser, data/sampler.py): no generator, no key,
no state, so both paths draw the same numbers and a resumed run draws what it would
have.

What moves or blanks pixels is one helper each (`_window`, `_mirror`, `_zero_square`),
written for jit and for numpy (docs/DESIGN.md), alike to the pixel (tests/test_augment.py).

Adding an op: one function here and one entry in OPS (docs/DESIGN.md, "Adding an
augmentation").
"""

from typing import Any, Literal, NamedTuple

import numpy as np

from data import sampler

PadMode = Literal['zeros', 'reflect']


class Examples(NamedTuple):
  """What an op knows of the examples it augments, besides their pixels."""
  seed: int
  position: Any  # (N,) their places in the global training stream (uint32)
  index: Any     # (N,) which example of the split each one is
  epoch: Any     # (N,) position // the split's size
  size: int      # config.dataset.image_size: the size the batch ends at
  xp: Any        # numpy on the host, jax.numpy inside jit

  def bits(self, salt: int, by=None):
    """A uint32 per example: the hash of (seed, salt, its position, or `by`)."""
    xp, mix = self.xp, sampler._mix  # pylint: disable=protected-access
    counter = xp.asarray(self.position if by is None else by).astype(xp.uint32)
    # (seed as shape (1,), never 0-d: numpy warns when 0-d uint32 products wrap)
    key = mix(xp.asarray(self.seed).astype(xp.uint32).reshape(-1) ^ xp.uint32(salt), xp)
    return mix(mix(counter + key, xp) ^ key, xp)

  def below(self, salt: int, n: int):
    """A uniform integer in [0, n) per example (int32): the top 16 bits scaled, so n is
    at most 2**16 (a crop offset, a pixel row)."""
    assert 1 <= n <= 2**16, n
    return (((self.bits(salt) >> 16) * self.xp.uint32(n)) >> 16).astype(self.xp.int32)

  def coin(self, salt: int, by=None):
    """True for about half the examples (the hash's top bit)."""
    return (self.bits(salt, by) >> 31) == 1


# Each op's own salts: its draws independent of every other op's, and of each other.
PAD_CROP_TOP, PAD_CROP_LEFT = 0x7A0C0001, 0x7A0C0002
FLIP = 0xF11F0001
ALTERNATING = 0x5EED  # keyed by the example, not its position: one draw for all epochs
CUTOUT_ROW, CUTOUT_COLUMN = 0xC070_0001, 0xC070_0002


def pad_crop(images, examples: Examples, pad: int, mode: PadMode = 'zeros'):
  """Pad each side by `pad` pixels, then a random image_size crop (ResNet section 4.2:
  "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the
  padded image"); `mode`: zeros, or reflect as airbench94 pads. A source smaller than
  image_size - 2 pad is cropped at its padded size (fit pads the rest)."""
  xp = examples.xp
  _, h, w, _ = images.shape
  padded = xp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                  mode='reflect' if mode == 'reflect' else 'constant')
  crop_h, crop_w = min(examples.size, h + 2 * pad), min(examples.size, w + 2 * pad)
  top = examples.below(PAD_CROP_TOP, h + 2 * pad - crop_h + 1)
  left = examples.below(PAD_CROP_LEFT, w + 2 * pad - crop_w + 1)
  return _window(padded, top, left, crop_h, crop_w, xp)


def _window(images, top, left, height: int, width: int, xp):
  """Each image's height x width window at its own (top, left): inside jit a gather, since
  nothing may slice at a traced offset."""
  if xp is np:  # a slice each: one strided copy, where the gather reads an index a pixel
    return np.stack([image[t:t + height, l:l + width]
                     for image, t, l in zip(images, top, left)])
  rows = (top[:, None] + xp.arange(height, dtype=xp.int32))[:, :, None, None]
  columns = (left[:, None] + xp.arange(width, dtype=xp.int32))[:, None, :, None]
  return xp.take_along_axis(xp.take_along_axis(images, rows, axis=1), columns, axis=2)


def _mirror(images, where, xp):
  """Each image for which `where` holds, left to right."""
  if xp is np:
    out = images.copy()
    for k in np.flatnonzero(where):
      for c in range(images.shape[3]):  # (a channel at a time, numpy's copy runs along a
        out[k, :, :, c] = images[k, :, ::-1, c]  # row, not 3 bytes a pixel: 4x faster)
    return out
  # Inside jit its columns gathered in reverse. Not a `where` between the image and its
  # mirror image: XLA fuses both into one loop and every pixel redoes the draws of the
  # ops before (15x slower on a CPU).
  w = images.shape[2]
  columns = xp.arange(w, dtype=xp.int32)
  columns = xp.where(where[:, None], w - 1 - columns, columns)  # (N, W)
  return xp.take_along_axis(images, columns[:, None, :, None], axis=2)


def flip(images, examples: Examples):
  """A horizontal mirror image for about half the examples, drawn per position."""
  return _mirror(images, examples.coin(FLIP), examples.xp)


def alternating_mirror(examples: Examples):
  """Which examples alternating_flip mirrors: each one's own draw in epoch 0, inverted in
  every odd epoch."""
  return examples.coin(ALTERNATING, by=examples.index) ^ (examples.epoch % 2 == 1)


def alternating_flip(images, examples: Examples):
  """airbench94's alternating flip (Jordan 2024, section 3.6): an example is mirrored in
  every other epoch, so consecutive epochs see both of its sides."""
  return _mirror(images, alternating_mirror(examples), examples.xp)


def cutout(images, examples: Examples, size: int):
  """One size x size square of zeros per image, its centre uniform over the image and
  the square clipped at the borders (DeVries & Taylor 2017, section 3: 16x16 on
  CIFAR-10)."""
  _, h, w, _ = images.shape
  top = examples.below(CUTOUT_ROW, h) - size // 2  # (a centre, less half)
  left = examples.below(CUTOUT_COLUMN, w) - size // 2
  return _zero_square(images, top, left, size, examples.xp)


def _zero_square(images, top, left, size: int, xp):
  """Each image with zeros in its size x size square at (top, left), clipped at the
  borders (top and left may be negative)."""
  if xp is np:  # a copy and a slice each, not a where over every pixel
    out = images.copy()
    for image, t, l in zip(out, top, left):
      image[max(t, 0):max(t + size, 0), max(l, 0):max(l + size, 0)] = 0
    return out
  _, h, w, _ = images.shape
  rows, columns = xp.arange(h, dtype=xp.int32), xp.arange(w, dtype=xp.int32)
  in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (N, H)
  in_columns = (columns >= left[:, None]) & (columns < left[:, None] + size)  # (N, W)
  square = in_rows[:, :, None, None] & in_columns[:, None, :, None]
  return xp.where(square, xp.zeros((), images.dtype), images)


def fit(images, size: int, xp):
  """Images smaller than size x size padded to it with zeros, centred (LeNet's 28 -> 32);
  not an op of the list: both paths fit every image after the list."""
  _, h, w, _ = images.shape
  ph, pw = max(size - h, 0), max(size - w, 0)
  if not (ph or pw):
    return images
  return xp.pad(images, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))


# The ops config.dataset.augment may name, by name. Their arguments are read from the
# signatures: what follows (images, examples), ints (positive) and Literal choices.
OPS = {
    'pad_crop': pad_crop,
    'flip': flip,
    'alternating_flip': alternating_flip,
    'cutout': cutout,
}


def apply(images, ops, examples: Examples):
  """The ops [(name, args), ...] one after another on a uint8 batch."""
  for name, args in ops:
    images = OPS[name](images, examples, *args)
  return images
