"""Per-layer statistics of any model: output shape, parameters, multiply-adds and the
receptive field, found by tracing the model once (no compile, no FLOPs spent).

Receptive field arithmetic (Dumoulin & Visin 2016; the seeds' notes), per spatial axis:
  r_out = r_in + (k - 1) * d * j_in      the field grows by the dilated kernel extent,
  j_out = j_in * s                       in steps of the input's jump (pixel distance
                                         between neighbouring outputs).
For branching networks (residual, inception) a layer's input field is the largest of
the fields that reach it, as a merge of branches sees the union of their inputs.
Multiply-adds count convolutions and fully connected layers, as the papers' tables do.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from models import layers

SPATIAL = (layers.Conv, layers.MaxPool, layers.AvgPool)
RECORDED = SPATIAL + (nn.Dense, layers.BatchNorm, layers.AdaptiveAvgPool, layers.GlobalAvgPool,
                      layers.LocalResponseNorm, nn.Dropout)


def geometry(module):
  """(kernel, stride, dilation) pairs of a conv or pooling module."""
  k = layers.pair(module.kernel_size)
  s = layers.pair(module.strides if module.strides is not None else module.kernel_size)
  d = layers.pair(getattr(module, 'dilation', 1))
  return k, s, d


def layer_table(model: nn.Module, image_size, channels: int = 3) -> list[dict]:
  """One dict per layer, in call order: name, type, output shape, params, macs, rf, jump."""
  h, w = layers.pair(image_size)
  x = np.zeros((1, h, w, channels), np.float32)  # (traced below: nothing on a device)
  rows, fields, keep = [], {}, []  # keep: arrays alive, so their ids stay unique

  def field_of(arr):
    if id(arr) in fields:
      return fields[id(arr)]
    # After an activation, add or concat: the largest field at this spatial size.
    same = [f for f in fields.values() if f[2] == tuple(arr.shape[1:3])]
    return max(same, default=(1, 1, tuple(arr.shape[1:3])))

  def interceptor(next_fn, args, kwargs, context):
    module = context.module
    if context.method_name != '__call__' or not isinstance(module, RECORDED):
      return next_fn(*args, **kwargs)
    inp = args[0]
    out = next_fn(*args, **kwargs)
    keep.extend([inp, out])
    r, j, _ = field_of(inp)
    rf = None
    if isinstance(module, SPATIAL):
      (k, _), (s, _), (d, _) = geometry(module)
      r, j = r + (k - 1) * d * j, j * s
      rf = (r, j)
    if out.ndim == 4:
      fields[id(out)] = (r, j, tuple(out.shape[1:3]))
    if isinstance(module, layers.Conv):
      kh, kw = layers.pair(module.kernel_size)
      macs = math.prod(out.shape[1:]) * kh * kw * inp.shape[-1] // module.groups
    elif isinstance(module, nn.Dense):
      macs = math.prod(out.shape[1:]) * inp.shape[-1]
    else:
      macs = 0
    rows.append(dict(name='/'.join(module.scope.path), type=type(module).__name__,
                     output_shape=tuple(out.shape[1:]), macs=int(macs),
                     rf=rf[0] if rf else None, jump=rf[1] if rf else None))
    return out

  with nn.intercept_methods(interceptor):
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  params = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables.get('params', {}))[0]:
    module_path = '/'.join(p.key for p in path[:-1])
    params[module_path] = params.get(module_path, 0) + int(np.prod(leaf.shape))
  for row in rows:
    row['params'] = params.get(row['name'], 0)
  return rows


def count_params(model: nn.Module, image_size, channels: int = 3) -> int:
  """Number of trainable parameters (BatchNorm statistics are not parameters)."""
  h, w = layers.pair(image_size)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, h, w, channels)), train=False))
  return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(variables.get('params', {})))


def count_macs(model: nn.Module, image_size, channels: int = 3) -> int:
  """Multiply-adds of one forward pass on one image (conv and FC layers)."""
  return sum(row['macs'] for row in layer_table(model, image_size, channels))
