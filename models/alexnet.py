"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) and ZFNet (Zeiler & Fergus 2013).

`AlexNet` is torchvision's single-tower variant (64-192-384-256-256 filters, from
Krizhevsky's "One weird trick", 2014): 61,100,840 parameters at 1000 classes.
`AlexNetV1` is the 2012 paper's network (section 3.5, Fig. 2) in one tower without the
two-GPU channel grouping: 96-256-384-384-256 filters, LRN after conv1 and conv2
(section 3.3), overlapping 3x3/2 max pooling (section 3.4), 227x227 input.
`ZFNet` is Fig. 3 of Zeiler & Fergus: a 7x7/2 first layer with 96 filters, 5x5/2 second
layer, then AlexNet's 3x3 layers.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from models import layers

# Paper section 3.3: k=2, n=5, alpha=1e-4, beta=0.75 in b = a / (k + alpha sum a^2)^beta.
# PyTorch's LocalResponseNorm divides alpha by n, so alpha = 5 * 1e-4 gives the paper's.
PAPER_LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)


def classifier(x, num_classes, dropout, train, dtype, dropout_first=True):
  """FC-4096, FC-4096, FC-classes with ReLU and dropout 0.5 (AlexNet section 4.2).

  torchvision's AlexNet drops out before each of the two hidden layers; VGG after them
  (before the second and third layer), hence `dropout_first`.
  """
  for i, width in enumerate((4096, 4096)):
    if dropout_first or i > 0:
      x = nn.Dropout(dropout, name=f'dropout{i + 1}')(x, deterministic=not train)
    x = nn.relu(nn.Dense(width, dtype=dtype, name=f'fc{i + 1}')(x))
  if not dropout_first:
    x = nn.Dropout(dropout, name='dropout3')(x, deterministic=not train)
  return nn.Dense(num_classes, dtype=dtype, name='fc3')(x)


def check_head_input(module, x, expected_hw):
  """A fixed-size head needs a fixed-size map: say which input size gives it."""
  if x.shape[1:3] != tuple(expected_hw):
    raise ValueError(
        f'{type(module).__name__}: the fully connected head needs a {expected_hw[0]}x'
        f'{expected_hw[1]} feature map but this image size gives {x.shape[1]}x{x.shape[2]};'
        f' use the native input size ({module.image_size}x{module.image_size}).')


class AlexNet(nn.Module):
  num_classes: int = 1000
  dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = lambda f, k, s, p, name: layers.Conv(f, k, s, padding=p, dtype=self.dtype,
                                                name=name)
    x = nn.relu(conv(64, 11, 4, 2, 'conv1')(x))
    x = layers.MaxPool(3, 2, name='pool1')(x)
    x = nn.relu(conv(192, 5, 1, 2, 'conv2')(x))
    x = layers.MaxPool(3, 2, name='pool2')(x)
    x = nn.relu(conv(384, 3, 1, 1, 'conv3')(x))
    x = nn.relu(conv(256, 3, 1, 1, 'conv4')(x))
    x = nn.relu(conv(256, 3, 1, 1, 'conv5')(x))
    x = layers.MaxPool(3, 2, name='pool5')(x)
    x = layers.AdaptiveAvgPool((6, 6), name='avgpool')(x)
    return classifier(layers.flatten(x), self.num_classes, self.dropout, train, self.dtype)


class AlexNetV1(nn.Module):
  num_classes: int = 1000
  dropout: float = 0.5
  dtype: Any = jnp.float32
  image_size = 227

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = lambda f, k, s, p, name: layers.Conv(f, k, s, padding=p, dtype=self.dtype,
                                                name=name)
    x = nn.relu(conv(96, 11, 4, 0, 'conv1')(x))                 # 227 -> 55
    x = layers.LocalResponseNorm(**PAPER_LRN, name='lrn1')(x)
    x = layers.MaxPool(3, 2, name='pool1')(x)                   # 55 -> 27
    x = nn.relu(conv(256, 5, 1, 2, 'conv2')(x))
    x = layers.LocalResponseNorm(**PAPER_LRN, name='lrn2')(x)
    x = layers.MaxPool(3, 2, name='pool2')(x)                   # 27 -> 13
    x = nn.relu(conv(384, 3, 1, 1, 'conv3')(x))
    x = nn.relu(conv(384, 3, 1, 1, 'conv4')(x))
    x = nn.relu(conv(256, 3, 1, 1, 'conv5')(x))
    x = layers.MaxPool(3, 2, name='pool5')(x)                   # 13 -> 6
    check_head_input(self, x, (6, 6))
    return classifier(layers.flatten(x), self.num_classes, self.dropout, train, self.dtype)


class ZFNet(nn.Module):
  num_classes: int = 1000
  dropout: float = 0.5
  dtype: Any = jnp.float32
  image_size = 224

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = lambda f, k, s, p, name: layers.Conv(f, k, s, padding=p, dtype=self.dtype,
                                                name=name)
    # Fig. 3's map sizes 110-55-26-13-13-13-6 need ceil-mode pooling (Caffe's rounding).
    pool = lambda name: layers.MaxPool(3, 2, ceil_mode=True, name=name)
    x = nn.relu(conv(96, 7, 2, 1, 'conv1')(x))                  # 224 -> 110
    x = pool('pool1')(x)                                        # 110 -> 55
    x = layers.LocalResponseNorm(**PAPER_LRN, name='lrn1')(x)   # "contrast normalised"
    x = nn.relu(conv(256, 5, 2, 0, 'conv2')(x))                 # 55 -> 26
    x = pool('pool2')(x)                                        # 26 -> 13
    x = layers.LocalResponseNorm(**PAPER_LRN, name='lrn2')(x)
    x = nn.relu(conv(384, 3, 1, 1, 'conv3')(x))
    x = nn.relu(conv(384, 3, 1, 1, 'conv4')(x))
    x = nn.relu(conv(256, 3, 1, 1, 'conv5')(x))
    x = pool('pool5')(x)                                        # 13 -> 6
    check_head_input(self, x, (6, 6))
    return classifier(layers.flatten(x), self.num_classes, self.dropout, train, self.dtype)
