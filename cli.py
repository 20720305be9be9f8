"""What every entry point does with bad command lines: one line on stderr, exit status 2.
(And how they all print a duration.)

absl and ml_collections report a bad flag, a missing config file or a misspelt config
key with a traceback; users need the field and the fix. `run(main, program)` parses the
flags and reads `--config` up front, and turns these failures into one line.
"""

import contextlib
import io
import os
import re
import sys

from absl import app, flags

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
  missing = re.search(r'Attempted \[.*?\]:\s*(\S+)\s*\[Errno \d+\] ([^:]+)', text, re.S)
  if missing:
    return f'config file {missing.group(1)}: {missing.group(2)}'
  key = re.match(r"'?([\w.]+)'?\s*\n\s*Did you mean (.*)", text, re.S)
  if key:
    return f'unknown config key {key.group(1)!r}; did you mean {key.group(2).strip()}'
  return '; '.join(l.strip() for l in text.splitlines() if l.strip())


def run(main, program: str, config_flag: str | None = 'config'):
  """absl's app.run, with flag and config errors reported in one line."""

  def parse(argv):
    try:
      # ml_collections prints a config file's loading traceback itself: hold it back.
      with contextlib.redirect_stderr(io.StringIO()):
        rest = FLAGS(argv)
        if config_flag and FLAGS[config_flag].present:
          # A file that failed to load gives a stand-in that raises on first use.
          getattr(FLAGS, config_flag).keys()
    except (flags.Error, OSError, AttributeError, KeyError, TypeError, ValueError) as e:
      fail(program, one_line(e))
    return rest

  app.run(main, flags_parser=parse)


def format_duration(seconds: float) -> str:
  """'0m42s', '3m07s', '2h05m'."""
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m' if seconds >= 3600 else \
      f'{seconds // 60}m{seconds % 60:02d}s'


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
