"""`benchmark.py --profile`: where train.py's step spends its time on XLA:CPU, by kind of
work, from a jax.profiler trace of the compiled step.

  python benchmark.py --profile --model=resnet20 --batch_size=128

XLA:CPU names each operation it runs in the trace (with --xla_cpu_enable_xprof_traceme,
which benchmark.py sets for --profile); each name is an instruction of the compiled HLO,
which says what it computes. The kinds:

  conv forward        a convolution in the forward pass
  conv input grad     the gradient of a convolution's input (backward, batch-major out)
  conv weight grad    the gradient of its kernel (backward; out is a kernel's shape)
  layout copies       transposes and copies: XLA:CPU's weight-gradient convolution reads
                      its input channels-major, so each conv input is transposed first
  reductions          BatchNorm's sums, pooling, the loss's sums
  pad and slice       option-A shortcuts' subsampling and zero channels, and the like
  matmul              dense layers
  elementwise, activations   BatchNorm's normalisation, ReLU, residual adds, their grads
  elementwise, parameters    the optimizer: momentum, weight decay, the update

Each figure is the operations' own elapsed time, milliseconds per step: XLA runs
independent operations side by side, and a library operation (a YNNPACK convolution)
may use every core within its own time, so the figures add up to more or less than the
wall time. `overlap` is their sum over the wall time: about 1, the operations ran one at
a time; up to the cores, they ran side by side.
"""

import collections
import glob
import re
import tempfile

import jax

from lib.cli import host_cpus

KINDS = ('conv forward', 'conv input grad', 'conv weight grad', 'layout copies',
         'reductions', 'pad and slice', 'matmul', 'elementwise, activations',
         'elementwise, parameters', 'other')
TRACE_FLAG = '--xla_cpu_enable_xprof_traceme=true'

_COMPUTATION = re.compile(r'^(?:ENTRY )?%(\S+) ')
_INSTRUCTION = re.compile(r'^\s+(?:ROOT )?%(\S+) = (\S+?)(?:\{[^}]*\})? ([a-z][\w-]*)\(')


def instructions(hlo_text: str) -> tuple[dict, dict]:
  """({instruction: (shape, opcode, called computation, op_name)}, {computation: its
  opcodes}) of a compiled module's text."""
  table, bodies, current = {}, collections.defaultdict(set), None
  for line in hlo_text.splitlines():
    if (m := _COMPUTATION.match(line)) and line.rstrip().endswith('{'):
      current = m.group(1)
    elif m := _INSTRUCTION.match(line):
      name, shape, opcode = m.groups()
      calls = re.search(r'calls=%([\w.-]+)', line)
      op_name = re.search(r'op_name="([^"]*)"', line)
      table[name] = (shape, opcode, calls and calls.group(1), op_name and op_name.group(1))
      bodies[current].add(opcode)
  return table, bodies


def kind_of(name: str, table: dict, bodies: dict, batch: int) -> str:
  shape, opcode, calls, op_name = table[name]
  opcodes = {opcode} | bodies.get(calls, set())
  dims = [int(d) for d in re.findall(r'\d+', shape.split('[', 1)[-1])] if '[' in shape else []
  batch_major = bool(dims) and dims[0] == batch
  backward = bool(op_name) and 'transpose(' in op_name
  if 'convolution' in opcodes:  # (a library fusion carries no op_name: its shape tells)
    if not batch_major:
      return 'conv weight grad'
    return 'conv input grad' if backward else 'conv forward'
  if 'dot' in opcodes:
    return 'matmul'
  if opcodes & {'reduce', 'reduce-window', 'select-and-scatter'}:
    return 'reductions'
  moves = {'transpose', 'copy'}
  if opcodes & moves and ('transpose' in name or opcodes <= moves | {'parameter', 'bitcast'}):
    return 'layout copies'
  if opcodes & {'pad', 'slice'}:
    return 'pad and slice'
  if opcode in ('fusion', 'add', 'multiply', 'subtract', 'maximum', 'select', 'divide'):
    return 'elementwise, activations' if batch_major else 'elementwise, parameters'
  return 'other'


def profile(compiled, run_steps, steps: int, batch: int) -> dict:
  """Trace `run_steps(steps)` (the compiled step, warmed up) and sum its operations'
  time by kind: {'wall_ms', 'cores', 'overlap', 'kinds': {kind: ms per step}, 'top':
  [(instruction, kind, ms per step), ...] (the 15 longest)}."""
  from jax._src.lib import _profile_data  # pylint: disable=import-outside-toplevel
  table, bodies = instructions(compiled.as_text())
  directory = tempfile.mkdtemp(prefix='xla-profile-')
  with jax.profiler.trace(directory):
    wall = run_steps(steps)
  (path,) = glob.glob(f'{directory}/**/*.xplane.pb', recursive=True)
  per_name = collections.Counter()
  for plane in _profile_data.ProfileData.from_file(path).planes:
    for event in (e for line in plane.lines for e in line.events if e.name in table):
      per_name[event.name] += event.duration_ns
  kinds = collections.Counter()
  for name, ns in per_name.items():
    kinds[kind_of(name, table, bodies, batch)] += ns / 1e6 / steps
  return {'wall_ms': 1000 * wall / steps, 'cores': host_cpus(),
          'overlap': sum(kinds.values()) / (1000 * wall / steps),
          'kinds': {k: kinds.get(k, 0.0) for k in KINDS},
          'top': [(n, kind_of(n, table, bodies, batch), ns / 1e6 / steps)
                  for n, ns in per_name.most_common(15)]}


def format_profile(model: str, p: dict) -> str:
  total = sum(p['kinds'].values())
  lines = [f"{model}: {p['wall_ms']:.1f} ms per step (traced) on {p['cores']} cores; its "
           f"operations' time, {p['overlap']:.2f}x the wall time, by kind (ms per step):"]
  lines += [f'  {k:<26} {v:9.1f} ms  {100 * v / total:5.1f}%'
            for k, v in p['kinds'].items() if v]
  lines.append('  longest operations:')
  lines += [f'    {n:<34} {k:<26} {ms:8.1f} ms' for n, k, ms in p['top']]
  return '\n'.join(lines)
