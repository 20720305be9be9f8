"""visualize.py's figures, drawn with matplotlib into PNG files (no display needed); the
sweep and table reports draw theirs with its `plt` and `save`."""

import itertools
import os

import matplotlib

matplotlib.use('Agg')  # files only: no display on clusters and CI
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position


def save(fig, path: str, extra_artists=None):
  """The figure as a PNG file, cropped to what it draws (`extra_artists`: the legends
  outside its axes), then closed."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100, bbox_inches='tight', bbox_extra_artists=extra_artists)
  plt.close(fig)


def show_image(image: np.ndarray, title: str, path: str):
  """One picture (a grid of tiles) with a title."""
  h, w = image.shape[:2]
  fig, ax = plt.subplots(figsize=(max(3, min(12, w / 40)), max(3, min(12, h / 40)) + 0.5))
  ax.imshow(image, interpolation='nearest')
  ax.set_title(title, fontsize=9)
  ax.axis('off')
  save(fig, path)


def show_images(panels: list[tuple[np.ndarray, str]], title: str, path: str):
  """Pictures one under the other, each with its caption."""
  fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
  for ax, (image, caption) in zip(axes[:, 0], panels):
    ax.imshow(image, interpolation='nearest')
    ax.set_title(caption, fontsize=9)
    ax.axis('off')
  fig.suptitle(title, fontsize=10)
  save(fig, path)


def show_heat(view: np.ndarray, heat: np.ndarray, title: str, path: str,
              signed: bool = False):
  """The image, the heat map (with its scale) and the heat over the image."""
  fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
  rgb = np.repeat(view, 3, axis=-1) if view.shape[-1] == 1 else view  # grey stays grey
  axes[0].imshow(rgb, interpolation='nearest')
  limit = float(np.abs(heat).max()) or 1.0
  cmap, vmin = ('RdBu_r', -limit) if signed else ('inferno', 0.0)
  shown = axes[1].imshow(heat, cmap=cmap, vmin=vmin, vmax=limit, interpolation='nearest')
  fig.colorbar(shown, ax=axes[1], fraction=0.046)
  axes[2].imshow(rgb, interpolation='nearest')
  axes[2].imshow(np.clip(heat, 0, None) if signed else heat, cmap='inferno', alpha=0.6,
                 vmin=0, vmax=limit, interpolation='bilinear')
  for ax, caption in zip(axes, ('input (evaluation view)', 'map', 'over the input')):
    ax.set_title(caption, fontsize=9)
    ax.axis('off')
  fig.suptitle(title, fontsize=10)
  save(fig, path)


def show_curves(series: dict, path: str):
  """'{run}/{train_loss|eval_loss|train_top1|eval_top1|learning_rate}' -> (n, 2) arrays
  of (step, value): loss, top-1 and learning rate against step, runs overlaid."""
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  runs = list(dict.fromkeys(k.rsplit('/', 1)[0] for k in series))  # a run's name has /
  for i, run in enumerate(runs):
    for ax, key, style in [(axes[0], 'train_loss', '-'), (axes[0], 'eval_loss', '--'),
                           (axes[1], 'train_top1', '-'), (axes[1], 'eval_top1', '--'),
                           (axes[2], 'learning_rate', '-')]:
      points = series.get(f'{run}/{key}')
      if points is not None and len(points):
        scale = 100 if 'top1' in key else 1
        ax.plot(points[:, 0], points[:, 1] * scale, style, color=f'C{i}',
                marker='o' if key.startswith('eval') or len(points) == 1 else None, markersize=3,
                label=f"{run} {key.split('_')[0]}" if key != 'learning_rate' else run)
  for ax, label in zip(axes, ('loss', 'top-1 %', 'learning rate')):
    ax.set(xlabel='step', ylabel=label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  axes[0].set_yscale('log')
  fig.tight_layout()
  save(fig, path)


def show_conv_arithmetic(n: int, kernel: int, stride: int, pads, dilation: int, out: int,
                         title: str, path: str) -> np.ndarray:
  """The padded input grid with the kernel at its first two positions, the output grid
  with the two cells they produce; returns how many output positions read each padded
  input cell."""
  lo, hi = pads
  size = n + lo + hi
  taps = [i * dilation for i in range(kernel)]
  # The outputs that read a cell: those along its row times those along its column.
  reads = np.bincount([r * stride + t for r in range(out) for t in taps], minlength=size)
  coverage = np.outer(reads, reads)
  fig, axes = plt.subplots(1, 2, figsize=(10, 5),
                           gridspec_kw={'width_ratios': [size, max(out, 1)]})
  ax = axes[0]
  for y, x in itertools.product(range(size), repeat=2):
    inside = lo <= y < lo + n and lo <= x < lo + n
    ax.add_patch(plt.Rectangle((x, y), 1, 1, facecolor='white' if inside else '#dddddd',
                               edgecolor='#999999', linewidth=0.5))
  firsts = [((0, 0), '#1f77b4'), ((0, stride), '#ff7f0e')][:min(out, 2)]
  for (top, left), colour in firsts:
    for dy, dx in itertools.product(taps, repeat=2):
      ax.add_patch(plt.Rectangle((left + dx + 0.1, top + dy + 0.1), 0.8, 0.8,
                                 facecolor=colour, alpha=0.45, edgecolor=colour))
  ax.set_title(f'input {n}x{n}, padding {lo}+{hi} (grey), kernel {kernel}, stride {stride}'
               f', dilation {dilation}', fontsize=9)
  ax = axes[1]
  for y, x in itertools.product(range(out), repeat=2):
    colour = '#1f77b4' if (y, x) == (0, 0) else '#ff7f0e' if (y, x) == (0, 1) else 'white'
    ax.add_patch(plt.Rectangle((x, y), 1, 1, facecolor=colour,
                               alpha=0.6 if colour != 'white' else 1, edgecolor='#999999'))
  ax.set_title(f'output {out}x{out} = floor(({n} + {lo} + {hi} - {dilation}*({kernel}-1) - 1)'
               f' / {stride}) + 1', fontsize=9)
  for ax, extent in zip(axes, (size, max(out, 1))):
    ax.set(xlim=(0, extent), ylim=(extent, 0), aspect='equal')
    ax.axis('off')
  if title:
    fig.suptitle(title, fontsize=10)
  save(fig, path)
  return coverage
