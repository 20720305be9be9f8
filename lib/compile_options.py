"""XLA's compiler options for the programs a run compiles, per platform: the one place
for a choice that helps one backend and must not change another's program
(docs/CPU_SPEED.md). The other is trace-time, in the model's layers
(`models.layers.xla_cpu_loops_over`: which convolutions XLA:CPU would run as loops).
"""

import jax


def run_once(platform: str) -> dict:
  """XLA's quickest compile, for a program that runs once (the init, whose RNG code is
  large): LLVM at level 0 (a quarter of the CPU time) and, on CPU, the classic kernel
  emitters (half of that again; the values are bitwise level 0's, checked on LeNet,
  ResNet-20, VGG and AlexNet)."""
  options = {'xla_backend_optimization_level': 0}
  if platform == 'cpu':
    options['xla_cpu_use_fusion_emitters'] = False
  return options


def init(platform: str, state) -> dict:
  """The init program of `state` (its arrays or their shapes): run_once's options, but on
  a CPU LLVM at level 1 where it draws a weight of more than 2**24 values. Its draws
  (threefry, the normal's inverse error function) cost about 100 ns of CPU a value at
  level 0, 18 at level 1: with their fully connected layers (37.7M and 102.8M values in
  one weight) AlexNet's and VGG-16's inits took 3.4 and 8.0 s at level 0, 1.2 and 2.3 at
  level 1. A ResNet's largest weight is 2.4M values, and compiling is most of its init
  (ResNet-152: 12.4 s at level 0, 14.2 at level 1; compile and run, 2-core AVX-512)."""
  options = run_once(platform)
  if platform == 'cpu' and max(x.size for x in jax.tree.leaves(state)) > 2**24:
    options['xla_backend_optimization_level'] = 1
  return options


def xla_flags(options: dict) -> str:
  """`options` as XLA_FLAGS spells them, for a process that compiles everything so."""
  return ' '.join(f'--{k}={str(v).lower()}' for k, v in options.items())


def fuses(platform: str, module) -> bool:
  """Whether a network's train step keeps XLA's fusion pass on `platform`: everywhere but
  for a residual network on a CPU (train_step; a registered nnx.Module that is not a
  models.base.Model has no shortcuts to say)."""
  return platform != 'cpu' or not getattr(module, 'residual', False)


def train_step(platform: str, module) -> dict:
  """The train step. On CPU, for a residual network (models.base.Model.residual), without
  XLA's producer-consumer fusion: XLA:CPU's weight-gradient convolution reads its input
  channels-major, and the fusion pass folds the whole elementwise chain before each such
  transpose into it; along ResNet's shortcuts that chain runs back through every earlier
  block of the stage (block k's copy recomputes their BatchNorm and ReLU, reading their
  outputs strided: 40-70 ms where a plain transpose takes 2-4). Unfused, each
  elementwise op runs once into its own buffer and YNNPACK takes each transpose into its
  convolution: ResNet-20's layout copies fell from 311 ms of operation time per step to
  none, its step 164.8 -> 192.6 images/s (batch 128, 2 cores). Without shortcuts the
  chain is one layer's, and its fusion pays: unfused, LeNet-5, airbench94 and the
  tutorial's SimpleCNN lost 9%, 19% and 33% (docs/CPU_SPEED.md, "The fusion pass, per
  network"; `benchmark.py --compare=torch` times both choices). GPUs and TPUs keep
  their fusion."""
  return {} if fuses(platform, module) else fusion(False)


def fusion(on: bool) -> dict:
  """XLA's options for a program with or without its fusion pass (an empty list of
  disabled passes overrides a jit's 'fusion' when a compile asks for it back)."""
  return {'xla_disable_hlo_passes': '' if on else 'fusion'}
