"""Each augmentation written once (data/augment.py): the host pipeline (numpy) and a
dataset resident on the devices (jax.numpy inside jit) give the same pixels; Cutout; the
augmentation spec (config.dataset.augment) and its refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data import augment, device, sampler, sources, transforms
import input_pipeline
from lib import parallel
from tests.test_input_pipeline import make_config

pytestmark = pytest.mark.fast  # (the fast lane: README)

STEPS = (0, 3, 500)  # mnist5k's epoch is 500 steps of 8: step 500 starts epoch 1


def training_batches(config, steps=STEPS):
  """The uint8 training batches and the train step's model input at `steps`, as the
  pipeline the config chooses makes them: Grain's host batches, or the resident split
  gathered and augmented inside jit."""
  info = input_pipeline.dataset_info(config)
  mesh = parallel.data_mesh()
  prepare, _ = input_pipeline.train_model_input(config, info, mesh)
  model_input = jax.jit(prepare, static_argnums=2)
  images, inputs = [], []
  if input_pipeline.resident(config, info):
    data = next(input_pipeline.train_inputs(config, info, mesh))
    gather = jax.jit(lambda data, step: device.gather_batch(data, step, config, mesh))
    for step in steps:
      images.append(np.asarray(jax.device_get(gather(data, jnp.int32(step))['image'])))
      inputs.append(np.asarray(model_input(jnp.int32(step), data, jnp.float32)['image']))
  else:
    for step in steps:
      batch = next(input_pipeline.train_inputs(config, info, mesh, step))
      images.append(np.asarray(jax.device_get(batch['image'])))
      inputs.append(np.asarray(model_input(jnp.int32(step), batch, jnp.float32)['image']))
  return np.stack(images), np.stack(inputs)


def paths(spec, **dataset):
  """(host, resident) training batches of mnist5k under augmentation `spec`."""
  out = []
  for resident in (False, True):
    config = make_config(**{'name': 'mnist5k', 'channels': 1, 'image_size': 28,
                            'augment': spec, 'device_resident': resident, **dataset})
    assert input_pipeline.resident(config, input_pipeline.dataset_info(config)) == resident
    out.append(training_batches(config))
  return out


@pytest.mark.parametrize('spec,size', [
    ('pad_crop(4)', 28), ('pad_crop(2, reflect)', 28), ('flip', 28),
    ('alternating_flip', 28), ('cutout(16)', 28), ('cifar', 32), ('airbench', 28),
    ('cifar,cutout(16)', 32), ('pad_crop(3),flip,cutout(8)', 32)])
def test_host_and_resident_paths_give_the_same_pixels(spec, size):
  """The same (seed, step): the same uint8 batch and the same model input from Grain's
  host batches as from the resident split augmented inside jit; and the ops do act."""
  (host, host_input), (resident, resident_input) = paths(spec, image_size=size)
  assert host.shape == (len(STEPS), 8, size, size, 1) and host.dtype == np.uint8
  np.testing.assert_array_equal(host, resident)
  np.testing.assert_array_equal(host_input, resident_input)
  (plain, _), _ = paths('none', image_size=size)
  assert not np.array_equal(host, plain)  # each spec changes the pixels
  for step in range(len(STEPS)):  # ... and draws per example, not once per batch
    assert not all(np.array_equal(host[step, 0], host[step, k]) for k in range(8))


def test_the_same_op_on_numpy_and_jax_numpy_draws_the_same():
  """Op by op, on a batch of random images at positions far into a run."""
  images = np.random.default_rng(0).integers(0, 256, (64, 24, 20, 3), np.uint8)
  q = np.arange(10**8, 10**8 + 64, dtype=np.uint32)
  for name, args in [('pad_crop', (4, 'zeros')), ('pad_crop', (3, 'reflect')),
                     ('flip', ()), ('alternating_flip', ()), ('cutout', (16,)),
                     ('cutout', (7,))]:
    host = augment.OPS[name](images, augment.Examples(5, q, q % 1000, q // 1000, 24, np),
                             *args)
    on_device = jax.jit(lambda x, q: augment.OPS[name](  # pylint: disable=cell-var-from-loop
        x, augment.Examples(5, q, (q % 1000).astype(jnp.int32), q // 1000, 24, jnp), *args))(
            images, q)
    np.testing.assert_array_equal(host, np.asarray(on_device), err_msg=name)
    assert host.dtype == np.uint8


def test_the_host_and_jit_formulations_of_window_mirror_and_square_give_the_same_pixels(
    monkeypatch):
  """What moves or blanks pixels is written for each array module (augment._window,
  _mirror, _zero_square): slices and copies on numpy, gathers and `where` inside jit. The
  same pixels either way, for the host's batch of one and for a batch, grey or colour,
  at every border and with every or no image mirrored; the host's never writes into its
  input (read-only here, as a memory-mapped source's) and never gathers (an index per
  pixel: what made the JPEG pipeline a third slower)."""
  def no_gather(*args, **kwargs):
    raise AssertionError('numpy gathered pixels: slice or copy them on the host')

  rng = np.random.default_rng(1)
  cases = []
  for n, h, w, c in ((1, 7, 9, 3), (1, 6, 5, 1), (17, 12, 11, 3)):
    images = rng.integers(0, 256, (n, h, w, c), np.uint8)
    images.flags.writeable = False
    top = rng.integers(0, 3, n, dtype=np.int32)  # windows of (h - 2) x (w - 3)
    left = rng.integers(0, 4, n, dtype=np.int32)
    top[0], left[0] = 2, 3  # (the first at the bottom-right corner)
    # Squares of 4 from wholly off the top (left) border to wholly off the bottom (right).
    square_top = rng.integers(-6, h + 1, n, dtype=np.int32)
    square_left = rng.integers(-6, w + 1, n, dtype=np.int32)
    for where in (rng.random(n) < 0.5, np.ones(n, bool), np.zeros(n, bool)):
      cases.append((images, top, left, where, square_top, square_left))

  def each(xp, images, top, left, where, square_top, square_left):
    _, h, w, _ = images.shape
    return (augment._window(images, top, left, h - 2, w - 3, xp),
            augment._mirror(images, where, xp),
            augment._zero_square(images, square_top, square_left, 4, xp))

  with monkeypatch.context() as patch:
    patch.setattr(np, 'take_along_axis', no_gather)
    host = [each(np, *case) for case in cases]
  for case, outputs in zip(cases, host):
    images, top, left, where, square_top, square_left = case
    on_device = jax.jit(lambda *a: each(jnp, *a))(*case)
    for name, out, jitted in zip(('window', 'mirror', 'square'), outputs, on_device):
      assert isinstance(out, np.ndarray) and out.dtype == np.uint8
      np.testing.assert_array_equal(out, np.asarray(jitted), err_msg=name)
    window, mirror, square = outputs
    np.testing.assert_array_equal(window[0], images[0, 2:, 3:])  # (the corner window)
    np.testing.assert_array_equal(
        mirror, np.where(where[:, None, None, None], images[:, :, ::-1], images))
    rows, columns = np.arange(images.shape[1]), np.arange(images.shape[2])
    inside = (((rows >= square_top[:, None]) & (rows < square_top[:, None] + 4))[:, :, None]
              & ((columns >= square_left[:, None]) & (columns < square_left[:, None] + 4))
              [:, None, :])
    np.testing.assert_array_equal(square, np.where(inside[..., None], 0, images))


def test_the_draws_are_uniform_and_independent():
  """Offsets cover their range about evenly; flips are about half; an op's draws do not
  repeat another's or another seed's."""
  q = np.arange(20_000, dtype=np.uint32)
  draws = augment.Examples(0, q, q, q, 32, np)
  counts = np.bincount(draws.below(augment.PAD_CROP_TOP, 9), minlength=9)
  assert counts.min() > 0.9 * len(q) / 9 and counts.max() < 1.1 * len(q) / 9
  assert abs(draws.coin(augment.FLIP).mean() - 0.5) < 0.02
  assert abs(draws.coin(augment.ALTERNATING).mean() - 0.5) < 0.02
  top, left = draws.below(augment.PAD_CROP_TOP, 9), draws.below(augment.PAD_CROP_LEFT, 9)
  assert abs(np.corrcoef(top, left)[0, 1]) < 0.03
  other_seed = augment.Examples(1, q, q, q, 32, np).below(augment.PAD_CROP_TOP, 9)
  assert np.mean(top == other_seed) < 0.15  # (1/9 by chance)


def cut_squares(out, source):
  """Each image's zeroed box (top, left, height, width), where `out` lost pixels of
  `source`: asserting that everything else is the source and the box all zeros."""
  boxes = []
  for image, original in zip(out, source):
    rows, columns = np.nonzero((image != original).any(-1))
    top, left = rows.min(), columns.min()
    height, width = rows.max() + 1 - top, columns.max() + 1 - left
    box = (slice(top, top + height), slice(left, left + width))
    assert not image[box].any(), 'the square is zeros'
    outside = image.copy()
    outside[box] = original[box]
    np.testing.assert_array_equal(outside, original)  # nothing else changed
    boxes.append((top, left, height, width))
  return np.array(boxes)


@pytest.mark.parametrize('resident', [False, True])
def test_cutout_zeroes_one_16x16_square_per_image_clipped_at_the_borders(resident):
  """DeVries & Taylor 2017: one 16x16 square per image, its centre anywhere in the image,
  the square clipped where it crosses the border; each position its own square, the same
  on both paths."""
  config = make_config(name='synthetic', synthetic_size=64, image_size=32, channels=3,
                       augment='cutout(16)', device_resident=resident)
  images, _ = training_batches(config, steps=range(16))  # 128 positions, 2 epochs
  assert input_pipeline.resident(config, input_pipeline.dataset_info(config)) == resident
  source = sources._synthetic_open(config, 'train').images
  q = np.arange(16 * 8)
  index = sampler.example_index(q, 64, config.seed, np)
  boxes = cut_squares(images.reshape(-1, 32, 32, 3), source[index])
  top, left, height, width = boxes.T
  for start, extent in ((top, height), (left, width)):
    whole = (start > 0) & (start + extent < 32)
    assert np.all(extent[whole] == 16)  # a whole side is 16 pixels
    assert np.all((extent <= 16) & (extent >= 8))  # a clipped one keeps at least half
    assert 0.3 < whole.mean() < 0.7  # off both borders: 15 of the 32 centres
  assert len(set(map(tuple, boxes))) > 100  # each position its own square
  # An example seen in both epochs (positions 64 apart) has its square cut anew.
  again = np.nonzero(index[64:] == index[0])[0][0] + 64
  assert tuple(boxes[0]) != tuple(boxes[again])
  other_path = config.copy_and_resolve_references()
  other_path.dataset.device_resident = not resident
  np.testing.assert_array_equal(training_batches(other_path, steps=range(16))[0], images)


# ------------------------------------------------------------------------ the spec


def test_a_spec_is_presets_and_ops_in_order():
  op = transforms.Op
  assert transforms.parse('cifar') == (op('pad_crop', (4,)), op('flip'))
  assert transforms.parse('cifar, cutout(16)') == (op('pad_crop', (4,)), op('flip'),
                                                   op('cutout', (16,)))
  assert transforms.parse('pad_crop(4,reflect),flip,cutout(16)') == (
      op('pad_crop', (4, 'reflect')), op('flip'), op('cutout', (16,)))
  assert transforms.parse('airbench') == (op('pad_crop', (2, 'reflect')),
                                          op('alternating_flip'))
  assert transforms.parse('none') == () and transforms.parse('none,flip()') == (op('flip'),)
  assert transforms.parse('alexnet')[-1] == op('colour_noise')
  config = make_config(augment='cifar,pad_crop(2, reflect)', pad_mode='reflect')
  # A pad_crop without a mode pads as dataset.pad_mode says; one with a mode, as it says.
  assert transforms.augmentation(config) == (op('pad_crop', (4, 'reflect')), op('flip'),
                                             op('pad_crop', (2, 'reflect')))
  readers = {spec: transforms.reads_pad_mode(make_config(augment=spec))
             for spec in ('cifar', 'airbench', 'none', 'imagenet', 'flip,pad_crop(3)')}
  assert readers == {'cifar': True, 'airbench': False, 'none': False, 'imagenet': False,
                     'flip,pad_crop(3)': True}


def test_data_lives_on_the_devices_when_every_op_is_an_array_op():
  for spec, on_device in [('cifar,cutout(16)', True), ('airbench', True), ('none', True),
                          ('pad_crop(4,reflect),flip,cutout(16)', True),
                          ('imagenet', False), ('imagenet,cutout(16)', False)]:
    config = make_config(name='mnist5k', channels=1, image_size=32, augment=spec)
    assert input_pipeline.resident(config, input_pipeline.dataset_info(config)) == on_device


VALID = r'.*give a preset \(cifar, .*none\) or a list of presets and operations \(.*' \
    r'pad_crop\(PAD\[, MODE\]\), flip, alternating_flip, cutout\(SIZE\), colour_noise\)'


@pytest.mark.parametrize('spec,message', [
    ('cifr', r"^config.dataset.augment: unknown preset 'cifr'; " + VALID
     + r".* \(did you mean 'cifar'\?\)$"),
    ('cifar,cutot(16)', r"^config.dataset.augment: unknown operation 'cutot\(16\)' in "
     r"'cifar,cutot\(16\)'; " + VALID + r".*did you mean 'cutout'"),
    ('cutout(sixteen)', r"config.dataset.augment: cutout\(sixteen\): SIZE must be a positive "
     r"integer; got 'sixteen' \(write cutout\(SIZE\)\)"),
    ('cifar,cutout(0)', r'cutout\(0\): SIZE must be a positive integer'),
    ('cutout', r"config.dataset.augment: 'cutout': write cutout\(SIZE\)"),
    ('flip(2)', r"config.dataset.augment: 'flip\(2\)': write flip$"),
    ('pad_crop(4, mirror)', r"pad_crop\(4, mirror\): MODE must be zeros or reflect; got "
     r"'mirror'"),
    ('pad_crop(4', r"unknown operation 'pad_crop\(4'|unknown preset 'pad_crop\(4'"),
    ('flip,random_resized_crop', r"random_resized_crop crops the decoded source image, so it "
     r'comes first, and once'),
    ('colour_noise,flip', r'colour_noise is added .*: write it last'),
    ('', r"config.dataset.augment: got ''; give a preset .*, or 'none' for no augmentation"),
    ('cifar,,flip', r"unknown operation '' in 'cifar,,flip'"),
])
def test_a_bad_spec_is_refused_in_one_line_naming_the_key_and_the_part(spec, message):
  config = make_config(augment=spec)
  with pytest.raises(ValueError, match=message) as e:
    transforms.augmentation(config)
  assert '\n' not in str(e.value)


def test_colour_noise_needs_rgb():
  config = make_config(name='mnist5k', channels=1, augment='none,colour_noise')
  with pytest.raises(ValueError, match=r"config.dataset.augment='none,colour_noise' adds RGB "
                     r'colour noise \(colour_noise\): it needs config.dataset.channels=3'):
    input_pipeline.check_config(config, input_pipeline.dataset_info(config))


def test_an_unknown_pad_mode_is_named_where_it_is_read():
  config = make_config(augment='cifar', pad_mode='mirror')
  with pytest.raises(ValueError, match=r"config.dataset.pad_mode must be zeros or reflect; "
                     r"got 'mirror'"):
    transforms.augmentation(config)
  transforms.augmentation(make_config(augment='airbench', pad_mode='mirror'))  # unread
