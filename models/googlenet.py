"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions").

Table 1 of the paper, layer by layer: every inception module has four branches, a 1x1
conv; a 1x1 reduction then 3x3; a 1x1 reduction then 5x5; and 3x3/1 max pooling then a
1x1 projection, concatenated. The paper's network has no batch normalisation and uses
LRN after the stem's first pool and its 3x3 conv; `batch_norm=True` gives the later
BN-Inception-style variant. The two auxiliary classifiers (section 5: 5x5/3 average
pool, 1x1 conv 128, FC 1024, dropout 0.7, their losses weighted by 0.3) run only in
training: each is sown with its weight (layers.sow_auxiliary), and the trainer adds
their weighted losses.

Module names are torchvision's GoogLeNet (conv1, maxpool1, conv2, conv3, inception3a,
its branch1 .. branch4, aux1, aux2, fc); torchvision's branch3 is a 3x3 where the paper
(and this model) has a 5x5, and it has BN where the paper has LRN, so no torchvision
weights fit this model.
"""

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model, Rate
from models.alexnet import PAPER_LRN

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION = {
    '3a': (64, 96, 128, 16, 32, 32), '3b': (128, 128, 192, 32, 96, 64),
    '4a': (192, 96, 208, 16, 48, 64), '4b': (160, 112, 224, 24, 64, 64),
    '4c': (128, 128, 256, 24, 64, 64), '4d': (112, 144, 288, 32, 64, 64),
    '4e': (256, 160, 320, 32, 128, 128),
    '5a': (256, 160, 320, 32, 128, 128), '5b': (384, 192, 384, 48, 128, 128),
}
AUX_LOSS_WEIGHT = 0.3  # section 5


class BasicConv2d(nnx.Module):
  """Conv (padding k//2: sizes kept at stride 1) -> [BN] -> ReLU, torchvision's
  BasicConv2d; with the paper's biases where there is no BN."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
               stride: int = 1, *, batch_norm: bool = False, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    self.conv = layers.Conv(in_channels, out_channels, kernel_size, stride,
                            padding=kernel_size // 2, use_bias=not batch_norm, dtype=dtype,
                            rngs=rngs)
    self.bn = (layers.BatchNorm(out_channels, dtype=dtype, rngs=rngs) if batch_norm
               else layers.identity)

  def __call__(self, x):
    return jax.nn.relu(self.bn(self.conv(x)))


class Inception(nnx.Module):
  """Fig. 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3/1 max pool -> 1x1, concatenated."""

  def __init__(self, in_channels: int, widths: tuple, *, batch_norm: bool = False,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    n1, r3, n3, r5, n5, proj = widths
    conv = lambda cin, cout, k: BasicConv2d(cin, cout, k, batch_norm=batch_norm, dtype=dtype,
                                            rngs=rngs)
    self.branch1 = conv(in_channels, n1, 1)
    self.branch2 = layers.Sequential(conv(in_channels, r3, 1), conv(r3, n3, 3))
    self.branch3 = layers.Sequential(conv(in_channels, r5, 1), conv(r5, n5, 5))
    self.branch4 = layers.Sequential(layers.MaxPool(3, 1, padding=1),
                                     conv(in_channels, proj, 1))

  def __call__(self, x):
    branches = (self.branch1, self.branch2, self.branch3, self.branch4)
    return jnp.concatenate([branch(x) for branch in branches], axis=-1)


class InceptionAux(nnx.Module):
  """Section 5: 5x5/3 average pool, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout 70%,
  a linear layer to the classes. `size`: the side of the map it reads (14 at 224)."""

  def __init__(self, in_channels: int, size: int, num_classes: int, *,
               batch_norm: bool = False, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.avgpool = layers.AvgPool(5, 3)
    pooled = layers.conv_output_size(size, 5, 3)  # 14x14 -> 4x4
    self.conv = BasicConv2d(in_channels, 128, 1, batch_norm=batch_norm, dtype=dtype,
                            rngs=rngs)
    self.fc1 = layers.Linear(pooled * pooled * 128, 1024, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(0.7, rngs=rngs)
    self.fc2 = layers.Linear(1024, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = self.conv(self.avgpool(x))
    x = jax.nn.relu(self.fc1(layers.flatten(x)))
    return self.fc2(self.dropout(x))


class GoogLeNet(Model):
  """Table 1's network; `image_size` sizes the auxiliary classifiers' FC layers."""

  def __init__(self, num_classes: int = 1000, *, in_channels: int = 3,
               image_size: int = 224, aux_logits: bool = True,
               aux_loss_weight: float = AUX_LOSS_WEIGHT, batch_norm: bool = False,
               dropout: Rate = 0.4,  # Table 1: dropout (40%) before the linear layer
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    kw = dict(batch_norm=batch_norm, dtype=dtype, rngs=rngs)
    # Table 1's sizes 112-56-28-14-7 from 224 need ceil-mode pooling.
    pool = lambda: layers.MaxPool(3, 2, ceil_mode=True)
    lrn = lambda: layers.identity if batch_norm else layers.LocalResponseNorm(**PAPER_LRN)
    self.conv1 = BasicConv2d(in_channels, 64, 7, 2, **kw)       # 224 -> 112
    self.maxpool1 = pool()                                       # 112 -> 56
    self.lrn1 = lrn()
    self.conv2 = BasicConv2d(64, 64, 1, **kw)                    # the 3x3's 1x1 reduction
    self.conv3 = BasicConv2d(64, 192, 3, **kw)
    self.lrn2 = lrn()
    self.maxpool2 = pool()                                       # 56 -> 28
    channels = 192  # each inception module reads the previous one's four branches
    for name, widths in INCEPTION.items():
      setattr(self, f'inception{name}', Inception(channels, widths, **kw))
      channels = widths[0] + widths[2] + widths[4] + widths[5]
    self.maxpool3 = pool()                                       # 28 -> 14, after 3b
    self.maxpool4 = pool()                                       # 14 -> 7, after 4e
    if aux_logits:  # on 4a's and 4d's outputs (512 and 528 channels)
      size = layers.conv_output_size(image_size, 7, 2, (3, 3))  # conv1
      for _ in range(3):  # maxpool1 .. maxpool3: 14x14 at 224
        size = layers.conv_output_size(size, 3, 2, ceil_mode=True)
      self.aux1 = InceptionAux(512, size, num_classes, **kw)
      self.aux2 = InceptionAux(528, size, num_classes, **kw)
    else:
      self.aux1 = self.aux2 = None
    self.aux_loss_weight = aux_loss_weight
    self.avgpool = layers.GlobalAvgPool()
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.fc = layers.Linear(1024, num_classes, dtype=dtype, rngs=rngs)
    # True in eval mode: model.train() and model.eval() set it, as they set Dropout's.
    self.deterministic = False

  def __call__(self, x):
    x = self.lrn1(self.maxpool1(self.conv1(x)))
    x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
    x = self.maxpool3(self.inception3b(self.inception3a(x)))
    x = self.inception4a(x)
    training_aux = self.aux1 is not None and not self.deterministic
    if training_aux:
      layers.sow_auxiliary(self, 'aux1', self.aux_loss_weight, self.aux1(x))
    x = self.inception4d(self.inception4c(self.inception4b(x)))
    if training_aux:
      layers.sow_auxiliary(self, 'aux2', self.aux_loss_weight, self.aux2(x))
    x = self.maxpool4(self.inception4e(x))
    x = self.inception5b(self.inception5a(x))
    return self.fc(self.dropout(self.avgpool(x)))
