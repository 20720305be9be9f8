# %% [markdown]
# # 1. Convolution, by hand and by the layer
#
# A convolutional layer slides a small kernel over the image and, at each position,
# multiplies the kernel with the patch under it and adds the products up. This lesson
# computes that by hand on the lecture notes' 6x6 example and holds
# `models.layers.Conv`, the layer every network of the zoo is built from, to the hand
# computation; then the output size that padding, stride and dilation give, the four
# padding modes, and pooling.
#
# Every number below is computed by the cells that print it; the last cell asserts what
# the text claims.

# %%
import os
import tempfile

from flax import nnx
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import lesson  # the repository on the import path (the notebooks run in tutorials/)
from models import layer_stats, layers
from visualization import plots


# %% [markdown]
# ## A 6x6 image and a 3x3 kernel give 4x4
#
# The image is bright (10) on its left half and dark (0) on its right; the kernel is a
# vertical edge detector: a column of 1s, a column of 0s, a column of -1s. By hand,
# each output is the sum of the nine products of the kernel and the patch under it; the
# kernel fits in 6 - 3 + 1 = 4 positions along each axis.

# %%
def convolve(image, kernel):
  """The convolution of deep learning (no kernel flip: a cross-correlation), no
  padding, stride 1: each output is the sum of kernel * the patch under it, over
  every channel when the image and the kernel have several."""
  n, k = image.shape[0], kernel.shape[0]
  out = np.zeros((n - k + 1, n - k + 1))
  for i in range(n - k + 1):
    for j in range(n - k + 1):
      out[i, j] = np.sum(image[i:i + k, j:j + k] * kernel)
  return out


image = np.array([[10, 10, 10, 0, 0, 0]] * 6, np.float32)
edge = np.array([[1, 0, -1]] * 3, np.float32)
by_hand = convolve(image, edge)
print(by_hand)

# %% [markdown]
# The same with the zoo's layer: `layers.Conv(in_channels, out_channels, kernel_size,
# stride, padding)`, as PyTorch's `nn.Conv2d`. Its kernel is stored as (height, width,
# input channels, output channels) and it takes NHWC batches, so the image becomes a
# batch of one image of one channel. `padding='VALID'` adds no border.

# %%
def conv_with(kernel, padding='VALID', **kwargs):
  """A models.layers.Conv, without bias, holding `kernel` (k, k, C_in, C_out)."""
  k, _, c_in, c_out = kernel.shape
  conv = layers.Conv(c_in, c_out, k, padding=padding, use_bias=False, rngs=nnx.Rngs(0),
                     **kwargs)
  conv.kernel.set_value(jnp.asarray(kernel, jnp.float32))
  return conv


by_layer = np.asarray(conv_with(edge[:, :, None, None])(image[None, :, :, None]))[0, :, :, 0]
print('output shape', by_layer.shape)
print(by_layer)

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (title, values) in zip(axes, [('image 6x6', image), ('kernel 3x3', edge),
                                      ('output 4x4 (layers.Conv)', by_layer)]):
  ax.imshow(values, cmap='gray')
  middle = (values.min() + values.max()) / 2
  for (i, j), v in np.ndenumerate(values):
    ax.text(j, i, f'{v:g}', ha='center', va='center', fontsize=9,
            color='black' if v > middle else 'white')
  ax.set_title(title, fontsize=10)
  ax.axis('off')
lesson.show(fig)

# %% [markdown]
# The output is 30 where the kernel straddles the edge and 0 where the patch is flat: the
# kernel is a detector of bright-to-dark vertical edges.
#
# ## A 6x6x3 image and a 3x3x3 kernel still give 4x4
#
# A colour image has three channels. The kernel spans all of them: it is 3x3x3, and each
# output is the sum of 27 products, so one kernel still gives one 4x4 map. A layer with
# several kernels gives one map per kernel.

# %%
rng = np.random.default_rng(0)
colour = rng.integers(0, 10, (6, 6, 3)).astype(np.float32)
kernel3 = rng.integers(-1, 2, (3, 3, 3)).astype(np.float32)
colour_by_hand = convolve(colour, kernel3)
conv3 = conv_with(kernel3[..., None])
colour_by_layer = np.asarray(conv3(colour[None]))[0, :, :, 0]
print('kernel shape', conv3.kernel.shape, '-> output', colour_by_layer.shape)
print(colour_by_layer)

two_kernels = np.stack([kernel3, -kernel3], axis=-1)             # (3, 3, 3, 2)
print('two kernels:', conv_with(two_kernels)(colour[None]).shape[1:])
with_bias = layers.Conv(3, 1, 3, rngs=nnx.Rngs(0))
print('parameters of one 3x3x3 kernel and its bias:', layer_stats.count_params(with_bias))

# %% [markdown]
# ## Output size: padding, stride, dilation
#
# Along each axis, an input of n pixels, padded by p on both sides, read by a kernel of k
# taps spaced d apart (dilation d: the kernel spans d(k-1)+1 pixels) moved s pixels at a
# time (stride s), gives
#
# $$n_{out} = \left\lfloor \frac{n + 2p - d(k-1) - 1}{s} \right\rfloor + 1.$$
#
# The table evaluates it three ways for each row: written out here, by
# `layers.conv_output_size` (the one function every layer, the convnet's checks and
# `summary.py` use), and as the shape of what `layers.Conv` returns. The last rows are
# first layers of the zoo: LeNet-5's C1, AlexNet's (the paper's 227 input, and
# torchvision's 224 with padding 2) and ResNet's 7x7 stem.

# %%
CASES = [  # n, k, p, s, d
    (6, 3, 0, 1, 1), (6, 3, 1, 1, 1), (7, 3, 0, 2, 1), (7, 3, 1, 2, 1), (6, 3, 0, 1, 2),
    (8, 3, 2, 1, 2), (32, 5, 0, 1, 1), (227, 11, 0, 4, 1), (224, 11, 2, 4, 1),
    (224, 7, 3, 2, 1)]
rows, agree = [], []
for n, k, p, s, d in CASES:
  formula = (n + 2 * p - d * (k - 1) - 1) // s + 1
  function = layers.conv_output_size(n, k, s, (p, p), d)
  conv = layers.Conv(1, 1, k, s, padding=p, dilation=d, rngs=nnx.Rngs(0))
  shape = conv(jnp.zeros((1, n, n, 1))).shape[1]
  agree.append(formula == function == shape)
  rows.append([n, k, p, s, d, formula, function, shape])
lesson.table(['n', 'k', 'p', 's', 'd', 'formula', 'conv_output_size', 'Conv output'], rows)

# %% [markdown]
# `padding='SAME'` (TensorFlow's rule, which the zoo accepts too) pads just enough that
# the output is ceil(n / s): the input's size at stride 1.

# %%
same = {(n, s): layers.Conv(1, 1, 3, s, padding='SAME', rngs=nnx.Rngs(0))(
    jnp.zeros((1, n, n, 1))).shape[1] for n in (6, 7) for s in (1, 2)}
print({f'n={n}, s={s}': out for (n, s), out in same.items()})

# %% [markdown]
# visualize.py's `conv-arithmetic` mode draws one row of the table: the padded input
# (padding grey), the kernel at its first two positions, and the output grid.

# %%
n, k, s, p, d = 7, 3, 2, 1, 1
out = layers.conv_output_size(n, k, s, (p, p), d)
with tempfile.TemporaryDirectory() as tmp:
  coverage = plots.show_conv_arithmetic(n, k, s, (p, p), d, out, '',
                                        os.path.join(tmp, 'conv.png'))
  lesson.show_png(os.path.join(tmp, 'conv.png'), width=640)
print('how many output positions read each padded input pixel:')
print(coverage)

# %% [markdown]
# ## Padding modes
#
# What the border holds matters too. Zero padding (`padding_mode='zeros'`, the default
# everywhere) adds dark pixels; `reflect` mirrors the image without repeating its edge,
# `edge` repeats the edge pixel, `circular` wraps around. Here is a 4x4 ramp padded by 1
# in each mode, as `layers.Conv` pads it before a `VALID` convolution:

# %%
ramp = np.arange(1, 17, dtype=np.float32).reshape(4, 4)
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
padded = {}
for ax, (mode, numpy_mode) in zip(axes, layers.PADDING_MODES.items()):
  padded[mode] = np.pad(ramp, 1, mode=numpy_mode)
  ax.imshow(padded[mode], cmap='viridis', vmin=0, vmax=16)
  for (i, j), v in np.ndenumerate(padded[mode]):
    ax.text(j, i, f'{v:g}', ha='center', va='center', fontsize=7,
            color='white' if v < 8 else 'black')
  ax.add_patch(plt.Rectangle((0.5, 0.5), 4, 4, fill=False, edgecolor='red'))
  ax.set_title(f"padding_mode='{mode}'", fontsize=9)
  ax.axis('off')
lesson.show(fig)

# %% [markdown]
# A 3x3 kernel of ones (a box sum) over an image of ones shows the difference: with zero
# padding the border outputs sum fewer ones (4 in a corner, 6 along an edge, 9 inside); the
# other modes see ones everywhere.

# %%
ones, box = np.ones((1, 5, 5, 1), np.float32), np.ones((3, 3, 1, 1), np.float32)
box_sums = {mode: np.asarray(conv_with(box, padding=1, padding_mode=mode)(ones))[0, :, :, 0]
            for mode in layers.PADDING_MODES}
for mode, values in box_sums.items():
  print(f'{mode:>8}: first row {values[0].tolist()}')
# Each mode is the numpy padding of the table above followed by an unpadded convolution:
ramp_conv = {mode: np.asarray(conv_with(kernel3[:, :, :1, None], padding=1, padding_mode=mode)(
    ramp[None, :, :, None]))[0, :, :, 0] for mode in layers.PADDING_MODES}
pad_then_valid = {mode: convolve(padded[mode], kernel3[:, :, 0])
                  for mode in layers.PADDING_MODES}

# %% [markdown]
# ## Pooling
#
# Pooling slides a window too, but has no kernel: max pooling keeps the largest value of
# each window, average pooling their mean, each channel on its own. A 2x2 window at
# stride 2 halves the map; the output size follows the same formula (k = s = 2).

# %%
x = np.array([[1, 3, 2, 1], [2, 9, 1, 1], [1, 3, 2, 3], [5, 6, 1, 2]], np.float32)
blocks = x.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)  # the 2x2 windows
max_by_hand, avg_by_hand = blocks.max(axis=-1), blocks.mean(axis=-1)
max_pool, avg_pool = layers.MaxPool(2, 2), layers.AvgPool(2, 2)
max_by_layer = np.asarray(max_pool(x[None, :, :, None]))[0, :, :, 0]
avg_by_layer = np.asarray(avg_pool(x[None, :, :, None]))[0, :, :, 0]
print('max pool\n', max_by_layer)
print('average pool\n', avg_by_layer)
two_channels = np.stack([x, -x], axis=-1)[None]
print('a 4x4x2 input pools to', max_pool(two_channels).shape[1:],
      '; parameters of a pooling layer:', layer_stats.count_params(max_pool))
print("AlexNet's overlapping 3x3 pool, stride 2, on 55x55:",
      layers.MaxPool(3, 2)(jnp.zeros((1, 55, 55, 1))).shape[1:3])

# %% [markdown]
# ## What the code confirmed

# %%
assert by_hand.shape == by_layer.shape == (4, 4)            # 6x6 and 3x3 give 4x4
np.testing.assert_array_equal(by_layer, by_hand)            # the layer is the hand sum
np.testing.assert_array_equal(by_hand, [[0, 30, 30, 0]] * 4)  # 30 on the edge, 0 elsewhere
assert conv3.kernel.shape == (3, 3, 3, 1)                   # the kernel spans every channel
assert colour_by_layer.shape == (4, 4)                      # 6x6x3 still gives 4x4
np.testing.assert_allclose(colour_by_layer, colour_by_hand, rtol=1e-6)
assert layer_stats.count_params(with_bias) == 3 * 3 * 3 + 1
assert all(agree), rows                                     # formula, function and layer
assert all(out == -(-n // s) for (n, s), out in same.items())  # SAME: ceil(n / s)
assert coverage.shape == (n + 2 * p, n + 2 * p) and coverage.max() == 4
assert box_sums['zeros'][0, 0] == 4 and box_sums['zeros'][0, 2] == 6
assert box_sums['zeros'][2, 2] == 9
assert all((box_sums[mode] == 9).all() for mode in ('reflect', 'edge', 'circular'))
for mode in layers.PADDING_MODES:
  np.testing.assert_allclose(ramp_conv[mode], pad_then_valid[mode], rtol=1e-6)
np.testing.assert_array_equal(max_by_layer, max_by_hand)
np.testing.assert_array_equal(max_by_layer, [[9, 2], [6, 3]])
np.testing.assert_allclose(avg_by_layer, avg_by_hand)
assert layer_stats.count_params(max_pool) == 0
