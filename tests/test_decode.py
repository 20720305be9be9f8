"""Pixels keep their values: every image mode Pillow opens decodes to the 8-bit values of
the rule in data/transforms.py (README, "Image modes"), checked pixel by pixel against
that rule written here in numpy, or is refused naming the mode; in a folder dataset read
resident and streamed, in `python -m data.check --decode`, and in predict.py."""

import io
import os
import struct
import sys
import zlib

import jax
import numpy as np
import pytest
from PIL import Image

from configs import default
from data import sources, transforms
import input_pipeline
import predict
from tests import prewarmed

pytestmark = pytest.mark.fast  # (the fast lane: README)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 6, 8
RNG = np.random.default_rng(0)


def uint8(*shape, high=256):
  return RNG.integers(0, high, shape).astype(np.uint8)


def image(mode: str, array: np.ndarray) -> Image.Image:
  return Image.frombytes(mode, (W, H), array.tobytes())


def palette_image(mode: str, transparency: bool = False):
  """(a palette image, its colours per pixel): P, with an alpha per palette entry where
  `transparency`, or PA, an alpha per pixel."""
  indices, colours = uint8(H, W), uint8(256, 3)
  data = np.stack([indices, uint8(H, W)], -1) if mode == 'PA' else indices
  picture = image(mode, data)
  picture.putpalette(colours.tobytes())
  if transparency:
    picture.info['transparency'] = uint8(256).tobytes()
  return picture, colours[indices]


def sixteen_bit(mode: str, dtype: str):
  values = RNG.integers(0, 65536, (H, W))
  values[0, :4] = (0, 255, 256, 65535)  # the ends of each 8-bit step
  return image(mode, values.astype(dtype)), values >> 8


def cmyk_rgb(values: np.ndarray) -> np.ndarray:
  """RGB of CMYK values: (255 - C)(255 - K) / 255, rounded."""
  c, m, y, k = np.moveaxis(values.astype(np.int64), -1, 0)
  return np.round(np.stack([(255 - x) * (255 - k) / 255 for x in (c, m, y)], -1))


def cmyk():
  values = uint8(H, W, 4)
  return image('CMYK', values), cmyk_rgb(values)


def floats():
  values = RNG.uniform(0, 1, (H, W)).astype(np.float32)
  values[0, :3] = (0, 1, 0.5)
  return image('F', values), np.round(values.astype(np.float64) * 255)


def alpha_dropped(mode: str, channels: int):
  values = uint8(H, W, channels + 1)
  kept = values[..., :channels]
  return image(mode, values), kept[..., 0] if channels == 1 else kept


def as_is(mode: str, *channels):
  values = uint8(H, W, *channels)
  return image(mode, values), values


def bits():
  values = uint8(H, W, high=2).astype(bool)
  return Image.fromarray(values), values * 255


# Each mode: () -> (a Pillow image of it, the grey (H, W) or RGB (H, W, 3) values the
# rule gives), the rule written out.
MODES = {
    '1': bits,                                                 # 0 or 255
    'L': lambda: as_is('L'),                                   # as they are
    'LA': lambda: alpha_dropped('LA', 1),                      # alpha dropped
    'P': lambda: palette_image('P'),                           # the palette's colours
    'P, transparency': lambda: palette_image('P', transparency=True),
    'PA': lambda: palette_image('PA'),
    'RGB': lambda: as_is('RGB', 3),
    'RGBA': lambda: alpha_dropped('RGBA', 3),
    'RGBX': lambda: alpha_dropped('RGBX', 3),                  # padding dropped
    'CMYK': cmyk,                                              # (255 - C)(255 - K) / 255
    'I;16': lambda: sixteen_bit('I;16', '<u2'),                # the high byte
    'I;16L': lambda: sixteen_bit('I;16L', '<u2'),
    'I;16B': lambda: sixteen_bit('I;16B', '>u2'),
    'I;16N': lambda: sixteen_bit('I;16N', '=u2'),
    'I': lambda: sixteen_bit('I', '=i4'),                      # 16-bit values, high byte
    'F': floats,                                               # [0, 1] times 255
}


def luma(rgb: np.ndarray) -> np.ndarray:
  """ITU-R 601 luma in Pillow's 16-bit fixed point (its convert('L'))."""
  r, g, b = np.moveaxis(rgb.astype(np.int64), -1, 0)
  return (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16


def with_channels(values: np.ndarray, channels: int) -> np.ndarray:
  """The rule's grey or RGB values as uint8 HWC with `channels`: grey thrice, or luma."""
  if values.ndim == 2:
    values = values[..., None] if channels == 1 else np.repeat(values[..., None], 3, -1)
  elif channels == 1:
    values = luma(values)[..., None]
  assert values.min() >= 0 and values.max() <= 255
  return values.astype(np.uint8)


@pytest.mark.parametrize('channels', [1, 3])
@pytest.mark.parametrize('mode', MODES)
def test_every_mode_decodes_by_the_rule(mode, channels):
  """The decode every reader goes through (to_array: resident data, the stream, predict,
  visualize; resize: the decode-time crops and views), at the image's own size."""
  picture, values = MODES[mode]()
  assert picture.mode == mode.split(',')[0]
  want = with_channels(values, channels)
  target = transforms.image_mode(channels)
  np.testing.assert_array_equal(transforms.to_array(picture, target), want)
  resized = transforms.resize(picture, W, H, target)
  np.testing.assert_array_equal(transforms.to_array(resized, target), want)


def test_ycbcr_decodes_by_the_jpeg_equations_and_to_grey_as_its_y():
  """YCbCr (a TIFF's): RGB by JPEG's equations, as Pillow computes them; grey is its own
  luma Y, as libjpeg reads a colour JPEG in grey (not the luma of the RGB, which clips)."""
  values = uint8(H, W, 3)
  rgb = np.asarray(image('YCbCr', values).convert('RGB'))
  assert not np.array_equal(rgb, values)
  np.testing.assert_array_equal(transforms.to_array(image('YCbCr', values), 'RGB'), rgb)
  np.testing.assert_array_equal(transforms.to_array(image('YCbCr', values), 'L'),
                                values[..., :1])


@pytest.mark.parametrize('picture,fragment', [
    (Image.new('LAB', (W, H)), 'image mode LAB'),
    (Image.new('HSV', (W, H)), 'image mode HSV'),
    (Image.new('RGBa', (W, H)), 'image mode RGBa'),
    (image('I', np.full((H, W), -1, np.int32)), r'from -1 to -1, outside 0\.\.65535'),
    (image('I', np.full((H, W), 70000, np.int32)), r'to 70000, outside 0\.\.65535'),
    (image('F', np.full((H, W), 1.5, np.float32)), r'from 1\.5 to 1\.5, outside \[0, 1\]'),
    (image('F', np.full((H, W), np.nan, np.float32)), r'not a number'),
])
def test_a_mode_without_a_rule_or_values_outside_it_are_refused(picture, fragment):
  with pytest.raises(transforms.ImageModeError, match=fragment):
    transforms.to_array(picture, 'RGB')


# ----------------------------------------------------------------------------- files


def png16(values: np.ndarray) -> bytes:
  """A 16-bit RGB PNG (Pillow writes none), written by hand: signature, IHDR, IDAT, IEND."""
  h, w, _ = values.shape
  chunk = lambda kind, data: (struct.pack('>I', len(data)) + kind + data
                              + struct.pack('>I', zlib.crc32(kind + data)))
  rows = b''.join(b'\x00' + row.astype('>u2').tobytes() for row in values)
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2, 0, 0, 0))
          + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def encoded(picture: Image.Image, fmt: str) -> bytes:
  out = io.BytesIO()
  picture.save(out, format=fmt, **({'transparency': picture.info['transparency']}
                                   if 'transparency' in picture.info else {}))
  return out.getvalue()


def file_cases() -> dict:
  """{class folder: (file name, bytes, the rule's values)}: every mode a PNG or JPEG
  opens in, each its own class."""
  cases = {}
  for mode in ('1', 'L', 'LA', 'P', 'P, transparency', 'RGB', 'RGBA', 'I;16'):
    picture, values = MODES[mode]()
    cases[mode.replace(', ', '_')] = ('0.png', encoded(picture, 'PNG'), values)
  wide = RNG.integers(0, 65536, (H, W, 3))
  cases['RGB16'] = ('0.png', png16(wide), wide >> 8)  # 16-bit colour: the high byte too
  jpeg = encoded(MODES['CMYK']()[0], 'JPEG')  # (lossy: the rule of the CMYK it holds)
  cases['CMYK'] = ('0.jpg', jpeg, cmyk_rgb(np.asarray(Image.open(io.BytesIO(jpeg)))))
  return cases


@pytest.fixture(scope='module')
def mode_folder(tmp_path_factory):
  """root/{train,test}/MODE/0.png: one image of each mode, the same in both splits."""
  root = tmp_path_factory.mktemp('modes')
  cases = file_cases()
  for split in ('train', 'test'):
    for name, (file, data, _) in cases.items():
      os.makedirs(root / split / name)
      (root / split / name / file).write_bytes(data)
  return root, {name: values for name, (_, _, values) in cases.items()}


def folder_config(root, channels, **dataset):
  c = default.get_config()
  c.dataset.update(name=f'folder:{root}', augment='none', image_size=max(H, W),
                   channels=channels, workers=0, **dataset)
  c.batch_size = 10
  return c


def by_label(images, labels, values, channels):
  """Each image against its class's values (padded to the square as `fit` centres it)."""
  names = sorted(values)
  assert sorted(labels.tolist()) == list(range(len(names)))
  for picture, label in zip(images, labels):
    want = with_channels(values[names[label]], channels)
    top, left = (picture.shape[0] - H) // 2, (picture.shape[1] - W) // 2
    np.testing.assert_array_equal(picture[top:top + H, left:left + W], want,
                                  err_msg=names[label])


@pytest.mark.parametrize('channels', [1, 3])
def test_a_folder_of_every_mode_trains_on_the_rule_resident_and_streamed(mode_folder,
                                                                         channels):
  root, values = mode_folder
  assert len(values) == 10
  sources._folder.cache_clear()  # pylint: disable=protected-access
  config = folder_config(root, channels)
  info = input_pipeline.dataset_info(config)
  input_pipeline.check_config(config, info)  # (decodes the resident splits)
  assert input_pipeline.resident(config, info)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ('data',))
  resident = jax.device_get(next(input_pipeline.train_inputs(config, info, mesh)))
  by_label(resident['image'], resident['label'], values, channels)
  config.dataset.device_resident = False
  info = input_pipeline.dataset_info(config)
  streamed = next(iter(input_pipeline.train_dataset(config, info=info)))  # (one epoch)
  by_label(streamed['image'], streamed['label'], values, channels)
  (evaluated,) = list(input_pipeline.eval_dataset(config, info))
  by_label(evaluated['image'], evaluated['label'], values, channels)


def test_data_check_decodes_every_mode(mode_folder):
  root, values = mode_folder
  result = prewarmed.run([sys.executable, '-m', 'data.check', '--decode', f'folder:{root}'],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout + result.stderr
  assert result.stdout == ''  # no file refused
  assert f'{2 * len(values)} image files in {len(values)} classes' in result.stderr
  assert 'decoded); 0 corrupt' in result.stderr


def test_predict_reads_high_depth_files_by_the_rule_and_names_a_refused_one(tmp_path):
  """predict.py's (and visualize.py's) files of any format: a 16-bit big-endian TIFF and
  a float TIFF scaled; a CIELAB TIFF and a float one outside [0, 1] refused, each line
  naming the file and the mode."""
  written = {}
  for name, (picture, values) in {'big.tif': MODES['I;16B'](), 'float.tif': MODES['F'](),
                                  'lab.tif': (Image.new('LAB', (W, H)), None),
                                  'bright.tif': (image('F', np.full((H, W), 2, np.float32)),
                                                 None)}.items():
    picture.save(tmp_path / name, format='TIFF')
    assert Image.open(tmp_path / name).mode == picture.mode
    written[str(tmp_path / name)] = values
  config = folder_config(tmp_path, 1)
  read, views, errors = predict.eval_views(list(written), config)
  assert read == [str(tmp_path / 'big.tif'), str(tmp_path / 'float.tif')]
  top = (W - H) // 2  # (the 8x6 image padded to 8x8, centred)
  for path, view in zip(read, views):
    np.testing.assert_array_equal(view[top:top + H], with_channels(written[path], 1))
  assert len(errors) == 2
  assert errors[0].startswith(f'{tmp_path / "lab.tif"}: ') and 'image mode LAB' in errors[0]
  assert errors[1].startswith(f'{tmp_path / "bright.tif"}: ') and 'image mode F' in errors[1]
