"""The tutorial networks of the seed notebooks: a two-conv CNN and a small ResNet."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from models import layers


class SimpleCNN(nn.Module):
  """Conv(3->16, 5x5, /2) -> ReLU -> Conv(16->32, 5x5, /2) -> ReLU -> Dropout2d -> Linear.

  On 32x32 input the maps are 14x14 then 5x5, so the linear layer sees 5*5*32 = 800.
  """
  num_classes: int = 10
  drop_p: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(layers.Conv(16, 5, 2, padding=0, dtype=self.dtype, name='conv1')(x))
    x = nn.relu(layers.Conv(32, 5, 2, padding=0, dtype=self.dtype, name='conv2')(x))
    x = layers.spatial_dropout(self.drop_p, name='dropout')(x, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(layers.flatten(x))


class ResidualBlock(nn.Module):
  """Two 3x3 conv+BN with an identity shortcut; ReLU after the sum."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    bn = lambda name: layers.BatchNorm(use_running_average=not train, dtype=self.dtype,
                                       name=name)
    y = layers.Conv(x.shape[-1], 3, padding=1, use_bias=False, dtype=self.dtype,
                    name='conv1')(x)
    y = nn.relu(bn('bn1')(y))
    y = layers.Conv(x.shape[-1], 3, padding=1, use_bias=False, dtype=self.dtype,
                    name='conv2')(y)
    return nn.relu(bn('bn2')(y) + x)


class TutorialResNet(nn.Module):
  """5x5/2 stem + BN + ReLU + dropout, `num_res_blocks` residual blocks where every second
  block is followed by a 3x3/2 conv that doubles the filters, then flatten + linear."""
  num_classes: int = 10
  filt: int = 16
  num_res_blocks: int = 4
  drop_p: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(self.filt, 5, 2, padding=2, use_bias=False, dtype=self.dtype,
                    name='stem_conv')(x)
    x = layers.BatchNorm(use_running_average=not train, dtype=self.dtype, name='stem_bn')(x)
    x = nn.Dropout(self.drop_p, name='stem_dropout')(nn.relu(x), deterministic=not train)
    filters = self.filt
    for i in range(self.num_res_blocks):
      x = ResidualBlock(dtype=self.dtype, name=f'block{i}')(x, train)
      if i % 2 == 1:
        filters *= 2
        x = nn.relu(layers.Conv(filters, 3, 2, padding=1, dtype=self.dtype,
                                name=f'down{i}')(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(layers.flatten(x))
