"""A generic convnet whose every stage is configurable: the workhorse of the sweeps.

A network is a list of stages and a head, given as plain dicts (from a config file):

  stage:      width, depth (kxk convs in the stage), kernel, stride (of the first conv),
              dilation, padding ('SAME', 'VALID', int or pair), padding_mode ('zeros',
              'reflect', 'edge', 'circular'), bottleneck (width of a 1x1 conv before
              each kxk conv; 0 for none), residual (add a shortcut around each conv),
              norm ('batch' or 'none'), activation, and downsample: what follows the
              stage, a dict with type ('max', 'avg', 'conv' = strided conv, 'none'),
              kernel, stride, padding.
  head:       pool ('gap' = global average, 'flatten', or [h, w] = adaptive average
              pooling to h x w, then flatten), hidden (widths of hidden FC layers),
              dropout (before each FC after a hidden one), input_dropout (before the
              first FC), channel_dropout (input_dropout drops whole channels, Dropout2d).

Keys left out take the defaults below. `SIMPLE_CNN`, `VGG11_LIKE` and `ALEXNET_LIKE`
show that the tutorial network, VGG-A and torchvision's AlexNet are all convnets.
A stack that collapses the image raises ValueError naming the layer and the sizes,
when the model is first traced (before anything compiles).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from models import layers

STAGE_DEFAULTS = dict(width=64, depth=1, kernel=3, stride=1, dilation=1, padding='SAME',
                      padding_mode='zeros', bottleneck=0, residual=False, norm='batch',
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
    for key in ('width', 'depth', 'kernel', 'stride', 'dilation'):
      if min(layers.pair(spec[key])) < 1:
        raise ValueError(f'convnet stage {i} {key} must be >= 1; got {spec[key]}')
    specs.append(spec)
  if not specs:
    raise ValueError('convnet needs at least one stage')
  return specs


class ConvNet(nn.Module):
  stages: Sequence[Any] = ({'width': 32}, {'width': 64, 'stride': 2})
  head: Any = None
  num_classes: int = 10
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    head = _with_defaults('head', self.head, HEAD_DEFAULTS)
    for i, s in enumerate(stage_specs(self.stages), 1):
      act = layers.activation(s['activation'])
      batch_norm = s['norm'] == 'batch'

      def conv_norm_act(x, width, kernel, stride, name, padding, activate=True):
        x = layers.Conv(width, kernel, stride, padding=padding,
                        padding_mode=s['padding_mode'], dilation=s['dilation'],
                        use_bias=not batch_norm, dtype=self.dtype, name=f'{name}')(x)
        if batch_norm:
          x = layers.BatchNorm(use_running_average=not train, dtype=self.dtype,
                               name=name.replace('conv', 'bn'))(x)
        return act(x) if activate else x

      for j in range(1, s['depth'] + 1):
        stride = s['stride'] if j == 1 else 1
        y = x
        if s['bottleneck']:
          y = conv_norm_act(y, s['bottleneck'], 1, 1, f'stage{i}_reduce_conv{j}', 0)
        y = conv_norm_act(y, s['width'], s['kernel'], stride, f'stage{i}_conv{j}',
                          s['padding'], activate=not s['residual'])
        if s['residual']:
          if y.shape != x.shape:  # a strided 1x1 projection, as ResNet's option B
            x = layers.Conv(s['width'], 1, stride, padding=0, use_bias=False,
                            dtype=self.dtype, name=f'stage{i}_shortcut{j}')(x)
          if y.shape[1:3] != x.shape[1:3]:
            raise ValueError(
                f'convnet stage {i} conv {j}: a residual stage needs size-preserving '
                f"padding ('SAME'), but the conv gives {y.shape[1]}x{y.shape[2]} and "
                f'the shortcut {x.shape[1]}x{x.shape[2]}')
          y = act(y + x)
        x = y
      d = s['downsample']
      if d['type'] == 'max':
        x = layers.MaxPool(d['kernel'], d['stride'], d['padding'], name=f'stage{i}_pool')(x)
      elif d['type'] == 'avg':
        x = layers.AvgPool(d['kernel'], d['stride'], d['padding'], name=f'stage{i}_pool')(x)
      elif d['type'] == 'conv':
        x = conv_norm_act(x, s['width'], d['kernel'], d['stride'], f'stage{i}_downconv',
                          d['padding'])

    if head['pool'] == 'gap':
      x = layers.GlobalAvgPool(name='head_pool')(x)
    elif head['pool'] != 'flatten':
      x = layers.AdaptiveAvgPool(tuple(head['pool']), name='head_pool')(x)
    if head['input_dropout']:
      dropout = (layers.spatial_dropout if head['channel_dropout'] and x.ndim == 4
                 else nn.Dropout)
      x = dropout(head['input_dropout'], name='head_input_dropout')(
          x, deterministic=not train)
    x = layers.flatten(x)
    for k, width in enumerate(head['hidden'], 1):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f'head_fc{k}')(x))
      if head['dropout']:
        x = nn.Dropout(head['dropout'], name=f'head_dropout{k}')(x, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='head_out')(x)


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
