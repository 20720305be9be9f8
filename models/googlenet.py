"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions").

Table 1 of the paper, layer by layer: every inception module has four branches, a 1x1
conv; a 1x1 reduction then 3x3; a 1x1 reduction then 5x5; and 3x3/1 max pooling then a
1x1 projection, concatenated. The paper's network has no batch normalisation and uses
LRN after the stem's first pool and its 3x3 conv; `batch_norm=True` gives the later
BN-Inception-style variant. The two auxiliary classifiers (section 5: 5x5/3 average
pool, 1x1 conv 128, FC 1024, dropout 0.7, their losses weighted by 0.3) exist only in
training: each is sown with its weight (layers.sow_auxiliary), and the trainer adds
their weighted losses.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from models import layers
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


class ConvReLU(nn.Module):
  """Conv ('SAME' padding for odd kernels) -> [BN] -> ReLU."""
  features: int
  kernel_size: int
  strides: int = 1
  batch_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = layers.Conv(self.features, self.kernel_size, self.strides,
                    padding=self.kernel_size // 2, use_bias=not self.batch_norm,
                    dtype=self.dtype, name='conv')(x)
    if self.batch_norm:
      x = layers.BatchNorm(use_running_average=not train, dtype=self.dtype, name='bn')(x)
    return nn.relu(x)


class Inception(nn.Module):
  widths: tuple
  batch_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    n1, r3, n3, r5, n5, proj = self.widths
    cbr = lambda f, k, name: ConvReLU(f, k, batch_norm=self.batch_norm, dtype=self.dtype,
                                      name=name)
    b1 = cbr(n1, 1, 'branch1x1')(x, train)
    b3 = cbr(n3, 3, 'branch3x3')(cbr(r3, 1, 'branch3x3_reduce')(x, train), train)
    b5 = cbr(n5, 5, 'branch5x5')(cbr(r5, 1, 'branch5x5_reduce')(x, train), train)
    bp = cbr(proj, 1, 'pool_proj')(layers.MaxPool(3, 1, padding=1, name='pool')(x), train)
    return jnp.concatenate([b1, b3, b5, bp], axis=-1)


class AuxClassifier(nn.Module):
  num_classes: int
  batch_norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = layers.AvgPool(5, 3, name='pool')(x)                     # 14x14 -> 4x4
    x = ConvReLU(128, 1, batch_norm=self.batch_norm, dtype=self.dtype, name='conv')(x, train)
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name='fc1')(layers.flatten(x)))
    x = nn.Dropout(0.7, name='dropout')(x, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='fc2')(x)


class GoogLeNet(nn.Module):
  num_classes: int = 1000
  aux_logits: bool = True
  aux_loss_weight: float = AUX_LOSS_WEIGHT
  batch_norm: bool = False
  dropout: float = 0.4       # Table 1: dropout (40%) before the linear layer
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    bn, dt = self.batch_norm, self.dtype
    # Table 1's sizes 112-56-28-14-7 from 224 need ceil-mode pooling.
    pool = lambda name: layers.MaxPool(3, 2, ceil_mode=True, name=name)
    x = ConvReLU(64, 7, 2, bn, dt, name='conv1')(x, train)      # 224 -> 112
    x = pool('pool1')(x)                                          # 112 -> 56
    if not bn:
      x = layers.LocalResponseNorm(**PAPER_LRN, name='lrn1')(x)
    x = ConvReLU(64, 1, 1, bn, dt, name='conv2_reduce')(x, train)
    x = ConvReLU(192, 3, 1, bn, dt, name='conv2')(x, train)
    if not bn:
      x = layers.LocalResponseNorm(**PAPER_LRN, name='lrn2')(x)
    x = pool('pool2')(x)                                          # 56 -> 28
    aux = {}
    for block in ('3a', '3b', 'pool3', '4a', '4b', '4c', '4d', '4e', 'pool4', '5a', '5b'):
      if block.startswith('pool'):
        x = pool(block)(x)
        continue
      x = Inception(INCEPTION[block], bn, dt, name=f'inception{block}')(x, train)
      # Auxiliary heads on 4a and 4d; built at init so that training finds their params.
      if block in ('4a', '4d') and self.aux_logits and (train or self.is_initializing()):
        aux[f'aux{block}'] = AuxClassifier(self.num_classes, bn, dt, name=f'aux{block}')(
            x, train)
    for name, logits in aux.items() if train else ():
      layers.sow_auxiliary(self, name, self.aux_loss_weight, logits)
    x = layers.GlobalAvgPool(name='avgpool')(x)
    x = nn.Dropout(self.dropout, name='dropout')(x, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=dt, name='fc')(x)
