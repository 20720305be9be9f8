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

from typing import Any, Sequence

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers


class SqueezeExcite(nnx.Module):
  def __init__(self, channels: int, reduction: int = 16, *, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    self.fc1 = layers.Linear(channels, channels // reduction, dtype=dtype, rngs=rngs)
    self.fc2 = layers.Linear(channels // reduction, channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    return x * jax.nn.sigmoid(self.fc2(jax.nn.relu(self.fc1(s))))


class Downsample(nnx.Module):
  """The projection shortcut (option B): a strided 1x1 conv and BN (torchvision's
  `downsample` Sequential, whose children are named 0 and 1 there)."""

  def __init__(self, in_channels: int, out_channels: int, stride: int, *, dtype: Any,
               rngs: nnx.Rngs):
    self.conv = layers.Conv(in_channels, out_channels, 1, stride, padding=0,
                            use_bias=False, dtype=dtype, rngs=rngs)
    self.bn = layers.BatchNorm(out_channels, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    return self.bn(self.conv(x))


def pad_shortcut(x, stride: int, out_channels: int):
  """Option A: the identity, subsampled by `stride` and zero-padded in channels."""
  x = x[:, ::stride, ::stride, :]
  extra = out_channels - x.shape[-1]
  return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class BasicBlock(nnx.Module):
  """Two 3x3 convs (Fig. 2 left)."""
  expansion = 1

  def __init__(self, in_channels: int, width: int, stride: int = 1, *,
               shortcut: str = 'B', zero_init_residual: bool = False,
               dtype: Any = jnp.float32, rngs: nnx.Rngs, **_):
    conv_bn = dict(use_bias=False, dtype=dtype, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, width, 3, stride, padding=1, **conv_bn)
    self.bn1 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.conv2 = layers.Conv(width, width, 3, 1, padding=1, **conv_bn)
    self.bn2 = layers.BatchNorm(width, scale_init=_last_bn_init(zero_init_residual),
                                dtype=dtype, rngs=rngs)
    self.downsample, self.pad_to = _shortcut(in_channels, width, stride, shortcut, dtype,
                                             rngs)
    self.stride = stride

  def __call__(self, x):
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return jax.nn.relu(y + identity(self, x))


class Bottleneck(nnx.Module):
  """1x1 reduce, 3x3, 1x1 expand by 4 (Fig. 5 right), optionally squeeze-excited."""
  expansion = 4

  def __init__(self, in_channels: int, width: int, stride: int = 1, *,
               stride_in_1x1: bool = False, se_reduction: int = 0, shortcut: str = 'B',
               zero_init_residual: bool = False, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    out = 4 * width
    s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)  # V1 or torchvision's V1.5
    conv_bn = dict(use_bias=False, dtype=dtype, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, width, 1, s1, padding=0, **conv_bn)
    self.bn1 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.conv2 = layers.Conv(width, width, 3, s3, padding=1, **conv_bn)
    self.bn2 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.conv3 = layers.Conv(width, out, 1, 1, padding=0, **conv_bn)
    self.bn3 = layers.BatchNorm(out, scale_init=_last_bn_init(zero_init_residual),
                                dtype=dtype, rngs=rngs)
    self.se = (SqueezeExcite(out, se_reduction, dtype=dtype, rngs=rngs)
               if se_reduction else None)
    self.downsample, self.pad_to = _shortcut(in_channels, out, stride, shortcut, dtype, rngs)
    self.stride = stride

  def __call__(self, x):
    y = jax.nn.relu(self.bn1(self.conv1(x)))
    y = jax.nn.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    if self.se is not None:
      y = self.se(y)
    return jax.nn.relu(y + identity(self, x))


def _last_bn_init(zero_init_residual: bool):
  # zeros: each residual branch starts as the identity (Goyal et al. 2017, section 5.1)
  return nnx.initializers.zeros if zero_init_residual else nnx.initializers.ones


def _shortcut(in_channels, out_channels, stride, kind, dtype, rngs):
  """(projection, channels to pad to) of a block's shortcut: (None, None) where the
  shapes agree (the identity), else option A's (None, out_channels) or option B's
  (Downsample, None)."""
  if stride == 1 and in_channels == out_channels:
    return None, None
  if kind == 'A':
    return None, out_channels
  return Downsample(in_channels, out_channels, stride, dtype=dtype, rngs=rngs), None


def identity(block, x):
  """The block's shortcut applied to its input x."""
  if block.downsample is not None:
    return block.downsample(x)
  return x if block.pad_to is None else pad_shortcut(x, block.stride, block.pad_to)


def make_stage(block, in_channels: int, width: int, n_blocks: int, stride: int, *,
               rngs: nnx.Rngs, **kw) -> nnx.List:
  """n blocks of `width`, the first one striding (torchvision's `_make_layer`)."""
  stage = []
  for j in range(n_blocks):
    stage.append(block(in_channels, width, stride if j == 0 else 1, rngs=rngs, **kw))
    in_channels = width * block.expansion
  return nnx.List(stage)


def run_stage(stage, x):
  for block in stage:
    x = block(x)
  return x


class ResNet(nnx.Module):
  """ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, stages of 64-128-256-512 widths."""

  def __init__(self, stage_sizes: Sequence[int], bottleneck: bool = False,
               num_classes: int = 1000, *, in_channels: int = 3, stride_in_1x1: bool = False,
               se_reduction: int = 0, zero_init_residual: bool = False,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    block = Bottleneck if bottleneck else BasicBlock
    extra = dict(stride_in_1x1=stride_in_1x1, se_reduction=se_reduction) if bottleneck else {}
    self.conv1 = layers.Conv(in_channels, 64, 7, 2, padding=3, use_bias=False, dtype=dtype,
                             rngs=rngs)
    self.bn1 = layers.BatchNorm(64, dtype=dtype, rngs=rngs)
    self.maxpool = layers.MaxPool(3, 2, padding=1)
    channels = 64
    for i, n_blocks in enumerate(stage_sizes):
      stage = make_stage(block, channels, 64 * 2**i, n_blocks, 1 if i == 0 else 2,
                         zero_init_residual=zero_init_residual, dtype=dtype, rngs=rngs,
                         **extra)
      setattr(self, f'layer{i + 1}', stage)
      channels = 64 * 2**i * block.expansion
    self.num_stages = len(stage_sizes)
    self.avgpool = layers.GlobalAvgPool()
    self.fc = layers.Linear(channels, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = self.maxpool(jax.nn.relu(self.bn1(self.conv1(x))))
    for i in range(self.num_stages):
      x = run_stage(getattr(self, f'layer{i + 1}'), x)
    return self.fc(self.avgpool(x))


class CifarResNet(nnx.Module):
  """CIFAR ResNet of 6n+2 layers (section 4.2): `depth` = 20, 32, 44, 56, 110, 1202."""

  def __init__(self, depth: int = 20, num_classes: int = 10, *, in_channels: int = 3,
               shortcut: str = 'A', dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if (depth - 2) % 6:
      raise ValueError(f'CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, 1202); '
                       f'got {depth}')
    if shortcut not in ('A', 'B'):
      raise ValueError(f"shortcut must be 'A' or 'B'; got {shortcut!r}")
    n = (depth - 2) // 6
    self.conv1 = layers.Conv(in_channels, 16, 3, padding=1, use_bias=False, dtype=dtype,
                             rngs=rngs)
    self.bn1 = layers.BatchNorm(16, dtype=dtype, rngs=rngs)
    kw = dict(shortcut=shortcut, dtype=dtype, rngs=rngs)
    self.layer1 = make_stage(BasicBlock, 16, 16, n, 1, **kw)   # 32x32 maps
    self.layer2 = make_stage(BasicBlock, 16, 32, n, 2, **kw)   # 16x16
    self.layer3 = make_stage(BasicBlock, 32, 64, n, 2, **kw)   # 8x8
    self.avgpool = layers.GlobalAvgPool()
    self.fc = layers.Linear(64, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.bn1(self.conv1(x)))
    x = run_stage(self.layer3, run_stage(self.layer2, run_stage(self.layer1, x)))
    return self.fc(self.avgpool(x))


IMAGENET_STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                   101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}  # Table 1


def imagenet_resnet(depth: int, **kw) -> ResNet:
  """ResNet-18/34 (basic blocks) or -50/101/152 (bottlenecks), Table 1."""
  return ResNet(stage_sizes=IMAGENET_STAGES[depth], bottleneck=depth >= 50, **kw)
