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

Module names are torchvision's (conv1, bn1, layer2[0].conv1, layer2[0].downsample, fc), so
a reader can hold the two side by side and the weight importer maps names one to one.
"""

from typing import Any, Callable, ClassVar, Literal, Sequence

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model


class SqueezeExcite(nnx.Module):
  def __init__(self, channels: int, reduction: int = 16, *, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    self.fc1 = layers.Linear(channels, channels // reduction, dtype=dtype, rngs=rngs)
    self.fc2 = layers.Linear(channels // reduction, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    return x * jax.nn.sigmoid(self.fc2(jax.nn.relu(self.fc1(s))))


class PadShortcut(nnx.Module):
  """Option A (section 4.2): the identity, subsampled by `stride` and zero-padded in
  channels, equally on both sides; no parameters."""

  def __init__(self, stride: int, out_channels: int):
    self.stride, self.out_channels = stride, out_channels

  def __call__(self, x):
    x = x[:, ::self.stride, ::self.stride, :]
    extra = self.out_channels - x.shape[-1]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


def shortcut(in_channels: int, out_channels: int, stride: int, kind: str, *, dtype: Any,
             rngs: nnx.Rngs):
  """A block's `downsample`: None (the identity) where the shapes agree, else option A's
  PadShortcut or option B's projection, a strided 1x1 conv and BN (torchvision's
  `downsample` Sequential, children 0 and 1)."""
  if stride == 1 and in_channels == out_channels:
    return None
  if kind == 'A':
    return PadShortcut(stride, out_channels)
  return layers.Sequential(
      layers.Conv(in_channels, out_channels, 1, stride, padding=0, use_bias=False,
                  dtype=dtype, rngs=rngs),
      layers.BatchNorm(out_channels, dtype=dtype, rngs=rngs))


class BasicBlock(nnx.Module):
  """Two 3x3 convs (Fig. 2 left)."""
  expansion = 1

  def __init__(self, in_channels: int, width: int, stride: int = 1, *,
               shortcut_kind: str = 'B', last_bn_init: Callable = nnx.initializers.ones,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    conv = dict(use_bias=False, dtype=dtype, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, width, 3, stride, padding=1, **conv)
    self.bn1 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.conv2 = layers.Conv(width, width, 3, 1, padding=1, **conv)
    self.bn2 = layers.BatchNorm(width, scale_init=last_bn_init, dtype=dtype, rngs=rngs)
    self.downsample = shortcut(in_channels, width, stride, shortcut_kind, dtype=dtype,
                               rngs=rngs)

  def __call__(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = jax.nn.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return jax.nn.relu(out + identity)


class Bottleneck(nnx.Module):
  """1x1 reduce, 3x3, 1x1 expand by 4 (Fig. 5 right), optionally squeeze-excited."""
  expansion = 4

  def __init__(self, in_channels: int, width: int, stride: int = 1, *,
               stride_in_1x1: bool = False, se_reduction: int = 0,
               shortcut_kind: str = 'B', last_bn_init: Callable = nnx.initializers.ones,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    out = 4 * width
    s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)  # V1 or torchvision's V1.5
    conv = dict(use_bias=False, dtype=dtype, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, width, 1, s1, padding=0, **conv)
    self.bn1 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.conv2 = layers.Conv(width, width, 3, s3, padding=1, **conv)
    self.bn2 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.conv3 = layers.Conv(width, out, 1, 1, padding=0, **conv)
    self.bn3 = layers.BatchNorm(out, scale_init=last_bn_init, dtype=dtype, rngs=rngs)
    self.se = (SqueezeExcite(out, se_reduction, dtype=dtype, rngs=rngs)
               if se_reduction else layers.identity)
    self.downsample = shortcut(in_channels, out, stride, shortcut_kind, dtype=dtype,
                               rngs=rngs)

  def __call__(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = jax.nn.relu(self.bn1(self.conv1(x)))
    out = jax.nn.relu(self.bn2(self.conv2(out)))
    out = self.se(self.bn3(self.conv3(out)))
    return jax.nn.relu(out + identity)


def make_stage(block, in_channels: int, width: int, n_blocks: int, stride: int,
               **kw) -> layers.Sequential:
  """n blocks of `width`, the first one striding (torchvision's `_make_layer`)."""
  blocks = [block(in_channels, width, stride, **kw)]
  for _ in range(1, n_blocks):
    blocks.append(block(width * block.expansion, width, 1, **kw))
  return layers.Sequential(*blocks)


class ResNet(Model):
  """ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, stages of 64-128-256-512 widths."""

  residual: ClassVar[bool] = True

  def __init__(self, stage_sizes: Sequence[int], bottleneck: bool = False,
               num_classes: int = 1000, *, in_channels: int = 3, stride_in_1x1: bool = False,
               se_reduction: int = 0, zero_init_residual: bool = False,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if len(stage_sizes) != 4:
      raise ValueError(f'ResNet has four stages (Table 1); got stage_sizes={stage_sizes}')
    block = Bottleneck if bottleneck else BasicBlock
    # zeros: each residual branch starts as the identity (Goyal et al. 2017, section 5.1)
    last_bn_init = nnx.initializers.zeros if zero_init_residual else nnx.initializers.ones
    kw = dict(last_bn_init=last_bn_init, dtype=dtype, rngs=rngs)
    if bottleneck:  # (basic blocks have neither a 1x1 conv nor a squeeze-excite)
      kw.update(stride_in_1x1=stride_in_1x1, se_reduction=se_reduction)
    e = block.expansion
    self.conv1 = layers.Conv(in_channels, 64, 7, 2, padding=3, use_bias=False, dtype=dtype,
                             rngs=rngs)
    self.bn1 = layers.BatchNorm(64, dtype=dtype, rngs=rngs)
    self.maxpool = layers.MaxPool(3, 2, padding=1)
    self.layer1 = make_stage(block, 64, 64, stage_sizes[0], 1, **kw)          # 56x56 maps
    self.layer2 = make_stage(block, 64 * e, 128, stage_sizes[1], 2, **kw)     # 28x28
    self.layer3 = make_stage(block, 128 * e, 256, stage_sizes[2], 2, **kw)    # 14x14
    self.layer4 = make_stage(block, 256 * e, 512, stage_sizes[3], 2, **kw)    # 7x7
    self.avgpool = layers.GlobalAvgPool()
    self.fc = layers.Linear(512 * e, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = self.maxpool(jax.nn.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(self.avgpool(x))


class CifarResNet(Model):
  """CIFAR ResNet of 6n+2 layers (section 4.2): `depth` = 20, 32, 44, 56, 110, 1202."""

  residual: ClassVar[bool] = True

  def __init__(self, depth: int = 20, num_classes: int = 10, *, in_channels: int = 3,
               shortcut: Literal['A', 'B'] = 'A', dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if (depth - 2) % 6:
      raise ValueError(f'CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, 1202); '
                       f'got {depth}')
    if shortcut not in ('A', 'B'):
      raise ValueError(f"shortcut must be 'A' or 'B'; got {shortcut!r}")
    n = (depth - 2) // 6
    self.conv1 = layers.Conv(in_channels, 16, 3, padding=1, use_bias=False, dtype=dtype,
                             rngs=rngs)
    self.bn1 = layers.BatchNorm(16, dtype=dtype, rngs=rngs)
    kw = dict(shortcut_kind=shortcut, dtype=dtype, rngs=rngs)
    self.layer1 = make_stage(BasicBlock, 16, 16, n, 1, **kw)   # 32x32 maps
    self.layer2 = make_stage(BasicBlock, 16, 32, n, 2, **kw)   # 16x16
    self.layer3 = make_stage(BasicBlock, 32, 64, n, 2, **kw)   # 8x8
    self.avgpool = layers.GlobalAvgPool()
    self.fc = layers.Linear(64, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.bn1(self.conv1(x)))
    x = self.layer3(self.layer2(self.layer1(x)))
    return self.fc(self.avgpool(x))


# ResNet-18/34 (basic blocks) or -50/101/152 (bottlenecks): blocks per stage, Table 1.
IMAGENET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                   101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
