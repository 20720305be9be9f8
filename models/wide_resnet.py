"""Wide ResNet (Zagoruyko & Komodakis 2016, "Wide residual networks").

WRN-d-k (section 2, Table 1): a 3x3 conv with 16 filters, three groups of N blocks of
16k, 32k and 64k filters on 32, 16 and 8 maps (the second and third groups stride by 2 in
their first block), then BN, ReLU, global average pooling and one FC layer. Each block has
two 3x3 convs, B(3,3), and is pre-activated as in He et al. 2016b ("Identity mappings in
deep residual networks"): BN-ReLU-conv, BN-ReLU-conv, nothing after the sum (Fig. 1c).
Depth d = 6N + 4 in the paper's count (WRN-16, -22, -28, -40: N = 2, 3, 4, 6); k = 1 is
the thin pre-activation ResNet. The parameters (Table 4: WRN-40-4 8.9M, WRN-28-10 36.5M;
WRN-16-4 2.7M on CIFAR-10) are the convs, the BNs' scales and biases, the projections and
the FC layer: tests/test_wide_resnet.py counts them from d and k.

Shortcuts are identities, with a 1x1 projection where the width or the stride changes;
the projection reads the block's pre-activated input, as the authors' code does. Dropout
(section 2, "Dropout in residual blocks"; Fig. 1d) sits between the two convs, after the
ReLU: the paper's 0.3 on CIFAR in its dropout experiments (section 3), off by default as
in its other tables. As in the authors' code, the convs have no bias (a BN follows each,
after the sum for a block's last) and start N(0, 2/fan_out) (layers.Conv's default).

Module names are PyTorch's for a pre-activation block (bn1, conv1, bn2, conv2,
shortcut), in torchvision's stage layout (conv1, layer1..layer3, bn, fc).
"""

from typing import Any, ClassVar

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model, Rate
from models.resnet import make_stage


class WideBasic(nnx.Module):
  """B(3,3) pre-activated (Fig. 1c), with optional dropout between the convs (Fig. 1d)."""
  expansion = 1  # (make_stage's: the output width is `width`, no bottleneck)

  def __init__(self, in_channels: int, width: int, stride: int = 1, *, dropout: float = 0.0,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    conv = dict(use_bias=False, dtype=dtype, rngs=rngs)
    self.bn1 = layers.BatchNorm(in_channels, dtype=dtype, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, width, 3, stride, padding=1, **conv)
    self.bn2 = layers.BatchNorm(width, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else layers.identity
    self.conv2 = layers.Conv(width, width, 3, 1, padding=1, **conv)
    self.shortcut = (layers.Conv(in_channels, width, 1, stride, padding=0, **conv)
                     if stride != 1 or in_channels != width else None)

  def __call__(self, x):
    out = jax.nn.relu(self.bn1(x))
    identity = x if self.shortcut is None else self.shortcut(out)
    out = self.dropout(jax.nn.relu(self.bn2(self.conv1(out))))
    return self.conv2(out) + identity


class WideResNet(Model):
  """WRN-`depth`-`widen_factor` (Table 1; the module docstring)."""

  residual: ClassVar[bool] = True

  def __init__(self, depth: int = 16, widen_factor: int = 4, num_classes: int = 10, *,
               in_channels: int = 3, dropout: Rate = 0.0, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    if depth < 10 or (depth - 4) % 6:
      raise ValueError(f'Wide ResNet depth must be 6N+4 with N >= 1 (10, 16, 22, 28, '
                       f'40, ...); got {depth}')
    if widen_factor < 1:
      raise ValueError(f'Wide ResNet widen_factor must be 1 or more; got {widen_factor}')
    if not 0 <= dropout < 1:
      raise ValueError(f'Wide ResNet dropout must be in [0, 1); got {dropout}')
    n, k = (depth - 4) // 6, widen_factor
    kw = dict(dropout=dropout, dtype=dtype, rngs=rngs)
    self.conv1 = layers.Conv(in_channels, 16, 3, padding=1, use_bias=False, dtype=dtype,
                             rngs=rngs)
    self.layer1 = make_stage(WideBasic, 16, 16 * k, n, 1, **kw)          # conv2: 32x32
    self.layer2 = make_stage(WideBasic, 16 * k, 32 * k, n, 2, **kw)      # conv3: 16x16
    self.layer3 = make_stage(WideBasic, 32 * k, 64 * k, n, 2, **kw)      # conv4: 8x8
    # The last block ends with its sum: a pre-activation network normalises after it.
    self.bn = layers.BatchNorm(64 * k, dtype=dtype, rngs=rngs)
    self.avgpool = layers.GlobalAvgPool()
    self.fc = layers.Linear(64 * k, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
    return self.fc(self.avgpool(jax.nn.relu(self.bn(x))))
