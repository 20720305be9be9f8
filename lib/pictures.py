"""Arrays as pictures, with numpy (the trainer uses them, and must not pay for matplotlib; a
kernel leaves the devices by an explicit `jax.device_get`): tiles of filters and feature maps."""

import jax
import numpy as np


def conv_kernels(params, layer: str) -> np.ndarray:
  """The kernel (kh, kw, in, out) of the conv layer at `layer` ('C1', 'layer1.0.conv1':
  its path, as models/layer_stats.py names it) in a model's parameters as nested dicts
  (the blocks of a list under int keys), on the host (of parameters on the devices, only
  this array is copied)."""
  node = params
  for part in layer.split('.'):
    node = node[int(part) if part.isdigit() and int(part) in node else part]
  kernel = np.asarray(jax.device_get(node['kernel']), np.float32)
  if kernel.ndim != 4:
    raise ValueError(f'layer {layer!r} is not a convolution (kernel shape {kernel.shape})')
  return kernel


def filter_tiles(kernel: np.ndarray, per_channel: bool = False) -> np.ndarray:
  """Tiles of a conv kernel (kh, kw, in, out), each scaled to [0, 1] on its own.

  A first layer that reads RGB gives one colour tile per filter, (out, kh, kw, 3), as in
  AlexNet's Figure 3; otherwise (or with `per_channel`) every (filter, input channel)
  pair is a grey tile, (out * in, kh, kw).
  """
  kh, kw, cin, cout = kernel.shape
  if cin == 3 and not per_channel:
    tiles = np.moveaxis(kernel, 3, 0)                                # (out, kh, kw, 3)
  else:
    tiles = np.moveaxis(kernel, (3, 2), (0, 1)).reshape(cout * cin, kh, kw)
  axes = tuple(range(1, tiles.ndim))  # (each tile's own)
  low = tiles.min(axis=axes, keepdims=True)
  span = tiles.max(axis=axes, keepdims=True) - low
  return (tiles - low) / np.where(span > 0, span, 1)


def grid(tiles: np.ndarray, columns: int | None = None, pad: int = 1,
         scale: int = 1) -> np.ndarray:
  """Tiles (n, h, w[, 3]) in [0, 1] side by side on a white grid, `scale` pixels per
  value: uint8 (H, W, 3)."""
  tiles = np.asarray(tiles, np.float32)
  if tiles.ndim == 3:
    tiles = np.repeat(tiles[..., None], 3, axis=-1)
  tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
  n, h, w, _ = tiles.shape
  columns = columns or int(np.ceil(np.sqrt(n)))
  rows = -(-n // columns)
  out = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), np.float32)
  for i, tile in enumerate(tiles):
    r, c = divmod(i, columns)
    y, x = pad + r * (h + pad), pad + c * (w + pad)
    out[y:y + h, x:x + w] = tile
  return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
