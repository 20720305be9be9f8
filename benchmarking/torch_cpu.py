"""`benchmark.py --compare=torch`: this codebase's train step beside the same network's
PyTorch step on the same CPU threads, in one process, in one run.

  python benchmark.py --compare=torch        # LeNet-5, ResNet-20, VGG-A; batch 128 (5 min)

For each model, ours is train.py's step as benchmark.py's default mode times it, compiled
with XLA's fusion pass or without it by lib/compile_options' rule (`fusion`), and
other_fusion the same step compiled the other way: the rule's check. PyTorch's
the same network (benchmarking/torch_nets.py) and optimizer (SGD, momentum 0.9, weight
decay 1e-4 on the kernels), eager, on as many threads as this process has cores, in its
default NCHW layout and in channels_last (NHWC, the layout ours computes in). They
alternate round by round, each round swapping which goes first, so that neither is
favoured by a machine warming up or getting busier; each figure is the best of `repeats`
rounds. ratio = ours / PyTorch's NCHW; ratio_nhwc against channels_last. Without
PyTorch, ours alone is timed, and the table says why PyTorch's columns are empty.
"""

import time

from benchmarking import torch_nets
from configs import default
from lib import formatting
from lib.cli import host_cpus

# name -> (config.model, timed steps per round: some 3-6 s each on 2 cores)
MODELS = {
    'lenet5': ({'name': 'lenet5'}, 100),
    'resnet20': ({'name': 'resnet20'}, 8),
    'vgg_a': ({'name': 'vgg_a', 'head': 'linear'}, 3),  # configs/vgg.py:config=A,cifar
}
WARMUP = 2  # untimed steps after compilation (PyTorch: its allocator's first steps)
COLUMNS = ('model', 'batch', 'threads', 'ours', 'fusion', 'other_fusion', 'torch', 'ratio',
           'torch_nhwc', 'ratio_nhwc')
NO_TORCH = 'PyTorch is not installed (pip install torch==2.13.0): its columns are empty'


def config_for(name: str, batch: int):
  c = default.get_config()
  c.model = dict(MODELS[name][0])
  c.batch_size, c.num_classes = batch, 10
  c.dataset.name, c.dataset.image_size = 'synthetic', 32
  return c


def torch_timer(torch, name: str, batch: int, channels_last: bool):
  """timer(steps) -> seconds of PyTorch's eager train step for `name`, warmed up."""
  fmt = torch.channels_last if channels_last else torch.contiguous_format
  torch.manual_seed(0)
  net = torch_nets.NETS[name](torch).to(memory_format=fmt)
  step = torch_nets.sgd_step(torch, net, decay_kernels_only=True)
  x = torch.randn(batch, 3, 32, 32).to(memory_format=fmt)
  y = torch.randint(0, 10, (batch,))

  def timer(steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      loss = step(x, y)
    loss.item()  # (eager: each op has run when it returns; this only reads the loss)
    return time.perf_counter() - t
  timer(WARMUP)
  return timer


def compare(train_step_timer, model_names, batch: int, repeats: int, steps: int | None) -> dict:
  """{'threads', 'torch' (version or None), 'rows': [...]}: each row the best images/s
  of ours and PyTorch's (NCHW and channels_last) over `repeats` alternating rounds,
  every sample kept."""
  torch, _ = torch_nets.import_torch()
  threads = host_cpus()  # XLA:CPU's pool; PyTorch's here
  if torch is not None:
    torch.set_num_threads(threads)
  else:
    print(NO_TORCH)
  rows = []
  for name in model_names:
    n = steps or MODELS[name][1]
    ours, facts = train_step_timer(config_for(name, batch), False, WARMUP)
    other, _ = train_step_timer(config_for(name, batch), False, WARMUP,
                                fusion=not ours.fusion)
    timers = {'ours': ours, 'other_fusion': other}
    if torch is not None:
      timers['torch'] = torch_timer(torch, name, batch, channels_last=False)
      timers['torch_nhwc'] = torch_timer(torch, name, batch, channels_last=True)
    samples = {k: [] for k in timers}
    for r in range(repeats):
      for key in (list(timers) if r % 2 == 0 else list(timers)[::-1]):
        samples[key].append(n * batch / timers[key](n))
      print(f'{name} round {r + 1}/{repeats}: ' + ', '.join(
          f'{k} {v[-1]:,.1f}' for k, v in samples.items()) + ' images/s')
    ours.check_loss()
    row = {'model': name, 'batch': batch, 'threads': threads, 'steps': n,
           'devices': facts['devices'], 'compile_s': facts['compile_s'],
           'fusion': 'on' if ours.fusion else 'off',
           **{k: max(v) for k, v in samples.items()}, 'samples': samples}
    if torch is not None:
      row['ratio'] = row['ours'] / row['torch']
      row['ratio_nhwc'] = row['ours'] / row['torch_nhwc']
    if row['other_fusion'] > row['ours']:
      print(f"{name}: its step was faster with XLA's fusion pass "
            f"{'off' if ours.fusion else 'on'}, against lib/compile_options' rule")
    rows.append(row)
  return {'threads': threads, 'torch': torch.__version__ if torch else None,
          'repeats': repeats, 'rows': rows}


def format_table(report: dict) -> str:
  def cell(key, value):
    if value is None:
      return '-'
    if key.startswith('ratio'):
      return f'{value:.2f}'
    return f'{value:,.1f}' if isinstance(value, float) else str(value)
  out = formatting.table(list(COLUMNS), [[cell(k, r.get(k)) for k in COLUMNS]
                                         for r in report['rows']])
  head = (f"train step images/s, best of {report['repeats']} alternating rounds, "
          f"{report['threads']} threads; ours: XLA:CPU ({report['rows'][0]['devices']} "
          f"device{'' if report['rows'][0]['devices'] == 1 else 's'}); torch: PyTorch "
          f"{report['torch']} eager, NCHW; torch_nhwc: channels_last; ratio = ours / torch"
          if report['torch'] else NO_TORCH)
  return head + '\n' + out
