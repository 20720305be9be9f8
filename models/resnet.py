"""ResNet (He, Zhang, Ren & Sun 2016, "Deep residual learning for image recognition").

ImageNet networks (Table 1): a 7x7/2 conv and 3x3/2 max pool stem, four stages of basic
blocks (two 3x3 convs; ResNet-18/34) or bottleneck blocks (1x1 reduce, 3x3, 1x1 expand by
4; ResNet-50/101/152), global average pooling and one FC layer. Shortcuts are identities,
with a 1x1 projection + BN where the shape changes (the paper's option B). As torchvision's
V1.5, a bottleneck strides on its 3x3 conv; `stride_in_1x1=True` gives the paper's
original placement on the first 1x1 (Table 1's FLOPs are for that one).

CIFAR networks (section 4.2): a 3x3 conv with 16 filters, three stages of n basic blocks
with 16, 32, 64 filters on 32, 16, 8 maps (6n+2 layers), global average pooling and a
10-way FC. Shortcuts use option A: identity, subsampled by 2 and zero-padded in channels
where the shape changes, so they add no parameters (`shortcut='B'` projects instead).

SE-ResNet (Hu, Shen & Sun 2018, "Squeeze-and-excitation networks", Fig. 3): each
bottleneck rescales its residual by channel weights computed from a global average
pool -> FC(C/16) -> ReLU -> FC(C) -> sigmoid, before the sum.

Module names follow torchvision (conv1, bn1, layer2_0/conv1, downsample_conv, fc), so a
reader can hold the two side by side and the weight importer maps names one to one.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from models import layers


class SqueezeExcite(nn.Module):
  reduction: int = 16
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.relu(nn.Dense(c // self.reduction, dtype=self.dtype, name='fc1')(s))
    s = nn.sigmoid(nn.Dense(c, dtype=self.dtype, name='fc2')(s))
    return x * s


class Block(nn.Module):
  """A basic (two 3x3) or bottleneck (1x1-3x3-1x1) residual block."""
  features: int                 # width of the 3x3 convs; a bottleneck outputs 4x this
  strides: int = 1
  bottleneck: bool = False
  stride_in_1x1: bool = False   # the paper's bottleneck (V1) instead of torchvision's V1.5
  shortcut: str = 'B'           # 'A': zero-padded identity (CIFAR); 'B': 1x1 projection
  se_reduction: int = 0         # > 0 adds squeeze-and-excitation
  zero_init_residual: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(layers.Conv, use_bias=False, dtype=self.dtype)
    bn = functools.partial(layers.BatchNorm, use_running_average=not train, dtype=self.dtype)
    last_bn_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    if self.bottleneck:
      out_features = 4 * self.features
      s1, s3 = (self.strides, 1) if self.stride_in_1x1 else (1, self.strides)
      y = nn.relu(bn(name='bn1')(conv(self.features, 1, s1, padding=0, name='conv1')(x)))
      y = nn.relu(bn(name='bn2')(conv(self.features, 3, s3, padding=1, name='conv2')(y)))
      y = bn(name='bn3', scale_init=last_bn_init)(
          conv(out_features, 1, padding=0, name='conv3')(y))
    else:
      out_features = self.features
      y = nn.relu(bn(name='bn1')(conv(self.features, 3, self.strides, padding=1,
                                      name='conv1')(x)))
      y = bn(name='bn2', scale_init=last_bn_init)(
          conv(self.features, 3, padding=1, name='conv2')(y))
    if self.se_reduction:
      y = SqueezeExcite(self.se_reduction, self.dtype, name='se')(y)
    if self.strides != 1 or x.shape[-1] != out_features:
      if self.shortcut == 'A':
        x = x[:, ::self.strides, ::self.strides, :]
        extra = out_features - x.shape[-1]
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
      else:
        x = conv(out_features, 1, self.strides, padding=0, name='downsample_conv')(x)
        x = bn(name='downsample_bn')(x)
    return nn.relu(y + x)


class ResNet(nn.Module):
  """ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, stages of 64-128-256-512 widths."""
  stage_sizes: Sequence[int]
  bottleneck: bool = False
  num_classes: int = 1000
  stride_in_1x1: bool = False
  se_reduction: int = 0
  zero_init_residual: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(64, 7, 2, padding=3, use_bias=False, dtype=self.dtype, name='conv1')(x)
    x = layers.BatchNorm(use_running_average=not train, dtype=self.dtype, name='bn1')(x)
    x = layers.MaxPool(3, 2, padding=1, name='maxpool')(nn.relu(x))
    for i, n_blocks in enumerate(self.stage_sizes):
      for j in range(n_blocks):
        x = Block(64 * 2**i, strides=2 if i > 0 and j == 0 else 1,
                  bottleneck=self.bottleneck, stride_in_1x1=self.stride_in_1x1,
                  se_reduction=self.se_reduction,
                  zero_init_residual=self.zero_init_residual, dtype=self.dtype,
                  name=f'layer{i + 1}_{j}')(x, train)
    x = layers.GlobalAvgPool(name='avgpool')(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(x)


class CifarResNet(nn.Module):
  """CIFAR ResNet of 6n+2 layers (section 4.2): `depth` = 20, 32, 44, 56, 110, 1202."""
  depth: int = 20
  num_classes: int = 10
  shortcut: str = 'A'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 2) % 6:
      raise ValueError(f'CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, 1202); '
                       f'got {self.depth}')
    if self.shortcut not in ('A', 'B'):
      raise ValueError(f"shortcut must be 'A' or 'B'; got {self.shortcut!r}")
    n = (self.depth - 2) // 6
    x = layers.Conv(16, 3, padding=1, use_bias=False, dtype=self.dtype, name='conv1')(x)
    x = nn.relu(layers.BatchNorm(use_running_average=not train, dtype=self.dtype,
                                 name='bn1')(x))
    for i, width in enumerate((16, 32, 64)):
      for j in range(n):
        x = Block(width, strides=2 if i > 0 and j == 0 else 1, shortcut=self.shortcut,
                  dtype=self.dtype, name=f'layer{i + 1}_{j}')(x, train)
    x = layers.GlobalAvgPool(name='avgpool')(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(x)


IMAGENET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                   101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}  # Table 1


def imagenet_resnet(depth: int, **kw) -> ResNet:
  """ResNet-18/34 (basic blocks) or -50/101/152 (bottlenecks), Table 1."""
  return ResNet(stage_sizes=IMAGENET_STAGES[depth], bottleneck=depth >= 50, **kw)
