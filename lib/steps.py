"""The training step and the loss: pure functions of (state, batch), jitted once.

  state = train_step(state, batch)   # one SGD step on a global batch, metrics summed
  sums = eval_step(state, batch)     # loss, top-1 and top-5 hits of a batch

The state is everything a run carries from one step to the next, checkpointed whole.
The model is split once (models.functional): the step rebuilds the NNX module from the
state's variables at trace time (`net.apply`), so nothing walks the object graph per call.
What a model or config adds to the plain step comes in through lib/recipes.py.
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lib import optim
from lib import recipes

PRECISIONS = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  lr_scale: jax.Array      # reduce-on-plateau multiplier (1.0 otherwise)
  best_top1: jax.Array     # best eval top-1 so far (plateau and best checkpoint)
  bad_evals: jax.Array     # evaluations without improvement (plateau)
  nonfinite: jax.Array     # steps whose loss or gradient was NaN/Inf (not applied)
  first_nonfinite: jax.Array  # the first such step, -1 if none
  metrics: Any             # sums since the last log line (checkpointed with the state,
                           # so a resumed run logs what an uninterrupted one would)
  lookahead: Any = None    # config.lookahead: the average of params and batch_stats
                           # (None, no leaves, without it)


def zero_metrics():
  """The metrics accumulator, empty: numpy, a constant inside jit, put on the devices
  explicitly by the loop when it resets them."""
  return {'loss': np.zeros([], np.float32), 'top1': np.zeros([], np.float32),
          'steps': np.zeros([], np.int32), 'learning_rate': np.zeros([], np.float32)}


def cross_entropy(logits, labels, num_classes, smoothing):
  """Per example; `labels` (N,) ints, or (N, num_classes) target distributions."""
  targets = labels if labels.ndim == 2 else jax.nn.one_hot(labels, num_classes)
  if smoothing:
    targets = optax.smooth_labels(targets, smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def loss(logits, auxiliary, batch, num_classes: int, smoothing: float):
  """The training loss: the mean cross-entropy of the logits against the batch's targets
  (its labels, or mixup's mixture of two labels), plus each auxiliary classifier's,
  weighted as the model sowed it (GoogLeNet section 5: 0.3)."""
  targets = batch.get('targets', batch['label'])
  term = lambda out: cross_entropy(out, targets, num_classes, smoothing).mean()
  return term(logits) + sum(weight * term(aux) for weight, aux in auxiliary)


def make_train_step(config, net, tx, schedule, num_classes: int, model_input,
                    recipe: 'recipes.Recipe'):
  """One SGD step on a global batch; metrics summed into the state's accumulator.

  `model_input(step, inputs, dtype)` turns the step's second argument (a uint8 batch, or a
  dataset resident on the devices) into the model's input: input_pipeline.train_model_input.

  A step whose loss or gradients are not finite changes nothing but the step counter
  and the non-finite count: the host stops the run (on_nonfinite='stop') or goes on
  (on_nonfinite='skip') when it next looks, and the parameters stay those of the last
  good step either way.
  """
  dtype = PRECISIONS[config.precision]
  plateau = config.schedule.name == 'plateau'  # (its drops: state.lr_scale)

  def train_step(state, inputs):
    # Dropout and mixup depend on seed and step (the key is a constant of the program).
    rng = jax.random.fold_in(jax.random.key(config.seed), state.step)
    batch = recipe.mix(model_input(state.step, inputs, dtype), rng, num_classes)

    def loss_fn(params):
      variables = {'params': params, 'batch_stats': state.batch_stats}
      logits, stats, auxiliary = net.apply(variables, batch['image'], train=True, rng=rng)
      value = loss(logits, auxiliary, batch, num_classes, config.label_smoothing)
      return value, (logits, stats)

    (value, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    # optax calls the schedule with its count of applied updates (optim.create_optimizer);
    # the rate is logged from the same count.
    lr = schedule(optim.updates_applied(state.opt_state)) * state.lr_scale
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    if plateau:  # (every transformation after the rate is linear: masks, freezing)
      updates = jax.tree.map(lambda u: state.lr_scale * u, updates)
    params = optax.apply_updates(state.params, updates)

    finite = jnp.isfinite(value) & jax.tree.reduce(
        jnp.logical_and, jax.tree.map(lambda g: jnp.all(jnp.isfinite(g)), grads), True)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    top1 = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
    m = state.metrics
    metrics = {'loss': m['loss'] + jnp.where(finite, value, 0.0),
               'top1': m['top1'] + jnp.where(finite, top1, 0.0),
               'steps': m['steps'] + finite.astype(jnp.int32), 'learning_rate': lr}
    first = jnp.where((state.first_nonfinite < 0) & ~finite, state.step + 1,
                      state.first_nonfinite)
    state = state.replace(step=state.step + 1, params=keep(params, state.params),
                          batch_stats=keep(batch_stats, state.batch_stats),
                          opt_state=keep(opt_state, state.opt_state), metrics=metrics,
                          nonfinite=state.nonfinite + (~finite).astype(jnp.int32),
                          first_nonfinite=first.astype(jnp.int32))
    return recipe.after_step(state)

  return train_step


def make_eval_step(config, net, num_classes: int, model_input):
  """Sums of loss, top-1 and top-5 hits over the unmasked examples of a global batch;
  `model_input(batch, dtype)`: input_pipeline.eval_model_input."""
  dtype = PRECISIONS[config.precision]

  def eval_step(state, batch):
    batch = model_input(batch, dtype)
    variables = {'params': state.params, 'batch_stats': state.batch_stats}
    logits = net.apply(variables, batch['image']).astype(jnp.float32)
    mask = batch['mask'].astype(jnp.float32)
    losses = cross_entropy(logits, batch['label'], num_classes, 0.0)
    hits = topk_hits(logits, batch['label'])
    return {'loss': jnp.sum(losses * mask), 'top1': jnp.sum(hits['top1'] * mask),
            'top5': jnp.sum(hits['top5'] * mask), 'count': jnp.sum(mask)}

  return eval_step


def topk_hits(scores, labels, xp=jnp) -> dict:
  """{'top1', 'top5'}: per example, whether the label is the best class, or among the
  five best (fewer classes: all), for jnp inside a step or numpy on the host. Of tied
  scores the lower class index ranks first: a stable sort (numpy's default is not one,
  so evaluate.py and the trainer's eval step would count ties differently)."""
  k = min(5, scores.shape[-1])
  top = xp.argsort(-scores, axis=-1, stable=True)[:, :k]
  return {'top1': top[:, 0] == labels, 'top5': xp.any(top == labels[:, None], axis=-1)}
