"""See what a network learned: one figure per mode, as a person would put in a report.

  python visualize.py filters --workdir=runs/lenet --out=filters.png
  python visualize.py filters --workdir=runs/lenet --layer=C3 --out=c3.png
  python visualize.py features --workdir=runs/lenet --image=digit.png --out=features.png
  python visualize.py saliency --workdir=runs/lenet --image=digit.png --out=saliency.png
  python visualize.py occlusion --workdir=runs/lenet --image=digit.png --out=occlusion.png
  python visualize.py curves --workdir=runs/lenet,runs/lenet_tanh --out=curves.png
  python visualize.py conv-arithmetic --kernel=3 --stride=2 --padding=1 --input_size=7 \
      --out=conv.png
  python visualize.py conv-arithmetic --workdir=runs/lenet --layer=C1 --out=c1.png

Modes:
  filters          a conv layer's kernels as tiles: the first layer's as colour tiles when
                   it reads RGB (AlexNet Fig. 3), any layer (--layer) per input channel.
  features         one image's feature maps at --layers (default: the last conv of each
                   spatial size, i.e. every stage), a grid per layer with its shape and
                   receptive field (models/layer_stats.py).
  saliency         |d top-class score / d input|, the largest over colour channels
                   (Simonyan, Vedaldi & Zisserman 2014), beside and over the image.
  occlusion        the drop in the probability of --label (default: the top class) as a
                   --patch square of the data's mean colour slides over the image in
                   --step pixels (Zeiler & Fergus 2014, section 4.2); each pixel shows the
                   mean drop of the squares that covered it.
  curves           train and eval loss, top-1 and learning rate against step, from each
                   workdir's metrics.jsonl (comma-separated workdirs), overlaid.
  conv-arithmetic  the padded input grid, the kernel's first two positions and the output
                   grid for --kernel/--stride/--padding/--dilation/--input_size (or one
                   --layer of a model); the output size from models/layers.py's formula.

The model is a workdir's checkpoint (--checkpoint=best|latest|STEP) or torchvision weights
(--torchvision=NAME --weights=FILE.pth --config=FILE). Images go through the config's
evaluation view, as predict.py's. --save_array writes the numbers behind the figure (.npy;
features and curves: .npz, one array per layer or series). It prints one JSON line: the
mode, the figure and the array, and for saliency and occlusion the class shown, {label,
name, prob}, named as the run was trained (its run.json), as in the figure's title.
"""

import difflib
import json
import os
import sys

from absl import flags
from flax import nnx
import jax
import numpy as np

from data import sources
import input_pipeline
from lib import cli
from lib import pictures
from lib import trained
from lib import workdir as workdir_lib
from models import layer_stats, layers
from visualization import plots

FLAGS = flags.FLAGS


def load_model():
  """(config, Trained, with the names of the classes it was trained on) from the flags;
  --label checked against the model's classes before anything compiles (no Python
  negative indexing: -1 is not the last class)."""
  config, names = trained.check_from_flags(FLAGS)
  if FLAGS.label is not None and not 0 <= FLAGS.label < len(names):
    raise ValueError(f'--label={FLAGS.label}: the model has {len(names)} classes; give a '
                     f'class index from 0 to {len(names) - 1} (or leave --label out for '
                     'the top class)')
  return config, trained.load_from_flags(FLAGS, config, names)


def layer_rows(model, config, train: bool = True) -> list[dict]:
  """The layer table of the model (train=False: of the layers evaluation runs)."""
  return layer_stats.layer_table(model, config.dataset.image_size, config.dataset.channels,
                                 train=train)


def image_view(config) -> np.ndarray:
  """--image through the config's evaluation view: uint8 (S, S, C)."""
  if not FLAGS.image:
    raise ValueError('features, saliency and occlusion need --image=PATH')
  try:
    return trained.read_image(FLAGS.image, config)
  except ValueError as e:  # ('PATH: why', the flag added)
    raise ValueError(f'--image={e}') from None


def model_input(view, config):
  """A uint8 view as the model's input batch of one (normalised as in evaluation, on the
  device: the view is put there explicitly, and every step below runs jitted, so that
  nothing crosses implicitly)."""
  normalize = jax.jit(lambda v: input_pipeline.eval_model_input({'image': v}, config)['image'])
  return normalize(jax.device_put(view[None]))


def filters(config, model):
  rows = layer_rows(model.net, config)
  names = [r['name'] for r in rows if r['type'] == 'Conv']
  if not names:
    raise ValueError(f'{config.model.name} has no convolution')
  layer = FLAGS.layer or names[0]
  if layer not in names:
    raise ValueError(f'--layer={layer}: not a conv layer of {config.model.name}; its conv '
                     f'layers are {", ".join(names)}')
  kernel = pictures.conv_kernels(model.variables['params'], layer)
  per_channel = layer != names[0]
  tiles = pictures.filter_tiles(kernel, per_channel)
  kh, kw, cin, cout = kernel.shape
  columns = cin if per_channel and cin <= 32 else None  # a row per filter
  image = pictures.grid(tiles, columns, scale=max(1, 48 // kh))
  what = (f'{cout} filters x {cin} input channels' if per_channel or cin != 3
          else f'{cout} colour filters')
  plots.show_image(image, f'{config.model.name} {layer}: {what}, {kh}x{kw} '
                   f'({model.which}, step {model.step})', FLAGS.out)
  return tiles, {}


def layer_outputs(net, variables, images, names) -> dict:
  """{name: its output} of the layers `names` of the model (a models.Functional) in
  eval mode on `images`; a layer called twice gives its first call's output. (The
  layers' calls are watched as the layer table watches them, so every name the table
  lists has its output; nnx.capture(method_outputs=...) fails on a layers.Sequential,
  whose int keys it mixes with '__call__'.)"""
  module, outputs = net.merge(variables), {}

  def record(name, _layer, _input, out):
    if name in names:
      outputs.setdefault(name, out)

  with layer_stats.calls_of(module, record):
    module(images)
  return {name: outputs[name] for name in names}


def features(config, model):
  rows = layer_rows(model.net, config, train=False)  # (an image is evaluated)
  # By default the last conv layer at each spatial size: one per stage.
  ends = {tuple(r['output_shape'][:2]): r['name'] for r in rows if r['type'] == 'Conv'}
  chosen = FLAGS.layers or list(ends.values())
  known = {r['name']: r for r in rows}
  for name in chosen:
    if name not in known:
      raise ValueError(f'--layers: {name!r} is not a layer of {config.model.name}; its '
                       f'layers are {", ".join(known)}')
  outputs = jax.jit(lambda v, x: layer_outputs(model.net, v, x, chosen))
  outputs = jax.device_get(outputs(model.variables, model_input(image_view(config), config)))
  maps, panels = {}, []
  for name in chosen:
    fmap = np.asarray(outputs[name][0], np.float32)                # (h, w, c) or (c,)
    fmap = fmap.reshape(1, 1, -1) if fmap.ndim == 1 else fmap
    maps[name] = fmap
    tiles = np.moveaxis(fmap, -1, 0)
    tiles = (tiles - tiles.min()) / (np.ptp(tiles) or 1)  # one scale per layer
    r = known[name]
    field = f", receptive field {r['rf']}, jump {r['jump']}" if r['rf'] else ''
    panels.append((pictures.grid(tiles, scale=max(1, 64 // tiles.shape[1])),
                   f"{name}: {' x '.join(map(str, fmap.shape))}{field}"))
  plots.show_images(panels, f'{config.model.name} feature maps of {FLAGS.image}', FLAGS.out)
  return maps, {}


def target_class(probs, model) -> dict:
  """--label, else the top class: its label, name (a class the run was trained on) and
  probability."""
  label = FLAGS.label if FLAGS.label is not None else int(np.argmax(probs))
  return {'label': label, 'name': model.classes[label], 'prob': float(probs[label])}


def class_title(explained: dict) -> str:
  return f"class {explained['label']} ({explained['name']})"


def saliency(config, model):
  view = image_view(config)
  x = model_input(view, config)
  logits = lambda v, x: model.net.apply(v, x)[0]
  probs = jax.device_get(jax.jit(lambda v, x: jax.nn.softmax(logits(v, x)))(model.variables, x))
  explained = target_class(probs, model)
  gradient = jax.jit(jax.grad(lambda x, v: logits(v, x)[explained['label']]))
  grad = np.asarray(jax.device_get(gradient(x, model.variables))[0], np.float32)
  heat = np.abs(grad).max(axis=-1)
  plots.show_heat(view, heat, f"saliency of {class_title(explained)} "
                  f"(p={explained['prob']:.3f})", FLAGS.out)
  return heat, {'class': explained}


def occlusion(config, model):
  view = image_view(config)
  size, patch, step = view.shape[0], FLAGS.patch, FLAGS.step
  if not 0 < patch <= size or step <= 0:
    raise ValueError(f'--patch must be in [1, {size}] and --step positive; got '
                     f'{patch} and {step}')
  mean, _ = sources.channel_stats(config.dataset, view.shape[-1])
  grey = np.round(np.array(mean) * 255).astype(np.uint8)
  corners = [(t, l) for t in range(0, size - patch + 1, step)
             for l in range(0, size - patch + 1, step)]
  images = np.repeat(view[None], 1 + len(corners), axis=0)  # the view, then occluded
  for i, (t, l) in enumerate(corners, start=1):
    images[i, t:t + patch, l:l + patch] = grey
  posteriors = trained.posteriors_in_batches(model.net, config, model.variables, images,
                                             batch_size=64)
  base = posteriors[0]
  explained = target_class(base, model)
  label = explained['label']
  drop, covered = np.zeros((size, size)), np.zeros((size, size))
  for (t, l), p in zip(corners, posteriors[1:, label]):
    drop[t:t + patch, l:l + patch] += base[label] - p
    covered[t:t + patch, l:l + patch] += 1
  heat = drop / np.maximum(covered, 1)
  plots.show_heat(view, heat, f'drop in p({class_title(explained)}) (unoccluded: '
                  f'{base[label]:.3f}) under a {patch}x{patch} square of the mean colour',
                  FLAGS.out, signed=True)
  return heat, {'class': explained}


def run_labels(workdirs: list[str]) -> dict:
  """Each workdir's name in the legend and the arrays: its last path components, as
  few as tell it from the others (runs/a/lenet and runs/b/lenet: a/lenet, b/lenet)."""
  parts = {w: os.path.abspath(w).strip('/').split('/') for w in dict.fromkeys(workdirs)}
  for depth in range(1, max(map(len, parts.values())) + 1):
    labels = {w: '/'.join(p[-depth:]) for w, p in parts.items()}
    if len(set(labels.values())) == len(labels):
      break
  return labels


def curves(config, model):  # pylint: disable=unused-argument
  workdirs = [w for w in (FLAGS.workdir or '').split(',') if w]
  if not workdirs:
    raise ValueError('curves needs --workdir=DIR[,DIR...]')
  series, labels = {}, run_labels(workdirs)
  for workdir in workdirs:
    records = workdir_lib.read_metrics(workdir)
    train = [r for r in records if r['split'] == 'train']
    if not train:  # (metrics.jsonl missing, empty or unreadable)
      raise ValueError(f'--workdir={workdir} has no training records in {workdir_lib.METRICS}')
    evals = [r for r in records if r['split'] not in ('train', 'data') and 'mode' not in r]
    name = labels[workdir]
    for key, rs, field in [('train_loss', train, 'loss'), ('eval_loss', evals, 'loss'),
                           ('train_top1', train, 'top1'), ('eval_top1', evals, 'top1'),
                           ('learning_rate', train, 'learning_rate')]:
      series[f'{name}/{key}'] = np.array([[r['step'], r[field]] for r in rs if field in r])
  plots.show_curves(series, FLAGS.out)
  return series, {}


def conv_arithmetic(config, model):  # pylint: disable=unused-argument
  if FLAGS.layer and ('model' in FLAGS.config or FLAGS.workdir):
    kernel, stride, padding, dilation, n, title = model_layer_geometry()
  else:
    kernel, stride, dilation, n = FLAGS.kernel, FLAGS.stride, FLAGS.dilation, FLAGS.input_size
    padding = int(FLAGS.padding) if FLAGS.padding.isdigit() else FLAGS.padding
    title = ''
  pads, out = conv_geometry(n, kernel, stride, padding, dilation)
  if out < 1:
    raise ValueError(f'a kernel of extent {layers.effective_kernel(kernel, dilation)} does '
                     f'not fit an input of {n} padded by {pads}')
  return plots.show_conv_arithmetic(n, kernel, stride, pads, dilation, out, title,
                                    FLAGS.out), {}  # (how many outputs read each cell)


def conv_geometry(n: int, kernel: int, stride: int, padding, dilation: int):
  """((pad_lo, pad_hi), output size) of one spatial axis, by models/layers.py's rules."""
  pads = layers.resolve_padding(padding, (n, n), kernel, stride, dilation)[0]
  return pads, layers.conv_output_size(n, kernel, stride, pads, dilation)


def model_layer_geometry():
  """(kernel, stride, padding, dilation, input size, title) of --layer."""
  config, model = load_model()
  rows = {r['name']: r for r in layer_rows(model.net, config)}
  modules = {layer_stats.name_of(path): m for path, m in nnx.iter_modules(model.net.module)}
  module = modules.get(FLAGS.layer)
  if FLAGS.layer not in rows or not isinstance(module, layer_stats.SPATIAL):
    names = [r['name'] for r in rows.values() if r['type'] == 'Conv']
    raise ValueError(f'--layer={FLAGS.layer}: not a conv or pooling layer of '
                     f'{config.model.name}; its conv layers are {", ".join(names)}')
  (k, _), (s, _), (d, _) = layer_stats.geometry(module)
  n = rows[FLAGS.layer]['input_shape'][0]
  return (k, s, module.padding, d, n,
          f'{config.model.name} {FLAGS.layer} ({type(module).__name__})')


def check_mode(args: list[str]) -> str:
  """The one mode given (before the flags or after them), else one line and exit 2."""
  if len(args) == 1 and args[0] in DRAW:
    return args[0]
  if not args:
    cli.fail('visualize.py', f'give a mode: visualize.py MODE --workdir=DIR --out=FILE.png, '
             f'MODE one of {", ".join(DRAW)}')
  if len(args) > 1:
    cli.fail('visualize.py', f'give one mode, not {" ".join(args)}: one of {", ".join(DRAW)}')
  close = difflib.get_close_matches(args[0], DRAW, n=1)
  hint = f'; did you mean {close[0]!r}?' if close else ''
  cli.fail('visualize.py', f'unknown mode {args[0]!r}{hint} (one of {", ".join(DRAW)})')


DRAW = {'filters': filters, 'features': features, 'saliency': saliency,
        'occlusion': occlusion, 'curves': curves, 'conv-arithmetic': conv_arithmetic}


def main(argv):
  mode = check_mode(argv[1:])
  if not (FLAGS.out or '').lower().endswith(('.png', '.pdf', '.svg', '.jpg')):
    given = f' (not {FLAGS.out})' if FLAGS.out else ''
    cli.fail('visualize.py', f'give --out=FILE.png{given}: where the {mode} figure goes '
             '(.pdf, .svg or .jpg for those formats)')
  try:
    needs_model = mode in ('filters', 'features', 'saliency', 'occlusion')
    config, model = load_model() if needs_model else (None, None)
    value, shown = DRAW[mode](config, model)  # (the numbers; what the figure is of)
  except ValueError as e:  # LoadError, DatasetError, a bad flag
    cli.fail('visualize.py', str(e))
  array = FLAGS.save_array  # (numpy adds the suffix its format needs, if it is not there)
  if array and isinstance(value, dict):
    np.savez(array, **{k.replace('/', '.'): v for k, v in value.items()})
  elif array:
    np.save(array, value)
  suffix = '.npz' if isinstance(value, dict) else '.npy'
  array = array if not array or array.endswith(suffix) else array + suffix
  print(json.dumps({'mode': mode, 'out': FLAGS.out, **shown,
                    **({'array': array} if array else {})}))


if __name__ == '__main__':
  trained.define_flags(sys.argv, 'visualize.py',
                       'a training workdir (curves: several, comma-separated)')
  flags.DEFINE_string('image', None, 'features, saliency, occlusion: the image')
  flags.DEFINE_string('out', None, 'the figure: FILE.png')
  flags.DEFINE_string('save_array', None, 'the numbers behind the figure: FILE.npy (.npz)')
  flags.DEFINE_string('layer', None, 'filters, conv-arithmetic: a layer name (summary.py '
                      'lists them); default: the first conv layer')
  flags.DEFINE_list('layers', [], 'features: layer names (default: each stage\'s last conv)')
  flags.DEFINE_integer('label', None, 'saliency, occlusion: the class (default: the top one)')
  flags.DEFINE_integer('patch', 8, 'occlusion: side of the grey square, in pixels')
  flags.DEFINE_integer('step', 2, 'occlusion: pixels between square positions')
  flags.DEFINE_integer('kernel', 3, 'conv-arithmetic: kernel size', lower_bound=1)
  flags.DEFINE_integer('stride', 1, 'conv-arithmetic: stride', lower_bound=1)
  flags.DEFINE_string('padding', '0', 'conv-arithmetic: pixels, or SAME or VALID')
  flags.DEFINE_integer('dilation', 1, 'conv-arithmetic: dilation', lower_bound=1)
  flags.DEFINE_integer('input_size', 7, 'conv-arithmetic: input height and width')
  cli.run(main, 'visualize.py')
