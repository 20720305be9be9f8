"""The data layer's one error type (data/sources.py re-exports it as its interface)."""


class DatasetError(ValueError):
  """A dataset that cannot be read, with what to do about it."""
