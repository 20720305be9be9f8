"""Network in Network (Lin, Chen & Yan, ICLR 2014), the CIFAR-10 network of section 4.

Section 3.1's mlpconv layer is a small multilayer perceptron slid over the input: a
spatial convolution followed by 1x1 convolutions (the paper's "cascaded cross channel
parametric pooling", cccp), each with a ReLU. Section 4.1: three mlpconv layers, each
followed by a pooling that halves the maps, dropout on the outputs of all but the last,
and global average pooling of the last layer's maps, one map per class, as the
classifier (section 3.2): no fully connected layer.

The paper gives neither the kernels nor the widths ("the number of feature maps ... set
to the same number as in the corresponding maxout network", section 4.2); they are the
released model's (the Caffe Model Zoo's "Network in Network CIFAR10 Model", gist
mavenlin/e56253735ef32c3c296d, the port of the authors' cuda-convnet definition,
github.com/mavenlin/cuda-convnet, NIN/cifar-10_def):

  conv1 5x5 pad 2, 192 -> cccp1 160 -> cccp2 96  -> pool1 max 3x3/2 -> drop 0.5  32 -> 16
  conv2 5x5 pad 2, 192 -> cccp3 192 -> cccp4 192 -> pool2 avg 3x3/2 -> drop 0.5  16 -> 8
  conv3 3x3 pad 1, 192 -> cccp5 192 -> cccp6 10  -> pool3 global average         8 -> 1

Every convolution, cccp6 included, is followed by a ReLU, as in both releases: the
class maps averaged into the logits are non-negative. (The cuda-convnet definition
max-pools after the second block too; the Caffe model averages, as here.)

Pooling: Caffe rounds a pooling's output size up, ceil((n - 3) / 2) + 1, so the maps are
32 -> 16 -> 8 and pool3's 8x8 average is global; the last window overhangs the map by
one pixel and is averaged over the pixels it covers. PyTorch's ceil_mode computes the
same sizes and divisors (layers.MaxPool / AvgPool), so the pools take ceil_mode=True.
Floor rounding would give 15 and 7 and drop the last row and column; padding 1 (as some
PyTorch ports do) gives 16 and 8 but averages the zeros in. Pool3 is a global average
(layers.GlobalAvgPool), which is Caffe's 8x8 window at 32x32 and stays global at any
other image size.

Initialisation, as released: every kernel N(0, 0.05^2) (cuda-convnet's initW=0.05),
every bias 0. Layer names are the released model's (conv1, cccp1, ..., cccp6).
"""

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model, Rate

INIT_STD = 0.05  # cuda-convnet NIN/cifar-10_def: initW=0.05 for every layer


class NiN(Model):
  """`dropout` after the first two mlpconv layers (section 4.1: 0.5, the released
  model's); `num_classes` maps from the last 1x1 conv, averaged into the logits."""

  def __init__(self, num_classes: int = 10, *, dropout: Rate = 0.5, in_channels: int = 3,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if not 0 <= dropout < 1:
      raise ValueError(f'nin dropout must be in [0, 1) (the paper: 0.5); got {dropout}')
    conv = lambda c_in, c_out, kernel, pad: layers.Conv(
        c_in, c_out, kernel, padding=pad, kernel_init=nnx.initializers.normal(INIT_STD),
        dtype=dtype, rngs=rngs)
    # mlpconv 1, on 32x32 maps
    self.conv1 = conv(in_channels, 192, 5, 2)
    self.cccp1 = conv(192, 160, 1, 0)
    self.cccp2 = conv(160, 96, 1, 0)
    self.pool1 = layers.MaxPool(3, 2, ceil_mode=True)          # 32 -> 16
    self.drop1 = nnx.Dropout(dropout, rngs=rngs)
    # mlpconv 2, on 16x16
    self.conv2 = conv(96, 192, 5, 2)
    self.cccp3 = conv(192, 192, 1, 0)
    self.cccp4 = conv(192, 192, 1, 0)
    self.pool2 = layers.AvgPool(3, 2, ceil_mode=True)          # 16 -> 8
    self.drop2 = nnx.Dropout(dropout, rngs=rngs)
    # mlpconv 3, on 8x8: one map per class, averaged
    self.conv3 = conv(192, 192, 3, 1)
    self.cccp5 = conv(192, 192, 1, 0)
    self.cccp6 = conv(192, num_classes, 1, 0)
    self.pool3 = layers.GlobalAvgPool()                        # 8 -> 1

  def __call__(self, x):
    relu = jax.nn.relu
    x = relu(self.cccp2(relu(self.cccp1(relu(self.conv1(x))))))
    x = self.drop1(self.pool1(x))
    x = relu(self.cccp4(relu(self.cccp3(relu(self.conv2(x))))))
    x = self.drop2(self.pool2(x))
    x = relu(self.cccp6(relu(self.cccp5(relu(self.conv3(x))))))
    return self.pool3(x)
