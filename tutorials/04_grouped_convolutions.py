# %% [markdown]
# # 4. Grouped and depthwise convolutions
#
# A convolution's kernel spans every input channel (lesson 1). `groups` partitions the
# channels: with g groups, the C_in inputs and the C_out outputs are split into g
# consecutive blocks, and output block i convolves input block i only. Each kernel then
# spans C_in/g channels, so the parameters and multiply-adds are divided by g. AlexNet
# split its second, fourth and fifth convolutions into two groups, one per GPU
# (Krizhevsky et al. 2012, Fig. 2); ResNeXt uses 32; with g = C_in every channel is its
# own group, a depthwise convolution, which MobileNet follows with a 1x1 convolution that
# mixes the channels (a depthwise separable convolution).
#
# `models.layers.Conv` takes `groups` as PyTorch's `nn.Conv2d` does; the generic convnet
# takes it per stage (`models/convnet.py`, `configs/convnet.py:groups=`).

# %%
from flax import nnx
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import lesson  # the repository on the import path (the notebooks run in tutorials/)
import models
from configs import convnet as convnet_config
from models import layer_stats, layers

rng = np.random.default_rng(0)

# %% [markdown]
# ## What groups computes
#
# A grouped convolution of 8 channels in 4 groups, against four separate convolutions of
# 2 channels each, on the matching channel blocks, with the grouped kernel's slices: the
# kernel holds (3, 3, C_in/g, C_out), and output block i's columns belong to group i.

# %%
C_IN, C_OUT, G = 8, 8, 4
grouped = layers.Conv(C_IN, C_OUT, 3, groups=G, use_bias=False, rngs=nnx.Rngs(0))
x = rng.normal(size=(1, 10, 10, C_IN)).astype(np.float32)
kernel = np.asarray(grouped.kernel[...])
print('grouped kernel', kernel.shape)
blocks = []
for i in range(G):
  single = layers.Conv(C_IN // G, C_OUT // G, 3, use_bias=False, rngs=nnx.Rngs(0))
  single.kernel.set_value(jnp.asarray(kernel[..., i * C_OUT // G:(i + 1) * C_OUT // G]))
  blocks.append(np.asarray(single(x[..., i * C_IN // G:(i + 1) * C_IN // G])))
separately = np.concatenate(blocks, axis=-1)
together = np.asarray(grouped(x))
print('largest difference, grouped against four convolutions:',
      f'{np.abs(together - separately).max():.1e}')

# %% [markdown]
# ## Parameters and multiply-adds as groups goes from 1 to the channel count
#
# One 3x3 convolution, 64 channels to 64, on a 32x32 map, traced by
# `layer_stats.layer_table`; groups runs over the divisors of 64.

# %%
C, SIZE = 64, 32


def one_conv(groups):
  """(parameters, multiply-adds) of one 3x3 conv, C to C channels, without bias."""
  row, = layer_stats.layer_table(nnx.eval_shape(lambda: layers.Sequential(  # (its layers)
      layers.Conv(C, C, 3, groups=groups, use_bias=False, rngs=nnx.Rngs(0)))), SIZE, C)
  return row['params'], row['macs']


groups_range = [g for g in range(1, C + 1) if C % g == 0]
costs = {g: one_conv(g) for g in groups_range}
full_params, full_macs = costs[1]
lesson.table(['groups', 'channels per group', 'kernel', 'parameters', 'multiply-adds',
              'of groups=1'],
             [[g, C // g, f'3x3x{C // g}x{C}', f'{p:,}', f'{m:,}', f'1/{full_params // p}']
              for g, (p, m) in costs.items()])

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(groups_range, [costs[g][0] for g in groups_range], 'o-', base=2,
          label='parameters')
ax.loglog(groups_range, [costs[g][1] / SIZE ** 2 for g in groups_range], 'x--', base=2,
          label='multiply-adds / (32·32)')
ax.set_xlabel('groups (64 = depthwise)')
ax.set_title('a 3x3 convolution, 64 -> 64 channels', fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
lesson.show(fig)

# %% [markdown]
# ## Depthwise separable: depthwise 3x3, then pointwise 1x1
#
# A depthwise 3x3 convolution (groups = 64) filters each channel alone; a 1x1
# convolution then mixes them. Together they cost 9C + C² against the full convolution's
# 9C²: a ratio of 1/C + 1/9.

# %%
separable = layer_stats.layer_table(nnx.eval_shape(lambda: layers.Sequential(
    layers.Conv(C, C, 3, groups=C, use_bias=False, rngs=nnx.Rngs(0)),
    layers.Conv(C, C, 1, padding=0, use_bias=False, rngs=nnx.Rngs(1)))), SIZE, C)
separable_params = sum(r['params'] for r in separable)
separable_macs = sum(r['macs'] for r in separable)
print(f'depthwise + pointwise: {separable_params:,} parameters, {separable_macs:,} '
      f'multiply-adds; full 3x3: {full_params:,}, {full_macs:,}; ratio '
      f'{separable_params / full_params:.4f} (1/C + 1/9 = {1 / C + 1 / 9:.4f})')

# %% [markdown]
# ## In the generic convnet: a stage's `groups`
#
# `configs/convnet.py` builds the CIFAR-10 convnet of the sweeps: three stages of 32, 64
# and 128 channels, two 3x3 convolutions each; `groups=g` groups the convolutions of
# stages 2 and 3 (stage 1 reads the image's 3 channels and stays a full convolution, as
# MobileNet's first layer). At g = 32, stage 2's first convolution, reading stage 1's 32
# channels, is depthwise. `configs/sweeps/groups.py` trains these; here is what each
# costs (`python summary.py --config=configs/convnet.py:groups=8 --num_classes=10` prints
# the full table of one).

# %%
def convnet(groups):
  """The layer table of configs/convnet.py:groups=G's model, with shapes only."""
  config = convnet_config.get_config(f'groups={groups}')
  model = nnx.eval_shape(lambda: models.create_model_from_config(
      config.model, 10, image_size=config.dataset.image_size,
      in_channels=config.dataset.channels))
  return config, layer_stats.layer_table(model, config.dataset.image_size)


stage_groups = [1, 2, 4, 8, 16, 32]
nets = {g: convnet(g)[1] for g in stage_groups}
rows = []
for g, table in nets.items():
  later = [r for r in table if r['type'] == 'Conv' and not r['name'].startswith('stage1')]
  rows.append([g, f"{sum(r['params'] for r in table):,}", f"{sum(r['macs'] for r in table):,}",
               f"{sum(r['params'] for r in later):,}",
               ', '.join(f"{r['name'].split('.')[1]} {r['input_shape'][-1] // g}"
                         for r in later if r['name'].startswith('stage2'))])
lesson.table(['groups', 'parameters', 'multiply-adds', 'stages 2-3 conv parameters',
              'stage 2: channels each kernel spans'], rows)

# %% [markdown]
# A `groups` that does not divide the channels a stage's convolutions read and write is
# refused when the model is built, naming the stage and the values that would do:

# %%
try:
  convnet(3)
  refusal = None
except ValueError as e:
  refusal = str(e)
print(refusal)

# %% [markdown]
# ## What the code confirmed

# %%
np.testing.assert_allclose(together, separately, rtol=1e-5, atol=1e-5)  # blocks apart
assert kernel.shape == (3, 3, C_IN // G, C_OUT)
for g, (p, m) in costs.items():                   # divided by the groups, exactly
  assert p * g == full_params and m * g == full_macs
assert costs[C][0] == 3 * 3 * C                   # depthwise: one 3x3 filter per channel
assert separable_params * 9 * C == full_params * (9 + C)   # a ratio of 1/C + 1/9
assert separable_macs * 9 * C == full_macs * (9 + C)
stage23 = [int(row[3].replace(',', '')) for row in rows]
assert all(a > b for a, b in zip(stage23, stage23[1:]))  # more groups, fewer parameters
depthwise = [r for r in nets[32] if r['name'] == 'stage2.conv1'][0]
assert depthwise['params'] == 3 * 3 * 1 * 64          # each of 32 channels: 2 filters
assert refusal is not None and 'stage 2 groups=3' in refusal
