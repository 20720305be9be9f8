"""airbench (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv
2404.00498; the `airbench` package 0.1.8): a small VGG-like network built for speed.

  2x2 whitening conv (frozen, from the training patches' covariance; bias trained for the
  first epochs) -> GELU -> three conv groups [conv 3x3, maxpool 2, BN, GELU, conv 3x3,
  BN, GELU] -> maxpool 3 -> linear (no bias) -> x 1/9

airbench94: widths 64-256-256. airbench95: 128-384-384. airbench96: 128-512-512 with a
third conv in each group, added to the group's pooled input (a residual). Convolutions
have no bias and start as identities where they can (dirac: output i copies input i
for i below the input width); the rest as PyTorch's default. BatchNorm has no trainable
scale (frozen at 1), eps 1e-12, and keeps its running statistics with weight 0.6 on the
old value (PyTorch's momentum 0.4).
"""

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from models import layers
from models.base import Additions, Model

WIDTHS = {'airbench94': (64, 256, 256), 'airbench95': (128, 384, 384),
          'airbench96': (128, 512, 512)}
WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4


# PyTorch's default for Conv2d and Linear weights: kaiming_uniform(a=sqrt(5)), that is
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)): a variance of 1/(3 fan_in).
torch_default_init = nnx.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


def dirac_init(key, shape, dtype=jnp.float32):
  """PyTorch's default, then torch.nn.init.dirac_ on the first `in` output filters: a 3x3
  conv that starts by passing its first channels through."""
  kh, kw, cin, cout = shape
  n = min(cin, cout)
  kernel = torch_default_init(key, shape, dtype).at[..., :n].set(0)
  return kernel.at[kh // 2, kw // 2, :, :n].set(jnp.eye(cin, n, dtype=dtype))


def whitening_weights(images, eps: float = WHITEN_EPS) -> np.ndarray:
  """The whitening conv's kernel (2, 2, 3, 24) HWIO from float NHWC images (normalised,
  as the network sees them): the eigenvectors of their 2x2 patches' covariance, each
  scaled by 1/sqrt(eigenvalue + eps), largest eigenvalue first, then their negatives."""
  x = np.asarray(images, np.float32)
  k = WHITEN_KERNEL
  patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
  patches = patches.reshape(-1, x.shape[-1] * k * k)  # (c, h, w) order, as the reference
  covariance = patches.T @ patches / len(patches)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
  eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1].T  # rows, descending
  scaled = eigenvectors / np.sqrt(eigenvalues + eps)[:, None]
  filters = np.concatenate([scaled, -scaled]).reshape(-1, x.shape[-1], k, k)  # OIHW
  return np.ascontiguousarray(filters.transpose(2, 3, 1, 0))  # HWIO


class ConvGroup(nnx.Module):
  """The package's ConvGroup (the module docstring); airbench96's `residual` adds a third
  conv -> BN -> GELU and the pooled input."""

  def __init__(self, in_channels: int, width: int, residual: bool = False, *,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    conv = lambda cin: layers.Conv(cin, width, 3, padding='SAME', use_bias=False,
                                   kernel_init=dirac_init, dtype=dtype, rngs=rngs)
    norm = lambda: layers.BatchNorm(width, momentum=0.6, epsilon=1e-12, use_scale=False,
                                    dtype=dtype, rngs=rngs)
    self.conv1 = conv(in_channels)
    self.pool = layers.MaxPool(2, 2)
    self.norm1 = norm()
    self.conv2 = conv(width)
    self.norm2 = norm()
    self.conv3, self.norm3 = (conv(width), norm()) if residual else (None, None)

  def __call__(self, x):
    pooled = gelu(self.norm1(self.pool(self.conv1(x))))
    x = gelu(self.norm2(self.conv2(pooled)))
    if self.conv3 is not None:
      x = gelu(self.norm3(self.conv3(x))) + pooled
    return x


def gelu(x):
  return jax.nn.gelu(x, approximate=False)  # torch.nn.GELU: the exact erf form


class AirBench(Model):
  """airbench's network (the module docstring)."""

  def __init__(self, variant: str = 'airbench94', num_classes: int = 10, *,
               in_channels: int = 3, image_size: int = 32, scaling_factor: float = 1 / 9,
               whiten_bias_epochs: float = 3,  # the whitening bias trains for these epochs
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if variant not in WIDTHS:
      raise ValueError(f'airbench variant must be one of {sorted(WIDTHS)}; got {variant!r}')
    widths = WIDTHS[variant]
    # each eigenvector of the 2x2xC patches and its negative: 24 filters on RGB
    whiten_width = 2 * in_channels * WHITEN_KERNEL ** 2
    self.whiten = layers.Conv(in_channels, whiten_width, WHITEN_KERNEL, padding='VALID',
                              kernel_init=torch_default_init, dtype=dtype, rngs=rngs)
    self.block1, self.block2, self.block3 = (
        ConvGroup(cin, width, residual=variant == 'airbench96', dtype=dtype, rngs=rngs)
        for cin, width in zip((whiten_width, *widths), widths))
    self.pool = layers.MaxPool(3, 3)
    # 32 -> 31 (whiten) -> 15 -> 7 -> 3 (the groups' 2x2 pools) -> 1 (the 3x3 pool)
    size = (image_size - WHITEN_KERNEL + 1) // 2 ** len(widths) // 3
    self.head = layers.Linear(size * size * widths[-1], num_classes, use_bias=False,
                              kernel_init=torch_default_init, dtype=dtype, rngs=rngs)
    self.scaling_factor = scaling_factor
    self.whiten_bias_epochs = whiten_bias_epochs

  def additions(self) -> Additions:
    # The whitening kernel is set from the first 5,000 training images (whitening_weights)
    # and never trained; its bias trains for the first `whiten_bias_epochs` epochs only.
    return Additions(frozen=('whiten/kernel',),
                     trained_for_epochs={'whiten/bias': self.whiten_bias_epochs},
                     init_from_data=self.init_from_data, init_images=5000)

  def init_from_data(self, params: dict, images) -> dict:
    """`params` (a pure dict) with the whitening kernel of `images` (normalised, as
    airbench's train() takes them)."""
    return {**params, 'whiten': {**params['whiten'], 'kernel': whitening_weights(images)}}

  def __call__(self, x):
    x = gelu(self.whiten(x))
    x = self.block3(self.block2(self.block1(x)))
    x = self.head(layers.flatten(self.pool(x)))
    return x * self.scaling_factor
