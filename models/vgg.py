"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks"), Table 1.

Each configuration is the paper's column, written as a list: an int is a 3x3 conv with
that many filters (stride 1, padding 1), ('1x1', n) is configuration C's 1x1 conv, 'LRN'
is A-LRN's local response normalisation, and 'M' a 2x2/2 max pool. The head is
torchvision's: adaptive average pooling to 7x7 (an identity at 224x224), then
FC-4096, FC-4096, FC-classes with dropout 0.5 after the two hidden layers (section 3.1).
`head='linear'` replaces it by one linear layer on the flattened final map: the usual
VGG for 32x32 CIFAR images, whose final map is 1x1x512 (VGG-16 with BN at 10 classes:
14.7 M parameters instead of the FC head's 134.3 M).
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from models import layers
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


class VGG(nn.Module):
  dense_evaluation: ClassVar[bool] = True  # __call__(dense=True): section 3.2
  config: str = 'D'
  num_classes: int = 1000
  batch_norm: bool = False
  dropout: float = 0.5
  head: str = 'fc'           # 'fc': the paper's three FC layers; 'linear': one (CIFAR)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False, dense: bool = False):
    """Logits; `dense=True` is the paper's dense evaluation (section 3.2): the FC layers
    applied as convolutions (7x7, then 1x1) over the whole image's feature map, and the
    class score map averaged, for test images of any size. Same parameters."""
    if self.config not in CONFIGS:
      raise ValueError(f'VGG config must be one of {sorted(CONFIGS)}; got {self.config!r}')
    if self.head not in ('fc', 'linear'):
      raise ValueError(f"VGG head must be 'fc' or 'linear'; got {self.head!r}")
    stage, conv_in_stage = 1, 0
    for item in CONFIGS[self.config]:
      if item == 'M':
        x = layers.MaxPool(2, 2, name=f'pool{stage}')(x)
        stage, conv_in_stage = stage + 1, 0
      elif item == 'LRN':
        x = layers.LocalResponseNorm(**PAPER_LRN, name=f'lrn{stage}')(x)
      else:
        kernel, width = (1, item[1]) if isinstance(item, tuple) else (3, item)
        conv_in_stage += 1
        name = f'conv{stage}_{conv_in_stage}'
        x = layers.Conv(width, kernel, padding=kernel // 2, dtype=self.dtype, name=name)(x)
        if self.batch_norm:
          x = layers.BatchNorm(use_running_average=not train, dtype=self.dtype,
                               name=f'bn{stage}_{conv_in_stage}')(x)
        x = nn.relu(x)
    if self.head == 'linear':
      return nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(layers.flatten(x))
    if dense:  # fc1 as a 7x7 valid conv: its input is every 7x7 window, flattened
      scores = classifier(layers.windows(x, 7), self.num_classes, self.dropout, train,
                          self.dtype, dropout_first=False)  # Dense acts on the last axis
      return scores.mean(axis=(1, 2))
    x = layers.AdaptiveAvgPool((7, 7), name='avgpool')(x)
    return classifier(layers.flatten(x), self.num_classes, self.dropout, train, self.dtype,
                      dropout_first=False)
