"""A generic convnet whose every stage is configurable: the workhorse of the sweeps.

A network is a list of stages and a head, given as plain dicts (from a config file):

  stage:      width, depth (kxk convs in the stage), kernel, stride (of the first conv),
              dilation, padding ('SAME', 'VALID', int or pair), padding_mode ('zeros',
              'reflect', 'edge', 'circular'), groups (of the kxk convs, as PyTorch's
              nn.Conv2d(groups=...): input and output channels split into that many
              groups, each output group convolving its input group only; depthwise
              when it equals the width and the input's), bottleneck (width of a 1x1
              conv before each kxk conv; 0 for none), residual (add a shortcut around
              each conv), norm ('batch' or 'none'), activation, and downsample: what
              follows the stage, a dict with type ('max', 'avg', 'conv' = strided conv,
              'none'), kernel, stride, padding.
  head:       pool ('gap' = global average, 'flatten', or [h, w] = adaptive average
              pooling to h x w, then flatten), hidden (widths of hidden FC layers),
              dropout (before each FC after a hidden one), input_dropout (before the
              first FC), channel_dropout (input_dropout drops whole channels, Dropout2d).

Keys left out take the defaults below. `SIMPLE_CNN`, `VGG11_LIKE` and `ALEXNET_LIKE`
show that the tutorial network, VGG-A and torchvision's AlexNet are all convnets.
Unknown or bad keys raise ValueError before any layer is built; a stack that collapses
the image raises ValueError naming the layer ('stage4.conv1') and the sizes when the
model is built, on shapes only (before anything compiles).
"""

from typing import Any, Sequence

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model

STAGE_DEFAULTS = dict(width=64, depth=1, kernel=3, stride=1, dilation=1, padding='SAME',
                      padding_mode='zeros', groups=1, bottleneck=0, residual=False, norm='batch',
                      activation='relu', downsample=None)
DOWNSAMPLE_DEFAULTS = dict(type='none', kernel=2, stride=2, padding=0)
HEAD_DEFAULTS = dict(pool='gap', hidden=(), dropout=0.0, input_dropout=0.0,
                     channel_dropout=False)
DOWNSAMPLE_TYPES = ('max', 'avg', 'conv', 'none')


def _with_defaults(what: str, given, defaults: dict) -> dict:
  given = dict(given or {})
  unknown = sorted(set(given) - set(defaults))
  if unknown:
    raise ValueError(f'convnet {what}: unknown key(s) {unknown}; valid keys: '
                     f'{sorted(defaults)}')
  return {**defaults, **given}


def stage_specs(stages) -> list[dict]:
  """Stages with defaults filled in and checked."""
  specs = []
  for i, stage in enumerate(stages, 1):
    spec = _with_defaults(f'stage {i}', stage, STAGE_DEFAULTS)
    spec['downsample'] = _with_defaults(f'stage {i} downsample', spec['downsample'],
                                        DOWNSAMPLE_DEFAULTS)
    if spec['downsample']['type'] not in DOWNSAMPLE_TYPES:
      raise ValueError(f"convnet stage {i} downsample type must be one of "
                       f"{DOWNSAMPLE_TYPES}; got {spec['downsample']['type']!r}")
    if spec['norm'] not in ('batch', 'none'):
      raise ValueError(f"convnet stage {i} norm must be 'batch' or 'none'; "
                       f"got {spec['norm']!r}")
    for key in ('width', 'depth', 'kernel', 'stride', 'dilation', 'groups'):
      if min(layers.pair(spec[key])) < 1:
        raise ValueError(f'convnet stage {i} {key} must be >= 1; got {spec[key]}')
    specs.append(spec)
  if not specs:
    raise ValueError('convnet needs at least one stage')
  return specs


def check_groups(i: int, spec: dict, in_channels: int):
  """A stage's groups must divide what its kxk convs read and write: the stage's input
  (conv1's, unless a bottleneck comes first), the bottleneck's width and the stage's
  width. One ValueError naming the stage and the groups that would do."""
  groups, width = spec['groups'], spec['width']
  widths = ({'its bottleneck': spec['bottleneck']} if spec['bottleneck'] else
            {'its input': in_channels})
  widths['its width'] = width
  if all(n % groups == 0 for n in widths.values()):
    return
  common = [g for g in range(1, width + 1) if all(n % g == 0 for n in widths.values())]
  what = ', '.join(f'{name} {n}' for name, n in widths.items())
  kh, kw = layers.pair(spec['kernel'])
  raise ValueError(f'convnet stage {i} groups={groups} must divide the channels its '
                   f'{kh}x{kw} convs read and write ({what}); set groups to one of '
                   f'{common}, or change the widths')


def output_size(size, kernel, stride=1, padding: layers.Padding = 0, dilation=1) -> tuple:
  """(H, W) out of a conv or pooling window over (H, W) `size`: layers' arithmetic."""
  kernel, stride, dilation = layers.pair(kernel), layers.pair(stride), layers.pair(dilation)
  pads = layers.resolve_padding(padding, size, kernel, stride, dilation)
  return tuple(layers.conv_output_size(n, k, s, p, d)
               for n, k, s, p, d in zip(size, kernel, stride, pads, dilation))


class Stage(nnx.Module):
  """`depth` k x k convs (conv1, conv2 ...; each after an optional 1x1 bottleneck
  reduce_conv<j>, with an optional shortcut around it), each with its BatchNorm
  (bn<j>), then the stage's downsampling (pool, or downconv and downbn)."""

  def __init__(self, spec: dict, in_channels: int, size: tuple, *, dtype: Any,
               rngs: nnx.Rngs):
    s = spec
    self.depth, self.residual, self.activation = s['depth'], s['residual'], s['activation']
    batch_norm = s['norm'] == 'batch'

    def conv_bn(name, cin, cout, kernel, stride, padding, groups=1):
      setattr(self, name, layers.Conv(
          cin, cout, kernel, stride, padding, padding_mode=s['padding_mode'],
          dilation=s['dilation'], groups=groups, use_bias=not batch_norm, dtype=dtype,
          rngs=rngs))
      setattr(self, name.replace('conv', 'bn'),
              layers.BatchNorm(cout, dtype=dtype, rngs=rngs) if batch_norm
              else layers.identity)

    channels = in_channels
    for j in range(1, s['depth'] + 1):
      stride = s['stride'] if j == 1 else 1
      if s['bottleneck']:
        conv_bn(f'reduce_conv{j}', channels, s['bottleneck'], 1, 1, 0)
      else:
        setattr(self, f'reduce_conv{j}', None)
      conv_bn(f'conv{j}', s['bottleneck'] or channels, s['width'], s['kernel'], stride,
              s['padding'], s['groups'])
      out = output_size(size, s['kernel'], stride, s['padding'], s['dilation'])
      shortcut = layers.identity
      if s['residual'] and (s['width'] != channels or out != size):
        # where the conv changes the shape: a strided 1x1 projection, as ResNet's option B
        shortcut = layers.Conv(channels, s['width'], 1, stride, padding=0, use_bias=False,
                               dtype=dtype, rngs=rngs)
      setattr(self, f'shortcut{j}', shortcut)
      channels, size = s['width'], out
    d = s['downsample']
    pool = {'max': layers.MaxPool, 'avg': layers.AvgPool}.get(d['type'])
    self.pool = pool(d['kernel'], d['stride'], d['padding']) if pool else layers.identity
    if d['type'] == 'conv':
      conv_bn('downconv', channels, s['width'], d['kernel'], d['stride'], d['padding'])
    else:
      self.downconv = self.downbn = None
    if d['type'] != 'none':
      size = output_size(size, d['kernel'], d['stride'], d['padding'],
                         s['dilation'] if d['type'] == 'conv' else 1)
    self.out_channels, self.out_size = channels, size

  def _conv_bn(self, name, x, activate=True):
    x = getattr(self, name.replace('conv', 'bn'))(getattr(self, name)(x))
    return layers.activation(self.activation)(x) if activate else x

  def __call__(self, x):
    for j in range(1, self.depth + 1):
      y = x
      if getattr(self, f'reduce_conv{j}') is not None:
        y = self._conv_bn(f'reduce_conv{j}', y)
      y = self._conv_bn(f'conv{j}', y, activate=not self.residual)
      if self.residual:
        x = getattr(self, f'shortcut{j}')(x)
        if y.shape[1:3] != x.shape[1:3]:
          raise ValueError(
              f'convnet {layers.layer_name(self)} conv {j}: a residual stage needs '
              f"size-preserving padding ('SAME'), but the conv gives {y.shape[1]}x"
              f'{y.shape[2]} and the shortcut {x.shape[1]}x{x.shape[2]}')
        y = layers.activation(self.activation)(y + x)
      x = y
    x = self.pool(x)
    if self.downconv is not None:
      x = self._conv_bn('downconv', x)
    return x


class ConvNet(Model):
  """Stages stage1, stage2 ... then the head: pool, input_dropout, hidden FC layers
  (each followed by dropout), fc. `image_size` sizes the head's first FC layer."""

  def __init__(self, stages: Sequence[Any] = ({'width': 32}, {'width': 64, 'stride': 2}),
               head: Any = None, num_classes: int = 10, *, in_channels: int = 3,
               image_size: int = 32, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    specs, head = stage_specs(stages), _with_defaults('head', head, HEAD_DEFAULTS)
    channels, size = in_channels, (image_size, image_size)
    for i, spec in enumerate(specs, 1):
      check_groups(i, spec, channels)
      stage = Stage(spec, channels, size, dtype=dtype, rngs=rngs)
      setattr(self, f'stage{i}', stage)
      channels, size = stage.out_channels, stage.out_size
    self.num_stages = len(specs)
    self.residual = any(spec['residual'] for spec in specs)  # (Model.residual)
    pool = head['pool']
    if pool == 'gap':
      self.pool = layers.GlobalAvgPool()
    elif pool == 'flatten':
      self.pool = layers.identity
    elif isinstance(pool, (tuple, list)) and len(pool) == 2:
      self.pool = layers.AdaptiveAvgPool(tuple(pool))
    else:
      raise ValueError(f"convnet head pool must be 'gap', 'flatten' or [h, w]; got {pool!r}")
    # The first FC layer's width, as PyTorch tutorials find it (a dummy image through the
    # features and the pool), on shapes only. A stack that collapses the image fails
    # here, in the layer that does not fit, named by its path ('stage4.conv1').
    layers.name_layers(self)
    width = nnx.eval_shape(lambda net: layers.flatten(net.pool(net.features(
        jnp.zeros((1, image_size, image_size, in_channels))))), self).shape[-1]

    rate = head['input_dropout']
    maps = head['channel_dropout'] and head['pool'] != 'gap'  # Dropout2d, on maps only
    self.input_dropout = (nnx.Dropout(rate, broadcast_dims=(1, 2) if maps else (), rngs=rngs)
                          if rate else layers.identity)
    widths = [width, *head['hidden']]
    self.hidden = nnx.List([layers.Linear(n_in, n_out, dtype=dtype, rngs=rngs)
                            for n_in, n_out in zip(widths, widths[1:])])
    self.dropout = (nnx.Dropout(head['dropout'], rngs=rngs) if head['dropout']
                    else layers.identity)
    self.fc = layers.Linear(widths[-1], num_classes, dtype=dtype, rngs=rngs)

  def features(self, x):
    for i in range(1, self.num_stages + 1):
      x = getattr(self, f'stage{i}')(x)
    return x

  def __call__(self, x):
    x = layers.flatten(self.input_dropout(self.pool(self.features(x))))
    for fc in self.hidden:
      x = self.dropout(jax.nn.relu(fc(x)))
    return self.fc(x)


# The tutorial SimpleCNN, VGG-A (vgg11) and torchvision's AlexNet as convnet configs.
_no_norm = dict(norm='none', padding=0)
SIMPLE_CNN = dict(
    stages=[dict(width=16, kernel=5, stride=2, **_no_norm),
            dict(width=32, kernel=5, stride=2, **_no_norm)],
    head=dict(pool='flatten', input_dropout=0.2, channel_dropout=True))
_max2 = dict(type='max', kernel=2, stride=2)
VGG11_LIKE = dict(
    stages=[dict(width=w, depth=n, norm='none', padding=1, downsample=_max2)
            for w, n in ((64, 1), (128, 1), (256, 2), (512, 2), (512, 2))],
    head=dict(pool=(7, 7), hidden=(4096, 4096), dropout=0.5))
_max3 = dict(type='max', kernel=3, stride=2)
ALEXNET_LIKE = dict(
    stages=[dict(width=64, kernel=11, stride=4, padding=2, norm='none', downsample=_max3),
            dict(width=192, kernel=5, padding=2, norm='none', downsample=_max3),
            dict(width=384, padding=1, norm='none'),
            dict(width=256, depth=2, padding=1, norm='none', downsample=_max3)],
    head=dict(pool=(6, 6), hidden=(4096, 4096), dropout=0.5, input_dropout=0.5))
