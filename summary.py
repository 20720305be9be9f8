"""Print a model layer by layer: output shape, parameters, multiply-adds, receptive field.

  python summary.py --model=alexnet --image_size=224
  python summary.py --model=resnet50 --format=markdown
  python summary.py --config=configs/convnet.py --format=csv

The receptive field r and jump j follow r_out = r_in + (k-1)*d*j_in, j_out = j_in*s
(see models/layer_stats.py). Nothing is compiled or run: the model is built with shapes
only (nnx.eval_shape: no parameter drawn) and traced once.
"""

import sys

from absl import flags
from flax import nnx
from ml_collections import config_flags

import input_pipeline
from lib import cli
from lib import experiment
from lib import formatting
import models
from models import layer_stats

FLAGS = flags.FLAGS
flags.DEFINE_string('model', None, 'a registered model name (see models.list_models())')
flags.DEFINE_integer('image_size', None, "input height and width (default: the model's own)",
                     lower_bound=1)
flags.DEFINE_integer('num_classes', None, 'classes of the output layer', lower_bound=1)
flags.DEFINE_integer('channels', 3, 'input channels', lower_bound=1)
flags.DEFINE_enum('format', 'table', ['table', 'markdown', 'csv'], 'output format')
config_flags.DEFINE_config_file('config', None, 'a training config: summarise its model',
                                lock_config=True)

# What a summary reads of --config: any other --config.KEY would change nothing.
READS = ('model', 'num_classes', 'dataset')
COLUMNS = ('layer', 'type', 'output shape', 'params', 'mult-adds', 'rf', 'jump')


def format_rows(rows: list[dict], fmt: str) -> str:
  """Layer rows and a totals line as an aligned table, markdown or CSV."""
  number = '{}' if fmt == 'csv' else '{:,}'  # (plain numbers for a spreadsheet)
  cells = [[r['name'], r['type'], 'x'.join(map(str, r['output_shape'])),
            number.format(r['params']), number.format(r['macs']),
            '' if r['rf'] is None else str(r['rf']),
            '' if r['jump'] is None else str(r['jump'])] for r in rows]
  total = ['total', '', '', number.format(sum(r['params'] for r in rows)),
           number.format(sum(r['macs'] for r in rows)), '', '']
  return formatting.table(list(COLUMNS), cells, 'text' if fmt == 'table' else fmt,
                          right_from=3, footer=total)


def main(argv):
  del argv
  try:
    model, image_size, channels = model_to_summarise()
    rows = layer_stats.layer_table(model, image_size, channels)
  except ValueError as e:  # an unknown name, a collapsing stack, a missing dataset
    cli.fail('summary.py', str(e))
  sys.stdout.write(format_rows(rows, FLAGS.format))


def model_to_summarise():
  """(the model with shapes only, image size, input channels) from --config or --model."""
  if FLAGS.config is not None:
    config = FLAGS.config
    if FLAGS.model or FLAGS['channels'].present:  # (the config names both)
      raise ValueError('--model and --channels go without --config: drop them, or give '
                       '--config.model.name= or --config.dataset.channels=')
    for key in sorted(cli.overridden_keys(sys.argv)):  # (only keys the summary reads)
      if key.split('.')[0] not in READS:
        raise ValueError(f'--config.{key} changes nothing in a summary, which reads '
                         f'config.{", config.".join(READS)}: drop it')
    experiment.check_model(config)  # (what building the config's model reads)
    num_classes = FLAGS.num_classes or config.num_classes
    if not num_classes:  # the dataset's own count (reads its metadata)
      try:
        num_classes = input_pipeline.dataset_info(config).num_classes
      except ValueError as e:
        raise ValueError(f'{e} (or pass --num_classes)') from None
    size, channels = FLAGS.image_size or config.dataset.image_size, config.dataset.channels
    build = lambda: models.create_model_from_config(config.model, num_classes,
                                                    image_size=size, in_channels=channels)
  elif FLAGS.model:
    kwargs = {'num_classes': FLAGS.num_classes} if FLAGS.num_classes else {}
    size, channels = FLAGS.image_size or models.default_image_size(FLAGS.model), FLAGS.channels
    build = lambda: models.create_model(FLAGS.model, image_size=size, in_channels=channels,
                                        **kwargs)
  else:
    raise ValueError('give --model=NAME or --config=configs/FILE.py')
  return nnx.eval_shape(build), size, channels


if __name__ == '__main__':
  cli.run(main, 'summary.py')
