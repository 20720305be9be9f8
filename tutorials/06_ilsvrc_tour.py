# %% [markdown]
# # 6. The ILSVRC tour: ImageNet winners from 2010 to 2017, counted
#
# The lecture notes' table of the ImageNet challenge (ILSVRC) classification winners,
# by top-5 error on the test set: from a shallow, hand-engineered pipeline in 2010 to
# networks with more than a hundred layers. Beside each winner, the zoo's version of its
# network as this code counts it: parameters, multiply-adds for one image, and depth.
#
# The errors are the published competition results, kept once in
# `reproduction/paper_tables.py` (`ILSVRC_HISTORY`, which `python reproduce.py
# ilsvrc_history report` also reads); each row there names the config of the zoo model
# that stands for the entry. They are competition entries, most of them ensembles tested
# on many crops, while the counts are for one network and one crop: the table compares
# architectures, not these runs.

# %%
from flax import nnx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import lesson  # the repository on the import path (the notebooks run in tutorials/)
import models
from models import layer_stats
import reproduce
from reproduction import paper_tables

# %% [markdown]
# The 2010 winner (NEC-UIUC: SIFT and LBP features, coded and pooled, linear SVMs) was no
# network, so it has no row among the paper tables, whose rows are configs of this
# project; its error is the one number this lesson writes itself.

# %%
SHALLOW_2010 = {'year': 2010, 'entry': 'ILSVRC 2010 (NEC-UIUC): features + linear SVMs',
                'top5_err': 28.2}

# %% [markdown]
# ## Depth, read from the traced program
#
# A network's depth is the number of layers with weights (convolutions and fully
# connected layers) on the longest path from the image to the logits: 8 for AlexNet,
# 16 for VGG-16, 22 for GoogLeNet (Szegedy et al. 2015, section 5). With branches
# (Inception's, ResNet's shortcuts) a path is not the list of layers, so the count is
# read from the program JAX traces for one image (`jax.make_jaxpr`, eval mode, shapes
# only): each value carries the most weight layers on any path to it, and a convolution
# or matrix product that meets the image's path with a parameter adds one.

# %%
WEIGHT_OPS = ('conv_general_dilated', 'dot_general')


def depth(model, image_size: int, channels: int = 3) -> int:
  """Weight layers on the longest path from the image to the logits (eval mode)."""
  graphdef, state = nnx.split(model)

  def forward(state, image):
    network = nnx.merge(graphdef, state)
    network.eval()
    return network(image)

  image = jax.ShapeDtypeStruct((1, image_size, image_size, channels), jnp.float32)
  program = jax.make_jaxpr(forward)(state, image).jaxpr
  parameter, pixels = (0, False, True), (0, True, False)
  inputs = [parameter] * len(jax.tree.leaves(state)) + [pixels]
  return max(n for n, from_image, _ in longest_paths(program, inputs) if from_image)


def longest_paths(program, inputs):
  """For each output of a jaxpr, given the same of its inputs: (weight layers on the
  longest path to it, whether it depends on the image, whether on a parameter).
  Nested programs (jit, custom derivatives) are walked through; constants (a pooling's
  averaging matrix) depend on neither."""
  known = dict(zip(program.invars, inputs))
  of = lambda v: (0, False, False) if hasattr(v, 'val') else known.get(v, (0, False, False))
  for eqn in program.eqns:
    ins = [of(v) for v in eqn.invars]
    inner = [p for p in eqn.params.values() if hasattr(p, 'eqns') or hasattr(p, 'jaxpr')]
    if inner:
      outs = longest_paths(getattr(inner[0], 'jaxpr', inner[0]), ins)
    else:
      n = max((n for n, _, _ in ins), default=0)
      from_image = any(image for _, image, _ in ins)
      weights = any(param and not image for _, image, param in ins)
      n += eqn.primitive.name in WEIGHT_OPS and from_image and weights
      outs = [(n, from_image, any(param for _, _, param in ins))] * len(eqn.outvars)
    known.update(zip(eqn.outvars, outs))
  return [of(v) for v in program.outvars]


# %% [markdown]
# ## The table

# %%
rows, counted = [], {}
for trial, row in zip(reproduce.trials('ilsvrc_history'), paper_tables.ILSVRC_HISTORY):
  config = reproduce.config_of(trial)
  size = config.dataset.image_size
  params, macs = reproduce.model_size(config, row['num_classes'])
  model = nnx.eval_shape(lambda: models.create_model_from_config(
      config.model, row['num_classes'], image_size=size, in_channels=3))
  counted[row['name']] = dict(
      year=int(row['name'][:4]), entry=row['source'], model=config.model.name,
      top5_err=row['paper']['top5_err'], params=params, macs=macs,
      depth=depth(model, size), eval_params=sum(
          r['params'] for r in layer_stats.layer_table(model, size, train=False)))
rows.append([SHALLOW_2010['year'], SHALLOW_2010['entry'], '', SHALLOW_2010['top5_err'], '',
             '', ''])
for c in counted.values():
  rows.append([c['year'], c['entry'], f"`{c['model']}`", c['top5_err'],
               f"{c['params'] / 1e6:.1f}", f"{c['macs'] / 1e9:.2f}", c['depth']])
lesson.table(['year', 'entry', 'zoo model', 'top-5 error %', 'parameters (M)',
              'multiply-adds (G)', 'depth'], rows)

# %% [markdown]
# Two counts need a word. GoogLeNet's parameters include its two auxiliary classifiers,
# which only training runs; the layers an evaluated image meets hold about half of
# them, almost nine times fewer than AlexNet's. SE-ResNet-50 is ResNet-50 (50 weight
# layers on its trunk) whose blocks each scale their channels by a gate of two small
# fully connected layers; the longest path runs through the sixteen gates, 50 + 2·16
# layers.

# %%
googlenet, alexnet = counted['2014_googlenet'], counted['2012_alexnet']
print(f"googlenet: {googlenet['params']:,} parameters, {googlenet['eval_params']:,} "
      f"without its auxiliary classifiers; alexnet_v1: {alexnet['params']:,} "
      f"({alexnet['params'] / googlenet['eval_params']:.1f} times as many)")
senet = counted['2017_senet']
resnet50 = nnx.eval_shape(lambda: models.create_model('resnet50'))
plain = dict(depth=depth(resnet50, 224), params=layer_stats.count_params(resnet50),
             macs=layer_stats.count_macs(resnet50, 224))
print(f"se_resnet50: depth {senet['depth']}, {senet['params']:,} parameters, "
      f"{senet['macs']:,} multiply-adds\nresnet50:    depth {plain['depth']}, "
      f"{plain['params']:,} parameters, {plain['macs']:,} multiply-adds\nthe gates add "
      f"{senet['params'] / plain['params'] - 1:.1%} parameters, "
      f"{senet['macs'] / plain['macs'] - 1:.2%} multiply-adds")

# %% [markdown]
# ## Error against arithmetic

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for c in counted.values():
  ax.scatter(c['macs'] / 1e9, c['top5_err'], s=12 * c['params'] ** 0.5 / 100,
             alpha=0.6)
  ax.annotate(f"{c['year']} {c['model']} ({c['depth']} layers)",
              (c['macs'] / 1e9, c['top5_err']), textcoords='offset points',
              xytext=(6, 4), fontsize=8)
ax.axhline(SHALLOW_2010['top5_err'], linestyle='--', color='grey')
ax.text(1.0, SHALLOW_2010['top5_err'] - 1.5, '2010, shallow (no network)', fontsize=8,
        color='grey')
ax.set_xscale('log')
ax.set_xlim(0.8, 40)
ax.set_ylim(0, 31)
ax.set_xlabel('multiply-adds per image (billions, log scale)')
ax.set_ylabel('ILSVRC top-5 test error (%)')
ax.set_title('ILSVRC winners: error against arithmetic (area: parameters)', fontsize=10)
ax.grid(alpha=0.3)
lesson.show(fig)

# %% [markdown]
# VGG spent the most arithmetic; GoogLeNet beat it with a tenth of the multiply-adds
# by putting 1x1 convolutions before its larger ones (lesson 3); ResNet went ten times
# deeper than VGG for less arithmetic, with bottlenecks and shortcuts; SENet's gates
# cost a ResNet-50 a tenth more parameters and almost no arithmetic.

# %% [markdown]
# ## What the code confirmed

# %%
errors = [SHALLOW_2010['top5_err']] + [c['top5_err'] for c in counted.values()]
assert errors == sorted(errors, reverse=True)             # every winner beat the last
assert [c['depth'] for c in counted.values()] == [8, 8, 16, 22, 152, 50 + 2 * 16]
assert all(c['macs'] <= counted['2014_vgg']['macs'] for c in counted.values())
assert googlenet['macs'] < counted['2014_vgg']['macs'] / 9
assert alexnet['params'] / googlenet['eval_params'] > 8   # almost nine times fewer
resnet, vgg = counted['2015_resnet'], counted['2014_vgg']
assert resnet['depth'] > 9 * vgg['depth'] and resnet['macs'] < vgg['macs']
assert senet['macs'] < resnet['macs'] and senet['top5_err'] < resnet['top5_err']
assert senet['macs'] / plain['macs'] - 1 < 0.01 and senet['params'] / plain['params'] < 1.11
assert plain['depth'] == 50
