"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998, "Gradient-based learning applied to
document recognition", section II.B and Fig. 2).

32x32 input -> C1 6@5x5 -> S2 2x2 -> C3 16@5x5 -> S4 2x2 -> C5 120@5x5 (a 1x1 map, so
a convolution equals a full connection) -> F6 84 -> output. C3 is fully connected to S2
here (the paper's Table I connects each C3 map to a subset; full connections are the
modern convention) giving 61,706 parameters at 10 classes.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from models import layers


class LeNet5(nn.Module):
  num_classes: int = 10
  pooling: str = 'avg'        # the paper's S-layers average (then scale); 'max' is common
  activation: str = 'tanh'    # the paper's squashing function; 'relu' trains faster
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.pooling not in ('avg', 'max'):
      raise ValueError(f"lenet5 pooling must be 'avg' or 'max'; got {self.pooling!r}")
    act = layers.activation(self.activation)
    pool = layers.AvgPool if self.pooling == 'avg' else layers.MaxPool
    conv = lambda f, name: layers.Conv(f, 5, padding='VALID', dtype=self.dtype, name=name)
    x = act(conv(6, 'C1')(x))               # 32 -> 28
    x = pool(2, 2, name='S2')(x)            # 28 -> 14
    x = act(conv(16, 'C3')(x))              # 14 -> 10
    x = pool(2, 2, name='S4')(x)            # 10 -> 5
    x = act(conv(120, 'C5')(x))             # 5 -> 1
    x = layers.flatten(x)
    x = act(nn.Dense(84, dtype=self.dtype, name='F6')(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name='output')(x)
