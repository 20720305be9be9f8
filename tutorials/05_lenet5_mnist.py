# %% [markdown]
# # 5. LeNet-5 on handwritten digits, trained here
#
# LeNet-5 (LeCun et al. 1998) is the first lesson's convolution put to work: two 5x5
# convolutions, each followed by 2x2 pooling, a third 5x5 convolution that reduces the
# map to 1x1, and two fully connected layers. This lesson trains it on the 5,000 real
# MNIST digits bundled with the project (`mnist5k`: 4,000 to train, 1,000 to test)
# through the project's own trainer, `train.train_and_evaluate`, with the recipe of
# `configs/lenet.py` shortened to 8 epochs (about half a minute on 2 CPU cores), then
# looks inside: the learning curves, the first layer's filters, the feature maps, some
# predictions and an occlusion map. The figures are `visualize.py`'s, run as a user runs
# it on the run's workdir.

# %%
import contextlib
import io
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from flax import nnx

import lesson  # the repository on the import path (the notebooks run in tutorials/)
from configs import common, lenet
from data import sources, transforms
from lib import run_contract, trained
from lib import workdir as workdir_lib
import models
from models import layer_stats
import train

# %% [markdown]
# ## The network
#
# `summary.py --config=configs/lenet.py`'s table: 61,706 parameters and about 0.4 million
# multiply-adds per digit (the recipe uses ReLU and max pooling; the paper's tanh and
# average pooling are `configs/lenet.py:activation=tanh,pooling=avg`).

# %%
config = lenet.get_config()
lenet5 = nnx.eval_shape(lambda: models.create_model_from_config(
    config.model, 10, image_size=config.dataset.image_size, in_channels=config.dataset.channels))
lenet_rows = layer_stats.layer_table(lenet5, config.dataset.image_size, config.dataset.channels)
lesson.layer_table(lenet_rows)

# %% [markdown]
# ## Training
#
# `configs/lenet.py` trains for 20 epochs with AdamW on a cosine schedule; 8 epochs,
# evaluated after each, show the same curve in less time. The trainer writes everything
# into the workdir (README, "The workdir"): `metrics.jsonl`, checkpoints, the config. Its
# progress lines hold timings, so only its evaluations are shown.

# %%
common.in_epochs(config, 8, eval_every=1)
config.log_every_steps = 20
run_dir = tempfile.TemporaryDirectory(prefix='lenet-tutorial-')  # (gone with the kernel)
RUN = run_dir.name  # the workdir's parent, where the figures' programs run
workdir = os.path.join(RUN, 'lenet')
printed = io.StringIO()
with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
  final = train.train_and_evaluate(config, workdir)
print('\n'.join(line for line in printed.getvalue().splitlines()
                if line.startswith(('Training', 'eval'))))
print(f"final test top-1 {final['top1']:.1%}, best {final['best_top1']:.1%}")

# %% [markdown]
# ## Learning curves
#
# `python visualize.py curves --workdir=lenet --out=curves.png` draws the training loss
# and top-1 (every 20 steps) and the test ones (every epoch) from `metrics.jsonl`, with the
# learning rate's warm-up and cosine decay.

# %%
lesson.run('visualize.py', 'curves', '--workdir=lenet', '--out=curves.png',
           '--save_array=curves.npz', cwd=RUN)
lesson.show_png(os.path.join(RUN, 'curves.png'), width=900)
records = workdir_lib.read_metrics(workdir)
train_records = [r for r in records if r['split'] == 'train']
eval_records = [r for r in records if r['split'] == 'test']
curves = np.load(os.path.join(RUN, 'curves.npz'))
print(f"{len(train_records)} training records, {len(eval_records)} evaluations; training "
      f"loss {train_records[0]['loss']:.3f} at step {train_records[0]['step']}, "
      f"{train_records[-1]['loss']:.3f} at step {train_records[-1]['step']}")

# %% [markdown]
# ## The first layer's filters
#
# C1's six 5x5 kernels, each scaled to its own range (`visualize.py filters`). At 5x5
# pixels they are coarse light-dark patterns rather than the smooth Gabor-like filters
# of AlexNet's 11x11 first layer; what each responds to shows better in the feature maps
# below.

# %%
lesson.run('visualize.py', 'filters', '--workdir=lenet', '--out=filters.png',
           '--save_array=filters.npy', cwd=RUN)
lesson.show_png(os.path.join(RUN, 'filters.png'), width=360)
filters = np.load(os.path.join(RUN, 'filters.npy'))
print('tiles', filters.shape)

# %% [markdown]
# ## Feature maps
#
# One test digit, and what C1, C3 and C5 compute from it (`visualize.py features`: the
# last convolution at each map size, with its receptive field from the layer table).

# %%
test = sources.open_split(config, 'eval')
digit, label = test.images[0], int(test.labels[0])
Image.fromarray(digit[..., 0]).save(os.path.join(RUN, 'digit.png'))
lesson.run('visualize.py', 'features', '--workdir=lenet', '--image=digit.png',
           '--out=features.png', '--save_array=features.npz', cwd=RUN)
lesson.show_png(os.path.join(RUN, 'features.png'), width=360)
features = dict(np.load(os.path.join(RUN, 'features.npz')))
print({name: fmap.shape for name, fmap in features.items()})

# %% [markdown]
# ## Predictions
#
# The best checkpoint, loaded as `predict.py` and `evaluate.py` load it
# (`lib/trained.py`), gives each of the 1,000 test digits a probability per class. Top:
# the first eight test digits; bottom: the eight mistakes it was surest of.

# %%
saved = run_contract.read_saved(workdir)
best = trained.load(saved, 10, workdir)
views = np.stack([transforms.eval_example(image, saved) for image in test.images])
probs = trained.posteriors_in_batches(best.net, saved, best.variables, views,
                                      batch_size=250)
predicted = probs.argmax(axis=1)
accuracy = float(np.mean(predicted == test.labels))
wrong = np.flatnonzero(predicted != test.labels)
surest_wrong = wrong[np.argsort(-probs[wrong].max(axis=1), kind='stable')][:8]
print(f'{best.which} checkpoint (step {best.step}): {accuracy:.1%} of the test digits, '
      f'{len(wrong)} mistakes')

fig, axes = plt.subplots(2, 8, figsize=(10, 3.2))
for ax, i in zip(axes.flat, [*range(8), *surest_wrong]):
  ax.imshow(views[i][..., 0], cmap='gray')
  p = probs[i]
  title = f'{predicted[i]}: {p[predicted[i]]:.1%}'
  if predicted[i] != test.labels[i]:
    title += f'\n(is {test.labels[i]}: {p[test.labels[i]]:.1%})'
  ax.set_title(title, fontsize=8, color='black' if predicted[i] == test.labels[i] else 'red')
  ax.axis('off')
lesson.show(fig)

# %% [markdown]
# ## Occlusion
#
# Which pixels does the prediction depend on? `visualize.py occlusion` (Zeiler & Fergus
# 2014, section 4.2) slides an 8x8 square of the data's mean grey over the digit in steps
# of 2 pixels, and maps how much the probability of the predicted class drops with the
# square at each place.

# %%
lesson.run('visualize.py', 'occlusion', '--workdir=lenet', '--image=digit.png',
           '--out=occlusion.png', '--save_array=occlusion.npy', cwd=RUN)
lesson.show_png(os.path.join(RUN, 'occlusion.png'), width=720)
heat = np.load(os.path.join(RUN, 'occlusion.npy'))
view = transforms.eval_example(digit, saved)[..., 0]
strokes = view > 127
print(f'the digit is a {label}; mean drop over its strokes {heat[strokes].mean():.3f}, '
      f'over the background {heat[~strokes].mean():.3f}')

# %% [markdown]
# ## What the code confirmed

# %%
assert layer_stats.count_params(lenet5) == 61_706
assert 0.35e6 < sum(r['macs'] for r in lenet_rows) < 0.45e6   # about 0.4 million
assert final['top1'] >= 0.95                                # 8 epochs of 4,000 digits
assert train_records[-1]['loss'] < train_records[0]['loss'] / 5  # the loss fell
assert [r['top1'] for r in eval_records][-1] == final['top1']  # curves: metrics.jsonl's
np.testing.assert_allclose(curves['lenet.eval_top1'][:, 1], [r['top1'] for r in eval_records])
assert filters.shape == (6, 5, 5)                          # C1: six 5x5 kernels, 1 channel
shapes = {r['name']: r['output_shape'] for r in lenet_rows}
assert {name: fmap.shape for name, fmap in features.items()} == {
    name: shapes[name] for name in ('C1', 'C3', 'C5')}      # 28x28x6, 10x10x16, 1x1x120
assert abs(accuracy - final['best_top1']) < 1e-6           # the trainer's own evaluation
assert probs.shape == (1000, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
assert predicted[0] == label                               # the occluded digit is right ...
assert heat[strokes].mean() > 2 * heat[~strokes].mean()    # ... because of its strokes
