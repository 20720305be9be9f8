# %% [markdown]
# # 3. 1x1 convolutions: Network in Network and ResNet's bottleneck
#
# A 1x1 convolution looks at one pixel at a time, so it cannot see shapes; what it does
# is mix channels. At every pixel it multiplies the C_in values by a C_in x C_out matrix:
# a fully connected layer, shared over the positions. Lin, Chen & Yan (2014) put two of
# them, with ReLUs, after each spatial convolution: their "mlpconv" layer is a mini
# neural network running over each patch instead of a linear filter. He et al. (2016)
# use them to shrink the channels before a 3x3 convolution and expand them after it, the
# bottleneck that makes ResNet-50 and deeper affordable.
#
# The networks here are the zoo's: `nin` (`models/nin.py`) and `models/resnet.py`'s
# blocks; parameters and multiply-adds come from `summary.py`'s layer table
# (`models/layer_stats.py`).

# %%
from flax import nnx
import jax
import matplotlib.pyplot as plt
import numpy as np

import lesson  # the repository on the import path (the notebooks run in tutorials/)
import models
from models import layer_stats, layers
from models.resnet import BasicBlock, Bottleneck

rng = np.random.default_rng(0)

# %% [markdown]
# ## A 1x1 convolution is a fully connected layer at every pixel

# %%
one_by_one = layers.Conv(16, 4, 1, padding=0, rngs=nnx.Rngs(0))
x = rng.normal(size=(1, 5, 5, 16)).astype(np.float32)
W, b = np.asarray(one_by_one.kernel[...]), np.asarray(one_by_one.bias[...])
per_pixel = x @ W[0, 0] + b                       # (1, 5, 5, 16) @ (16, 4): each pixel alone
by_conv = np.asarray(one_by_one(x))
print('kernel', W.shape, '-> output', by_conv.shape, '; largest difference',
      float(np.abs(by_conv - per_pixel).max()))
print('parameters:', layer_stats.count_params(one_by_one), '= 16 * 4 + 4')

# %% [markdown]
# ## Network in Network: an MLP slid over the image
#
# NiN's first mlpconv layer is a 5x5 convolution (3 -> 192 channels), then two 1x1
# convolutions (192 -> 160 -> 96), each followed by a ReLU. At any pixel, its output is
# therefore a three-layer perceptron, 75 -> 192 -> 160 -> 96, applied to the 5x5x3 patch
# around that pixel: the 5x5 kernel is the first layer's weight matrix and each 1x1
# kernel the next one's. Below, that perceptron runs on every patch of a random image,
# with the weights of the zoo's `nin` as initialised (any weights would do), against the
# model's own layers.

# %%
nin = models.create_model('nin', rngs=nnx.Rngs(0))
nin.eval()
image = rng.normal(size=(1, 32, 32, 3)).astype(np.float32)
relu = jax.nn.relu
mlpconv1 = np.asarray(relu(nin.cccp2(relu(nin.cccp1(relu(nin.conv1(image)))))))[0]

padded = np.pad(image[0], ((2, 2), (2, 2), (0, 0)))       # conv1's padding 2 keeps 32x32
patches = np.lib.stride_tricks.sliding_window_view(padded, (5, 5), axis=(0, 1))
patches = patches.transpose(0, 1, 3, 4, 2).reshape(32, 32, 75)  # (row, col, tap, channel)
weights = [(np.asarray(l.kernel[...]).reshape(-1, l.kernel.shape[-1]), np.asarray(l.bias[...]))
           for l in (nin.conv1, nin.cccp1, nin.cccp2)]
print('the perceptron:', ' -> '.join(str(w.shape[0]) for w, _ in weights), '->',
      weights[-1][0].shape[1])
hidden = patches
for w, bias in weights:
  hidden = np.maximum(hidden @ w + bias, 0)
print('mlpconv1 output', mlpconv1.shape, '; the perceptron on every patch', hidden.shape,
      '; largest difference', f'{np.abs(hidden - mlpconv1).max():.1e}')

# %% [markdown]
# The whole network (section 4 of the paper, the released CIFAR-10 model): three mlpconv
# layers and, instead of fully connected layers, global average pooling of the last one's
# ten maps, one per class.

# %%
nin_rows = layer_stats.layer_table(nnx.eval_shape(lambda: models.create_model('nin')), 32)
lesson.layer_table(nin_rows)

# %% [markdown]
# The parameter count from the widths and kernels alone, (k·k·C_in + 1)·C_out per
# convolution, and what the 1x1 convolutions cost:

# %%
ARCHITECTURE = [(5, 3, 192), (1, 192, 160), (1, 160, 96),     # k, C_in, C_out
                (5, 96, 192), (1, 192, 192), (1, 192, 192),
                (3, 192, 192), (1, 192, 192), (1, 192, 10)]
by_widths = sum((k * k * c_in + 1) * c_out for k, c_in, c_out in ARCHITECTURE)
convs = [r for r in nin_rows if r['type'] == 'Conv']
pointwise = [r for r in convs if r['name'].startswith('cccp')]
share = {what: sum(r[what] for r in pointwise) / sum(r[what] for r in convs)
         for what in ('params', 'macs')}
print(f'parameters: {layer_stats.count_params(nin):,} (model), {by_widths:,} (widths)')
print(f'{len(pointwise)} of {len(convs)} convolutions are 1x1: '
      f'{share["params"]:.0%} of the parameters, {share["macs"]:.0%} of the multiply-adds')

fig, axes = plt.subplots(1, 2, figsize=(10, 3))
colours = ['tab:orange' if r in pointwise else 'tab:blue' for r in convs]
for ax, what, label in zip(axes, ('params', 'macs'), ('parameters', 'multiply-adds')):
  ax.bar([r['name'] for r in convs], [r[what] for r in convs], color=colours)
  ax.set_title(f'NiN {label} per convolution (orange: 1x1)', fontsize=10)
  ax.tick_params(axis='x', labelsize=8, rotation=45)
lesson.show(fig)

last_map = [r for r in nin_rows if r['name'] == 'cccp5'][0]['output_shape']
fc_head = int(np.prod(last_map)) * 10 + 10
print(f'the classifier: global average pooling, 0 parameters; a fully connected layer '
      f'from cccp5\'s {"x".join(map(str, last_map))} maps to 10 classes would have '
      f'{fc_head:,}')

# %% [markdown]
# The six 1x1 layers triple the network's depth (three spatial convolutions, nine in
# all) for the shares of parameters and multiply-adds printed above: the lectures' 1x1
# convolutions "interspersed to make a network deeper cheaply", each adding a
# non-linearity.
#
# ## ResNet's bottleneck against two 3x3 convolutions
#
# A 256-channel map of 56x56 (ResNet-50's first stage). The basic block (Fig. 5 left of
# the ResNet paper) would run two 3x3 convolutions at 256 channels; the bottleneck (Fig. 5
# right) reduces to 64 channels with a 1x1, runs the 3x3 there, and expands back to 256
# with a second 1x1. Both are `models/resnet.py`'s blocks, traced on a 56x56x256 input.

# %%
def block_rows(block, channels):
  return layer_stats.layer_table(nnx.eval_shape(block), 56, channels)


def conv_cost(rows):
  """(parameters, multiply-adds) of a block's convolutions (its BatchNorms aside)."""
  return (sum(r['params'] for r in rows if r['type'] == 'Conv'),
          sum(r['macs'] for r in rows if r['type'] == 'Conv'))


bottleneck = block_rows(lambda: Bottleneck(256, 64, rngs=nnx.Rngs(0)), 256)
two_3x3 = block_rows(lambda: BasicBlock(256, 256, rngs=nnx.Rngs(0)), 256)
basic_64 = block_rows(lambda: BasicBlock(64, 64, rngs=nnx.Rngs(0)), 64)
lesson.layer_table(bottleneck)
lesson.layer_table(two_3x3)

# %%
costs = {'bottleneck, 256 -> 64 -> 64 -> 256': conv_cost(bottleneck),
         'two 3x3 at 256 channels': conv_cost(two_3x3),
         'two 3x3 at 64 channels (ResNet-34\'s block)': conv_cost(basic_64)}
lesson.table(['block on 56x56', 'conv parameters', 'conv multiply-adds'],
             [[name, f'{p:,}', f'{m:,}'] for name, (p, m) in costs.items()])
(p_bottleneck, m_bottleneck), (p_two, m_two), (p_basic, m_basic) = costs.values()
print(f'two 3x3 / bottleneck: {p_two / p_bottleneck:.1f}x the parameters, '
      f'{m_two / m_bottleneck:.1f}x the multiply-adds')

# %% [markdown]
# At the same 256 channels, the bottleneck needs nearly 17 times fewer parameters and
# multiply-adds. The paper's own comparison (section 4.1) is the third row: a bottleneck
# on 256 channels costs about what ResNet-34's basic block costs on 64, which is how
# ResNet-50 carries four times ResNet-34's channels for about the same arithmetic. The
# zoo's ResNet-50 (here as the paper built it, striding in the first 1x1:
# `stride_in_1x1=True`) holds exactly this block, as its `layer1.1`:

# %%
def traced(name, **kwargs):
  return layer_stats.layer_table(nnx.eval_shape(lambda: models.create_model(name, **kwargs)),
                                 224)


resnet34, resnet50 = traced('resnet34'), traced('resnet50', stride_in_1x1=True)
layer1_1 = [r for r in resnet50 if r['name'].startswith('layer1.1.')]
print(f"resnet50 layer1.1: {sum(r['params'] for r in layer1_1):,} parameters "
      f"(the block above: {sum(r['params'] for r in bottleneck):,}), input "
      f"{layer1_1[0]['input_shape']}")
widest = {name: max(r['output_shape'][-1] for r in rows if r['type'] == 'Conv')
          for name, rows in (('resnet34', resnet34), ('resnet50', resnet50))}
total_macs = {name: sum(r['macs'] for r in rows)
              for name, rows in (('resnet34', resnet34), ('resnet50', resnet50))}
for name in widest:
  print(f'{name}: widest map {widest[name]} channels, {total_macs[name] / 1e9:.2f} '
        'billion multiply-adds')

# %% [markdown]
# ## What the code confirmed

# %%
np.testing.assert_allclose(by_conv, per_pixel, rtol=1e-5, atol=1e-5)  # 1x1 = FC per pixel
assert layer_stats.count_params(one_by_one) == 16 * 4 + 4
np.testing.assert_allclose(hidden, mlpconv1, rtol=1e-4, atol=1e-5)  # an MLP over patches
assert by_widths == layer_stats.count_params(nin) == sum(r['params'] for r in nin_rows)
assert not any(r['type'] == 'Linear' for r in nin_rows)   # no fully connected layer
assert nin_rows[-1]['type'] == 'GlobalAvgPool' and nin_rows[-1]['output_shape'] == (10,)
assert len(pointwise) == 2 * (len(convs) - len(pointwise)) == 6  # depth tripled ...
assert share['params'] < 1 / 5 and share['macs'] < 1 / 3      # ... for a small share
assert p_bottleneck == 256 * 64 + 3 * 3 * 64 * 64 + 64 * 256
assert p_two == 2 * 3 * 3 * 256 * 256 and p_two / p_bottleneck > 16
assert p_two / p_bottleneck < 17 and m_two / m_bottleneck == p_two / p_bottleneck
assert abs(p_bottleneck / p_basic - 1) < 0.06             # "similar time complexity"
assert sum(r['params'] for r in layer1_1) == sum(r['params'] for r in bottleneck)
assert widest['resnet50'] == 4 * widest['resnet34']
assert abs(total_macs['resnet50'] / total_macs['resnet34'] - 1) < 0.1
