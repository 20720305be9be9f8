"""What every entry point does with bad command lines: one line on stderr, exit status 2.
(And the set-up they share: quiet logging, the persistent compilation cache, the cores
this process may use; none of it imports JAX, so the sweep runner can too.)

absl and ml_collections report a bad flag, a config file that fails to load or a
misspelt config key with a traceback; users need the field or file and the fix.
`run(main, program)` parses the flags and reads `--config` up front, and turns these
failures into one line.
"""

import contextlib
import importlib.util
import io
import os
import re
import sys
import traceback

from absl import app, flags, logging
from ml_collections import config_flags

from configs import default
from configs import keys

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
# The pin: this many XLA:CPU devices (1: a single device), instead of one per core
# (lib/parallel.use_cpu_cores; a sweep's parallel trials get their share of the cores).
CPU_DEVICES = 'CLASSIC_CPU_DEVICES'


def fail(program: str, message: str):
  print(f'{program}: error: {message}', file=sys.stderr, flush=True)
  sys.exit(2)


def one_line(error: BaseException) -> str:
  """The informative line of an absl/ml_collections error message."""
  text = str(error).strip()
  if len(text) > 1 and text[0] == text[-1] and text[0] in '\'"':  # repr()-quoted
    text = text[1:-1].replace('\\n', '\n').replace("\\'", "'")
  key = re.match(r"'?([\w.]+)'?\s*\n\s*Did you mean (.*)", text, re.S)
  if key:
    return f'unknown config key {key.group(1)!r}; did you mean {key.group(2).strip()}'
  return '; '.join(l.strip() for l in text.splitlines() if l.strip())


def run(main, program: str, config_flag: str | None = 'config'):
  """absl's app.run, with flag and config errors reported in one line, and logging at
  WARNING unless --verbosity is given.

  `--config.KEY=None` sets a key to None where the key admits it (ml_collections cannot
  parse it: e.g. `--config.num_epochs=None --config.num_train_steps=500` switches a run
  from epochs to steps), an unknown `--config.KEY` names the closest existing key, and a
  config file that fails to load is named with its error's last line.
  """

  def parse(argv):
    nones = [a for a in argv if config_flag and re.fullmatch(
        rf'--{config_flag}\.[\w.]+=None', a)]
    argv = [a for a in argv if a not in nones]
    try:
      # ml_collections prints a config file's loading traceback itself: hold it back.
      with contextlib.redirect_stderr(io.StringIO()):
        rest = FLAGS(argv)
    except ConfigFileError as e:
      fail(program, str(e))
    except (flags.Error, OSError, AttributeError, KeyError, TypeError, ValueError) as e:
      fail(program, _override_without_file(argv, config_flag)
           or unknown_key(argv, config_flag) or one_line(e))
    if nones:
      set_nones(program, nones, config_flag)
    if config_flag and FLAGS[config_flag].value is not None:
      default.clear_duration_partners(FLAGS[config_flag].value,
                                      overridden_keys(argv + nones, config_flag))
    return rest

  def quiet_main(argv):
    # JAX's and orbax's INFO lines (every compile, every save) would drown the progress
    # lines and tables; --verbosity brings them back.
    if not FLAGS['verbosity'].present:
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except app.UsageError as e:  # (absl would print its whole help, and exit 1)
      fail(program, str(e))

  # --config's parser, where it reads a config file (not a workdir's config.json), names
  # a file that fails to load (ConfigFileError).
  flag = FLAGS[config_flag] if config_flag in FLAGS else None
  if flag is not None and isinstance(flag.parser, config_flags.config_flags.ConfigFileFlagParser):
    flag.parser = _NamingParser(flag.parser)
  app.run(quiet_main, flags_parser=parse)


def set_nones(program: str, nones: list[str], config_flag: str):
  """Apply `--config.KEY=None` arguments by hand, each to a key that admits None
  (configs/default.admits_none); anything else fails in one line naming the key."""
  config = FLAGS[config_flag].value
  if config is None:
    fail(program, f'{nones[0]} overrides a key of --{config_flag}, which is not given; '
         f'give --{config_flag}=configs/FILE.py too')
  unknown = unknown_key(nones, config_flag)
  if unknown:
    fail(program, unknown)
  for arg in nones:
    key = arg.split('=', 1)[0].split('.', 1)[1]
    parent, _, leaf = key.rpartition('.')
    node = config[parent] if parent else config  # (a ConfigDict reads a dotted key)
    value = node[leaf]
    if hasattr(value, 'items'):
      fail(program, f'config.{key} is a group of keys, not a value; set its keys '
           f'(e.g. --{config_flag}.{key}.{next(iter(value), "KEY")}=...)')
    if not default.admits_none(config, key):
      fail(program, f'config.{key} cannot be None: it takes {kind_of(value)} (this config '
           f'has {value!r}); give one, or drop --{config_flag}.{key}=None')
    node[leaf] = None


def kind_of(value) -> str:
  """What a key whose value is `value` admits, in words."""
  if isinstance(value, str):
    return 'a string' + (" ('' for none)" if value == '' else '')
  if isinstance(value, (tuple, list)):
    return 'a tuple of values, e.g. ' + ','.join(map(str, value))
  words = {bool: 'True or False', int: 'an integer', float: 'a number'}
  return words.get(type(value), f'a {type(value).__name__}')


class ConfigFileError(Exception):
  """A config file that does not load: one line naming it, where, and its error. (Not a
  ValueError, which absl would wrap in a flag error of its own.)"""

  @classmethod
  def of(cls, spec: str, error: BaseException) -> 'ConfigFileError':
    """For an exception raised while loading `spec` (file.py[:arg]): its last line, and
    the line of the config file that raised it."""
    if str(error).startswith('Error whilst parsing config file'):
      error = error.__context__ or error  # (ml_collections' copy of a TypeError/ValueError)
    path = spec.partition(':')[0]
    if not path:
      return cls('--config= names no file: give a config file, e.g. '
                 '--config=configs/lenet.py')
    line = None
    if isinstance(error, SyntaxError) and _same_file(error.filename, path):
      line = error.lineno
    for frame, lineno in traceback.walk_tb(error.__traceback__):
      if _same_file(frame.f_code.co_filename, path):
        line = lineno  # (the deepest frame in the file)
    where = f'config file {spec}' + (f', line {line}' if line else '')
    if isinstance(error, AttributeError) and error.name == 'get_config' and line is None:
      return cls(f'{where} defines no get_config(arg=None); a config file returns its '
                 'ConfigDict from that function (see configs/lenet.py)')
    if type(error) is ValueError:  # a refused `:arg` (configs/common.parse_arg) or value:
      return cls(f'{where}: {error}')  # its message says what to give
    last = traceback.format_exception_only(type(error), error)[-1].strip()
    return cls(f'{where}: {last}; fix the file, or give another --config')


def _same_file(a: str | None, b: str) -> bool:
  return bool(a) and os.path.abspath(a) == os.path.abspath(b)


class _NamingParser(flags.ArgumentParser):
  """ml_collections' config file parser, whose failures name the file (ConfigFileError)."""

  def __init__(self, inner):
    self.inner = inner

  def parse(self, argument):
    try:
      config = self.inner.parse(argument)
    except Exception as e:  # pylint: disable=broad-except  (whatever the file's code raises)
      raise ConfigFileError.of(argument, e) from None
    if type(config).__name__ == '_ErrorConfig':  # ml_collections' stand-in for an OSError
      try:
        config.keys()  # raises the OSError, `from` the one that loading raised
      except OSError as e:
        cause = e.__cause__ or e
        missing = re.search(r'Attempted \[.*?\]:\s*(\S+)\s*\[Errno \d+\] ([^:\n]+)',
                            str(cause), re.S)
        if missing:
          raise ConfigFileError(f'config file {missing.group(1)}: {missing.group(2)}; give '
                                'the path of a config file, e.g. configs/lenet.py') from None
        raise ConfigFileError.of(argument, cause) from None
    if not hasattr(config, 'items'):
      raise ConfigFileError(f'config file {argument}: get_config returned '
                            f'{type(config).__name__}, not a ConfigDict; return the config')
    try:  # the file's keys, held to the command line's rules (before its overrides)
      keys.check_declared(config)
      # A key the file set where its other settings make it change nothing is refused,
      # as on the command line; decided on the file's own settings, so that an
      # override which idles one of its keys (weight_decay=0) is not.
      from lib import experiment  # pylint: disable=import-outside-toplevel  (JAX)
      experiment.refuse_idle(config, default.changed_keys(config))
    except ValueError as e:
      raise ConfigFileError(f'config file {argument}: {e}') from None
    # A model argument the file left out can still be set on the command line.
    given = overridden_keys(sys.argv)
    name = next((a.split('=', 1)[1] for a in sys.argv if a.startswith('--config.model.name=')),
                None)
    keys.add_model_arguments(config, given, name)
    return config

  def __getattr__(self, name):  # flag_type(), the help's syntax ...: the inner parser's
    return getattr(self.inner, name)


def overridden_keys(argv: list[str], config_flag: str = 'config') -> set[str]:
  """The dotted keys that `--config.KEY=VALUE` arguments set."""
  return {m.group(1) for a in argv for m in [re.match(rf'--{config_flag}\.([\w.]+)=', a)]
          if m}


def load_module(path: str):
  """A config or sweep file as a module, as ml_collections loads a --config file."""
  if REPO not in sys.path:  # config files import `configs.*`, as train.py's do
    sys.path.insert(0, REPO)
  module_spec = importlib.util.spec_from_file_location('config_file', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def _override_without_file(argv, config_flag) -> str | None:
  """The line for a --config.KEY override given with no --config file to override."""
  if not config_flag or any(a == f'--{config_flag}' or a.startswith(f'--{config_flag}=')
                            for a in argv):
    return None
  overrides = [a.split('=', 1)[0] for a in argv if a.startswith(f'--{config_flag}.')]
  return overrides and (f'{overrides[0]} overrides a config file\'s key: give the file '
                        f'too, e.g. --{config_flag}=configs/default.py')


def unknown_key(argv, config_flag, config=None) -> str | None:
  """'unknown config key X; did you mean Y?' for the first --config.X that is not a key
  of the loaded config (None when all are, or no config loaded)."""
  if not config_flag:
    return None
  try:
    config = config if config is not None else FLAGS[config_flag].value
    if config is None:  # the overrides failed before absl stored the loaded file
      spec = next(a.split('=', 1)[1] for a in argv if a.startswith(f'--{config_flag}='))
      path, _, arg = spec.partition(':')
      module = load_module(path)
      config = module.get_config(arg) if arg else module.get_config()
    paths = sorted(set(keys.flatten(config)) | set(keys.declared(config)))
  except Exception:  # pylint: disable=broad-except  (a config file that fails to load)
    return None
  for arg in argv:
    match = re.match(rf'--{config_flag}\.([\w.]+)', arg)
    path = match and match.group(1)
    if path and path not in paths and not any(p.startswith(path + '.') for p in paths):
      return keys.unknown_key(path, paths)
  return None


def host_cpus() -> int:
  """The cores this process may run on (a SLURM or container limit, not the machine's)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


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
