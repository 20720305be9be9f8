# %% [markdown]
# # 2. Receptive fields: why VGG stacks 3x3 convolutions
#
# A unit's receptive field is the patch of the input image that can change its value. One
# 3x3 convolution sees 3x3 pixels; a second one on top sees 3x3 of the first's outputs,
# which together cover 5x5 pixels; a third, 7x7. VGG's rule (Simonyan & Zisserman 2015,
# section 2.3): three stacked 3x3 convolutions see what one 7x7 sees, with fewer
# parameters and three non-linearities instead of one.
#
# `summary.py`'s layer table (`models/layer_stats.py`) computes each layer's field r and
# jump j (the distance, in input pixels, between neighbouring outputs) while tracing the
# model with shapes only:
#
# $$r_{out} = r_{in} + (k - 1)\,d\,j_{in}, \qquad j_{out} = j_{in}\,s$$
#
# for a kernel k, dilation d and stride s. This lesson reads the receptive fields,
# parameters and multiply-adds from that table.

# %%
from flax import nnx
import jax
import matplotlib.pyplot as plt
import numpy as np

import lesson  # the repository on the import path (the notebooks run in tutorials/)
import models
from models import layer_stats, layers
from models.vgg import CONFIGS as VGG_CONFIGS

# %% [markdown]
# ## Three 3x3 convolutions against one 7x7
#
# Both stacks map C = 64 channels to 64 on a 56x56 map (VGG's third stage has 256 on
# 56x56), keep the size (padding (k-1)/2) and have no bias, as a convolution before
# BatchNorm has none. They are built with shapes only (`nnx.eval_shape`: no parameter is
# drawn); `layer_stats.layer_table` traces them once.

# %%
C, SIZE = 64, 56


def stack(n: int, kernel: int, dilations=None):
  """n convolutions kernel x kernel, C channels to C, each followed by a ReLU."""
  rngs, body = nnx.Rngs(0), []
  for d in dilations or [1] * n:
    body += [layers.Conv(C, C, kernel, padding=d * (kernel - 1) // 2, dilation=d,
                         use_bias=False, rngs=rngs), jax.nn.relu]
  return layers.Sequential(*body)


three_3x3 = layer_stats.layer_table(nnx.eval_shape(lambda: stack(3, 3)), SIZE, C)
one_7x7 = layer_stats.layer_table(nnx.eval_shape(lambda: stack(1, 7)), SIZE, C)
lesson.layer_table(three_3x3)
lesson.layer_table(one_7x7)

# %%
def totals(rows):
  """(receptive field of the last layer, parameters, multiply-adds, convolutions)."""
  return (rows[-1]['rf'], sum(r['params'] for r in rows), sum(r['macs'] for r in rows),
          sum(r['type'] == 'Conv' for r in rows))


compared = {'three 3x3': totals(three_3x3), 'one 7x7': totals(one_7x7)}
lesson.table(['stack', 'receptive field', 'parameters', 'multiply-adds',
              'convolutions (each with its ReLU)'],
             [[name, rf, f'{p:,}', f'{m:,}', n] for name, (rf, p, m, n) in compared.items()])
(rf3, params3, macs3, _), (rf7, params7, macs7, _) = compared.values()
print(f'three 3x3 / one 7x7: parameters {params3 / params7:.4f}, multiply-adds '
      f'{macs3 / macs7:.4f}; 27/49 = {27 / 49:.4f}')

# %% [markdown]
# Each 3x3 layer has 3·3·C·C weights, so three have 27C², against 49C² for the 7x7: 45%
# fewer, and the multiply-adds in the same ratio, since every layer keeps the 56x56 map.
#
# In general n stacked k x k convolutions of stride 1 see 1 + n(k-1) pixels. The table
# grows the stack and sets each beside the single convolution with the same field; the
# last row shows dilation, which spaces a kernel's taps: three 3x3 convolutions dilated
# 1, 2 and 4 see 1 + 2(1 + 2 + 4) = 15 pixels with the parameters of three plain ones.

# %%
growth = []
for n in range(1, 6):
  rf, params, _, _ = totals(layer_stats.layer_table(nnx.eval_shape(lambda: stack(n, 3)),
                                                    SIZE, C))
  single = totals(layer_stats.layer_table(nnx.eval_shape(lambda: stack(1, rf)), SIZE, C))
  growth.append([f'{n} x 3x3', rf, 1 + n * (3 - 1), f'{params:,}', f'one {rf}x{rf}',
                 f'{single[1]:,}'])
dilated = totals(layer_stats.layer_table(
    nnx.eval_shape(lambda: stack(3, 3, dilations=[1, 2, 4])), SIZE, C))
growth.append(['3 x 3x3, dilations 1, 2, 4', dilated[0], 1 + 2 * (1 + 2 + 4),
               f'{dilated[1]:,}', '', ''])
lesson.table(['stack', 'receptive field (table)', '1 + n(k-1)', 'parameters',
               'same field in one conv', 'its parameters'], growth)

# %% [markdown]
# ## VGG-A, layer by layer
#
# VGG-A (configuration A of the paper's Table 1, `vgg_a`) alternates 3x3 convolutions with
# 2x2 max pools of stride 2. A convolution adds 2j to the field; a pool adds j and doubles
# the jump, so the later convolutions, reading coarser maps, widen the field faster. The
# table is `summary.py --model=vgg_a`'s, cut to the layers with a window.

# %%
vgg_a = nnx.eval_shape(lambda: models.create_model('vgg_a'))
vgg_rows = [r for r in layer_stats.layer_table(vgg_a, 224) if r['rf'] is not None]
lesson.table(['layer', 'type', 'output shape', 'receptive field', 'jump'],
             [[r['name'], r['type'], 'x'.join(map(str, r['output_shape'])), r['rf'],
               r['jump']] for r in vgg_rows])

# %% [markdown]
# The same numbers from the paper's column as `models/vgg.py` writes it (an int is a 3x3
# convolution, 'M' a 2x2/2 pool), through the recurrence above:

# %%
def fields_of(column):
  """(receptive field, jump) after each layer of a VGG column, by the recurrence."""
  r, j, out = 1, 1, []
  for item in column:
    k, s = (2, 2) if item == 'M' else (3, 1)
    r, j = r + (k - 1) * j, j * s
    out.append((r, j))
  return out


by_recurrence = fields_of(VGG_CONFIGS['A'])
print(by_recurrence)

fig, ax = plt.subplots(figsize=(8, 3.5))
fields = [r['rf'] for r in vgg_rows]
ax.plot(range(len(fields)), fields, 'o-', color='tab:blue')
for i, r in enumerate(vgg_rows):
  if r['type'] == 'MaxPool':
    ax.axvline(i, color='grey', alpha=0.3)
    ax.text(i, fields[i] + 4, f"jump {r['jump']}", fontsize=8, ha='center')
ax.axhline(224, linestyle='--', color='tab:red', label='the 224x224 image')
ax.set_xticks(range(len(fields)), [r['name'] for r in vgg_rows], rotation=60, fontsize=7)
ax.set_ylabel('receptive field (pixels)')
ax.set_title('VGG-A: receptive field after each conv and pool (pools: grey lines)',
             fontsize=10)
ax.legend(fontsize=8)
lesson.show(fig)

# %% [markdown]
# The deeper columns add convolutions to the later stages, where each one adds 2j = 16 or
# 32 pixels: the last convolution of VGG-19 (E) has a field wider than the 224-pixel image
# (its border units see padding).

# %%
last_conv = {}
for column in ('A', 'B', 'D', 'E'):
  model = nnx.eval_shape(lambda: models.create_model(f'vgg_{column.lower()}'))
  rows = layer_stats.layer_table(model, 224)
  last_conv[column] = [r for r in rows if r['type'] == 'Conv'][-1]
lesson.table(['column', 'weight layers', 'last conv', 'its receptive field'],
             [[c, 3 + sum(isinstance(i, int) for i in VGG_CONFIGS[c]), r['name'], r['rf']]
              for c, r in last_conv.items()])

# %% [markdown]
# ## What the code confirmed

# %%
assert rf3 == rf7 == 1 + 3 * (3 - 1) == 7            # three 3x3 see what one 7x7 sees
assert params3 / params7 == macs3 / macs7 == 27 / 49  # with 27C² weights against 49C²
assert params3 == 27 * C * C and macs3 == 27 * C * C * SIZE * SIZE
assert compared['three 3x3'][3] == 3 * compared['one 7x7'][3]  # three ReLUs against one
assert all(row[1] == row[2] for row in growth)       # the table's fields are 1 + n(k-1)
assert all(int(row[3].replace(',', '')) < int(row[5].replace(',', ''))
           for row in growth[:-1] if row[1] > 3)     # the stack is always the cheaper
assert dilated[0] == 15 and dilated[1] == params3     # dilation: a wider field, free
assert [(r['rf'], r['jump']) for r in vgg_rows] == by_recurrence
assert vgg_rows[-1]['jump'] == 32 == 224 // 7         # five pools: a 7x7 final map
assert last_conv['A']['rf'] < last_conv['B']['rf'] < last_conv['D']['rf'] < 224 < \
    last_conv['E']['rf']
