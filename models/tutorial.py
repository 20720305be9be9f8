"""The tutorial networks of the seed notebooks: a two-conv CNN and a small ResNet."""

from typing import Any, ClassVar

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model, Rate
from models.resnet import BasicBlock


class SimpleCNN(Model):
  """Conv(3->16, 5x5, /2) -> ReLU -> Conv(16->32, 5x5, /2) -> ReLU -> Dropout2d -> Linear.

  On 32x32 input the maps are 14x14 then 5x5, so the linear layer sees 5*5*32 = 800.
  """

  def __init__(self, num_classes: int = 10, *, drop_p: Rate = 0.2, image_size: int = 32,
               in_channels: int = 3, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    side = layers.conv_output_size(layers.conv_output_size(image_size, 5, 2), 5, 2)
    self.conv1 = layers.Conv(in_channels, 16, 5, 2, padding=0, dtype=dtype, rngs=rngs)
    self.conv2 = layers.Conv(16, 32, 5, 2, padding=0, dtype=dtype, rngs=rngs)
    self.dropout = nnx.Dropout(drop_p, broadcast_dims=(1, 2), rngs=rngs)  # one mask per map
    self.fc = layers.Linear(side * side * 32, num_classes, dtype=dtype, rngs=rngs)
    self.image_size, self.side = image_size, side

  def __call__(self, x):
    x = jax.nn.relu(self.conv1(x))
    x = self.dropout(jax.nn.relu(self.conv2(x)))
    layers.check_head_input(self, x, self.side, built_for=self.image_size)
    return self.fc(layers.flatten(x))


class TutorialResNet(Model):
  """5x5/2 stem + BN + ReLU + dropout, `num_res_blocks` residual blocks where every second
  block is followed by a 3x3/2 conv that doubles the filters, then flatten + linear."""

  residual: ClassVar[bool] = True

  def __init__(self, num_classes: int = 10, *, filt: int = 16, num_res_blocks: int = 4,
               drop_p: Rate = 0.1, image_size: int = 32, in_channels: int = 3,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    self.stem_conv = layers.Conv(in_channels, filt, 5, 2, padding=2, use_bias=False,
                                 dtype=dtype, rngs=rngs)
    self.stem_bn = layers.BatchNorm(filt, dtype=dtype, rngs=rngs)
    self.stem_dropout = nnx.Dropout(drop_p, rngs=rngs)
    side = layers.conv_output_size(image_size, 5, 2, (2, 2))
    body, filters = [], filt
    for i in range(num_res_blocks):
      # two 3x3 conv+BN with an identity shortcut, ReLU after the sum: ResNet's basic block
      body.append(BasicBlock(filters, filters, dtype=dtype, rngs=rngs))
      if i % 2 == 1:
        body += [layers.Conv(filters, 2 * filters, 3, 2, padding=1, dtype=dtype, rngs=rngs),
                 jax.nn.relu]
        filters, side = 2 * filters, layers.conv_output_size(side, 3, 2, (1, 1))
    self.blocks = layers.Sequential(*body)
    self.fc = layers.Linear(side * side * filters, num_classes, dtype=dtype, rngs=rngs)
    self.image_size, self.side = image_size, side

  def __call__(self, x):
    x = jax.nn.relu(self.stem_bn(self.stem_conv(x)))
    x = self.blocks(self.stem_dropout(x))
    layers.check_head_input(self, x, self.side, built_for=self.image_size)
    return self.fc(layers.flatten(x))
