"""The networks the benchmarks time in PyTorch, written as this codebase builds them, and
the one way PyTorch is imported for them (optional: only the PyTorch rows need it)."""

import sys
import types


def import_torch():
  """torch and torchvision, or (None, None). PyPI's torchvision is a CUDA build whose
  compiled ops are missing under a CPU-only torch; its model definitions are pure
  Python, and only `_meta_registrations` needs the ops. Imported here, not at a module's
  top: PyTorch is optional and heavy (seconds to import), and only the benchmarks'
  PyTorch rows use it."""
  try:
    import torch  # pylint: disable=import-outside-toplevel  (see the docstring)
  except ImportError:
    return None, None
  if not torch.cuda.is_available():
    sys.modules.setdefault('torchvision._meta_registrations',
                           types.ModuleType('torchvision._meta_registrations'))
  try:
    import torchvision  # pylint: disable=import-outside-toplevel  (after the stub above)
  except ImportError:
    torchvision = None
  return torch, torchvision


def lenet5(torch, num_classes: int = 10):
  """models/lenet.py's LeNet-5 (its defaults: average pooling, tanh, 3x32x32 input)."""
  nn = torch.nn
  return nn.Sequential(
      nn.Conv2d(3, 6, 5), nn.Tanh(), nn.AvgPool2d(2, 2),     # C1, S2
      nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2, 2),    # C3, S4
      nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),        # C5
      nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))  # F6, output


def resnet20(torch, num_classes: int = 10):
  """CIFAR ResNet-20 (ResNet section 4.2: 3x3 convs, 16-32-64 channels, option-A
  shortcuts that subsample and pad channels with zeros), as models/resnet.py's."""
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.stride, self.pad = stride, cout - cin

    def forward(self, x):
      out = torch.relu(self.bn1(self.conv1(x)))
      out = self.bn2(self.conv2(out))
      short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
      if self.pad:
        short = nn.functional.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
      return torch.relu(out + short)

  layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
  for cin, cout, stride in ((16, 16, 1), (16, 32, 2), (32, 64, 2)):
    layers += [Block(cout if i else cin, cout, 1 if i else stride) for i in range(3)]
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
  return nn.Sequential(*layers)


def vgg_a_cifar(torch, num_classes: int = 10):
  """VGG-A (Table 1, column A: eight 3x3 convs, five 2x2 max pools) at CIFAR's 32x32,
  with the one-layer head of configs/vgg.py:config=A,cifar (models/vgg.py head='linear')."""
  from models import vgg  # pylint: disable=import-outside-toplevel  (the column, not JAX)
  nn = torch.nn
  layers, cin = [], 3
  for item in vgg.CONFIGS['A']:
    if item == 'M':
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU()]
      cin = item
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, num_classes))


NETS = {'lenet5': lenet5, 'resnet20': resnet20, 'vgg_a': vgg_a_cifar}


def sgd_step(torch, net, amp=False, device='cpu', decay_kernels_only=False):
  """One SGD step with learning rate 0.1, momentum 0.9 and weight decay 1e-4 (the papers'
  recipe); `decay_kernels_only`: biases and BatchNorm parameters undecayed, as this
  codebase's default optimizer.decay_params='kernels'."""
  params = list(net.parameters())
  if decay_kernels_only:
    params = [{'params': [p for p in params if p.ndim > 1]},
              {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0}]
  opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)

  def step(x, y):
    with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
      loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss
  return step
