"""Host-side decoding, the decode-time augmentations, the augmentation specs and the
test-time views: one example in, uint8 HWC out.

config.dataset.augment is a list of operations, written as a preset's name (PRESETS) or
as the ops and presets themselves, comma-separated (`'cifar,cutout(16)'`,
`'pad_crop(4, reflect), flip'`; `parse`). Three kinds of op, applied in this order:
  decode-time  random_resized_crop, scale_jitter, resize256_crop (DECODE_OPS): they need
               the whole source image (Pillow), so they run here, on the host only, first,
               with a numpy generator seeded by (config.seed, the stream position)
  array        pad_crop, flip, alternating_flip, cutout (data/augment.py): run here with
               numpy and, for a dataset resident on the devices, inside jit with jax.numpy
  float        colour_noise, AlexNet's PCA colour noise, on the device (data/device.py)
Then every image is fitted to image_size (a smaller one padded, centred: LeNet's 28 ->
32; a larger one resized, on the host). At test time the decode-time op's resize
(DecodeOp.test_resize) and a centre crop; arrays as they are.

Images are decoded with Pillow, to 8-bit grey or RGB by one rule for every image mode
(`eight_bit`; README, "Image modes"); a JPEG is decoded at reduced size (libjpeg's DCT
scaling, Pillow's `draft`) whenever the result is downscaled anyway.
"""

import difflib
import functools
import inspect
import io
import re
import typing
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

from data import augment

DENSE_SIZE_MULTIPLE = 32  # whole-image views: the longer side exceeds Q by a multiple of this
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert('L')


# ------------------------------------------------------------------------ decode, resize


def image_mode(channels: int) -> str:
  return 'L' if channels == 1 else 'RGB'


def open_image(item) -> Image.Image:
  """An item's image as a Pillow image, not yet decoded when it is a file."""
  if isinstance(item, (bytes, bytearray)):
    return Image.open(io.BytesIO(item))
  array = np.asarray(item)
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


# The rule by which an image of each Pillow mode becomes 8-bit grey ('L') or RGB, in full
# in README, "Image modes". These modes Pillow converts by it (alpha dropped, as
# torchvision's and Keras's loaders drop it, so a folder trains on the pixels they read).
CONVERTED_MODES = ('1', 'L', 'LA', 'P', 'PA', 'RGB', 'RGBA', 'RGBX', 'CMYK', 'YCbCr')
# Grey of more than 8 bits, which convert would clip at 255: 16-bit values (and 32-bit
# integers holding them, as an older Pillow read 16-bit PNGs) keep their high byte, as
# libpng strips 16 bits to 8; floats are read as [0, 1]. Values outside are refused.
SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')
FLOAT_MODE = 'F'


class ImageModeError(OSError):
  """An image of a mode without a rule, or with values outside its mode's range. (An
  OSError, as Pillow's own `cannot identify image file`: what every reader of user images
  catches, and names the file in.)"""


def eight_bit(image: Image.Image, mode: str) -> Image.Image:
  """The image in `mode` ('L' or 'RGB') by the rule above; an ImageModeError naming the
  image's mode where the rule has none or its values are out of range."""
  if image.mode in ('P', 'PA'):  # (via RGBA: Pillow warns of a palette's transparency)
    image = image.convert('RGBA')
  if image.mode in CONVERTED_MODES:
    return image if image.mode == mode else image.convert(mode)
  if image.mode not in (*SIXTEEN_BIT_MODES, FLOAT_MODE):
    raise ImageModeError(f'image mode {image.mode} has no rule to 8-bit grey or RGB (README, '
                         '"Image modes"); save the image as 8-bit RGB, or 8- or 16-bit grey')
  values, floats = np.asarray(image), image.mode == FLOAT_MODE
  limits, high = ('[0, 1]', 1) if floats else ('0..65535', 65535)
  if not np.isfinite(values).all():
    raise ImageModeError(f'image mode {image.mode} (32-bit float) has pixels that are not a '
                         'number (NaN or infinity); save it with values in [0, 1]')
  if values.min() < 0 or values.max() > high:
    raise ImageModeError(
        f'image mode {image.mode}: its values run from {values.min()} to {values.max()}, '
        f'outside {limits}, the range read as 0..255 (README, "Image modes"); save it scaled '
        f'to {limits}, or as an 8-bit image')
  grey = Image.fromarray((np.round(values.astype(np.float64) * 255) if floats
                          else values >> 8).astype(np.uint8))
  return grey if mode == 'L' else grey.convert(mode)


def _decoded(image: Image.Image, mode: str, width: int, height: int) -> Image.Image:
  """The image decoded in `mode` by the rule (eight_bit); a JPEG not yet read at the
  smallest DCT scale (1/2, 1/4, 1/8) that is still at least width x height."""
  if image.format == 'JPEG' and getattr(image, 'tile', None):  # tiles left to read
    image.draft(mode, (width, height))
  return eight_bit(image, mode)


def resize(image: Image.Image, width: int, height: int, mode: str, box=None) -> Image.Image:
  """Bilinear resize (antialiased when shrinking) of `box` (left, top, right, bottom in
  the source's pixels; the whole image by default) to width x height, in `mode`."""
  full_w, full_h = image.size
  box = box or (0, 0, full_w, full_h)
  # Ask the decoder for enough pixels that the box is still at least the output size.
  scale = min((box[2] - box[0]) / width, (box[3] - box[1]) / height)
  decoded = _decoded(image, mode, max(1, int(full_w / max(scale, 1))),
                     max(1, int(full_h / max(scale, 1))))
  fx, fy = decoded.size[0] / full_w, decoded.size[1] / full_h
  box = (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)
  return decoded.resize((width, height), Image.BILINEAR, box=box)


def resize_shorter(image: Image.Image, size: int, mode: str) -> Image.Image:
  w, h = image.size
  scale = size / min(w, h)
  return resize(image, max(size, round(w * scale)), max(size, round(h * scale)), mode)


def to_array(image: Image.Image, mode: str) -> np.ndarray:
  """Pillow image -> uint8 HWC in `mode` (H, W, 1 for grey)."""
  if image.mode != mode or getattr(image, 'tile', None):
    image = _decoded(image, mode, *image.size)
  array = np.asarray(image)
  return array[..., None] if array.ndim == 2 else array


def random_crop(array: np.ndarray, size: int, rng) -> np.ndarray:
  h, w = array.shape[:2]
  top, left = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
  return array[top:top + size, left:left + size]


def fit(array: np.ndarray, size: int) -> np.ndarray:
  """A larger image resized to size x size (the host's alone: resident data is never
  larger), a smaller one padded, centred (augment.fit, as on the device)."""
  h, w = array.shape[:2]
  if h > size or w > size:
    image = open_image(array)
    return to_array(image.resize((size, size), Image.BILINEAR), image.mode)
  return augment.fit(array[None], size, np)[0]


def match_channels(array: np.ndarray, channels: int) -> np.ndarray:
  """uint8 HWC with `channels` channels: grey repeated, or RGB to luma."""
  if array.shape[-1] == channels:
    return array
  if channels == 3:
    return np.repeat(array, 3, axis=-1)
  grey = array.astype(np.float32) @ np.array(GREY_WEIGHTS, np.float32)
  return np.round(grey)[..., None].astype(np.uint8)


# --------------------------------------------------- decode-time ops (host only)


def _random_resized_crop_box(width, height, rng, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """Inception's crop (Szegedy et al. 2015, section 6): up to 10 tries at a box of
  area fraction and aspect ratio drawn from the ranges, else the whole image."""
  for _ in range(10):
    target = width * height * rng.uniform(*area)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    w, h = round(np.sqrt(target * aspect)), round(np.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
      return left, top, left + w, top + h
  return 0, 0, width, height


def _random_resized_crop(item, config, rng):
  size, mode = config.dataset.image_size, image_mode(config.dataset.channels)
  image = open_image(item)
  return to_array(resize(image, size, size, mode, _random_resized_crop_box(*image.size, rng)),
                  mode)


def _scale_jitter_crop(item, config, rng):
  """VGG section 3.1: shorter side to S drawn from [scale_min, scale_max], random crop."""
  d, mode = config.dataset, image_mode(config.dataset.channels)
  scale = int(rng.integers(d.scale_min, d.scale_max + 1))
  return random_crop(to_array(resize_shorter(open_image(item), scale, mode), mode),
                     d.image_size, rng)


def _fixed_resize_crop(item, config, rng):
  """AlexNet section 4.1: random crops of the 256x256 image."""
  mode = image_mode(config.dataset.channels)
  return random_crop(to_array(_resize_256(open_image(item), config, mode), mode),
                     config.dataset.image_size, rng)


def _resize_inception(image, config, mode):
  """Shorter side to image_size / 0.875: 224 of 256, as Inception and torchvision."""
  return resize_shorter(image, int(round(config.dataset.image_size / 0.875)), mode)


def _resize_vgg(image, config, mode):
  """Shorter side to the test scale Q (VGG section 3.2)."""
  return resize_shorter(image, config.dataset.eval_resize or 256, mode)


def _resize_256(image, config, mode):  # pylint: disable=unused-argument
  """"down-sampled the images to a fixed resolution of 256x256" (AlexNet section 2)."""
  return resize(image, 256, 256, mode)


class DecodeOp(NamedTuple):
  train_crop: Callable   # (item, config, rng) -> uint8 HWC: the training crop
  test_resize: Callable  # (Pillow image, config, mode) -> image, before the test-time crops


DECODE_OPS = {
    'random_resized_crop': DecodeOp(_random_resized_crop, _resize_inception),
    'scale_jitter': DecodeOp(_scale_jitter_crop, _resize_vgg),
    'resize256_crop': DecodeOp(_fixed_resize_crop, _resize_256),
}
# AlexNet's PCA colour noise (section 4.1), on the device's float pixels: the list's last op.
COLOUR_NOISE = 'colour_noise'
OP_NAMES = (*DECODE_OPS, *augment.OPS, COLOUR_NOISE)


# ------------------------------------------------------------------------------ presets


PRESETS = {
    'cifar': 'pad_crop(4), flip',                          # ResNet section 4.2
    'imagenet': 'random_resized_crop, flip',               # Szegedy et al. 2015, section 6
    'vgg': 'scale_jitter, flip',                           # VGG section 3.1
    'alexnet': 'resize256_crop, flip, colour_noise',       # AlexNet section 4.1
    'airbench': 'pad_crop(2, reflect), alternating_flip',  # Jordan 2024, section 3.6
    'none': '',
}


class Op(NamedTuple):
  name: str
  args: tuple = ()


def _signature(name: str) -> list[inspect.Parameter]:
  """An op's arguments as written in a spec (the array ops' after (images, examples))."""
  return (list(inspect.signature(augment.OPS[name]).parameters.values())[2:]
          if name in augment.OPS else [])


def _usage(name: str) -> str:
  """How an op is written: pad_crop(PAD[, MODE])."""
  params = _signature(name)
  if not params:
    return name
  required = ', '.join(p.name.upper() for p in params if p.default is p.empty)
  optional = ''.join(f'[, {p.name.upper()}]' for p in params if p.default is not p.empty)
  return f'{name}({required}{optional})'


def _valid() -> str:
  return (f'give a preset ({", ".join(PRESETS)}) or a list of presets and operations '
          f'({", ".join(map(_usage, OP_NAMES))}), e.g. \'cifar,cutout(16)\'')


def _argument(op: str, param: inspect.Parameter, text: str):
  """One argument of an op, as its annotation says: a positive int, or one of the
  Literal's choices."""
  choices = typing.get_args(param.annotation)
  if choices and text in choices:
    return text
  if param.annotation is int and text.isdigit() and int(text) > 0:
    return int(text)
  want = ' or '.join(choices) if choices else 'a positive integer'
  raise ValueError(f'config.dataset.augment: {op}: {param.name.upper()} must be {want}; '
                   f'got {text!r} (write {_usage(op.split("(")[0])})')


ITEM = re.compile(r'(\w+)\s*(?:\((.*)\))?')
# The commas between items; one inside an op's parentheses has a ')' ahead of any '('.
COMMA = re.compile(r',(?![^(]*\))')


@functools.lru_cache(maxsize=256)  # (every training example asks)
def parse(spec: str) -> tuple[Op, ...]:
  """config.dataset.augment's ops in order, presets spelled out; a bad spec is a
  ValueError naming config.dataset.augment, the bad part and what is valid."""
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f'config.dataset.augment: got {spec!r}; ' + _valid()
                     + ", or 'none' for no augmentation")
  ops = []
  for item in map(str.strip, COMMA.split(spec)):
    match = ITEM.fullmatch(item)
    name = match and match[1]
    if name in PRESETS and match[2] is None:
      ops += parse(PRESETS[name]) if PRESETS[name] else ()
      continue
    if name not in OP_NAMES:
      what = 'unknown preset' if item == spec.strip() else 'unknown operation'
      close = difflib.get_close_matches(name or item, [*PRESETS, *OP_NAMES])
      raise ValueError(f'config.dataset.augment: {what} {item!r}'
                       + (f' in {spec!r}' if item != spec.strip() else '') + f'; {_valid()}'
                       + (f' (did you mean {close[0]!r}?)' if close else ''))
    texts = [t.strip() for t in match[2].split(',')] if (match[2] or '').strip() else []
    params = _signature(name)
    required = [p for p in params if p.default is p.empty]
    if not len(required) <= len(texts) <= len(params):
      raise ValueError(f'config.dataset.augment: {item!r}: write {_usage(name)}')
    ops.append(Op(name, tuple(_argument(item, p, t) for p, t in zip(params, texts))))
  for i, (name, _) in enumerate(ops):
    if name in DECODE_OPS and i:
      raise ValueError(f'config.dataset.augment: {spec!r}: {name} crops the decoded source '
                       'image, so it comes first, and once')
    if name == COLOUR_NOISE and i != len(ops) - 1:
      raise ValueError(f'config.dataset.augment: {spec!r}: {COLOUR_NOISE} is added to the '
                       "device's float pixels, after the other ops: write it last")
  return tuple(ops)


def augmentation(config) -> tuple[Op, ...]:
  """config.dataset.augment's ops, a pad_crop without a mode given dataset.pad_mode."""
  ops, mode = parse(config.dataset.augment), config.dataset.pad_mode
  if reads_pad_mode(config) and mode not in typing.get_args(augment.PadMode):
    raise ValueError(f'config.dataset.pad_mode must be '
                     f'{" or ".join(typing.get_args(augment.PadMode))}; got {mode!r}')
  return tuple(Op(op.name, op.args + (mode,)) if op.name == 'pad_crop' and len(op.args) == 1
               else op for op in ops)


def array_ops(config) -> tuple[Op, ...]:
  """The ops both paths run on uint8 arrays (data/augment.py), in order."""
  return tuple(op for op in augmentation(config) if op.name in augment.OPS)


def decode_op(config) -> DecodeOp | None:
  """The op that crops the decoded source image (host only), if the list has one."""
  ops = parse(config.dataset.augment)
  return DECODE_OPS[ops[0].name] if ops and ops[0].name in DECODE_OPS else None


def has_op(config, name: str) -> bool:
  """Whether config.dataset.augment's list (presets spelled out) has op `name`."""
  return any(op.name == name for op in parse(config.dataset.augment))


def reads_pad_mode(config) -> bool:
  """Whether dataset.pad_mode acts: a pad_crop of the list gives no mode of its own."""
  return any(op.name == 'pad_crop' and len(op.args) == 1
             for op in parse(config.dataset.augment))


def train_crop(item, config, position: int) -> np.ndarray:
  """The training image at stream `position` as the array ops receive it: the
  decode-time op's crop (its generator seeded by (seed, position)), or the image as it
  is; uint8 HWC."""
  op = decode_op(config)
  if op:
    return op.train_crop(item, config, np.random.default_rng((config.seed, position)))
  return as_array(item, config.dataset.channels)


def train_batch(crops, config, positions, indices, num_examples: int) -> np.ndarray:
  """config.dataset.augment's array ops on the train_crops at stream `positions`
  (examples `indices` of `num_examples`), each fitted to image_size: uint8 (N, image_size,
  image_size, C). With numpy, the code the device runs; once over the batch where the
  crops share a shape (a decode-time op's, an array source's), else one at a time (a
  folder of mixed sizes without one)."""
  if len({crop.shape for crop in crops}) > 1:
    return np.concatenate([train_batch([crop], config, positions[k:k + 1], indices[k:k + 1],
                                       num_examples) for k, crop in enumerate(crops)])
  d = config.dataset
  positions = np.asarray(positions, np.uint32)
  examples = augment.Examples(config.seed, positions, np.asarray(indices, np.int32),
                              positions // np.uint32(num_examples), d.image_size, np)
  images = augment.apply(np.stack(crops), array_ops(config), examples)
  if images.shape[1:3] != (d.image_size, d.image_size):
    images = np.stack([fit(image, d.image_size) for image in images])
  return np.ascontiguousarray(images)


def eval_example(item, config) -> np.ndarray:
  """The evaluation view (no randomness): uint8 (image_size, image_size, C)."""
  d, op = config.dataset, decode_op(config)
  if op:  # its test-time resize, then the centre crop
    mode, size = image_mode(d.channels), d.image_size
    array = to_array(op.test_resize(open_image(item), config, mode), mode)
    top, left = (max((n - size) // 2, 0) for n in array.shape[:2])
    array = array[top:top + size, left:left + size]
  else:
    array = as_array(item, d.channels)
  return np.ascontiguousarray(fit(array, d.image_size))


def as_array(item, channels: int) -> np.ndarray:
  """uint8 HWC with `channels` channels, from an array or an encoded file."""
  if isinstance(item, (bytes, bytearray)):
    return to_array(open_image(item), image_mode(channels))
  return match_channels(np.asarray(item), channels)


# -------------------------------------------------------------------- test-time views


def views(item, config, kind: str, scale: int | None = None) -> np.ndarray:
  """An example's test-time views, uint8 (V, H, W, C).

  center: the training's evaluation view (V=1). 10crop: after the preset's test-time
  resize, the four corners and the centre at image_size, and their mirror images (V=10;
  ResNet section 3.4 / Table 3, AlexNet section 4.1). full: the whole image with its
  shorter side at `scale` exactly (VGG's Q, section 3.2), and its mirror image (V=2); the
  longer side exceeds Q by the multiple of 32 nearest the image's aspect, so that a split
  compiles for a few shapes instead of hundreds, each step one more column of VGG's pool5.
  """
  size, mode = config.dataset.image_size, image_mode(config.dataset.channels)
  if kind == 'center':
    return eval_example(item, config)[None]
  image = open_image(item)
  if kind == '10crop':
    op = decode_op(config)
    array = to_array(op.test_resize(image, config, mode) if op else image, mode)
    h, w = array.shape[:2]
    if h < size or w < size:
      array = fit(array, max(size, h, w))
      h, w = array.shape[:2]
    # The four corner crops and the centre crop (AlexNet section 4.1).
    offsets = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
               ((h - size) // 2, (w - size) // 2)]
    crops = np.stack([array[t:t + size, l:l + size] for t, l in offsets])
    return np.concatenate([crops, crops[:, :, ::-1]])
  w, h = image.size
  excess = max(w, h) * scale / min(w, h) - scale  # of the longer side over Q, at its aspect
  longer = scale + DENSE_SIZE_MULTIPLE * round(excess / DENSE_SIZE_MULTIPLE)
  new_w, new_h = (scale, longer) if w <= h else (longer, scale)
  array = to_array(resize(image, new_w, new_h, mode), mode)
  return np.stack([array, array[:, ::-1]])
