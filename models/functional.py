"""A model as pure functions of its variables: what jit, grad, orbax and optax need.

An NNX model is a Python object graph. Walking that graph costs time on every call
(Flax's performance guide: `nnx.jit` does it per call, which small models such as
LeNet-5 or ResNet-20 feel), so the trainer and every tool split a model once
(`nnx.split`): a static structure, one per mode (train: batch statistics and dropout;
eval: running averages, no dropout), and the variables as plain nested dicts,

  {'params': {'conv1': {'kernel': ...}, 'layer1': {0: {'bn1': {...}}}},
   'batch_stats': {'bn1': {'mean': ..., 'var': ...}, ...}}

which jit donates, orbax saves and optax updates like any pytree. Inside a jitted
function `merge` rebuilds the module from them, at trace time only.

  net = models.functional(lambda rngs: models.create_model('resnet20', rngs=rngs))
  variables = net.init(jax.random.key(0))
  logits = net.apply(variables, images)                             # eval mode
  logits, batch_stats, aux = net.apply(variables, images, train=True, rng=key)
"""

import dataclasses
from typing import Any, Callable

from flax import nnx
import jax
import jax.numpy as jnp

from models import layers


@dataclasses.dataclass(frozen=True)
class Functional:
  make: Callable[[nnx.Rngs], nnx.Module]  # rngs -> a new model
  module: nnx.Module    # the model with shapes only: its attributes and class for the
                        # hooks (its additions(), dense_evaluation)
  train_def: Any        # nnx.GraphDef in train mode
  eval_def: Any         # ... and in eval mode
  rng_shapes: Any       # the dropout streams' state (shapes), rebuilt in each call

  def init(self, rng) -> dict:
    """{'params', 'batch_stats'} of a new model drawn from `rng`."""
    _, params, batch_stats, _ = nnx.split(self.make(nnx.Rngs(rng)), nnx.Param,
                                          nnx.BatchStat, ...)
    return {'params': nnx.to_pure_dict(params), 'batch_stats': nnx.to_pure_dict(batch_stats)}

  def merge(self, variables, train: bool = False, rng=None) -> nnx.Module:
    """The model with `variables`, in train or eval mode; in train mode its dropout
    draws from `rng` (each layer its own stream: nnx.reseed folds in the path)."""
    # The streams' keys are rebuilt (constants of the program), then replaced by rng.
    streams = jax.tree.map(
        lambda s: (jax.random.key(0) if jnp.issubdtype(s.dtype, jax.dtypes.prng_key)
                   else jnp.zeros(s.shape, s.dtype)), self.rng_shapes)
    model = nnx.merge(self.train_def if train else self.eval_def, variables['params'],
                      variables.get('batch_stats', {}), streams)
    if train and rng is not None:
      # (a model made with nnx.Rngs(key) has its dropout streams tagged 'default')
      nnx.reseed(model, default=rng, dropout=rng)
    return model

  def apply(self, variables, images, *, train: bool = False, rng=None, **kwargs):
    """Eval mode: the logits. Train mode (train=True): (logits, the updated batch
    statistics, [(weight, logits)] of the auxiliary classifiers)."""
    model = self.merge(variables, train, rng)
    if not train:
      return model(images, **kwargs)
    logits, aux = layers.with_auxiliary(model, images, **kwargs)
    return logits, nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)), aux


def functional(make: Callable[[nnx.Rngs], nnx.Module]) -> Functional:
  """Split the model `make(rngs)` builds, with shapes only: nothing is computed."""
  module = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
  module.train()
  train_def, _, _, rng_state = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
  module.eval()
  eval_def = nnx.graphdef(module)
  rng_shapes = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype),
                            nnx.to_pure_dict(rng_state))
  return Functional(make, module, train_def, eval_def, rng_shapes)
