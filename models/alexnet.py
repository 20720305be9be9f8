"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) and ZFNet (Zeiler & Fergus 2013).

`AlexNet` is torchvision's single-tower variant (64-192-384-256-256 filters, from
Krizhevsky's "One weird trick", 2014): 61,100,840 parameters at 1000 classes.
`AlexNetV1` is the 2012 paper's network (section 3.5, Fig. 2) in one tower without the
two-GPU channel grouping: 96-256-384-384-256 filters, LRN after conv1 and conv2
(section 3.3), overlapping 3x3/2 max pooling (section 3.4), 227x227 input.
`ZFNet` is Fig. 3 of Zeiler & Fergus: a 7x7/2 first layer with 96 filters, 5x5/2 second
layer, then AlexNet's 3x3 layers.

Modules are torchvision's: `features` and `classifier` numbered as in its alexnet
(features[0] the first conv, classifier[1] the first FC layer), and `avgpool`; the two
paper networks name theirs alike.
"""

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model, Rate

# Paper section 3.3: k=2, n=5, alpha=1e-4, beta=0.75 in b = a / (k + alpha sum a^2)^beta.
# PyTorch's LocalResponseNorm divides alpha by n, so alpha = 5 * 1e-4 gives the paper's.
PAPER_LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)

relu = jax.nn.relu


def classifier(in_features: int, num_classes: int, dropout: float, *, dropout_first: bool,
               dtype: Any, rngs: nnx.Rngs) -> layers.Sequential:
  """FC-4096, FC-4096, FC-classes with ReLU and dropout 0.5 (AlexNet section 4.2).

  torchvision's AlexNet drops out before each of the two hidden layers; VGG after them
  (before the second and third layer), hence `dropout_first`. The children are numbered
  as torchvision's `classifier`.
  """
  fc = lambda n_in, n_out: layers.Linear(n_in, n_out, dtype=dtype, rngs=rngs)
  drop = lambda: nnx.Dropout(dropout, rngs=rngs)
  hidden = lambda n_in: ([drop(), fc(n_in, 4096), relu] if dropout_first
                         else [fc(n_in, 4096), relu, drop()])
  return layers.Sequential(*hidden(in_features), *hidden(4096), fc(4096, num_classes))


class AlexNet(Model):
  """torchvision's alexnet: `features`, `avgpool` (to 6x6: any input size) and
  `classifier`, numbered as there."""

  def __init__(self, num_classes: int = 1000, *, dropout: Rate = 0.5,
               in_channels: int = 3, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    c = dict(dtype=dtype, rngs=rngs)
    self.features = layers.Sequential(
        layers.Conv(in_channels, 64, 11, 4, 2, **c), relu,          # 224 -> 55
        layers.MaxPool(3, 2),                                       # 55 -> 27
        layers.Conv(64, 192, 5, 1, 2, **c), relu,
        layers.MaxPool(3, 2),                                       # 27 -> 13
        layers.Conv(192, 384, 3, 1, 1, **c), relu,
        layers.Conv(384, 256, 3, 1, 1, **c), relu,
        layers.Conv(256, 256, 3, 1, 1, **c), relu,
        layers.MaxPool(3, 2))                                       # 13 -> 6
    self.avgpool = layers.AdaptiveAvgPool((6, 6))
    self.classifier = classifier(256 * 6 * 6, num_classes, dropout, dropout_first=True,
                                 **c)

  def __call__(self, x):
    x = self.avgpool(self.features(x))
    return self.classifier(layers.flatten(x))


class AlexNetV1(Model):
  image_size = 227  # the only input size its head takes

  def __init__(self, num_classes: int = 1000, *, dropout: Rate = 0.5,
               in_channels: int = 3, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    c = dict(dtype=dtype, rngs=rngs)
    self.features = self.make_features(in_channels, c)
    self.classifier = classifier(256 * 6 * 6, num_classes, dropout, dropout_first=True,
                                 **c)

  @staticmethod
  def make_features(in_channels: int, c: dict) -> layers.Sequential:
    return layers.Sequential(
        layers.Conv(in_channels, 96, 11, 4, 0, **c), relu,          # 227 -> 55
        layers.LocalResponseNorm(**PAPER_LRN),
        layers.MaxPool(3, 2),                                       # 55 -> 27
        layers.Conv(96, 256, 5, 1, 2, **c), relu,
        layers.LocalResponseNorm(**PAPER_LRN),
        layers.MaxPool(3, 2),                                       # 27 -> 13
        layers.Conv(256, 384, 3, 1, 1, **c), relu,
        layers.Conv(384, 384, 3, 1, 1, **c), relu,
        layers.Conv(384, 256, 3, 1, 1, **c), relu,
        layers.MaxPool(3, 2))                                       # 13 -> 6

  def __call__(self, x):
    x = self.features(x)
    layers.check_head_input(self, x, 6, native=self.image_size)
    return self.classifier(layers.flatten(x))


class ZFNet(AlexNetV1):  # Fig. 3's features, AlexNetV1's head
  image_size = 224  # the only input size its head takes

  @staticmethod
  def make_features(in_channels: int, c: dict) -> layers.Sequential:
    # Fig. 3's map sizes 110-55-26-13-13-13-6 need ceil-mode pooling (Caffe's rounding).
    pool = lambda: layers.MaxPool(3, 2, ceil_mode=True)
    return layers.Sequential(
        layers.Conv(in_channels, 96, 7, 2, 1, **c), relu,           # 224 -> 110
        pool(),                                                     # 110 -> 55
        layers.LocalResponseNorm(**PAPER_LRN),                      # "contrast normalised"
        layers.Conv(96, 256, 5, 2, 0, **c), relu,                   # 55 -> 26
        pool(),                                                     # 26 -> 13
        layers.LocalResponseNorm(**PAPER_LRN),
        layers.Conv(256, 384, 3, 1, 1, **c), relu,
        layers.Conv(384, 384, 3, 1, 1, **c), relu,
        layers.Conv(384, 256, 3, 1, 1, **c), relu,
        pool())                                                     # 13 -> 6
