"""Host-side decoding and geometric augmentation: one example in, uint8 HWC out.

Everything that needs the whole source image (crops, resizes, flips) happens here, per
example, after sampling; what is per pixel arithmetic (normalisation, AlexNet's PCA
colour noise, grey <-> RGB of arrays) happens on the device (data/device.py). Images are
decoded with Pillow; a JPEG is decoded at reduced size (libjpeg's DCT scaling, Pillow's
`draft`) whenever the result is downscaled anyway. Each training example draws its
randomness from a generator seeded by (config.seed, its position in the global stream).

The presets (config.dataset.augment; one entry each in PRESETS), in training / at test time:
  cifar     pad 4 and a random image_size crop, flip (ResNet section 4.2) / as is
  imagenet  random-resized crop: 8-100% of the area, aspect 3/4-4/3, flip (Szegedy et al.
            2015, section 6) / shorter side to image_size / 0.875, centre crop
  vgg       shorter side to S in [scale_min, scale_max], random crop, flip (VGG section
            3.1) / shorter side to Q = eval_resize, centre crop
  alexnet   256x256, random crop, flip, PCA colour noise on the device (AlexNet section
            4.1) / 256x256, centre crop
  airbench  pad 2 (reflect, with dataset.pad_mode) and a random crop, alternating flip
            (airbench94: Jordan 2024, section 3.6) / as is
  none      / as is
Then every image is fitted to image_size (a smaller one padded, centred: LeNet's 28 ->
32; a larger one resized).
"""

import dataclasses
import io
from typing import Callable

import numpy as np
from PIL import Image

DENSE_SIZE_MULTIPLE = 32  # whole-image views: the longer side exceeds Q by a multiple of this
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert('L')


def rng_for(seed: int, position: int) -> np.random.Generator:
  """The generator of the example at `position` of the global training stream."""
  return np.random.default_rng((seed, position))


# ------------------------------------------------------------------------ decode, resize


def image_mode(channels: int) -> str:
  """The Pillow mode of images with `channels` channels."""
  return 'L' if channels == 1 else 'RGB'


def open_image(item) -> Image.Image:
  """An item's image as a Pillow image, not yet decoded when it is a file."""
  if isinstance(item, (bytes, bytearray)):
    return Image.open(io.BytesIO(item))
  array = np.asarray(item)
  return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def _decoded(image: Image.Image, mode: str, width: int, height: int) -> Image.Image:
  """The image decoded in `mode`; a JPEG not yet read at the smallest DCT scale (1/2,
  1/4, 1/8) that is still at least width x height."""
  if image.format == 'JPEG' and getattr(image, 'tile', None):  # tiles left to read
    image.draft(mode, (width, height))
  return image.convert(mode)


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
  return resize(image, max(size, round(w * scale)) if w > h else size,
                max(size, round(h * scale)) if h > w else size, mode)


def to_array(image: Image.Image, mode: str) -> np.ndarray:
  """Pillow image -> uint8 HWC in `mode` (H, W, 1 for grey)."""
  if image.mode != mode or getattr(image, 'tile', None):
    image = _decoded(image, mode, *image.size)
  array = np.asarray(image)
  return array[..., None] if array.ndim == 2 else array


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
  h, w = array.shape[:2]
  top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
  return array[top:top + size, left:left + size]


def random_crop(array: np.ndarray, size: int, rng) -> np.ndarray:
  h, w = array.shape[:2]
  top, left = rng.integers(0, max(h - size, 0) + 1), rng.integers(0, max(w - size, 0) + 1)
  return array[top:top + size, left:left + size]


def fit(array: np.ndarray, size: int) -> np.ndarray:
  """Pad a smaller image to size x size (centred), resize a larger one."""
  h, w = array.shape[:2]
  if h > size or w > size:
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    array = np.asarray(image.resize((size, size), Image.BILINEAR))
    array = array[..., None] if array.ndim == 2 else array
    h, w = size, size
  if h < size or w < size:
    ph, pw = size - h, size - w
    array = np.pad(array, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
  return array


def match_channels(array: np.ndarray, channels: int) -> np.ndarray:
  """uint8 HWC with `channels` channels: grey repeated, or RGB to luma."""
  if array.shape[-1] == channels:
    return array
  if channels == 3:
    return np.repeat(array, 3, axis=-1)
  grey = array.astype(np.float32) @ np.array(GREY_WEIGHTS, np.float32)
  return np.round(grey)[..., None].astype(np.uint8)


# ------------------------------------------------------------------------------ presets


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


# Each preset's training crop: (item, config, rng) -> uint8 HWC, before fit and flip.

def _pad_crop(item, config, rng):
  """Pad each side (ResNet section 4.2: 4 pixels), a random image_size crop."""
  d = config.dataset
  pad = PRESETS[d.augment].pad
  array = np.pad(_as_array(item, d.channels), ((pad, pad), (pad, pad), (0, 0)),
                 mode='reflect' if d.pad_mode == 'reflect' else 'constant')
  return random_crop(array, d.image_size, rng)


def _as_is(item, config, rng):  # pylint: disable=unused-argument
  return _as_array(item, config.dataset.channels)


def _random_resized_crop(item, config, rng):
  size, mode = config.dataset.image_size, image_mode(config.dataset.channels)
  image = open_image(item)
  return to_array(resize(image, size, size, mode, _random_resized_crop_box(*image.size, rng)),
                  mode)


def _scale_jitter_crop(item, config, rng):
  """VGG section 3.1: shorter side to S drawn from [scale_min, scale_max], random crop."""
  d = config.dataset
  mode = image_mode(d.channels)
  scale = int(rng.integers(d.scale_min, d.scale_max + 1))
  return random_crop(to_array(resize_shorter(open_image(item), scale, mode), mode),
                     d.image_size, rng)


def _fixed_resize_crop(item, config, rng):
  """AlexNet section 4.1: random crops of the 256x256 image."""
  mode = image_mode(config.dataset.channels)
  return random_crop(to_array(_resize_256(open_image(item), config), mode),
                     config.dataset.image_size, rng)


# Each preset's test-time resize (before the centre crop or the 10 crops).

def _resize_inception(image, config):
  """Shorter side to image_size / 0.875: 224 of 256, as Inception and torchvision."""
  return resize_shorter(image, int(round(config.dataset.image_size / 0.875)),
                        image_mode(config.dataset.channels))


def _resize_vgg(image, config):
  """Shorter side to the test scale Q (VGG section 3.2)."""
  return resize_shorter(image, config.dataset.eval_resize or 256,
                        image_mode(config.dataset.channels))


def _resize_256(image, config):
  """"down-sampled the images to a fixed resolution of 256x256" (AlexNet section 2)."""
  return resize(image, 256, 256, image_mode(config.dataset.channels))


ALTERNATING = 'alternating'
ALTERNATING_SALT = 0x5EED  # the per-example draw's own stream, apart from the positions'


def alternating_mirror(seed: int, index: int, epoch: int) -> bool:
  """Whether example `index` is mirrored in `epoch` under alternating flip: a draw of its
  own in epoch 0, inverted in every odd epoch."""
  first = np.random.default_rng((seed, ALTERNATING_SALT, index)).random() < 0.5
  return bool(first ^ (epoch % 2))


@dataclasses.dataclass(frozen=True)
class Preset:
  """An augmentation preset (config.dataset.augment): everything that says what it does.

  train_crop: the host's random crop of a training example (before fit and flip).
  test_resize: the host's resize of a file before the centre crop; None: arrays as is.
  flip: True, random horizontal mirror images in training; ALTERNATING, airbench's
    alternating flip: each example's mirror choice is drawn once and inverted every other
    epoch (Jordan 2024, section 3.6), so consecutive epochs see both sides.
  pad: pixels padded on each side before the random crop (the pad-crop presets).
  resident: data/device.py does the same inside jit (it implements pad-crop and flip), so
    a fixed-size split may live on the devices.
  colour_noise: AlexNet's PCA colour noise, added on the device in training.
  """
  train_crop: Callable
  test_resize: Callable | None
  flip: bool | str
  pad: int = 0
  resident: bool = False
  colour_noise: bool = False


PRESETS = {
    'cifar': Preset(_pad_crop, None, flip=True, pad=4, resident=True),  # ResNet 4.2
    'imagenet': Preset(_random_resized_crop, _resize_inception, flip=True),
    'vgg': Preset(_scale_jitter_crop, _resize_vgg, flip=True),
    'alexnet': Preset(_fixed_resize_crop, _resize_256, flip=True, colour_noise=True),
    'none': Preset(_as_is, None, flip=False, resident=True),
    # airbench94: translate by up to 2 pixels of the reflect-padded image (the config sets
    # dataset.pad_mode='reflect'), alternating flip.
    'airbench': Preset(_pad_crop, None, flip=ALTERNATING, pad=2, resident=True),
}


def eval_resize(image: Image.Image, config) -> Image.Image:
  """The preset's test-time resize, before the centre crop (or the 10 crops)."""
  resize_fn = PRESETS[config.dataset.augment].test_resize
  return resize_fn(image, config) if resize_fn else image


def train_example(item, config, rng, mirror: bool | None = None) -> np.ndarray:
  """A training image, augmented by the preset: uint8 (image_size, image_size, C).
  `mirror`: the alternating-flip presets' choice for this example and epoch."""
  preset = PRESETS[config.dataset.augment]
  array = fit(preset.train_crop(item, config, rng), config.dataset.image_size)
  if preset.flip == ALTERNATING:
    if mirror is None:
      raise ValueError(f'the {config.dataset.augment!r} preset flips by example and epoch: '
                       'give `mirror` (transforms.alternating_mirror)')
    flipped = mirror
  else:
    flipped = preset.flip and rng.random() < 0.5
  if flipped:
    array = array[:, ::-1]
  return np.ascontiguousarray(array)


def eval_example(item, config) -> np.ndarray:
  """The evaluation view (no randomness): uint8 (image_size, image_size, C)."""
  d = config.dataset
  if PRESETS[d.augment].test_resize:
    array = to_array(eval_resize(open_image(item), config), image_mode(d.channels))
    array = center_crop(array, d.image_size)
  else:
    array = _as_array(item, d.channels)
  return np.ascontiguousarray(fit(array, d.image_size))


def _as_array(item, channels: int) -> np.ndarray:
  """uint8 HWC with `channels` channels, from an array or an encoded file."""
  if isinstance(item, (bytes, bytearray)):
    return to_array(open_image(item), image_mode(channels))
  return match_channels(np.asarray(item), channels)


# -------------------------------------------------------------------- test-time views


def ten_crop_offsets(height: int, width: int, size: int) -> list[tuple[int, int]]:
  """(top, left) of the four corner crops and the centre crop (AlexNet section 4.1)."""
  return [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
          ((height - size) // 2, (width - size) // 2)]


def views(item, config, kind: str, scale: int | None = None) -> np.ndarray:
  """An example's test-time views, uint8 (V, H, W, C).

  center: the training's evaluation view (V=1). 10crop: after the preset's test-time
  resize, the four corners and the centre at image_size, and their mirror images (V=10;
  ResNet section 3.4 / Table 3, AlexNet section 4.1). full: the whole image with its
  shorter side at `scale` exactly (VGG's Q, section 3.2), and its mirror image (V=2); only
  the longer side is rounded: it exceeds Q by a multiple of 32 pixels, the nearest to the
  image's aspect (at most 16 pixels off), so that an ImageNet-sized split compiles for a
  few shapes instead of hundreds, and each step of it is one more column of VGG's pool5
  map (stride 32). At a Q that is not a multiple of 32, the network's own 2x2 poolings
  leave the last Q mod 32 rows and columns out of pool5, on both sides alike.
  """
  d = config.dataset
  size, mode = d.image_size, image_mode(d.channels)
  if kind == 'center':
    return eval_example(item, config)[None]
  image = open_image(item)
  if kind == '10crop':
    array = to_array(eval_resize(image, config), mode)
    h, w = array.shape[:2]
    if h < size or w < size:
      array = fit(array, max(size, h, w))
      h, w = array.shape[:2]
    crops = np.stack([array[t:t + size, l:l + size] for t, l in ten_crop_offsets(h, w, size)])
    return np.concatenate([crops, crops[:, :, ::-1]])
  w, h = image.size
  excess = max(w, h) * scale / min(w, h) - scale  # of the longer side over Q, at its aspect
  longer = scale + DENSE_SIZE_MULTIPLE * round(excess / DENSE_SIZE_MULTIPLE)
  new_w, new_h = (scale, longer) if w <= h else (longer, scale)
  array = to_array(resize(image, new_w, new_h, mode), mode)
  return np.stack([array, array[:, ::-1]])
