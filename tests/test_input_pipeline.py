"""The input pipeline: the sampler, every source (mnist5k, PNG/JPEG folders, TFDS through
mock and real ArrayRecord data sources), resume, process counts, presets, the resident
path on the device, and exactly-once evaluation."""

import contextlib
import io
import itertools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import default
from data import augment, device, sampler, sources, transforms
import input_pipeline
from tests.support import xla_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOCK = dict(policy=tfds.testing.MockPolicy.USE_CODE)


def make_config(**dataset):
  c = default.get_config()
  c.batch_size = 8
  c.dataset.workers = 0  # decoding threads in this process; one test runs workers
  c.dataset.update(dataset)
  return c


def train_example(item, config, position, index, num_examples):
  """transforms.train_batch of one: the training image at stream `position`, augmented."""
  return transforms.train_batch([transforms.train_crop(item, config, position)], config,
                                [position], [index], num_examples)[0]


def first_batches(ds, n, skip=0):
  return [b for b in itertools.islice(iter(ds), skip, skip + n)]


def assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    for key in ('image', 'label'):
      np.testing.assert_array_equal(a[key], b[key])


def write_image_folder(root, splits, formats=('png',), mode='L', size=None):
  """mnist5k test digits as root/SPLIT/digitL/I.FORMAT; splits: {name: slice}. mode RGB
  tints them; size (w, h) resizes them."""
  digits = sources._mnist5k_open(make_config(), 'eval')
  images, labels = digits.images, digits.labels
  for split, part in splits.items():
    for i, (image, label) in enumerate(zip(images[part], labels[part])):
      folder = root / split / f'digit{label}'
      folder.mkdir(parents=True, exist_ok=True)
      picture = Image.fromarray(image[..., 0])
      if mode == 'RGB':
        picture = Image.merge('RGB', [picture, picture.point(lambda v: v // 2),
                                      picture.point(lambda v: 255 - v)])
      if size:
        picture = picture.resize(size)
      for fmt in formats:
        picture.save(folder / f'{i}.{fmt}', format='JPEG' if fmt == 'jpg' else 'PNG')
  return labels


# ------------------------------------------------------------------------------ sampler


@pytest.mark.parametrize('n', [1, 5, 24, 1000, 4000, 50000])
@pytest.mark.fast
def test_sampler_epochs_are_permutations_and_jit_agrees(n):
  q = np.arange(3 * n)
  host = sampler.example_index(q, n, 7, np)
  for epoch in range(3):
    assert sorted(host[epoch * n:(epoch + 1) * n]) == list(range(n))
  if n > 4:
    assert not np.array_equal(host[:n], host[n:2 * n])  # each epoch its own order
    assert not np.array_equal(host[:n], np.arange(n))
  on_device = jax.jit(lambda q: sampler.example_index(q, n, 7, jnp))(jnp.asarray(q))
  np.testing.assert_array_equal(np.asarray(on_device), host)


# ------------------------------------------------------------------------------ sources


class CountingSource:
  """A source that records which indices were read."""

  def __init__(self, source):
    self.source, self.reads = source, []

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    self.reads.append(index)
    return self.source[index]


def test_resume_from_a_large_step_reads_only_what_it_trains_on():
  config = make_config(name='mnist5k', augment='cifar', channels=1)
  counting = CountingSource(sources.open_split(config, 'train'))
  (resumed,) = first_batches(input_pipeline.train_dataset(config, 100_000, source=counting), 1)
  # What was read: step 100000's batch and at most the prefetch buffer behind it (8
  # batches), no example of the 100000 steps before.
  wanted = sampler.example_index(np.arange(100_000 * 8, 100_001 * 8), 4000, config.seed, np)
  ahead = sampler.example_index(np.arange(100_000 * 8, 100_009 * 8), 4000, config.seed, np)
  assert set(wanted) <= set(counting.reads) <= set(ahead)
  assert len(counting.reads) <= 9 * 8
  np.testing.assert_array_equal(resumed['label'],
                                sources.open_split(config, 'train').labels[wanted])
  # ... and it is the batch an uninterrupted run has at that step.
  near = first_batches(input_pipeline.train_dataset(config, 99_998), 1, skip=2)
  assert_same([resumed], near)


def folder_config(tmp_path, **dataset):
  write_image_folder(tmp_path, {'train': slice(0, 24), 'test': slice(24, 36)},
                     formats=('jpg',), mode='RGB', size=(40, 30))
  return make_config(name=f'folder:{tmp_path}', augment='imagenet', image_size=24,
                     **dataset)


@pytest.mark.parametrize('device_resident', [False, True])
def test_a_run_opens_each_tfds_split_once(device_resident, monkeypatch):
  """train.py's set-up (dataset_info, the training batches, the eval batches) opens the
  builder once and each split's files once: ImageNet's train split is 1,024 files."""
  config = make_config(name='mnist', augment='none', image_size=28, channels=1,
                       device_resident=device_resident)
  calls = {'builder': 0, 'data_source': 0}

  def counting(name, function):
    def wrapper(*args, **kwargs):
      calls[name] += 1
      return function(*args, **kwargs)
    return wrapper

  with tfds.testing.mock_data(num_examples=12, **MOCK):
    for name in calls:
      monkeypatch.setattr(tfds, name, counting(name, getattr(tfds, name)))
    info = input_pipeline.dataset_info(config)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ('data',))
    batches = input_pipeline.train_inputs(config, info, mesh)
    next(batches)
    assert sum(1 for _ in input_pipeline.eval_dataset(config, info)) == 2  # 12 / 8, padded
  assert input_pipeline.resident(config, info) == device_resident
  assert calls == {'builder': 1, 'data_source': 2}


@pytest.mark.parametrize('kind', ['mnist5k', 'folder', 'tfds'])
def test_resumed_and_split_over_processes_equal_one_uninterrupted_process(kind, tmp_path):
  if kind == 'mnist5k':
    config, mock = make_config(name='mnist5k', augment='cifar', channels=1), None
  elif kind == 'folder':
    config, mock = folder_config(tmp_path), None
  else:
    config, mock = make_config(name='imagenet2012', augment='imagenet', image_size=24), \
        tfds.testing.mock_data(num_examples=20, **MOCK)
  with mock or contextlib.nullcontext():
    full = first_batches(input_pipeline.train_dataset(config, 0, 0, 1), 7)
    resumed = first_batches(input_pipeline.train_dataset(config, 5, 0, 1), 2)
    halves = [first_batches(input_pipeline.train_dataset(config, 0, p, 2), 7) for p in (0, 1)]
  assert_same(full[5:], resumed)
  for whole, first, second in zip(full, *halves):
    for key in ('image', 'label'):
      np.testing.assert_array_equal(whole[key], np.concatenate([first[key], second[key]]))
  assert full[0]['image'].dtype == np.uint8 and full[0]['label'].dtype == np.int32


def test_worker_processes_give_the_same_batches(tmp_path):
  config = folder_config(tmp_path)
  in_process = first_batches(input_pipeline.train_dataset(config, 3), 4)
  config.dataset.workers = 2
  assert_same(first_batches(input_pipeline.train_dataset(config, 3), 4), in_process)


# ------------------------------------------------------------------------------ presets


@pytest.mark.parametrize('name,augment,size', [
    ('cifar10', 'cifar', 32), ('cifar10', 'none', 32), ('imagenet2012', 'imagenet', 64),
    ('imagenet2012', 'vgg', 64), ('imagenet2012', 'alexnet', 64)])
def test_presets_on_mock_data(name, augment, size):
  config = make_config(name=name, augment=augment, image_size=size, scale_min=80,
                       scale_max=120, eval_resize=72, eval_split='validation'
                       if name == 'imagenet2012' else 'test')
  with tfds.testing.mock_data(num_examples=24, **MOCK):
    info = input_pipeline.dataset_info(config)
    assert info.num_classes == (10 if name == 'cifar10' else 1000)
    batches = first_batches(input_pipeline.train_dataset(config), 6)
    evals = [first_batches(input_pipeline.eval_dataset(config), 3) for _ in range(2)]
  batch = batches[0]
  assert batch['image'].shape == (8, size, size, 3) and batch['image'].dtype == np.uint8
  assert batch['label'].dtype == np.int32
  # An epoch is 3 batches: the 4th starts epoch 2, whose order and crops differ.
  epoch1, epoch2 = (np.concatenate([b['image'] for b in bs]) for bs in (batches[:3], batches[3:]))
  assert not np.array_equal(epoch1, epoch2)
  for a, b in zip(*evals):
    np.testing.assert_array_equal(a['image'], b['image'])  # no augmentation in eval
    assert a['image'].shape == (8, size, size, 3)
  # On the device: (image / 255 - mean) / std with the dataset's published statistics
  # (CIFAR-10's of the torchvision recipes; ImageNet's of torchvision's models).
  mean, std = {'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
               'imagenet2012': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}[name]
  want = (batch['image'] / 255. - np.array(mean)) / np.array(std)
  # The training step's input from this host batch, and the eval step's.
  config.dataset.device_resident = False
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ('data',))
  prepare, _ = input_pipeline.train_model_input(config, info, mesh)
  inputs = {k: jnp.asarray(batch[k]) for k in ('image', 'label')}
  train_input = lambda step: np.asarray(prepare(step, inputs, jnp.float32)['image'])
  x = train_input(0)
  clean = np.asarray(input_pipeline.eval_model_input(inputs, config)['image'])
  assert x.dtype == clean.dtype == np.float32
  np.testing.assert_allclose(clean, want, rtol=1e-5, atol=1e-6)
  if augment != 'alexnet':  # only AlexNet's preset changes pixel values in training
    np.testing.assert_array_equal(x, clean)
  else:  # PCA colour noise: per image and per step, zero at test time
    again, later = train_input(0), train_input(1)
    np.testing.assert_array_equal(x, again)
    assert not np.allclose(x, later) and not np.allclose(x, clean)
    shift = (x - clean).reshape(8, -1, 3)
    assert np.allclose(shift, shift[:, :1], atol=1e-5)  # one RGB offset per image


@pytest.mark.fast
def test_resident_batches_equal_the_definition():
  """Step s of a resident dataset: the sampler's examples for positions [sB, (s+1)B),
  each padded by 4, cropped at offsets and flipped as its position's draws say."""
  config = make_config(name='mnist5k', augment='cifar', channels=1, image_size=32)
  info = input_pipeline.dataset_info(config)
  assert input_pipeline.resident(config, info)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  (data,) = first_batches(input_pipeline.train_inputs(config, info, mesh), 1)
  gather = jax.jit(lambda data, step: device.gather_batch(data, step, config))
  digits = sources._mnist5k_open(config, 'train')
  images, labels = digits.images, digits.labels
  for step in (0, 499, 500):  # 500 steps of 8 are one epoch of 4000
    got = jax.device_get(gather(data, step))
    q = np.arange(step * 8, (step + 1) * 8)
    index = sampler.example_index(q, 4000, config.seed, np)
    np.testing.assert_array_equal(got['label'], labels[index])
    # 28 + 2 * 4 = 36 pixels padded, a 32-pixel crop: offsets 0 to 4.
    draws = augment.Examples(config.seed, q.astype(np.uint32), index, q // 4000, 32, np)
    tops, lefts = draws.below(augment.PAD_CROP_TOP, 5), draws.below(augment.PAD_CROP_LEFT, 5)
    mirrors = draws.coin(augment.FLIP)
    for k, (top, left, mirror) in enumerate(zip(tops, lefts, mirrors)):
      padded = np.pad(images[index[k]], ((4, 4), (4, 4), (0, 0)))
      want = padded[top:top + 32, left:left + 32]
      if mirror:
        want = want[:, ::-1]
      np.testing.assert_array_equal(got['image'][k], want)


def test_resident_training_input_matches_on_one_and_four_devices():
  """The gathered, augmented global batch does not depend on the number of devices."""
  code = """
import jax, numpy as np
import input_pipeline
from tests.test_input_pipeline import make_config
c = make_config(name='mnist5k', augment='cifar', channels=3)
c.batch_size = 16
info = input_pipeline.dataset_info(c)
mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
prepare, sharding = input_pipeline.train_model_input(c, info, mesh)
data = next(input_pipeline.train_inputs(c, info, mesh))
out = jax.jit(lambda d: prepare(7, d, np.float32), in_shardings=(sharding,))(data)
np.save({path!r}, np.asarray(out['image']))
"""
  results = []
  for devices in (1, 4):
    path = f'/tmp/resident_{os.getpid()}_{devices}.npy'
    env = {**os.environ, 'XLA_FLAGS': xla_devices(devices)}
    result = subprocess.run([sys.executable, '-c', code.format(path=path)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results.append(np.load(path))
    os.remove(path)
  assert results[0].shape == (16, 32, 32, 3)
  np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize('kind', ['resident', 'host'])
def test_compiled_ahead_shapes_are_those_of_the_real_arguments(kind):
  """train.py compiles its steps from these specs before any data loads; a mismatch
  would silently compile each step a second time at its first call."""
  config = make_config(name='mnist5k', augment='cifar', channels=1, image_size=32,
                       device_resident=kind == 'resident')
  info = input_pipeline.dataset_info(config)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  describe = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype, a.sharding), tree)
  real_train = next(input_pipeline.train_inputs(config, info, mesh))
  assert describe(input_pipeline.train_spec(config, info, mesh)) == describe(real_train)
  real_eval = next(input_pipeline.device_iterator(
      input_pipeline.eval_dataset(config, info), mesh))
  spec = input_pipeline.batch_spec(config, mesh, with_mask=True)
  assert describe(spec) == describe(real_eval)


def test_a_new_preset_is_one_table_entry(monkeypatch):
  """An entry in transforms.PRESETS is all a preset needs: accepted by the config check,
  applied on the host, and (resident) by the same definition on the device."""
  monkeypatch.setitem(transforms.PRESETS, 'pad2', 'pad_crop(2)')
  config = make_config(name='mnist5k', augment='pad2', channels=1, image_size=28)
  info = input_pipeline.dataset_info(config)
  input_pipeline.check_config(config, info)
  digit = sources._mnist5k_open(config, 'train').images[0]
  for position in range(4):  # the crop at the offsets its position draws, no mirror
    host = train_example(digit, config, position, 0, 4000)
    draws = augment.Examples(config.seed, np.array([position], np.uint32), np.array([0]),
                             np.array([0]), 28, np)
    top = draws.below(augment.PAD_CROP_TOP, 5)[0]
    left = draws.below(augment.PAD_CROP_LEFT, 5)[0]
    padded = np.pad(digit, ((2, 2), (2, 2), (0, 0)))
    np.testing.assert_array_equal(host, padded[top:top + 28, left:left + 28])
  assert input_pipeline.resident(config, info)
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
  data = next(input_pipeline.train_inputs(config, info, mesh))
  got = jax.device_get(device.gather_batch(data, 0, config))
  images = sources._mnist5k_open(config, 'train').images
  index = sampler.example_index(np.arange(8), 4000, config.seed, np)
  for k in range(8):  # a 28-pixel crop of the 32-pixel padded digit, no mirror image
    padded = np.pad(images[index[k]], ((2, 2), (2, 2), (0, 0)))
    crops = [padded[t:t + 28, l:l + 28] for t in range(5) for l in range(5)]
    assert any(np.array_equal(got['image'][k], c) for c in crops)


def mirror_choices(images, indices, source, pad=2):
  """Whether each 28x28 training image is a crop of its reflect-padded digit (False) or
  of the padded digit's mirror image (True)."""
  out = []
  for image, index in zip(images, indices):
    padded = np.pad(source[index], ((pad, pad), (pad, pad), (0, 0)), mode='reflect')
    crops = [padded[t:t + 28, l:l + 28] for t in range(2 * pad + 1) for l in range(2 * pad + 1)]
    plain = any(np.array_equal(image, c) for c in crops)
    mirrored = any(np.array_equal(image, c[:, ::-1]) for c in crops)
    assert plain != mirrored, 'a translation of the digit, on one side only'
    out.append(mirrored)
  return out


@pytest.mark.parametrize('path', ['host', 'resident'])
def test_alternating_flip_inverts_each_examples_choice_every_other_epoch(path):
  """The airbench preset (airbench94's alternating flip, section 3.6 of its paper):
  translations of up to 2 pixels of the reflect-padded image, each example mirrored or
  not in epoch 0 by a draw of its own, then the other way in epoch 1, as in epoch 0 in
  epoch 2; about half the examples start mirrored."""
  config = make_config(name='mnist5k', augment='airbench', pad_mode='reflect', channels=1,
                       image_size=28, train_split='train[:64]',
                       device_resident=path == 'resident')
  info = input_pipeline.dataset_info(config)
  assert input_pipeline.resident(config, info) == (path == 'resident')
  digits = sources._mnist5k_open(config, 'train').images[:64]
  steps = 3 * 64 // 8  # three epochs of 64
  if path == 'host':
    images = np.concatenate([b['image'] for b in first_batches(
        input_pipeline.train_dataset(config, info=info), steps)])
  else:
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ('data',))
    data = next(input_pipeline.train_inputs(config, info, mesh))
    gather = jax.jit(lambda data, step: device.gather_batch(data, step, config)['image'])
    images = np.concatenate([jax.device_get(gather(data, step)) for step in range(steps)])
  q = np.arange(steps * 8)
  index = sampler.example_index(q, 64, config.seed, np)
  mirrored = np.array(mirror_choices(images, index, digits))
  by_epoch = np.zeros((3, 64), bool)
  by_epoch[q // 64, index] = mirrored
  np.testing.assert_array_equal(by_epoch[1], ~by_epoch[0])
  np.testing.assert_array_equal(by_epoch[2], by_epoch[0])
  assert 16 <= by_epoch[0].sum() <= 48
  if path == 'host':  # the draw the definition names
    want = augment.alternating_mirror(augment.Examples(
        config.seed, np.arange(64, dtype=np.uint32), np.arange(64), np.zeros(64, np.uint32),
        28, np))
    np.testing.assert_array_equal(by_epoch[0], want)


# --------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize('batch_size,processes', [(48, 1), (48, 2), (7, 1), (6, 3)])
def test_every_eval_example_counted_once(batch_size, processes):
  config = make_config(name='mnist5k', augment='none', channels=1)
  config.batch_size = batch_size
  seen, batches_per_process = [], set()
  for p in range(processes):
    batches = list(input_pipeline.eval_dataset(config, None, p, processes))
    batches_per_process.add(len(batches))
    for b in batches:
      assert b['image'].shape[0] == batch_size // processes
      seen.append(b['label'][b['mask']])
  assert len(batches_per_process) == 1  # every process steps the same number of times
  labels = np.concatenate(seen)
  expected = sources._mnist5k_open(config, 'eval').labels
  assert len(labels) == 1000 and np.array_equal(np.sort(labels), np.sort(expected))


@pytest.mark.parametrize('kind', ['center', '10crop', 'full'])
def test_every_example_viewed_once_over_processes(kind):
  config = make_config(name='imagenet2012', augment='imagenet', image_size=16,
                       eval_split='validation')
  with tfds.testing.mock_data(num_examples=7, **MOCK):
    parts = [list(input_pipeline.eval_views(config, kind, 32, p, 3)) for p in range(3)]
  indices = [i for part in parts for i, _, _ in part]
  assert indices == list(range(7))  # each process its own part, in order
  views = {'center': 1, '10crop': 10, 'full': 2}[kind]
  for _, v, _ in itertools.chain(*parts):
    assert v.shape[0] == views and v.dtype == np.uint8
    if kind == 'full':
      assert min(v.shape[1:3]) == 32 and max(v.shape[1:3]) % 32 == 0


@pytest.mark.parametrize('channels', [1, 3])
def test_views_of_arrays_take_the_config_channels(channels):
  """Grey digits as RGB and RGB synthetic images as grey, in every view."""
  for name in ('mnist5k', 'synthetic'):
    config = make_config(name=name, augment='none', image_size=32, channels=channels,
                         synthetic_size=4)
    for kind in ('center', '10crop', 'full'):
      _, v, _ = next(input_pipeline.eval_views(config, kind, 32))
      assert v.shape[-1] == channels, (name, kind)


# ------------------------------------------------------------------------------ folders


@pytest.mark.fast
def test_folder_dataset_of_real_pngs(tmp_path):
  labels = write_image_folder(tmp_path, {'train': slice(0, 40), 'test': slice(40, 60)})
  config = make_config(name=f'folder:{tmp_path}', augment='none', image_size=32)
  info = input_pipeline.dataset_info(config)
  assert (info.num_train, info.num_eval) == (40, 20)
  assert info.num_classes == len(set(labels[:40]))
  assert info.image_shape == (28, 28, 1)  # read from the headers: one size for all
  assert input_pipeline.resident(config, info)  # so it can live on the devices
  batch = next(iter(input_pipeline.eval_dataset(config)))
  assert batch['image'].shape == (8, 32, 32, 3)  # grey digits to the RGB the config takes
  assert np.array_equal(batch['image'][..., 0], batch['image'][..., 2])


@pytest.mark.parametrize('augment', ['cifar,cutout(4)', 'imagenet', 'none'])
@pytest.mark.fast
def test_each_image_of_a_host_batch_is_its_example_alone(augment):
  """The host pipeline augments a batch at once (transforms.train_batch) where its crops
  share a shape, one image at a time where they do not: either way each image is what
  its stream position gives alone (a batch of one), whatever its batch-mates."""
  config = make_config(augment=augment, image_size=24, channels=3)
  rng = np.random.default_rng(0)
  same = [rng.integers(0, 256, (24, 24, 3), np.uint8) for _ in range(6)]
  mixed = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in ((20, 24), (24, 17), (9, 9))]
  items = same if augment != 'none' else same + mixed
  encoded = []
  for image in items:  # (the decode-time op of imagenet reads encoded files)
    out = io.BytesIO()
    Image.fromarray(image).save(out, 'PNG')
    encoded.append(out.getvalue())
  positions, indices = np.arange(40, 40 + len(items)), np.arange(len(items))[::-1]
  crops = [transforms.train_crop(item, config, q) for item, q in zip(encoded, positions)]
  batch = transforms.train_batch(crops, config, positions, indices, 100)
  assert batch.shape == (len(items), 24, 24, 3) and batch.flags.c_contiguous
  for k, (item, q, index) in enumerate(zip(encoded, positions, indices)):
    np.testing.assert_array_equal(batch[k], train_example(item, config, q, index,
                                                                     100), err_msg=str(k))
  if augment == 'cifar,cutout(4)':  # (the draws differ per position: not all alike)
    assert len({batch[k].tobytes() for k in range(len(items))}) == len(items)


def test_rgb_folder_for_a_grey_model_and_sizes_that_vary(tmp_path):
  write_image_folder(tmp_path, {'train': slice(0, 16), 'val': slice(16, 24)}, mode='RGB')
  Image.new('RGB', (50, 20), (200, 10, 10)).save(tmp_path / 'train' / 'digit0' / 'wide.png')
  config = make_config(name=f'folder:{tmp_path}', augment='none', image_size=32, channels=1)
  info = input_pipeline.dataset_info(config)
  assert info.image_shape == (None, None, 3) and not input_pipeline.resident(config, info)
  batch = first_batches(input_pipeline.train_dataset(config), 1)[0]
  assert batch['image'].shape == (8, 32, 32, 1)
  # Pillow's luma of the tint (v, v // 2, 255 - v): the digit's strokes are dark.
  eval_batch = next(iter(input_pipeline.eval_dataset(config)))
  v = sources._mnist5k_open(make_config(), 'eval').images[16][..., 0].astype(int)
  luma = np.round((299 * v + 587 * (v // 2) + 114 * (255 - v)) / 1000)
  np.testing.assert_allclose(eval_batch['image'][0, 2:30, 2:30, 0], luma, atol=1)


def test_corrupt_images_stop_naming_the_file_or_are_skipped_and_counted(tmp_path):
  write_image_folder(tmp_path, {'train': slice(0, 16), 'val': slice(16, 24)}, ('png', 'jpg'))
  truncated = sorted((tmp_path / 'train').glob('*/3.jpg'))[0]
  truncated.write_bytes(truncated.read_bytes()[:100])
  garbage = sorted((tmp_path / 'val').glob('*/2.png'))[0]
  garbage.write_bytes(b'not an image at all')
  config = make_config(name=f'folder:{tmp_path}', augment='none', image_size=28)
  with pytest.raises(input_pipeline.DatasetError) as e:
    input_pipeline.dataset_info(config)
  assert '2 corrupt image file(s)' in str(e.value) and "on_corrupt='skip'" in str(e.value)
  assert str(truncated) in str(e.value) and 'truncated JPEG' in str(e.value)
  config.dataset.on_corrupt = 'skip'
  info = input_pipeline.dataset_info(config)
  assert (info.num_train, info.num_eval, info.num_corrupt) == (31, 15, 2)
  batches = list(input_pipeline.eval_dataset(config, info))
  assert sum(b['mask'].sum() for b in batches) == 15
  (batch,) = first_batches(input_pipeline.train_dataset(config), 1)
  assert batch['image'].shape == (8, 28, 28, 3)


# --------------------------------------------------------------------------------- TFDS


@pytest.mark.fast
def test_real_array_record_dataset_reads_without_tensorflow(tmp_path):
  """A TFDS dataset prepared as ArrayRecord (here TFDS's own dummy MNIST) is read by
  index in a process that never imports TensorFlow."""
  tfds.testing.DummyMnist(data_dir=str(tmp_path)).download_and_prepare(
      file_format='array_record')
  config = make_config(name='dummy_mnist', data_dir=str(tmp_path), augment='none',
                       channels=1, image_size=28)
  info = input_pipeline.dataset_info(config)
  assert (info.num_train, info.num_eval, info.num_classes) == (20, 20, 10)
  (batch,) = first_batches(input_pipeline.train_dataset(config), 1)
  assert batch['image'].shape == (8, 28, 28, 1)
  source = sources.open_split(config, 'train')
  raw = source[int(sampler.example_index(np.array([0]), 20, config.seed, np)[0])]
  assert raw['image'][:8] == b'\x89PNG\r\n\x1a\n'  # still encoded: decoded after sampling
  decoded = np.asarray(Image.open(io.BytesIO(raw['image'])))
  np.testing.assert_array_equal(batch['image'][0, ..., 0], decoded)


@pytest.mark.fast
def test_tfrecord_copy_names_the_command_that_converts_it(tmp_path):
  tfds.testing.DummyMnist(data_dir=str(tmp_path)).download_and_prepare(file_format='tfrecord')
  config = make_config(name='dummy_mnist', data_dir=str(tmp_path))
  with pytest.raises(input_pipeline.DatasetError) as e:
    input_pipeline.dataset_info(config)
  assert 'stored as tfrecord' in str(e.value)
  assert 'python -m data.prepare dummy_mnist' in str(e.value)


@pytest.mark.fast
def test_missing_dataset_says_where_and_how(tmp_path):
  config = make_config(name='cifar10', data_dir=str(tmp_path))
  with pytest.raises(input_pipeline.DatasetError) as e:
    input_pipeline.dataset_info(config)
  message = str(e.value)
  assert "'cifar10'" in message and str(tmp_path) in message
  assert 'python -m data.prepare cifar10' in message


@pytest.mark.fast
def test_num_classes_disagreement_names_both():
  config = make_config(name='mnist5k')
  config.num_classes = 100
  with pytest.raises(ValueError, match='num_classes=100 but mnist5k has 10'):
    input_pipeline.check_config(config, input_pipeline.dataset_info(config))


def test_a_lenet_run_never_imports_tensorflow(tmp_path):
  code = f"""
import runpy, sys
sys.argv = ['train.py', '--config=configs/lenet.py', '--config.num_epochs=0.016',
            '--workdir={tmp_path}']
try:
  runpy.run_path('train.py', run_name='__main__')
except SystemExit as e:
  assert not e.code, e.code
print('TF_IMPORTED', 'tensorflow' in sys.modules)
"""
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'TF_IMPORTED False' in result.stdout
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(tmp_path))


# ------------------------------------------------- what each feature does (mutation reads)


def test_each_process_reads_its_own_half_of_each_global_batch():
  """Process p of 2 takes positions [sB + pB/2, sB + (p+1)B/2) of step s: the sampler's
  examples there, the batch count asked for (an empty stream is not 'equal')."""
  config = make_config(name='mnist5k', augment='none', channels=1, image_size=28)
  labels = sources._mnist5k_open(config, 'train').labels
  for p in (0, 1):
    batches = first_batches(input_pipeline.train_dataset(config, 2, p, 2), 3)
    assert len(batches) == 3
    for step, batch in enumerate(batches, start=2):
      assert batch['image'].shape == (4, 28, 28, 1)
      positions = np.arange(step * 8 + p * 4, step * 8 + p * 4 + 4)
      index = sampler.example_index(positions, 4000, config.seed, np)
      np.testing.assert_array_equal(batch['label'], labels[index])


def gradient_png(width=200, height=160) -> bytes:
  """An RGB PNG whose red is each pixel's column and green its row: a crop's pixels say
  where in the source they came from."""
  x, y = np.meshgrid(np.arange(width), np.arange(height))
  array = np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)
  out = io.BytesIO()
  Image.fromarray(array).save(out, format='PNG')
  return out.getvalue()


def source_boxes(crops):
  """Each crop's source box (left, top, width, height) and whether it is mirrored, read
  back from the gradient: bilinear sampling at pixel centres gives pixel i the source
  coordinate left + (i + 1/2) w / n - 1/2, so the values span w (1 - 1/n)."""
  boxes, mirrored = [], []
  for crop in crops.astype(float):
    n = crop.shape[0]
    red, green = crop[..., 0], crop[..., 1]
    w = (red.max() - red.min()) * n / (n - 1)
    h = (green.max() - green.min()) * n / (n - 1)
    boxes.append((red.min() + 0.5 - 0.5 * w / n, green.min() + 0.5 - 0.5 * h / n, w, h))
    mirrored.append(red[n // 2, 0] > red[n // 2, -1])
  return np.array(boxes), np.array(mirrored)


def preset_crops(augment, size, count=64, **dataset):
  config = make_config(name='mnist5k', augment=augment, image_size=size, channels=3,
                       **dataset)
  png = gradient_png()
  return np.stack([train_example(png, config, q, 0, 1) for q in range(count)])


@pytest.mark.fast
def test_imagenet_preset_crops_8_to_100_percent_at_aspect_3_4_to_4_3():
  """Szegedy et al. 2015, section 6: a box of 8-100% of the area at aspect 3/4-4/3,
  anywhere in the image, resized to image_size, mirrored half the time."""
  boxes, mirrored = source_boxes(preset_crops('imagenet', 48))
  left, top, w, h = boxes.T
  area, aspect = w * h / (200 * 160), w / h
  assert np.all((area > 0.08 - 0.02) & (area < 1.02))
  assert np.all((aspect > 3 / 4 - 0.05) & (aspect < 4 / 3 + 0.05))
  assert np.mean(area < 0.4) > 0.2  # uniform in area: (0.4 - 0.08) / 0.92 = 35% below
  assert np.all((left > -2) & (left + w < 202) & (top > -2) & (top + h < 162))
  assert len(np.unique(np.round(left))) > 20 and len(np.unique(np.round(top))) > 20
  assert 16 <= mirrored.sum() <= 48


def test_vgg_preset_rescales_the_shorter_side_to_s_in_its_range_then_crops():
  """VGG section 3.1: the shorter side (160 here) to S in [scale_min, scale_max], then a
  random image_size crop: the crop spans image_size * 160 / S source pixels."""
  boxes, mirrored = source_boxes(preset_crops('vgg', 48, scale_min=64, scale_max=128))
  left, top, w, h = boxes.T
  scale = 48 * 160 / h
  assert np.all((scale > 64 - 2) & (scale < 128 + 2))
  np.testing.assert_allclose(w, h, atol=2)  # an isotropic rescale
  assert scale.min() < 80 and scale.max() > 112  # S is drawn, not fixed
  assert len(np.unique(np.round(left))) > 20 and len(np.unique(np.round(top))) > 20
  assert 16 <= mirrored.sum() <= 48


def test_alexnet_preset_crops_at_random_from_the_256x256_image():
  """AlexNet sections 2 and 4.1: the image resized to 256x256, random image_size crops:
  a 128-pixel crop spans 128 * 200 / 256 = 100 columns and 128 * 160 / 256 = 80 rows."""
  boxes, mirrored = source_boxes(preset_crops('alexnet', 128))
  left, top, w, h = boxes.T
  np.testing.assert_allclose(w, 100, atol=2)
  np.testing.assert_allclose(h, 80, atol=2)
  assert left.min() < 20 and left.max() > 80 and top.min() < 16 and top.max() > 64
  assert len(np.unique(np.round(left))) > 20
  assert 16 <= mirrored.sum() <= 48


def luma(rgb):
  """ITU-R 601 luma by hand, as Pillow's convert('L') and the config's channels=1."""
  rgb = rgb.astype(float)
  return np.round(0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])


@pytest.mark.fast
def test_channel_conversion_keeps_the_pixels():
  """Grey digits for an RGB model are the digit in each channel; RGB images for a grey
  model are their luma: in the resident data, in every test-time view, and in training."""
  config = make_config(name='mnist5k', augment='none', image_size=28, channels=3)
  digits = sources._mnist5k_open(config, 'train').images
  info = input_pipeline.dataset_info(config)
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ('data',))
  resident = jax.device_get(next(input_pipeline.train_inputs(config, info, mesh))['image'])
  np.testing.assert_array_equal(resident, np.repeat(digits, 3, -1))
  eval_digit = sources._mnist5k_open(config, 'eval').images[0]
  for kind in ('center', '10crop', 'full'):
    _, rgb, _ = next(input_pipeline.eval_views(config, kind, 28))
    grey = next(input_pipeline.eval_views(make_config(
        name='mnist5k', augment='none', image_size=28, channels=1), kind, 28))[1]
    np.testing.assert_array_equal(rgb, np.repeat(grey, 3, -1))
    if kind == 'center':  # at 28 pixels, the digit as it is
      np.testing.assert_array_equal(rgb[0], np.repeat(eval_digit, 3, -1))
  config = make_config(name='synthetic', augment='none', image_size=16, channels=1,
                       synthetic_size=4)
  colour = sources._synthetic_open(config, 'eval').images
  for kind in ('center', '10crop', 'full'):
    _, grey, _ = next(input_pipeline.eval_views(config, kind, 16))
    config.dataset.channels = 3
    _, rgb, _ = next(input_pipeline.eval_views(config, kind, 16))
    config.dataset.channels = 1
    np.testing.assert_allclose(grey[..., 0], luma(rgb), atol=2)  # (resized after: 2)
    if kind != 'full':  # the image as it is, at 16 pixels
      np.testing.assert_allclose(grey[0, ..., 0], luma(colour[0]), atol=1)
  train = train_example(colour[1], config, 0, 1, len(colour))
  np.testing.assert_allclose(train[..., 0], luma(colour[1]), atol=1)


class PidSource:
  """Four blank digits whose label is the id of the process that read them."""

  def __len__(self):
    return 4

  def __getitem__(self, index):
    return {'image': np.zeros((28, 28, 1), np.uint8), 'label': os.getpid()}


def test_grain_workers_are_processes_of_their_own():
  """dataset.workers=2 decodes in two worker processes, not in this one."""
  config = make_config(name='mnist5k', augment='none', channels=1, image_size=28)
  config.dataset.workers = 2
  batches = first_batches(input_pipeline.train_dataset(config, source=PidSource()), 6)
  readers = set(np.concatenate([b['label'] for b in batches]).tolist())
  assert os.getpid() not in readers and len(readers) == 2
