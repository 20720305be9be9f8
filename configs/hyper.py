"""Building blocks of a sweep: lists of trials, each a dict of overrides.

A sweep file (configs/sweeps/*.py) defines `get_config(arg)` like any config file and
`get_sweep(arg)`, which returns the trials. A trial's keys are either arguments of that
`get_config` (`'kernel': 5`, passed as `file.py:kernel=5`) or, prefixed `config.`, keys
of the config itself (`'config.schedule.learning_rate': 0.1`, passed as
`--config.schedule.learning_rate=0.1`). As in big_vision's hyper-parameter helpers:

  product(sweep('kernel', [3, 5]), sweep('pool', ['max', 'avg']))
    -> [{kernel: 3, pool: max}, {kernel: 3, pool: avg}, {kernel: 5, pool: max}, ...]
  zipped(sweep('depth', [20, 56]), sweep('config.num_epochs', [100, 200]))
    -> [{depth: 20, config.num_epochs: 100}, {depth: 56, config.num_epochs: 200}]
  chain(a, b) -> the trials of a, then those of b
"""

import itertools


def sweep(name: str, values) -> list[dict]:
  """One axis: a trial per value."""
  return [{name: v} for v in values]


def fixed(name: str, value) -> list[dict]:
  """An axis of one value: set in every trial of a product."""
  return [{name: value}]


def product(*axes: list[dict]) -> list[dict]:
  """Every combination, the last axis varying fastest."""
  return [_merge(combo) for combo in itertools.product(*axes)]


def zipped(*axes: list[dict]) -> list[dict]:
  """The i-th trials of equally long axes, merged."""
  if len({len(a) for a in axes}) > 1:
    raise ValueError(f'zipped axes must have equal lengths; got {[len(a) for a in axes]}')
  return [_merge(combo) for combo in zip(*axes)]


def chain(*sweeps: list[dict]) -> list[dict]:
  return [trial for s in sweeps for trial in s]


def swept_and_fixed(trials: list[dict]) -> tuple[list[str], dict]:
  """(the keys that take more than one value, {key: value} of those that take one)."""
  names = list(dict.fromkeys(k for t in trials for k in t))
  # (A key a trial leaves unset, whose default applies, differs from one set to None.)
  swept = [n for n in names if len({repr(t[n]) if n in t else () for t in trials}) > 1]
  return swept, {n: trials[0][n] for n in names if n not in swept}


def _merge(dicts) -> dict:
  out = {}
  for d in dicts:
    clash = set(out) & set(d)
    if clash:
      raise ValueError(f'the axes of a product/zip both set {sorted(clash)}')
    out.update(d)
  return out
