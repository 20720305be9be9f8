"""Top-1 and top-5 (lib/steps.topk_hits, which the trainer's eval step runs with jax.numpy
and evaluate.py with numpy) against their definition written here, ties included."""

import jax.numpy as jnp
import numpy as np
import pytest

from lib import steps

pytestmark = pytest.mark.fast  # (the fast lane: README)


def hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """Whether fewer than k classes rank above the label: a higher score, or the same
  score at a lower class index (a tie goes to the lower index)."""
  own = scores[np.arange(len(labels)), labels][:, None]
  lower = np.arange(scores.shape[1]) < labels[:, None]
  return ((scores > own) | ((scores == own) & lower)).sum(-1) < k


@pytest.mark.parametrize('classes', [3, 5, 12, 1000])
@pytest.mark.parametrize('ties', [False, True])
@pytest.mark.parametrize('xp', [np, jnp], ids=['numpy', 'jax'])
def test_topk_hits_are_their_definition(xp, ties, classes):
  rng, n = np.random.default_rng(classes), 400
  scores = (rng.integers(0, 4, (n, classes)) if ties
            else rng.normal(size=(n, classes))).astype(np.float32)
  labels = rng.integers(0, classes, n).astype(np.int32)
  # The label's score: the r-th best of its row (tied with that class, or a little above
  # it), r < 8, so that every rank around the top 5 occurs.
  rank = np.minimum(rng.integers(0, 8, n), classes - 1)
  best = -np.sort(-scores, axis=1)[np.arange(n), rank]
  scores[np.arange(n), labels] = best + (0 if ties else np.float32(1e-3))
  got = steps.topk_hits(xp.asarray(scores), xp.asarray(labels), xp)
  top1, top5 = hits(scores, labels, 1), hits(scores, labels, 5)
  np.testing.assert_array_equal(np.asarray(got['top1']), top1)
  np.testing.assert_array_equal(np.asarray(got['top5']), top5)
  if classes > 5:  # hits and misses of each kind (five classes or fewer: all in the top 5)
    assert top1.any() and (top5 & ~top1).any() and not top5.all()
  else:
    assert top5.all()
