"""Download a TFDS dataset and prepare it as ArrayRecord, the random-access format the
input pipeline reads. The one place that needs TensorFlow (TFDS's builders use it).

  python -m data.prepare cifar10 [--data_dir=~/tensorflow_datasets]
"""

import argparse
import os
import socket


def check_online(host='storage.googleapis.com', timeout=5.0):
  """Fail in seconds when offline, instead of after TFDS's minutes of retries."""
  socket.create_connection((host, 443), timeout=timeout).close()


def download_and_prepare(name: str, data_dir: str | None = None):
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  tf.config.set_visible_devices([], 'GPU')  # TensorFlow must never take an accelerator
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
  builder.download_and_prepare(file_format='array_record')
  return builder


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('name', help='TFDS dataset name, e.g. cifar10, imagenet2012')
  parser.add_argument('--data_dir', default=None, help='default: ~/tensorflow_datasets')
  args = parser.parse_args()
  data_dir = os.path.expanduser(args.data_dir) if args.data_dir else None
  try:
    check_online()
  except OSError as e:
    raise SystemExit(f'data.prepare: error: cannot reach the download servers ({e}); run '
                     'this on a connected machine and copy the data_dir here')
  builder = download_and_prepare(args.name, data_dir)
  print(f'{args.name} prepared as ArrayRecord in {builder.data_dir}: '
        + ', '.join(f'{k} {v.num_examples}' for k, v in builder.info.splits.items()))


if __name__ == '__main__':
  main()
