"""`benchmark.py --suite=gpu`: this codebase beside what a user would otherwise pick
(PyTorch: torchvision, AMP, channels_last, torch.compile), on the same device, in one
command of at most 8 minutes on one H100. Each row has ROW_KEYS and what else it
measured; README.md's table lists the rows, and `run` measures them in order.

`--smoke` runs the same code at toy sizes (ResNet-18 at 64 px for the ResNet-50 row) on a
CPU in a few minutes; there torch.compile traces with TorchDynamo but runs its graphs
eagerly (backend 'eager'), since Inductor would spend minutes compiling C++ for a CPU, and
XLA compiles as for a program run once (benchmark.py sets compile_options.run_once's
flags): LLVM at level 0 halves the CPU time of the JAX rows, which run each step twice.
"""

import contextlib
import dataclasses
import tempfile
import time
from unittest import mock

from benchmarking import torch_nets
from configs import airbench as airbench_config
from configs import resnet as resnet_config
from data import synthetic_folder

ROW_KEYS = ('name', 'framework', 'device', 'batch', 'images_per_sec', 'step_ms')
CIFAR_TRAIN = 50_000  # images in a CIFAR-10 epoch
AIRBENCH_EPOCH = 48 * 1024  # airbench94's epoch: 48 steps of 1024 (the last partial dropped)


@dataclasses.dataclass(frozen=True)
class Sizes:
  imagenet_model: str   # 'resnet50' (toy: 'resnet18')
  imagenet_batch: int
  imagenet_size: int
  cifar_batch: int
  cifar_examples: int   # resident on the device (the epoch is always 50,000 images)
  airbench_batch: int
  steps: int            # timed steps of each train step
  warmup: int
  jpegs: int            # files in the generated folder
  jpeg_side: int        # their side in pixels (ImageNet's average is about 400x350)
  pipeline_batches: int


FULL = Sizes('resnet50', 256, 224, 128, CIFAR_TRAIN, 1024, steps=30, warmup=5, jpegs=3000,
             jpeg_side=400, pipeline_batches=10)
SMOKE = Sizes('resnet18', 4, 64, 16, 512, 16, steps=1, warmup=0, jpegs=64, jpeg_side=80,
              pipeline_batches=2)


def row(name, framework, device, batch, images_per_sec, **more) -> dict:
  return {'name': name, 'framework': framework, 'device': device, 'batch': batch,
          'images_per_sec': images_per_sec, 'step_ms': 1000 * batch / images_per_sec,
          **more}


def skipped(name, framework, why) -> dict:
  return {**dict.fromkeys(ROW_KEYS), 'name': name, 'framework': framework, 'skipped': why}


# ------------------------------------------------------------------------------- JAX


def jax_imagenet(sizes: Sizes, time_train_step) -> dict:
  """Our ImageNet ResNet train step (train.py's: sharding, donation), bfloat16."""
  depth = sizes.imagenet_model.removeprefix('resnet')
  config = resnet_config.get_config(f'imagenet,depth={depth}')
  config.update(precision='bfloat16', batch_size=sizes.imagenet_batch, num_classes=1000)
  config.dataset.update(name='synthetic', image_size=sizes.imagenet_size)
  r = time_train_step(config, sizes.steps, sizes.warmup, end_to_end=False)
  return row('resnet50_train_bf16', 'jax', r['device_kind'], r['batch_size'],
             r['images_per_sec'], model=sizes.imagenet_model, compile_s=r['compile_s'])


def jax_resident(name, config, batch, epoch, sizes: Sizes, time_train_step) -> dict:
  """Our CIFAR network `config` (10 classes) with its training split resident on the
  device; seconds per `epoch` images."""
  config.batch_size, config.num_classes = batch, 10
  config.dataset.update(name='synthetic', synthetic_size=sizes.cifar_examples,
                        device_resident=True)
  r = time_train_step(config, sizes.steps, sizes.warmup, end_to_end=True)
  return row(name, 'jax', r['device_kind'], r['batch_size'], r['images_per_sec'],
             epoch_s=epoch / r['images_per_sec'], compile_s=r['compile_s'])


def jpeg_pipeline(sizes: Sizes, time_input_pipeline, consumed: float) -> dict:
  """The host pipeline with a worker per core on a folder of generated JPEGs, beside the
  images/s the ResNet-50 step `consumed`."""
  with tempfile.TemporaryDirectory(prefix='jpegs-') as root:
    synthetic_folder.write(root, classes=10, train=sizes.jpegs // 10, val=1, size=sizes.jpeg_side)
    config = resnet_config.get_config('imagenet,depth=50')
    config.batch_size = sizes.imagenet_batch
    config.dataset.update(name=f'folder:{root}', image_size=sizes.imagenet_size,
                          workers=-1)  # -1: one per core
    r = time_input_pipeline(config, sizes.pipeline_batches, 1)
  return row('jpeg_pipeline', f"grain, {r['workers']} workers", f"{r['host_cpus']} CPUs",
             r['batch_size'], r['images_per_sec'], first_batch_s=r['first_batch_s'],
             pillow_images_per_sec=r.get('pillow_images_per_sec'),
             resnet50_images_per_sec=consumed, keeps_up=r['images_per_sec'] >= consumed)


# ----------------------------------------------------------------------------- PyTorch


def torch_device(torch) -> tuple[str, str]:
  return ('cuda', torch.cuda.get_device_name()) if torch.cuda.is_available() else ('cpu', 'cpu')


def time_torch(torch, step, batches, sizes: Sizes, device: str) -> float:
  """Calls of `step` a second over `sizes.steps` calls after the warm-up (and compilation)."""
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  for _ in range(sizes.warmup + 1):
    step(*next(batches))
  sync()
  t = time.perf_counter()
  for _ in range(sizes.steps):
    step(*next(batches))
  sync()
  return sizes.steps / (time.perf_counter() - t)


def torch_imagenet(torch, torchvision, sizes: Sizes, smoke: bool) -> dict:
  if torchvision is None:  # (its network is torchvision's)
    return skipped('resnet50_train_bf16', 'torch', 'torchvision is not installed')
  device, name = torch_device(torch)
  net = getattr(torchvision.models, sizes.imagenet_model)().to(
      device, memory_format=torch.channels_last)
  step = torch.compile(torch_nets.sgd_step(torch, net, amp=True, device=device),
                       backend='eager' if smoke else 'inductor')
  b, s = sizes.imagenet_batch, sizes.imagenet_size
  x = torch.randn(b, 3, s, s, device=device).to(memory_format=torch.channels_last)
  y = torch.randint(0, 1000, (b,), device=device)
  steps_per_sec = time_torch(torch, step, iter(lambda: (x, y), None), sizes, device)
  return row('resnet50_train_bf16', 'torch (AMP bf16, channels_last, torch.compile)', name,
             b, b * steps_per_sec, model=sizes.imagenet_model)


def torch_cifar(torch, sizes: Sizes, compiled: bool, smoke: bool) -> dict:
  """ResNet-20 on uint8 images resident on the device; each step gathers its batch,
  pads by 4, crops 32x32 at random offsets, flips half and normalises, on the device."""
  device, name = torch_device(torch)
  net = torch_nets.resnet20(torch).to(device, memory_format=torch.channels_last)
  train = torch_nets.sgd_step(torch, net, device=device)
  n, b = sizes.cifar_examples, sizes.cifar_batch
  images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=device)
  labels = torch.randint(0, 10, (n,), device=device)
  mean = torch.tensor([0.4914, 0.4822, 0.4465], device=device).view(1, 3, 1, 1)
  std = torch.tensor([0.2470, 0.2435, 0.2616], device=device).view(1, 3, 1, 1)
  grid = torch.arange(32, device=device)

  def step(index):
    x = torch.nn.functional.pad(images[index], (4, 4, 4, 4))
    top = torch.randint(0, 9, (b, 1, 1), device=device) + grid.view(1, 32, 1)
    left = torch.randint(0, 9, (b, 1, 1), device=device) + grid.view(1, 1, 32)
    rows = torch.arange(b, device=device).view(b, 1, 1)
    x = x.permute(0, 2, 3, 1)[rows, top, left].permute(0, 3, 1, 2)  # (b, 3, 32, 32)
    flip = torch.rand(b, 1, 1, 1, device=device) < 0.5
    x = torch.where(flip, x.flip(3), x)
    x = ((x.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)
    return train(x, labels[index])

  if compiled:
    step = torch.compile(step, backend='eager' if smoke else 'inductor')
  batches = iter(lambda: (torch.randint(0, n, (b,), device=device),), None)
  rate = b * time_torch(torch, step, batches, sizes, device)
  return row('resnet20_cifar_epoch', f"torch ({'torch.compile' if compiled else 'eager'})",
             name, b, rate, epoch_s=CIFAR_TRAIN / rate)


def reference_airbench(torch, sizes: Sizes) -> dict:
  """The `airbench` package's train94 step as its train() runs it (make_net94 in float16
  on the GPU, channels_last; its SGD groups, the summed label-smoothed loss, the
  scheduler, lookahead every 5 steps) on resident random inputs. On a CPU (--smoke) it
  runs in float32, its .cuda() and .half() bypassed."""
  try:  # (here, as torch_nets.import_torch's: it imports torch and torchvision)
    import airbench  # pylint: disable=import-outside-toplevel
  except ImportError:
    return skipped('airbench94_epoch', 'airbench (PyTorch)',
                   'the airbench package is not installed (pip install airbench==0.1.8)')
  device, name = torch_device(torch)
  same = lambda self, *a, **k: self  # on a CPU: its make_net94 calls .half().cuda()
  with (mock.patch.multiple(torch.nn.Module, cuda=same, half=same) if device == 'cpu'
        else contextlib.nullcontext()):
    net = airbench.make_net94()
  dtype = next(net.parameters()).dtype
  momentum, b = 0.85, sizes.airbench_batch
  kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
  lr, wd = 11.5 / kilostep_scale, 0.0153 * b / kilostep_scale
  norm = [p for k, p in net.named_parameters() if 'norm' in k and p.requires_grad]
  other = [p for k, p in net.named_parameters() if 'norm' not in k and p.requires_grad]
  optimizer = torch.optim.SGD([dict(params=norm, lr=lr * 64, weight_decay=wd / (lr * 64)),
                               dict(params=other, lr=lr, weight_decay=wd / lr)],
                              momentum=momentum, nesterov=True)
  loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.2, reduction='none')
  lookahead = airbench.utils.LookaheadState(net)
  x = torch.randn(b, 3, 32, 32, device=device, dtype=dtype).to(memory_format=torch.channels_last)
  y = torch.randint(0, 10, (b,), device=device)
  count = [0]

  def step(x, y):
    loss = loss_fn(net(x), y).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    count[0] += 1
    if count[0] % 5 == 0:
      lookahead.update(net, decay=0.5)

  rate = b * time_torch(torch, step, iter(lambda: (x, y), None), sizes, device)
  return row('airbench94_epoch', 'airbench 0.1.8 (PyTorch)', name, b, rate,
             epoch_s=AIRBENCH_EPOCH / rate)


def run(smoke: bool, time_train_step, time_input_pipeline) -> list[dict]:
  """Every row of the suite, in order, each measurement said as it starts (a full one
  takes a minute or more) and as it ends, with its time; the PyTorch rows are skipped
  rows where PyTorch is not installed."""
  sizes = SMOKE if smoke else FULL
  print(f"gpu suite ({'toy sizes' if smoke else 'full sizes'}): importing PyTorch")
  torch, torchvision = torch_nets.import_torch()
  steps = f'compile, {sizes.warmup} warm-up and {sizes.steps} timed steps'

  model, batch = sizes.imagenet_model, sizes.imagenet_batch
  imagenet = f'{model}, batch {batch} at {sizes.imagenet_size} px: {steps}'
  cifar = f'resnet20, batch {sizes.cifar_batch}, resident data: {steps}'
  airbench = f'airbench94, batch {sizes.airbench_batch}, resident data: {steps}'
  rows = []
  todo = [  # (name, framework, what it runs, a function giving its row)
      ('resnet50_train_bf16', 'jax', imagenet, lambda: jax_imagenet(sizes, time_train_step)),
      ('resnet50_train_bf16', 'torch', imagenet,
       lambda: torch_imagenet(torch, torchvision, sizes, smoke)),
      ('resnet20_cifar_epoch', 'jax', cifar, lambda: jax_resident(
          'resnet20_cifar_epoch', resnet_config.get_config(), sizes.cifar_batch, CIFAR_TRAIN,
          sizes, time_train_step)),
      ('resnet20_cifar_epoch', 'torch (eager)', cifar,
       lambda: torch_cifar(torch, sizes, False, smoke)),
      ('resnet20_cifar_epoch', 'torch (torch.compile)', cifar,
       lambda: torch_cifar(torch, sizes, True, smoke)),
      # configs/airbench.py: bfloat16, lookahead, the airbench preset
      ('airbench94_epoch', 'jax', airbench, lambda: jax_resident(
          'airbench94_epoch', airbench_config.get_config(), sizes.airbench_batch,
          AIRBENCH_EPOCH, sizes, time_train_step)),
      ('airbench94_epoch', 'airbench (PyTorch)', airbench,
       lambda: reference_airbench(torch, sizes)),
      ('jpeg_pipeline', 'grain', f'{sizes.jpegs} JPEGs of {sizes.jpeg_side} px written, '
       f'{sizes.pipeline_batches} batches of {batch} timed',
       lambda: jpeg_pipeline(sizes, time_input_pipeline, rows[0]['images_per_sec'])),
  ]
  for i, (name, framework, what, measure) in enumerate(todo, start=1):
    head = f'[{i}/{len(todo)}] {name:<22}'
    print(f'{head} {framework}: {what} ...')
    start = time.perf_counter()
    r = (measure() if torch or framework in ('jax', 'grain') else
         skipped(name, framework, 'PyTorch is not installed'))
    rows.append(r)
    shown = f"{r['images_per_sec']:,.0f} images/s" if r['images_per_sec'] else r['skipped']
    print(f"{head} {r['framework']:<48} {shown} ({time.perf_counter() - start:.0f} s)")
  return rows
