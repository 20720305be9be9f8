"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks"), Table 1.

Each configuration is the paper's column, written as a list: an int is a 3x3 conv with
that many filters (stride 1, padding 1), ('1x1', n) is configuration C's 1x1 conv, 'LRN'
is A-LRN's local response normalisation, and 'M' a 2x2/2 max pool. The head is
torchvision's: adaptive average pooling to 7x7 (an identity at 224x224), then
FC-4096, FC-4096, FC-classes with dropout 0.5 after the two hidden layers (section 3.1).
`head='linear'` replaces it by one linear layer on the flattened final map: the usual
VGG for 32x32 CIFAR images, whose final map is 1x1x512 (VGG-16 with BN at 10 classes:
14.7 M parameters instead of the FC head's 134.3 M).

Modules are torchvision's: `features` numbered as its `make_layers` numbers them (a conv,
its BN, its ReLU, a pool: one index each), `avgpool` and `classifier`.
"""

from typing import Any, ClassVar, Literal

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers
from models.base import Model, Rate
from models.alexnet import PAPER_LRN, classifier

CONFIGS = {
    'A': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'A-LRN': [64, 'LRN', 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'B': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'C': [64, 64, 'M', 128, 128, 'M', 256, 256, ('1x1', 256), 'M',
          512, 512, ('1x1', 512), 'M', 512, 512, ('1x1', 512), 'M'],
    'D': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
          512, 512, 512, 'M'],
    'E': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
          512, 512, 512, 512, 'M'],
}


def make_features(config: str, batch_norm: bool, in_channels: int, *, dtype: Any,
                  rngs: nnx.Rngs) -> layers.Sequential:
  """The convolutional part of a Table 1 column, as torchvision's `make_layers`."""
  stack = []
  for item in CONFIGS[config]:
    if item == 'M':
      stack.append(layers.MaxPool(2, 2))
    elif item == 'LRN':
      stack.append(layers.LocalResponseNorm(**PAPER_LRN))
    else:
      kernel, width = (1, item[1]) if isinstance(item, tuple) else (3, item)
      stack.append(layers.Conv(in_channels, width, kernel, padding=kernel // 2, dtype=dtype,
                               rngs=rngs))
      if batch_norm:
        stack.append(layers.BatchNorm(width, dtype=dtype, rngs=rngs))
      stack.append(jax.nn.relu)
      in_channels = width
  return layers.Sequential(*stack)


class VGG(Model):
  dense_evaluation: ClassVar[bool] = True  # __call__(dense=True): section 3.2

  def __init__(self, config: str = 'D', num_classes: int = 1000, *,
               batch_norm: bool = False, dropout: Rate = 0.5,
               head: Literal['fc', 'linear'] = 'fc',  # 'fc': the paper's three FC layers; 'linear': one (CIFAR)
               image_size: int = 224, in_channels: int = 3, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    if config not in CONFIGS:
      raise ValueError(f'VGG config must be one of {sorted(CONFIGS)}; got {config!r}')
    if head not in ('fc', 'linear'):
      raise ValueError(f"VGG head must be 'fc' or 'linear'; got {head!r}")
    self.features = make_features(config, batch_norm, in_channels, dtype=dtype, rngs=rngs)
    if head == 'linear':  # on the final map: five 2x2/2 pools, 1x1 at 32x32
      self.side = image_size // 2 ** CONFIGS[config].count('M')
      self.fc = layers.Linear(512 * self.side ** 2, num_classes, dtype=dtype, rngs=rngs)
    else:
      self.avgpool = layers.AdaptiveAvgPool((7, 7))
      self.classifier = classifier(512 * 7 * 7, num_classes, dropout, dropout_first=False,
                                   dtype=dtype, rngs=rngs)
    self.head, self.image_size = head, image_size

  def __call__(self, x, dense: bool = False):
    """Logits; `dense=True` is the paper's dense evaluation (section 3.2): the FC layers
    applied as convolutions (7x7, then 1x1) over the whole image's feature map, and the
    class score map averaged, for test images of any size. Same parameters."""
    x = self.features(x)
    if self.head == 'linear':
      layers.check_head_input(self, x, self.side, built_for=self.image_size)
      return self.fc(layers.flatten(x))
    if dense:  # fc1 as a 7x7 valid conv: its input is every 7x7 window, flattened
      scores = self.classifier(layers.windows(x, 7))  # a Linear acts on the last axis
      return scores.mean(axis=(1, 2))
    return self.classifier(layers.flatten(self.avgpool(x)))
