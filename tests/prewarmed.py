"""Entry points run as a user runs them, a process each, without paying for the imports
each time: this server imports the libraries every entry point imports (JAX, Flax, optax,
orbax, grain: about 3 s on a CI core) once, then forks a child per command.

The child is a fresh process for all the command does (its flags, its JAX backend, its
files, its exit status and its stderr); only the imported modules are shared. Nothing is
forked after a thread or a JAX backend exists (checked at start), so the fork is safe.

`run` is subprocess.run for `[sys.executable, ...]` commands. Between the two processes,
one JSON line each way: the request {argv, cwd, env, stdout, stderr, timeout} (argv as
after `python`: `[-B] SCRIPT ARGS`, `-m MODULE ARGS` or `-c CODE ARGS`), the reply
{returncode}; `python tests/prewarmed.py` serves requests on stdin until it closes.
"""

import atexit
import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import traceback

# What every entry point imports first (a server imports them before its first fork).
PREIMPORTED = ('absl.app', 'absl.flags', 'flax.nnx', 'grain', 'jax', 'jax.numpy',
               'ml_collections', 'numpy', 'optax', 'orbax.checkpoint', 'PIL.Image')


def _run(argv):
  """The command in this process, as `python ARGV` would run it; its exit status."""
  if argv[0] == '-B':  # (no .pyc written: a config file in the user's folder)
    sys.dont_write_bytecode, argv = True, argv[1:]
  try:
    if argv[0] == '-c':
      sys.argv, sys.path[0] = ['-c', *argv[2:]], ''
      exec(compile(argv[1], '<string>', 'exec'), {'__name__': '__main__'})  # pylint: disable=exec-used
    elif argv[0] == '-m':
      sys.argv, sys.path[0] = list(argv[1:]), os.getcwd()
      runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
    else:
      sys.argv = list(argv)
      sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
      runpy.run_path(argv[0], run_name='__main__')
    return 0
  except SystemExit as e:
    if e.code is None or isinstance(e.code, int):
      return e.code or 0
    print(e.code, file=sys.stderr)
    return 1
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    return 1


def _child(request):
  """Becomes the command: its environment, directory and files, then exits with it."""
  os.environ.clear()
  os.environ.update(request['env'])
  tempfile.tempdir = None  # (read TMPDIR again)
  os.chdir(request['cwd'])
  for fd, path, mode in ((0, os.devnull, os.O_RDONLY),
                         (1, request['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                         (2, request['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
    os.dup2(os.open(path, mode, 0o644), fd)
  signal.alarm(request['timeout'])  # (SIGALRM's default action ends the process)
  if os.environ.get('COVERAGE_PROCESS_START'):  # (tests/fast_lane_coverage.py)
    import coverage  # pylint: disable=import-outside-toplevel
    coverage.process_startup()
  code = _run(request['argv'])
  # The exit of the command's own process, but for the interpreter's teardown of every
  # module (half a second with JAX loaded): threads joined, atexit handlers, buffers.
  threading._shutdown()  # pylint: disable=protected-access
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def serve():
  for name in PREIMPORTED:
    __import__(name)
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if threading.active_count() != 1 or xla_bridge._backends:  # pylint: disable=protected-access
    sys.exit('prewarmed: a thread or a JAX backend exists before forking')
  for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
      _child(request)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({'returncode': os.waitstatus_to_exitcode(status)}), flush=True)


# Variables read as the libraries import (JAX's settings): a server is started with the
# request's values of these; the rest of a request's environment is set in its child.
READ_AT_IMPORT = ('JAX_', 'XLA_', 'TF_', 'PYTHON', 'LD_')


class Server:
  """One server process: runs one command at a time."""

  def __init__(self, env):
    self._process = subprocess.Popen([sys.executable, os.path.abspath(__file__)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

  def run(self, argv, cwd, env, timeout):
    """`python ARGV` in cwd with env: (returncode, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix='prewarmed-') as scratch:
      out, err = os.path.join(scratch, 'stdout'), os.path.join(scratch, 'stderr')
      self._process.stdin.write(json.dumps({
          'argv': argv, 'cwd': str(cwd), 'env': env, 'stdout': out, 'stderr': err,
          'timeout': int(timeout)}) + '\n')
      self._process.stdin.flush()
      reply = self._process.stdout.readline()
      if not reply:
        raise RuntimeError(f'prewarmed server ended (exit {self._process.wait()})')
      with open(out, 'rb') as f_out, open(err, 'rb') as f_err:
        return json.loads(reply)['returncode'], f_out.read(), f_err.read()


_IDLE = {}  # import-time environment -> servers not running a command
_LOCK = threading.Lock()


def run(args, *, cwd, env=None, timeout=600, text=False, check=False, capture_output=True):
  """`subprocess.run(args, capture_output=True, ...)` for `args = [sys.executable, ...]`,
  run by a server of this process's (one per import-time environment, more while
  commands run at once). The same CompletedProcess; a command past its timeout ends
  killed by SIGALRM (returncode -14) rather than raising TimeoutExpired."""
  assert capture_output and args[0] == sys.executable, args
  env = {k: str(v) for k, v in (os.environ if env is None else env).items()}
  key = tuple(sorted((k, v) for k, v in env.items() if k.startswith(READ_AT_IMPORT)))
  with _LOCK:
    idle = _IDLE.setdefault(key, [])
    server = idle.pop() if idle else None
  server = server or Server(env)
  code, out, err = server.run([str(a) for a in args[1:]], cwd, env, timeout)
  with _LOCK:
    _IDLE[key].append(server)  # (a server that failed is not used again)
  if text:
    out, err = out.decode(), err.decode()
  result = subprocess.CompletedProcess(args, code, out, err)
  if check:
    result.check_returncode()
  return result


if __name__ == '__main__':
  serve()
