"""What a model or a config adds to the plain train step, applied in one place.

The plain step is a forward pass, the cross-entropy, an optimizer update. A recipe adds
to it; each addition is declared by the model (`Model.additions()`, models/base.py) or
by a config key, and applied here, so the trainer names no model and no recipe:

  parameters never trained      model: Additions.frozen         (airbench's whitening)
  parameters trained for a while  model: Additions.trained_for_epochs  (its bias)
  parameters set from the data  model: Additions.init_from_data (whitening, 5,000 images)
  auxiliary classifiers         model: sown as it runs (layers.sow_auxiliary; GoogLeNet)
  mixup                         config.mixup_alpha             (Zhang et al. 2018)
  a parameter average           config.lookahead               (airbench94's lookahead)

  recipe = recipes.of(config, model.module, length)   # once, in experiment.setup
  batch = recipe.mix(batch, rng, num_classes)          # in the train step, before the loss
  state = recipe.after_step(state)                     # in the train step, after the update
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from models import base

MIXUP_STREAM = 1  # folded into the step's key for mixup's draws (dropout takes the key)


@dataclasses.dataclass(frozen=True)
class Recipe:
  additions: base.Additions    # what the model declares
  frozen_after_steps: dict     # {path: the step from which it is no longer trained}
  mixup_alpha: float           # 0: no mixup
  lookahead: Any               # config.lookahead, or None without an average
  total_steps: int

  def mix(self, batch: dict, rng, num_classes: int) -> dict:
    """The batch the loss sees: mixup's blend (with 'targets'), or the batch as is."""
    return (mixup(batch, mixup_weight(rng, self.mixup_alpha), num_classes)
            if self.mixup_alpha else batch)

  def average_of(self, variables: dict):
    """The parameter average's first value (its own buffers: the state is donated), or
    None without one."""
    return jax.tree.map(jnp.copy, variables) if self.lookahead else None

  def after_step(self, state):
    """The state after its update: moved onto the lookahead average when it is due."""
    return lookahead(self.lookahead, state, self.total_steps) if self.lookahead else state

  def length_dependent(self) -> dict:
    """{what: vectorised step -> value} of what depends on the run's length here: the
    lookahead average's weight and final copy, the steps a parameter trains for."""
    out, la = {}, self.lookahead
    if la:
      t = lambda step: step + 1  # (the lookahead acts after the step's update)
      out["the lookahead average's weight"] = lambda step: jnp.where(
          t(step) % la.every == 0, lookahead_weight(la, t(step), self.total_steps), 0.0)
      out["the lookahead's final copy"] = lambda step: lookahead_final(
          la, t(step), self.total_steps).astype(jnp.float32)
    for path, at in self.frozen_after_steps.items():
      out[f'the training of {path}'] = lambda step, at=at: (step < at).astype(jnp.float32)
    return out


def of(config, model, length) -> Recipe:
  """The recipe of a config's run of `length` (experiment.RunLength) on `model` (an
  abstract model: models.functional's .module). Any nnx.Module trains; a subclass of
  models.Model may declare additions."""
  additions = model.additions() if isinstance(model, base.Model) else base.Additions()
  return Recipe(
      additions=additions,
      frozen_after_steps={path: round(epochs * length.steps_per_epoch)
                          for path, epochs in additions.trained_for_epochs.items()},
      mixup_alpha=config.mixup_alpha,
      lookahead=config.lookahead if config.lookahead.every else None,
      total_steps=length.total_steps)


def check_length(config, total_steps: int):
  """What cannot work in a run of this length: a lookahead average never updated (its
  first update is at step lookahead.every)."""
  every = config.lookahead.every
  if every > total_steps:
    raise ValueError(f'config.lookahead.every={every} is longer than the run '
                     f'({total_steps} steps): the average would never be updated; '
                     f'set it to at most {total_steps} (airbench94: 5), or 0 for no '
                     'lookahead')


# ----------------------------------------------------------------------------- mixup


def mixup_weight(rng, alpha: float):
  """lambda ~ Beta(alpha, alpha), one per batch (Zhang et al. 2018, section 2), drawn
  from the step's key."""
  return jax.random.beta(jax.random.fold_in(rng, MIXUP_STREAM), alpha, alpha)


def mixup(batch: dict, lam, num_classes: int) -> dict:
  """Each example blended with the batch's reversal: x = lam * x_i + (1 - lam) * x_j,
  and its target lam * y_i + (1 - lam) * y_j, so the cross-entropy is
  lam * CE(y_i) + (1 - lam) * CE(y_j). Pairing with the reversed batch (as timm does)
  is a permutation that costs no draw. 'label' stays y_i (the top-1 metric's)."""
  image, labels = batch['image'], batch['label']
  mixed = lam * image.astype(jnp.float32) + (1 - lam) * image[::-1].astype(jnp.float32)
  one_hot = jax.nn.one_hot(labels, num_classes)
  return {**batch, 'image': mixed.astype(image.dtype),
          'targets': lam * one_hot + (1 - lam) * one_hot[::-1]}


# ------------------------------------------------------------------- lookahead average


def lookahead_weight(la, t, total_steps: int):
  """The weight of the average's old value at an update after step t (airbench94's
  alpha_schedule): decay**every * (t/T)**power."""
  return la.decay ** la.every * (jnp.asarray(t, jnp.float32) / total_steps) ** la.power


def lookahead_final(la, t, total_steps: int):
  """Whether the state takes the average after step t although t is no update step: at
  the last step (airbench94's update with decay 1.0), once the average has been updated
  (from step `every` on; check_length refuses a run shorter than that)."""
  return (t >= total_steps) & (t >= la.every)


def lookahead(la, state, total_steps: int):
  """airbench's lookahead (Zhang et al. 2019 as airbench94 does it): every `every` steps
  the average moves toward the parameters and BatchNorm statistics, with weight
  lookahead_weight on its old value, and the state takes the average; at the last step
  the state takes the average as it stands. `la`: config.lookahead."""
  t = state.step  # (after this step's update)
  regular = t % la.every == 0
  weight = lookahead_weight(la, t, total_steps)
  live = {'params': state.params, 'batch_stats': state.batch_stats}
  # (as torch.lerp: e + (1 - weight)(p - e), exactly e where p is e, so a frozen
  # parameter stays bitwise frozen whatever the compiler fuses)
  average = jax.tree.map(lambda e, p: jnp.where(regular, e + (1 - weight) * (p - e), e),
                         state.lookahead, live)
  copy = regular | lookahead_final(la, t, total_steps)
  live = jax.tree.map(lambda e, p: jnp.where(copy, e, p), average, live)
  return state.replace(lookahead=average, **live)
