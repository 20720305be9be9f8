"""Optimizers and learning-rate schedules from the config.

Weight decay: as an L2 penalty it is wd * w added to the gradient before momentum, which
is PyTorch's `weight_decay` and the papers' (AlexNet section 5, VGG section 3.1, ResNet
section 3.4); decoupled, it is applied beside the update (Loshchilov & Hutter 2019). The
optimizer's name says which for Adam, as PyTorch's do: 'adam' takes the L2 penalty,
'adamw' the decoupled decay; SGD's optimizer.decay_style picks ('decoupled': SGDW).
Which parameters it touches is each recipe's own (optimizer.decay_params):
the Caffe-era recipes (AlexNet, VGG, GoogLeNet) decay the conv and dense kernels and
leave the biases out (their prototxts' decay_mult: 0); the ResNet recipes this codebase
cites (fb.resnet.torch, torchvision's reference training) decay every parameter,
BatchNorm's scale and bias included.
"""

import difflib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

SCHEDULES = ('piecewise', 'step', 'cosine', 'plateau', 'triangle', 'constant')
DECAY_STYLES = ('l2', 'decoupled')
DECAY_PARAMS = ('kernels', 'all')


def _check_name(field, value, valid):
  if value not in valid:
    close = difflib.get_close_matches(value, valid, n=1)
    raise ValueError(f'{field}: unknown name {value!r}; choose from {valid}'
                     + (f' (did you mean {close[0]!r}?)' if close else ''))


def kernel_mask(params):
  """True for conv and dense kernels (decay_params='kernels')."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: getattr(path[-1], 'key', None) == 'kernel', params)


def norm_bias_mask(params):
  """True for the biases of normalisation layers: a bias beside no kernel."""
  return {k: norm_bias_mask(v) if isinstance(v, dict) else (k == 'bias' and 'kernel' not in params)
          for k, v in params.items()}


def frozen_mask(frozen: tuple):
  """A mask function: True for the parameters at the paths in `frozen` ('whiten/kernel')."""
  def mask(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: '/'.join(str(p.key) for p in path) in frozen, params)
  return mask


def frozen_after(steps: int, mask) -> optax.GradientTransformation:
  """Zero updates for the masked parameters from step `steps` on: they stop as a torch
  parameter stops whose requires_grad is turned off (airbench's whitening bias)."""
  init = lambda params: {'count': jnp.zeros([], jnp.int32)}

  def update(updates, state, params=None):
    del params
    stopped = state['count'] >= steps
    updates = jax.tree.map(lambda u, m: jnp.where(stopped & m, jnp.zeros_like(u), u),
                           updates, mask(updates))
    return updates, {'count': state['count'] + 1}
  return optax.GradientTransformation(init, update)


# The optimizers (config.optimizer.name): each takes config.optimizer and returns the
# transformation that turns a gradient (with an L2 penalty's decay already added) into a
# step before the learning rate (None: the gradient itself), and whether the optimizer
# decays the weights decoupled, beside that step, instead.
OPTIMIZERS = {
    'sgd': lambda o: (optax.trace(decay=o.momentum, nesterov=o.nesterov) if o.momentum
                      else None, o.decay_style == 'decoupled'),
    # Adam (Kingma & Ba 2015) with an L2 penalty, as PyTorch's Adam(weight_decay=).
    'adam': lambda o: (optax.scale_by_adam(b1=o.b1, b2=o.b2), False),
    # AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).
    'adamw': lambda o: (optax.scale_by_adam(b1=o.b1, b2=o.b2), True),
}


def create_optimizer(config, schedule: Callable | None = None, frozen: tuple = (),
                     frozen_after_steps: dict | None = None) -> optax.GradientTransformation:
  """The optimizer. optax calls `schedule` (create_schedule's; None: the constant
  config.schedule.learning_rate) with its own count of the updates applied, so a step
  whose loss was not finite, whose update is not applied, does not move the schedule
  either. Reduce-on-plateau's multiplier is run state (TrainState.lr_scale), applied by
  the step after the optimizer. `frozen`: the paths of parameters it never changes (a
  model's `Additions.frozen`); `frozen_after_steps`: {path: step} of parameters it
  changes only before that step."""
  o = config.optimizer
  _check_name('config.optimizer.name', o.name, tuple(OPTIMIZERS))
  _check_name('config.optimizer.decay_style', o.decay_style, DECAY_STYLES)
  _check_name('config.optimizer.decay_params', o.decay_params, DECAY_PARAMS)
  mask = kernel_mask if o.decay_params == 'kernels' else None  # (None: every parameter)
  scale, decoupled = OPTIMIZERS[o.name](o)
  chain = []
  if o.grad_clip_norm:
    chain.append(optax.clip_by_global_norm(o.grad_clip_norm))
  if o.name == 'sgd' and o.norm_bias_lr_scale != 1:  # (momentum and the rate are linear)
    chain.append(optax.masked(optax.scale(o.norm_bias_lr_scale), norm_bias_mask))
  decay = [optax.add_decayed_weights(o.weight_decay, mask)] if o.weight_decay else []
  step = [scale] if scale is not None else []
  chain += step + decay if decoupled else decay + step  # (L2: the decay goes into the step)
  chain.append(optax.scale_by_learning_rate(schedule or config.schedule.learning_rate))
  if frozen:
    chain.append(optax.masked(optax.set_to_zero(), frozen_mask(frozen)))
  for path, steps in (frozen_after_steps or {}).items():
    chain.append(frozen_after(steps, frozen_mask((path,))))
  return optax.chain(*chain)


def updates_applied(opt_state) -> jax.Array:
  """The optimizer's count of the updates it has applied: what its schedule is called
  with (the step's metrics log the rate it used)."""
  return optax.tree_utils.tree_get(opt_state, 'ScaleByScheduleState').count


def create_schedule(config, steps_per_epoch: int, total_steps: int):
  """step -> learning rate (before any reduce-on-plateau scaling)."""
  s = config.schedule
  _check_name('config.schedule.name', s.name, SCHEDULES)
  base = s.learning_rate
  if s.name == 'piecewise':  # (the boundaries' order: their range, checked before this)
    if len(s.multipliers) != len(s.boundaries) + 1:
      raise ValueError(f'config.schedule.multipliers needs len(boundaries) + 1 = '
                       f'{len(s.boundaries) + 1} values; got {len(s.multipliers)}')
    scale = steps_per_epoch if s.boundaries_in_epochs else 1
    # numpy: constants of the programs that call the schedule, never arrays to copy.
    boundaries = np.array([round(b * scale) for b in s.boundaries], np.int32)
    # The base rate times each interval's multiplier: a sweep of learning_rate moves
    # the whole schedule (ResNet section 4.2: 0.1, then /10 at 32k and 48k).
    values = base * np.array(s.multipliers, np.float32)
    # values[i] applies from boundaries[i-1] (inclusive) to boundaries[i] (exclusive).
    # (optax.piecewise_constant_schedule multiplies its scales up one after another,
    # which moves some rates by a last bit from base * multiplier: ResNet-110's.)
    return lambda step: jnp.asarray(values)[jnp.searchsorted(boundaries, step, side='right')]
  if s.name == 'step':
    every = max(1, round(s.step_epochs * steps_per_epoch))
    return optax.exponential_decay(base, every, s.factor, staircase=True)
  if s.name == 'triangle':  # airbench94: 0.2 -> 1 at 23% of the run -> 0.07 at its end
    start, peak, end = s.triangle
    corners = np.array([0, int(peak * total_steps), total_steps], np.float32)
    heights = np.array([start, 1.0, end], np.float32)
    return lambda step: base * jnp.interp(jnp.asarray(step, jnp.float32), corners, heights)
  if s.name == 'cosine':
    # A linear warm-up whose first step already moves (base / warmup at step 0, base at
    # step warmup - 1: Goyal et al. 2017, as PyTorch's LinearLR), where optax's
    # warmup_cosine_decay_schedule starts from a rate of its own at step 0; then optax's
    # cosine from base down to the floor over the rest of the run.
    warmup = s.warmup_steps
    ramp = lambda step: base * (step + 1) / max(warmup, 1)
    decay = optax.cosine_decay_schedule(base, max(total_steps - warmup, 1),
                                        alpha=s.min_learning_rate / base if base else 0.)
    return optax.join_schedules([ramp, decay], [warmup])
  return optax.constant_schedule(base)  # constant, plateau (its drops: lr_scale)


def plateau_update(config, lr_scale: float, best: float, bad: int, top1: float):
  """Reduce-on-plateau (AlexNet section 5, VGG section 3.1): divide the rate by 10 when
  the validation accuracy stops improving for `patience` evaluations."""
  if top1 > best:
    return lr_scale, top1, 0
  bad += 1
  if bad >= config.schedule.patience:
    floor = config.schedule.min_learning_rate / config.schedule.learning_rate
    return max(lr_scale * config.schedule.factor, floor), best, 0
  return lr_scale, best, bad
