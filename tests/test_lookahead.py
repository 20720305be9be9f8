"""The lookahead average (config.lookahead) over a whole run, against the airbench
package's own loop: the updates every `every` steps, and the last step ending on the
average; a run too short for one update is refused, and a run made longer is a change
of what depends on the run's length."""

import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from lib import recipes
from lib import steps
import train
from tests.test_run_contract import lenet, snapshot


def lookahead_config(every, decay=0.95, power=3.0):
  c = ml_collections.ConfigDict()
  c.lookahead = {'every': every, 'decay': decay, 'power': power}
  return c


def toy_state(step, params, ema):
  return steps.TrainState(
      step=jnp.int32(step), params={'w': jnp.asarray(params)}, batch_stats={},
      opt_state=None, lr_scale=None, best_top1=None, bad_evals=None, nonfinite=None,
      first_nonfinite=None, metrics=None, lookahead={'params': {'w': jnp.asarray(ema)},
                                               'batch_stats': {}})


def reference_run(moves, every, total):
  """airbench.utils.train's lookahead loop on a one-tensor network whose optimizer step t
  adds moves[t-1] to its weights: LookaheadState.update at every `every`-th step with
  alpha_schedule[t], and update(decay=1.0) after the last step. Returns what the network
  holds at the end."""
  import airbench  # pylint: disable=import-outside-toplevel  (imports torchvision)
  net = torch.nn.Linear(moves.shape[1], 1, bias=False)
  with torch.no_grad():
    net.weight.zero_()
  state = airbench.utils.LookaheadState(net)
  alpha_schedule = 0.95**5 * (torch.arange(total + 1) / total)**3
  for t in range(1, total + 1):
    with torch.no_grad():
      net.weight.add_(torch.from_numpy(moves[t - 1])[None])
    if t % every == 0:
      state.update(net, decay=alpha_schedule[t].item())
    if t >= total:
      state.update(net, decay=1.0)
  return net.weight.detach().numpy()[0]


@pytest.mark.parametrize('total', [12, 10, 7])  # the last step off, on, just past an update
def test_a_run_ends_on_the_average_as_airbenchs_loop_does(total):
  every = 5
  config = lookahead_config(every)
  moves = np.random.default_rng(total).normal(size=(total, 3)).astype(np.float32)
  params, ema = np.zeros(3, np.float32), np.zeros(3, np.float32)
  for t in range(1, total + 1):
    live = params + moves[t - 1]  # (the optimizer's step, then the lookahead)
    state = recipes.lookahead(config.lookahead, toy_state(t, live, ema), total)
    params, ema = np.asarray(state.params['w']), np.asarray(state.lookahead['params']['w'])
  np.testing.assert_allclose(params, reference_run(moves, every, total), rtol=1e-5,
                             atol=1e-6)
  # It ends on the last update's average, not on the weights it trained last.
  assert not np.allclose(params, live)


@pytest.mark.fast
def test_lookahead_every_longer_than_the_run_is_refused(tmp_path):
  workdir = str(tmp_path / 'never')
  with pytest.raises(train.SetupError, match=r'config.lookahead.every=100 is longer than '
                                             r'the run \(8 steps\)'):
    train.train_and_evaluate(lenet(8, **{'lookahead.every': 100}), workdir)
  assert not os.path.exists(workdir)


def test_a_longer_lookahead_run_changes_the_average_so_needs_the_flag(tmp_path):
  """A constant learning rate, so only the average's weight (t/T)**power moves."""
  workdir = str(tmp_path / 'w')
  short = {'schedule.name': 'constant', 'lookahead.every': 5}
  train.train_and_evaluate(lenet(10, **short), workdir)
  before = snapshot(workdir)
  # At step 15, the first update ahead: 0.95**5 * (15/10)**3 -> 0.95**5 * (15/20)**3.
  old, new = 0.95**5 * (15 / 10)**3, 0.95**5 * (15 / 20)**3
  with pytest.raises(train.SetupError) as e:
    train.train_and_evaluate(lenet(20, **short), workdir)
  assert (f"num_train_steps 10 -> 20 changes the lookahead average's weight of the steps "
          f'ahead of {workdir} (step 14: {old:.4g} -> {new:.4g})') in str(e.value), e.value
  assert '--allow_schedule_change' in str(e.value)
  assert snapshot(workdir) == before
