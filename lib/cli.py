"""What every entry point does with bad command lines: one line on stderr, exit status 2.
(And the set-up they share: quiet logging, the persistent compilation cache.)

absl and ml_collections report a bad flag, a missing config file or a misspelt config
key with a traceback; users need the field and the fix. `run(main, program)` parses the
flags and reads `--config` up front, and turns these failures into one line.
"""

import contextlib
import difflib
import importlib.util
import io
import os
import re
import sys

from absl import app, flags, logging

from configs import default

FLAGS = flags.FLAGS


def fail(program: str, message: str):
  print(f'{program}: error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def one_line(error: BaseException) -> str:
  """The informative line of an absl/ml_collections error message."""
  text = str(error).strip()
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':  # repr()-quoted
    text = text[1:-1].replace('\\n', '\n').replace("\\'", "'")
  if 'Traceback (most recent call last)' in text:  # an error raised by get_config(arg)
    text = [l for l in text.splitlines() if l.strip()][-1]
    text = re.sub(r'^\w*(Error|Exception): ', '', text)  # the exception's class name
  missing = re.search(r'Attempted \[.*?\]:\s*(\S+)\s*\[Errno \d+\] ([^:]+)', text, re.S)
  if missing:
    return f'config file {missing.group(1)}: {missing.group(2)}'
  key = re.match(r"'?([\w.]+)'?\s*\n\s*Did you mean (.*)", text, re.S)
  if key:
    return f'unknown config key {key.group(1)!r}; did you mean {key.group(2).strip()}'
  return '; '.join(l.strip() for l in text.splitlines() if l.strip())


def run(main, program: str, config_flag: str | None = 'config'):
  """absl's app.run, with flag and config errors reported in one line, and logging at
  WARNING unless --verbosity is given.

  `--config.KEY=None` sets a key to None (ml_collections cannot parse it: e.g.
  `--config.num_epochs=None --config.num_train_steps=500` switches a run from epochs to
  steps), and an unknown `--config.KEY` names the closest existing key.
  """

  def parse(argv):
    nones = [a for a in argv if config_flag and re.fullmatch(
        rf'--{config_flag}\.[\w.]+=None', a)]
    argv = [a for a in argv if a not in nones]
    try:
      # ml_collections prints a config file's loading traceback itself: hold it back.
      with contextlib.redirect_stderr(io.StringIO()):
        rest = FLAGS(argv)
        if config_flag and FLAGS[config_flag].present:
          # A file that failed to load gives a stand-in that raises on first use.
          getattr(FLAGS, config_flag).keys()
    except (flags.Error, OSError, AttributeError, KeyError, TypeError, ValueError) as e:
      fail(program, _unknown_key(argv, config_flag) or one_line(e))
    if nones:
      unknown = _unknown_key(nones, config_flag)
      if unknown:
        fail(program, unknown)
      for arg in nones:
        *parents, leaf = arg.split('=', 1)[0].split('.')[1:]
        node = getattr(FLAGS, config_flag)
        for key in parents:
          node = node[key]
        node[leaf] = None
    if config_flag and FLAGS[config_flag].value is not None:
      default.clear_duration_partners(FLAGS[config_flag].value,
                                      overridden_keys(argv + nones, config_flag))
    return rest

  def quiet_main(argv):
    # JAX's and orbax's INFO lines (every compile, every save) would drown the progress
    # lines and tables; --verbosity brings them back.
    if not FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)
    return main(argv)

  app.run(quiet_main, flags_parser=parse)


def overridden_keys(argv: list[str], config_flag: str = 'config') -> set[str]:
  """The dotted keys that `--config.KEY=VALUE` arguments set."""
  return {m.group(1) for a in argv for m in [re.match(rf'--{config_flag}\.([\w.]+)=', a)]
          if m}


def check_overrides(program: str, argv: list[str], config, config_flag: str = 'config'):
  """For a config flag defined from a ConfigDict (a workdir's config.json), to which
  ml_collections applies argv's overrides as it is defined: an unknown key, in one line."""
  unknown = _unknown_key(argv, config_flag, config)
  if unknown:
    fail(program, unknown)


def config_paths(config, prefix: str = '') -> list[str]:
  """Every leaf key of a ConfigDict as a dotted path ('schedule.learning_rate')."""
  paths = []
  for key, value in config.items():
    if hasattr(value, 'items'):
      paths += config_paths(value, f'{prefix}{key}.')
    else:
      paths.append(prefix + key)
  return paths


def closest_key(path: str, paths: list[str]) -> str | None:
  """The existing key a misspelt or misplaced one most likely meant: the same name in
  another group first (optimizer.learning_rate -> schedule.learning_rate), else the
  most similar path."""
  leaf = path.rsplit('.', 1)[-1]
  same_leaf = [p for p in paths if p.rsplit('.', 1)[-1] == leaf]
  if same_leaf:
    return same_leaf[0]
  similarity = lambda p: max(difflib.SequenceMatcher(None, path, p).ratio(), difflib.
                             SequenceMatcher(None, leaf, p.rsplit('.', 1)[-1]).ratio())
  best = max(paths, key=similarity)
  return best if similarity(best) >= 0.6 else None


def _load_config_file(spec: str):
  """'configs/FILE.py[:arg]' -> its get_config(arg), as ml_collections loads it."""
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('_config_file', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _unknown_key(argv, config_flag, config=None) -> str | None:
  """'unknown config key X; did you mean Y?' for the first --config.X that is not a key
  of the loaded config (None when all are, or no config loaded)."""
  if not config_flag:
    return None
  try:
    config = config if config is not None else FLAGS[config_flag].value
    if config is None:  # the overrides failed before absl stored the loaded file
      spec = next(a.split('=', 1)[1] for a in argv if a.startswith(f'--{config_flag}='))
      config = _load_config_file(spec)
    paths = config_paths(config)
  except Exception:  # pylint: disable=broad-except  (a config file that fails to load)
    return None
  if not paths:
    return None
  for arg in argv:
    match = re.match(rf'--{config_flag}\.([\w.]+)', arg)
    if not match:
      continue
    path = match.group(1)
    if path in paths or any(p.startswith(path + '.') for p in paths):
      continue
    close = closest_key(path, paths)
    return f'unknown config key {path!r}' + (f'; did you mean {close!r}?' if close else '')
  return None


def use_compilation_cache():
  """JAX's persistent compilation cache: a shape compiled once (a sweep trial, a rerun,
  a test) loads from disk next time. $JAX_COMPILATION_CACHE_DIR, else ~/.cache/jax."""
  import jax  # pylint: disable=import-outside-toplevel
  if not jax.config.jax_compilation_cache_dir:  # (JAX reads the variable itself)
    cache = os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache'))
    jax.config.update('jax_compilation_cache_dir', os.path.join(cache, 'jax'))
  # Every compiled step is worth keeping: small models compile in under a second, and
  # start-up is what sweeps and tests pay again and again.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
