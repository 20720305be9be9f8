"""Import torchvision weights: `convert(name, state_dict) -> variables`, or a whole model
with `load_model(name, weights)`.

`state_dict` maps torchvision's parameter and buffer names to numpy arrays, so this
module needs no torch; `load_pth` reads a `.pth` file with torch when it is installed.
Supported: alexnet, vgg11/13/16/19 with and without BN, resnet18/34/50/101/152, and the
`airbench` package's airbench94/95/96 networks (its make_net94/95/96).

Our modules carry torchvision's names (features[3], layer2[0].downsample[1], fc), so a
torchvision name is our state path with numbered children as int keys:
`layer2.0.downsample.1.running_mean` is variables['batch_stats']['layer2'][0]
['downsample'][1]['mean']. The variables are pure dicts, {'params', 'batch_stats'}, as
models.functional's `init` makes them; `models.functional(...).apply(variables, x)`
equals torchvision's eval-mode output (tests/test_torchvision_import.py).

Layouts: torch convs are (out, in, kh, kw), ours (kh, kw, in, out); torch linears are
(out, in), ours (in, out); BatchNorm's weight is our `scale`, its running_mean and
running_var our `mean` and `var`. torchvision flattens feature maps in (C, H, W) order
and we in (H, W, C), so the first FC layer's input rows are permuted accordingly.
"""

import os

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

import models
from models.airbench import WIDTHS as AIRBENCH  # the `airbench` package's make_net94/95/96

VGG = [f'vgg{depth}{bn}' for depth in (11, 13, 16, 19) for bn in ('', '_bn')]
RESNET = [f'resnet{depth}' for depth in (18, 34, 50, 101, 152)]
SUPPORTED = ['alexnet'] + VGG + RESNET + list(AIRBENCH)

# The first FC layer of a torchvision classifier, and the (C, H, W) map it flattens.
FIRST_FC = {'alexnet': ('classifier.1', (256, 6, 6)),
            **{name: ('classifier.0', (512, 7, 7)) for name in VGG}}
# The last layer, whose rows are the classes.
HEAD = {'alexnet': 'classifier.6', **{name: 'classifier.6' for name in VGG},
        **{name: 'fc' for name in RESNET}, **{name: '7' for name in AIRBENCH}}


def _airbench_module(torch_module: str) -> str:
  """make_net94's nn.Sequential: 0 the whitening conv, 2-4 the conv groups, 7 the linear
  layer (1, 5, 6, 8: GELU, pooling, flatten, scaling)."""
  first, _, rest = torch_module.partition('.')
  group = {'0': 'whiten', '2': 'block1', '3': 'block2', '4': 'block3', '7': 'head'}.get(first)
  if group is None:
    raise ValueError(f'airbench: unexpected parameter of module {torch_module!r}')
  return f'{group}.{rest}' if rest else group


def num_classes_of(name: str, state_dict: dict) -> int:
  """The classes of the weights' last layer (1000 for torchvision's ImageNet models)."""
  head = f'{HEAD[name]}.weight'
  if head not in state_dict:
    raise ValueError(f'{name}: torchvision weights do not fit the model: no {head!r} '
                     'among them')
  return int(np.shape(state_dict[head])[0])


def convert(name: str, state_dict: dict) -> dict:
  """torchvision `state_dict` (names -> arrays) to our {'params', 'batch_stats'}."""
  if name not in SUPPORTED:
    raise ValueError(f'torchvision import supports {SUPPORTED}; got {name!r}')
  module_of = _airbench_module if name in AIRBENCH else (lambda module: module)
  first_fc, flattened = FIRST_FC.get(name, (None, None))
  variables = {'params': {}, 'batch_stats': {}}

  def put(collection, module, leaf, value):
    node = variables[collection]
    for part in module_of(module).split('.'):  # numbered children: int keys
      node = node.setdefault(int(part) if part.isdigit() else part, {})
    node[leaf] = np.array(value, np.float32)  # a copy on the host: the caller places it

  for key, value in state_dict.items():
    value = np.asarray(value)
    module, _, leaf = key.rpartition('.')
    if leaf == 'num_batches_tracked':
      continue
    is_bn = f'{module}.running_mean' in state_dict
    if name in AIRBENCH and is_bn and leaf == 'weight':  # frozen at 1: no parameter here
      if not np.all(value == 1):
        raise ValueError(f'{name}: {key} is not all ones; airbench freezes BatchNorm '
                         'weights at 1, and this model has none')
      continue
    if leaf == 'weight' and value.ndim == 4:
      put('params', module, 'kernel', value.transpose(2, 3, 1, 0))
    elif leaf == 'weight' and value.ndim == 2:
      if module == first_fc:  # (out, C*H*W) to take (H, W, C)-flattened input
        value = value.reshape(-1, *flattened).transpose(0, 2, 3, 1).reshape(len(value), -1)
      put('params', module, 'kernel', value.T)
    elif leaf == 'weight' and is_bn:
      put('params', module, 'scale', value)
    elif leaf == 'bias':
      put('params', module, 'bias', value)
    elif leaf in ('running_mean', 'running_var'):
      put('batch_stats', module, {'running_mean': 'mean', 'running_var': 'var'}[leaf], value)
    else:
      raise ValueError(f'{name}: cannot place torchvision tensor {key!r} {value.shape}')
  _check_against_model(name, num_classes_of(name, state_dict), variables)
  return variables


def _check_against_model(name: str, num_classes: int, variables: dict):
  """Every parameter and statistic the model has, with its shape; nothing missing,
  nothing extra."""
  net = models.create_functional(name, num_classes=num_classes)
  expected = jax.eval_shape(lambda: net.init(jax.random.key(0)))  # (the key traced)
  flat = lambda tree: {jax.tree_util.keystr(p): v.shape
                       for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
  want, got = flat(expected), flat(variables)
  if want != got:
    missing = sorted(set(want) - set(got))[:5]
    extra = sorted(set(got) - set(want))[:5]
    shapes = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:5]
    raise ValueError(f'{name}: torchvision weights do not fit the model: missing '
                     f'{missing}, unexpected {extra}, wrong shapes {shapes}')


def load_model(name: str, weights) -> nnx.Module:
  """torchvision's `name` carrying `weights` (a `.pth` file or a state dict of numpy
  arrays), in eval mode: `load_model('resnet50', 'resnet50.pth')(images_nhwc)` are
  torchvision's logits."""
  state_dict = load_pth(weights) if isinstance(weights, (str, os.PathLike)) else weights
  variables = jax.tree.map(jnp.asarray, convert(name, state_dict))
  net = models.create_functional(name, num_classes=num_classes_of(name, state_dict))
  return net.merge(variables)


def load_pth(path: str) -> dict:
  """A torchvision `.pth` state dict as {name: numpy array} (needs torch)."""
  try:
    import torch
  except ImportError:
    raise ImportError('reading a .pth file needs torch: pip install torch '
                      '(or pass a state dict of numpy arrays to convert())') from None
  try:  # (torch's errors for a file that is not one: pickle's, a zip reader's, ...)
    return {k: v.numpy() for k, v in
            torch.load(path, map_location='cpu', weights_only=True).items()}
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'not a state dict of tensors ({type(e).__name__})') from None
