"""Record what the last Linen version's models hold and compute, for the converter's test.

Run inside a checkout of the last Linen commit (52aaa4a), with this file's path:

  git worktree add /tmp/linen 52aaa4a
  cd /tmp/linen && python /path/to/tests/data/record_linen_trees.py \
      > /path/to/tests/data/linen_trees.json

For every registered model, at its native input size (3 channels, its default classes),
and the VARIANTS below:

  params, batch_stats  the shape of each array `model.init` makes, keyed by '/'-joined
                       path as the checkpoints store them: what a Linen workdir's
                       checkpoint holds (jax.eval_shape: nothing is computed);
  probe                the model's eval-mode logits on one fixed image, with every
                       variable set by `probe_values` from its Linen path: the NNX model
                       given the same values through lib.legacy_workdirs' renaming must
                       compute the same, which a renaming that swaps two arrays of one
                       shape (bn1 and bn2) would not.

tests/test_legacy_workdirs.py checks the conversion onto today's NNX models with it,
without Linen code in the repository.
"""

import functools
import json
import sys
import time
import zlib

import numpy as np

# The probe image's side: small enough to run every model eagerly on a CPU in seconds;
# the models whose layers depend on the input's size (LeNet-5's C5, AlexNet's and VGG's
# classifiers) are probed at their native size instead.
PROBE_SIZE = 32
PROBE_LOGITS = 10  # how many logits the fixture keeps (with the mean and spread of all)


def probe_values(path: str, shape) -> np.ndarray:
  """A deterministic array for the variable at Linen `path`: drawn from a generator
  seeded by the path, scaled as an initialiser would (kernels by 1/sqrt(fan-in), scales
  and variances near 1), so the probe's activations stay of order one in every model."""
  # (At most one period of 4,099 draws, repeated: VGG's 120M classifier weights take
  # a copy, not a draw each. The period is prime, so it lines up with no layer's width.)
  count = int(np.prod(shape))
  rng = np.random.default_rng(zlib.crc32(path.encode()))
  u = np.resize(rng.standard_normal(min(count, 4099)).astype(np.float32), shape)
  leaf = path.rsplit('/', 1)[-1]
  if leaf == 'kernel':
    return u / np.float32(np.sqrt(max(1, count // shape[-1])))
  if leaf in ('scale', 'var'):
    return np.float32(1) + np.float32(0.2) * np.abs(u)
  return np.float32(0.1) * u  # biases, means, anything else


def probe_image(size: int) -> np.ndarray:
  return np.random.default_rng(0).standard_normal((1, size, size, 3)).astype(np.float32)


def unflatten(flat: dict) -> dict:
  tree = {}
  for path, value in flat.items():
    *parents, leaf = path.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def summary(logits: np.ndarray) -> dict:
  logits = np.asarray(logits, np.float64).reshape(-1)
  return {'logits': logits[:PROBE_LOGITS].tolist(), 'mean': float(logits.mean()),
          'std': float(logits.std())}


# Besides the registered models at their defaults: configurations whose trees hold
# what the defaults lack (the convnet's bottlenecks, projection shortcuts, strided-conv
# downsampling and hidden FC layers). name -> (registered model, constructor arguments).
VARIANTS = {
    'convnet[every layer kind]': ('convnet', {
        'stages': ({'width': 8, 'depth': 2, 'bottleneck': 4, 'residual': True,
                    'downsample': {'type': 'conv', 'kernel': 3, 'stride': 2,
                                   'padding': 1}},
                   {'width': 16, 'stride': 2, 'residual': True,
                    'downsample': {'type': 'max'}}),
        'head': {'pool': 'gap', 'hidden': (32, 16), 'dropout': 0.1}}),
}


def main():
  import jax  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, '.')
  import models  # pylint: disable=import-outside-toplevel  (the Linen checkout's)

  def flat_shapes(tree) -> dict:
    return {jax.tree_util.keystr(path, simple=True, separator='/'): list(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}

  out = {}
  for name, (registered, kwargs) in ({n: (n, {}) for n in models.list_models()}
                                     | VARIANTS).items():
    start = time.perf_counter()
    model = models.create_model(registered, **kwargs)
    native = models.default_image_size(registered)
    shapes = jax.eval_shape(lambda m=model: m.init(
        jax.random.key(0), probe_image(native), train=False))
    record = {'model': registered, 'kwargs': kwargs,
              'image_size': native, 'params': flat_shapes(shapes['params']),
              'batch_stats': flat_shapes(shapes.get('batch_stats', {}))}
    size = PROBE_SIZE
    try:
      at_probe = jax.eval_shape(lambda m=model: m.init(
          jax.random.key(0), probe_image(size), train=False))
      if flat_shapes(at_probe['params']) != record['params']:
        size = native
    except Exception:  # pylint: disable=broad-except  (too small for the model)
      size = native
    variables = {kind: unflatten({p: probe_values(p, s) for p, s in record[kind].items()})
                 for kind in ('params', 'batch_stats') if record[kind]}
    logits = np.asarray(model.apply(variables, probe_image(size), train=False))
    # (ResNet-1202's 600 blocks in eval mode grow the probe's activations past float32:
    # no probe for it; its renaming is ResNet-20's, which is probed.)
    record['probe'] = ({'image_size': size, **summary(logits)}
                       if np.isfinite(logits).all() else None)
    out[name] = record
    print(f'{name}: {len(record["params"])} parameters, probed at {size}x{size} in '
          f'{time.perf_counter() - start:.1f}s', file=sys.stderr, flush=True)
  # One model a line: a diff of the fixture shows which models changed.
  compact = functools.partial(json.dumps, sort_keys=True, separators=(',', ':'))
  print('{\n' + ',\n'.join(f'{json.dumps(n)}:{compact(r)}' for n, r in sorted(out.items()))
        + '\n}')


if __name__ == '__main__':
  main()
