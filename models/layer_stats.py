"""Per-layer statistics of any model: output shape, parameters, multiply-adds and the
receptive field, found by tracing the model once with shapes only (jax.eval_shape: no
compile, no FLOPs spent, and the model itself may have shapes only: nnx.eval_shape).

Receptive field arithmetic (Dumoulin & Visin 2016; the seeds' notes), per spatial axis:
  r_out = r_in + (k - 1) * d * j_in      the field grows by the dilated kernel extent,
  j_out = j_in * s                       in steps of the input's jump (pixel distance
                                         between neighbouring outputs).
An array no recorded layer made (an activation's, a residual add's, a concatenation's)
has the field of the last recorded output of its shape, the op it applies elementwise;
failing that (a concatenation's channels), the largest field at its spatial size, as a
merge of branches sees the union of their inputs.
Multiply-adds count convolutions and fully connected layers, as the papers' tables do.

Layers are named by their path in the model, as PyTorch prints them: 'conv1',
'layer1.0.conv1' (the first block of the nnx.List `layer1`).
"""

import contextlib
import functools
import math

from flax import nnx
import jax
import jax.numpy as jnp

from models.functional import Functional
from models import layers

SPATIAL = (layers.Conv, layers.MaxPool, layers.AvgPool)
RECORDED = SPATIAL + (nnx.Linear, layers.BatchNorm, layers.AdaptiveAvgPool, layers.GlobalAvgPool,
                      layers.LocalResponseNorm, nnx.Dropout)


def geometry(module):
  """(kernel, stride, dilation) pairs of a conv or pooling module (a pool's stride
  defaults to its kernel, as in PyTorch)."""
  stride = module.kernel_size if module.stride is None else module.stride
  dilation = getattr(module, 'dilation', 1)
  return layers.pair(module.kernel_size), layers.pair(stride), layers.pair(dilation)


def name_of(path) -> str:
  """A module's path in its model as one name: ('layer1', 0, 'conv1') -> 'layer1.0.conv1'."""
  return '.'.join(map(str, path))


def as_module(model) -> nnx.Module:
  """The nnx.Module of a model given as one (eager or with shapes only) or as a
  models.Functional (its module with shapes only)."""
  return model.module if isinstance(model, Functional) else model


def _defines_call(cls):
  """The class in cls's method resolution order whose __call__ its instances run."""
  return next(c for c in cls.__mro__ if '__call__' in vars(c))


@contextlib.contextmanager
def calls_of(model: nnx.Module, record):
  """Within the block, each call of a RECORDED submodule of `model` also calls
  record(name, module, input, output).

  As nnx.capture(method_outputs=...) does, the classes' __call__ are wrapped for the
  duration (Python finds __call__ on the class, not the instance); unlike it, the input
  is seen too, which the receptive field and the multiply-adds need.
  """
  names = {id(m): name_of(path) for path, m in nnx.iter_modules(model) if path}
  owners = {_defines_call(type(m)) for _, m in nnx.iter_modules(model)
            if isinstance(m, RECORDED)}
  originals = {cls: vars(cls)['__call__'] for cls in owners}

  def watched(cls, call):
    @functools.wraps(call)
    def __call__(self, x, *args, **kwargs):
      out = call(self, x, *args, **kwargs)
      # Only the most derived __call__ records (a subclass's may call its parent's).
      if id(self) in names and _defines_call(type(self)) is cls:
        record(names[id(self)], self, x, out)
      return out
    return __call__

  try:
    for cls, call in originals.items():
      cls.__call__ = watched(cls, call)
    yield
  finally:
    for cls, call in originals.items():
      cls.__call__ = call


def trace(model, image_size, channels: int, record, train: bool = True):
  """Run `model` on one image of shapes only, with record(...) as in `calls_of`: in
  train mode every layer it has runs (GoogLeNet's auxiliary classifiers too), in eval
  mode those an evaluated image goes through."""
  model = as_module(model)
  graphdef, state = nnx.split(model)
  h, w = layers.pair(image_size)

  def forward(state, x):
    copy = layers.name_layers(nnx.merge(graphdef, state))  # (names in the shape errors)
    (copy.train if train else copy.eval)()
    with calls_of(copy, record):
      copy(x)

  jax.eval_shape(forward, state, jax.ShapeDtypeStruct((1, h, w, channels), jnp.float32))


def size_of(tree) -> int:
  """Number of numbers in a pytree of arrays (or of shapes)."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def layer_table(model, image_size, channels: int = 3, *, train: bool = True) -> list[dict]:
  """One dict per layer call, in call order: name, type, input and output shape (of one
  image), params, macs, rf, jump (None for layers that have no spatial window). The
  model in train mode: every layer; train=False: the layers evaluation runs."""
  # fields: (rf, jump, shape) of each layer's output, in the order made; derived: of the
  # other arrays a layer took; keep: the arrays alive, so their ids stay unique.
  rows, fields, derived, keep = [], {}, {}, []

  def field_of(arr):
    if id(arr) not in fields and id(arr) not in derived:  # (once: branches share inputs)
      shape = tuple(arr.shape[1:])
      same_shape = [f for f in fields.values() if f[2] == shape]  # (in the order made)
      same_size = [f for f in fields.values() if f[2][:2] == shape[:2]]  # (concatenated)
      derived[id(arr)] = same_shape[-1] if same_shape else max(same_size,
                                                               default=(1, 1, shape))
    return fields.get(id(arr)) or derived[id(arr)]

  def record(name, module, inp, out):
    keep.extend([inp, out])
    r, j, _ = field_of(inp)
    spatial = isinstance(module, SPATIAL)
    if spatial:
      (k, _), (s, _), (d, _) = geometry(module)
      r, j = r + (k - 1) * d * j, j * s
    if out.ndim == 4:
      fields[id(out)] = (r, j, tuple(out.shape[1:]))
    # each output position of a conv or FC layer takes every weight of its kernel once
    # (a grouped conv's kernel holds only its group's input channels)
    macs = (math.prod(out.shape[1:-1]) * math.prod(module.kernel.shape)
            if isinstance(module, (layers.Conv, nnx.Linear)) else 0)
    rows.append(dict(name=name, type=type(module).__name__,
                     input_shape=tuple(inp.shape[1:]), output_shape=tuple(out.shape[1:]),
                     params=size_of(nnx.state(module, nnx.Param)), macs=int(macs),
                     rf=r if spatial else None, jump=j if spatial else None))

  trace(model, image_size, channels, record, train)
  return rows


def count_params(model) -> int:
  """Number of trainable parameters (BatchNorm statistics are not parameters)."""
  return size_of(nnx.state(as_module(model), nnx.Param))


def count_macs(model, image_size, channels: int = 3) -> int:
  """Multiply-adds of one forward pass on one image (conv and FC layers)."""
  return sum(row['macs'] for row in layer_table(model, image_size, channels))
