"""The zoo's base class: an nnx.Module that says what it adds to training.

Most models add nothing: a forward pass is all the trainer needs. A model that needs
more declares it by overriding `additions()`; the trainer (lib/recipes.py) applies each
part without naming the model. Auxiliary classifiers are not declared here: the model
sows their logits as it computes them (layers.sow_auxiliary).
"""

import dataclasses
from typing import Annotated, Callable, ClassVar, Mapping

from flax import nnx

# A model's constructor arguments are its config keys (models.arguments); an annotation
# carries a key's range where its type alone does not: Annotated[type, (test, in words)].
Rate = Annotated[float, (lambda v: 0 <= v < 1, 'in [0, 1)')]  # a dropout probability


@dataclasses.dataclass(frozen=True)
class Additions:
  """What a model adds to the plain train step.

  frozen: parameter paths ('whiten/kernel') the optimizer never changes.
  trained_for_epochs: {path: epochs} of parameters trained only for their first epochs.
  init_from_data: `(params, images) -> params`, called on a new run with the first
    `init_images` training images (float NHWC, normalised); None: none.
  """
  frozen: tuple[str, ...] = ()
  trained_for_epochs: Mapping[str, float] = dataclasses.field(default_factory=dict)
  init_from_data: Callable | None = None
  init_images: int = 0


class Model(nnx.Module):
  """A zoo model: layers declared in `__init__(..., num_classes, *, in_channels, dtype,
  rngs)`, applied in `__call__(x)` to NHWC images, returning logits."""

  # Whether __call__ takes dense=True to run the classifier as convolutions over a
  # whole image (VGG section 3.2; evaluate.py --mode=dense).
  dense_evaluation: ClassVar[bool] = False
  # Whether blocks add their input to their output (ResNet's shortcuts): on a CPU its
  # train step is then compiled without XLA's fusion pass (lib/compile_options).
  residual: ClassVar[bool] = False

  def additions(self) -> Additions:
    """What this model adds to training (nothing, unless a model says otherwise)."""
    return Additions()
