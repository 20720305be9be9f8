"""The input pipeline on mock TFDS data, the mnist5k sample and a PNG folder."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import input_pipeline
from configs import default


def make_config(**dataset):
  c = default.get_config()
  c.batch_size = 8
  c.dataset.shuffle_buffer = 64
  c.dataset.update(dataset)
  return c


def first_batches(ds, n):
  return [b for b, _ in zip(ds.as_numpy_iterator(), range(n))]


@pytest.mark.parametrize('name,augment,size', [
    ('cifar10', 'cifar', 32), ('cifar10', 'none', 32), ('imagenet2012', 'imagenet', 64),
    ('imagenet2012', 'vgg', 64), ('imagenet2012', 'alexnet', 64)])
def test_presets_on_mock_data(name, augment, size):
  config = make_config(name=name, augment=augment, image_size=size, scale_min=80,
                       scale_max=120, eval_resize=72, eval_split='validation'
                       if name == 'imagenet2012' else 'test')
  with tfds.testing.mock_data(num_examples=24):
    info = input_pipeline.dataset_info(config)
    assert info.num_classes == (10 if name == 'cifar10' else 1000)
    (batch,) = first_batches(input_pipeline.train_dataset(config), 1)
    assert batch['image'].shape == (8, size, size, 3) and batch['image'].dtype == np.float32
    assert batch['label'].dtype == np.int32
    assert np.isfinite(batch['image']).all() and np.abs(batch['image']).max() < 10
    # An epoch is 3 batches: the 4th starts epoch 2, whose order and crops differ.
    epoch1, epoch2 = [np.concatenate([b['image'] for b in bs]) for bs in np.split(
        np.array(first_batches(input_pipeline.train_dataset(config), 6), object), 2)]
    assert not np.allclose(epoch1, epoch2)
    evals = [first_batches(input_pipeline.eval_dataset(config), 3) for _ in range(2)]
    for a, b in zip(*evals):
      np.testing.assert_array_equal(a['image'], b['image'])  # no augmentation in eval
      assert a['image'].shape == (8, size, size, 3)


def test_resumed_stream_equals_uninterrupted():
  config = make_config(name='mnist5k', augment='cifar', channels=1)
  full = first_batches(input_pipeline.train_dataset(config), 9)
  resumed = first_batches(input_pipeline.train_dataset(config, start_step=6), 3)
  for a, b in zip(full[6:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])


def test_resumed_stream_equals_uninterrupted_when_streamed_from_files():
  config = make_config(name='cifar10', augment='cifar')
  with tfds.testing.mock_data(num_examples=20):
    full = first_batches(input_pipeline.train_dataset(config), 7)
    resumed = first_batches(input_pipeline.train_dataset(config, start_step=5), 2)
  for a, b in zip(full[5:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])


def test_in_memory_global_batches_do_not_depend_on_process_count():
  config = make_config(name='mnist5k', augment='cifar', channels=1)
  single = first_batches(input_pipeline.train_dataset(config, 0, 0, 1), 4)
  halves = [first_batches(input_pipeline.train_dataset(config, 0, p, 2), 4) for p in (0, 1)]
  for whole, first, second in zip(single, *halves):
    for key in ('image', 'label'):
      np.testing.assert_array_equal(whole[key], np.concatenate([first[key], second[key]]))


def test_in_memory_epoch_is_a_permutation():
  config = make_config(name='synthetic', augment='none', synthetic_size=24, image_size=8)
  config.num_classes = 1000
  images, labels = input_pipeline._arrays(config, 'train')
  epoch = first_batches(input_pipeline.train_dataset(config), 3)  # 24 = 3 batches of 8
  seen = np.concatenate([b['label'] for b in epoch])
  assert sorted(seen) == sorted(labels) and not np.array_equal(seen, labels)


@pytest.mark.parametrize('batch_size,processes', [(48, 1), (48, 2), (7, 1), (6, 3)])
def test_every_eval_example_counted_once(batch_size, processes):
  config = make_config(name='mnist5k', augment='none', channels=1)
  config.batch_size = batch_size
  seen, batches_per_process = [], set()
  for p in range(processes):
    batches = list(input_pipeline.eval_dataset(config, None, p, processes).as_numpy_iterator())
    batches_per_process.add(len(batches))
    for b in batches:
      assert b['image'].shape[0] == batch_size // processes
      seen.append(b['label'][b['mask']])
  assert len(batches_per_process) == 1  # every process steps the same number of times
  labels = np.concatenate(seen)
  _, expected = input_pipeline._mnist5k_arrays('test')
  assert len(labels) == 1000 and np.array_equal(np.sort(labels), np.sort(expected))


def write_image_folder(root, splits, formats=('png',)):
  """mnist5k test digits as root/SPLIT/digitL/I.FORMAT; splits: {name: slice}."""
  images, labels = input_pipeline._mnist5k_arrays('test')
  encode = {'png': tf.io.encode_png, 'jpg': tf.io.encode_jpeg}
  for split, part in splits.items():
    for i, (image, label) in enumerate(zip(images[part], labels[part])):
      folder = root / split / f'digit{label}'
      folder.mkdir(parents=True, exist_ok=True)
      for fmt in formats:
        (folder / f'{i}.{fmt}').write_bytes(encode[fmt](image).numpy())
  return labels


def test_folder_dataset_of_real_pngs(tmp_path):
  labels = write_image_folder(tmp_path, {'train': slice(0, 40), 'test': slice(40, 60)})
  config = make_config(name=f'folder:{tmp_path}', augment='none', image_size=32)
  info = input_pipeline.dataset_info(config)
  assert (info.num_train, info.num_eval) == (40, 20)
  assert info.num_classes == len(set(labels[:40]))
  batch = next(input_pipeline.eval_dataset(config).as_numpy_iterator())
  assert batch['image'].shape == (8, 32, 32, 3)


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
  batches = list(input_pipeline.eval_dataset(config, info).as_numpy_iterator())
  assert sum(b['mask'].sum() for b in batches) == 15
  (batch,) = first_batches(input_pipeline.train_dataset(config), 1)
  assert batch['image'].shape == (8, 28, 28, 3)


def test_missing_dataset_says_where_and_how(tmp_path):
  config = make_config(name='cifar10', data_dir=str(tmp_path))
  with pytest.raises(input_pipeline.DatasetError) as e:
    input_pipeline.dataset_info(config)
  message = str(e.value)
  assert "'cifar10'" in message and str(tmp_path) in message and 'tfds build cifar10' in message


def test_num_classes_disagreement_names_both():
  config = make_config(name='mnist5k')
  config.num_classes = 100
  with pytest.raises(ValueError, match='num_classes=100 but mnist5k has 10'):
    input_pipeline.check_config(config, input_pipeline.dataset_info(config))
