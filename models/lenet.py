"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based learning applied to
document recognition", section II.B and Fig. 2).

32x32 input -> C1 6@5x5 -> S2 2x2 -> C3 16@5x5 -> S4 2x2 -> C5 120@5x5 (a 1x1 map, so
a convolution equals a full connection) -> F6 84 -> output. C3 is fully connected to S2
here (the paper's Table I connects each C3 map to a subset; full connections are the
modern convention) giving 61,706 parameters at 10 classes.

Layers keep the paper's names (C1 ... F6, output): there is no torchvision LeNet.
"""

from typing import Any, Literal

from flax import nnx
import jax.numpy as jnp

from models import layers
from models.base import Model


class LeNet5(Model):
  """pooling: 'avg' as the paper's S-layers (which then scale), or 'max' as is common.
  activation: 'tanh', the paper's squashing function, or e.g. 'relu' (trains faster)."""

  def __init__(self, num_classes: int = 10, *, pooling: Literal['avg', 'max'] = 'avg',
               activation: Literal[tuple(layers.ACTIVATIONS)] = 'tanh', image_size: int = 32, in_channels: int = 3,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if pooling not in ('avg', 'max'):
      raise ValueError(f"lenet5 pooling must be 'avg' or 'max'; got {pooling!r}")
    s4 = image_size  # the side of S4's maps, C5's input: 5 at the paper's 32x32 input
    for kernel, stride in ((5, 1), (2, 2), (5, 1), (2, 2)):  # C1 S2 C3 S4
      s4 = layers.conv_output_size(s4, kernel, stride)
    if s4 < 5:
      raise ValueError(f'lenet5: image_size={image_size} leaves C5 (5x5) a {s4}x{s4} input; '
                       'use image_size >= 32 (section II.B: the 28x28 digits are centred '
                       'in a 32x32 input)')
    side = s4 - 4  # C5's maps
    self.act = layers.activation(activation)
    pool = layers.AvgPool if pooling == 'avg' else layers.MaxPool
    conv = lambda c_in, c_out: layers.Conv(c_in, c_out, 5, padding='VALID', dtype=dtype,
                                           rngs=rngs)
    self.C1 = conv(in_channels, 6)          # 32 -> 28
    self.S2 = pool(2, 2)                    # 28 -> 14
    self.C3 = conv(6, 16)                   # 14 -> 10
    self.S4 = pool(2, 2)                    # 10 -> 5
    self.C5 = conv(16, 120)                 # 5 -> 1
    self.F6 = layers.Linear(120 * side * side, 84, dtype=dtype, rngs=rngs)
    self.output = layers.Linear(84, num_classes, dtype=dtype, rngs=rngs)
    self.image_size, self.c5_side = image_size, side

  def __call__(self, x):
    x = self.S2(self.act(self.C1(x)))
    x = self.S4(self.act(self.C3(x)))
    x = self.act(self.C5(x))
    layers.check_head_input(self, x, self.c5_side, built_for=self.image_size)
    x = self.act(self.F6(layers.flatten(x)))
    return self.output(x)
