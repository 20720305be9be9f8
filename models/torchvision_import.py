"""Import torchvision weights: `convert(name, state_dict) -> variables`.

`state_dict` maps torchvision's parameter and buffer names to numpy arrays, so this
module needs no torch; `load_pth` reads a `.pth` file with torch when it is installed.
Supported: alexnet, vgg11/13/16/19 with and without BN, resnet18/34/50/101/152, and the
`airbench` package's airbench94/95/96 networks (its make_net94/95/96).
With the converted variables, `create_model(name).apply(variables, x, train=False)`
equals torchvision's eval-mode output (tests/test_torchvision_import.py).

Layouts: torch convs are (out, in, kh, kw), ours (kh, kw, in, out); torch linears are
(out, in), ours (in, out). torchvision flattens feature maps in (C, H, W) order and we in
(H, W, C), so the first FC layer's input rows are permuted accordingly.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np

import models
from models.airbench import WIDTHS as AIRBENCH_VARIANTS
from models.vgg import CONFIGS as VGG_CONFIGS

VGG_LETTERS = {'vgg11': 'A', 'vgg13': 'B', 'vgg16': 'D', 'vgg19': 'E'}
AIRBENCH = tuple(AIRBENCH_VARIANTS)  # the `airbench` package's make_net94/95/96
SUPPORTED = (['alexnet'] + [f'{v}{bn}' for v in VGG_LETTERS for bn in ('', '_bn')]
             + [f'resnet{d}' for d in (18, 34, 50, 101, 152)] + list(AIRBENCH))


def _alexnet_names() -> dict:
  names = {f'features.{i}': f'conv{k}' for k, i in enumerate((0, 3, 6, 8, 10), 1)}
  names.update({f'classifier.{i}': f'fc{k}' for k, i in enumerate((1, 4, 6), 1)})
  return names


def _vgg_names(name: str) -> dict:
  """torchvision's `make_layers` indices: a conv (+BN) + ReLU per number, 1 per 'M'."""
  batch_norm = name.endswith('_bn')
  names, index, stage, conv = {}, 0, 1, 0
  for item in VGG_CONFIGS[VGG_LETTERS[name.removesuffix('_bn')]]:
    if item == 'M':
      index, stage, conv = index + 1, stage + 1, 0
      continue
    conv += 1
    names[f'features.{index}'] = f'conv{stage}_{conv}'
    if batch_norm:
      names[f'features.{index + 1}'] = f'bn{stage}_{conv}'
    index += 3 if batch_norm else 2
  names.update({f'classifier.{i}': f'fc{k}' for k, i in enumerate((0, 3, 6), 1)})
  return names


def _resnet_path(torch_module: str) -> str:
  """layer2.0.downsample.1 -> layer2_0/downsample_bn; layer1.0.conv1 -> layer1_0/conv1."""
  path = re.sub(r'^layer(\d)\.(\d+)\.', r'layer\1_\2/', torch_module)
  return path.replace('downsample.0', 'downsample_conv').replace('downsample.1',
                                                                 'downsample_bn')


def _airbench_path(torch_module: str) -> str:
  """make_net94's nn.Sequential: 0 the whitening conv, 2-4 the conv groups, 7 the linear
  layer (1, 5, 6, 8: GELU, pooling, flatten, scaling)."""
  first, _, rest = torch_module.partition('.')
  group = {'0': 'whiten', '2': 'block1', '3': 'block2', '4': 'block3', '7': 'head'}.get(first)
  if group is None:
    raise ValueError(f'airbench: unexpected parameter of module {torch_module!r}')
  return f'{group}/{rest}' if rest else group


def _flatten_permutation(weight: np.ndarray, chw: tuple) -> np.ndarray:
  """Reorder a first-FC weight (out, C*H*W) to take (H, W, C)-flattened input."""
  c, h, w = chw
  return weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)


def convert(name: str, state_dict: dict) -> dict:
  """torchvision `state_dict` (names -> arrays) to our {'params', 'batch_stats'}."""
  if name not in SUPPORTED:
    raise ValueError(f'torchvision import supports {SUPPORTED}; got {name!r}')
  path_of = _resnet_path
  if name == 'alexnet':
    names, first_fc = _alexnet_names(), ('fc1', (256, 6, 6))
  elif name.startswith('vgg'):
    names, first_fc = _vgg_names(name), ('fc1', (512, 7, 7))
  else:  # (airbench's last map is 1x1: its flatten needs no permutation)
    names, first_fc = None, None
    path_of = _airbench_path if name in AIRBENCH else _resnet_path
  variables = {'params': {}, 'batch_stats': {}}

  def put(collection, path, leaf, value):
    node = variables[collection]
    for part in path.split('/'):
      node = node.setdefault(part, {})
    node[leaf] = np.array(value, np.float32)  # a copy on the host: the caller places it

  for key, value in state_dict.items():
    value = np.asarray(value)
    module, leaf = key.rsplit('.', 1)
    if leaf == 'num_batches_tracked':
      continue
    if names is not None and module not in names:
      raise ValueError(f'{name}: unexpected torchvision parameter {key!r}')
    path = names[module] if names is not None else path_of(module)
    is_bn = f'{module}.running_mean' in state_dict
    if name in AIRBENCH and is_bn and leaf == 'weight':  # frozen at 1: no parameter here
      if not np.all(value == 1):
        raise ValueError(f'{name}: {key} is not all ones; airbench freezes BatchNorm '
                         'weights at 1, and this model has none')
      continue
    if leaf == 'weight' and value.ndim == 4:
      put('params', path, 'kernel', value.transpose(2, 3, 1, 0))
    elif leaf == 'weight' and value.ndim == 2:
      if first_fc and path == first_fc[0]:
        value = _flatten_permutation(value, first_fc[1])
      put('params', path, 'kernel', value.T)
    elif leaf == 'weight' and is_bn:
      put('params', path, 'scale', value)
    elif leaf == 'bias':
      put('params', path, 'bias', value)
    elif leaf in ('running_mean', 'running_var'):
      put('batch_stats', path, {'running_mean': 'mean', 'running_var': 'var'}[leaf], value)
    else:
      raise ValueError(f'{name}: cannot place torchvision tensor {key!r} {value.shape}')
  if not variables['batch_stats']:
    del variables['batch_stats']
  _check_against_model(name, variables)
  return variables


def _check_against_model(name: str, variables: dict):
  """Every parameter the model has, with its shape; nothing missing, nothing extra."""
  head = next(k for k in ('fc3', 'fc', 'head') if k in variables['params'])
  num_classes = variables['params'][head]['kernel'].shape[1]
  model = models.create_model(name, num_classes=num_classes)
  size = models.default_image_size(name)
  expected = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  flat = lambda tree: {jax.tree_util.keystr(p): v.shape
                       for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  want, got = flat(dict(expected)), flat(variables)
  if want != got:
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    shapes = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:5]
    raise ValueError(f'{name}: torchvision weights do not fit the model: missing '
                     f'{missing}, unexpected {extra}, wrong shapes {shapes}')


def load_pth(path: str) -> dict:
  """A torchvision `.pth` state dict as {name: numpy array} (needs torch)."""
  try:
    import torch
  except ImportError:
    raise ImportError('reading a .pth file needs torch: pip install torch '
                      '(or pass a state dict of numpy arrays to convert())') from None
  state_dict = torch.load(path, map_location='cpu', weights_only=True)
  return {k: v.numpy() for k, v in state_dict.items()}
