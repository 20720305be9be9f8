"""The model zoo: `create_model(name, **overrides)` and `list_models(pattern)`.

Every model is an nnx.Module built as PyTorch builds one: layers declared in
`__init__(..., num_classes, in_channels, dtype, *, rngs)`, applied in `__call__` to NHWC
float images, returning logits (N, num_classes); `dtype` is the computation's (the
parameters stay float32). `model.eval()` / `model.train()` switch BatchNorm and dropout,
as in PyTorch. The trainer and tools work on the model split once into pure functions
(models.functional).

What the trainer and evaluator need from a model, the model declares (models/base.py):
  its class               a subclass of `Model` (an nnx.Module).
  what it adds            `additions()` -> Additions: parameters never trained, or
                          trained for the first epochs only; parameters set from the
                          first training images (airbench's whitening). lib/recipes.py
                          applies each part.
  auxiliary classifiers   sown with their loss weights (layers.sow_auxiliary); the
                          loss adds sum(weight * loss) of whatever was sown.
  dense evaluation        `dense_evaluation = True` on the class: __call__ takes
                          `dense=True` to run its classifier as convolutions over a
                          whole image (VGG section 3.2).
  its input's size        `image_size` among its arguments, where a layer's shape depends
                          on it (LeNet-5's F6): create_model passes it.
"""

import difflib
import fnmatch
from functools import partial
import inspect

from flax import nnx

from models.airbench import AirBench, WIDTHS as AIRBENCH_VARIANTS
from models.alexnet import AlexNet, AlexNetV1, ZFNet
from models.convnet import ConvNet
from models.googlenet import GoogLeNet
from models.lenet import LeNet5
from models.nin import NiN
from models.resnet import CifarResNet, imagenet_resnet
from models.tutorial import SimpleCNN, TutorialResNet
from models.base import Additions, Model  # noqa: F401  (the interface)
from models.functional import Functional, functional  # noqa: F401
from models import layers
from models.vgg import VGG
from models.wide_resnet import WideResNet

# name -> (constructor, native input size). One table; configs, sweeps, tests and the
# reproduction tables all look models up here.
MODELS = {
    'lenet5': (LeNet5, 32),
    'simple_cnn': (SimpleCNN, 32),
    'tutorial_resnet': (TutorialResNet, 32),
    'alexnet': (AlexNet, 224),
    'alexnet_v1': (AlexNetV1, 227),
    'zfnet': (ZFNet, 224),
    'googlenet': (GoogLeNet, 224),
    'se_resnet50': (partial(imagenet_resnet, 50, se_reduction=16), 224),
    'convnet': (ConvNet, 32),
    'nin': (NiN, 32),
    'wrn16_4': (partial(WideResNet, depth=16, widen_factor=4), 32),
    'wrn28_10': (partial(WideResNet, depth=28, widen_factor=10), 32),
}
for _letter, _alias in (('A', 'vgg11'), ('A-LRN', None), ('B', 'vgg13'), ('C', None),
                        ('D', 'vgg16'), ('E', 'vgg19')):
  _name = 'vgg_' + _letter.lower().replace('-', '_')
  for _bn in (False, True):
    _entry = (partial(VGG, config=_letter, batch_norm=_bn), 224)
    for _n in filter(None, (_name, _alias)):
      MODELS[_n + ('_bn' if _bn else '')] = _entry
for _variant in AIRBENCH_VARIANTS:
  MODELS[_variant] = (partial(AirBench, variant=_variant), 32)
for _depth in (18, 34, 50, 101, 152):
  MODELS[f'resnet{_depth}'] = (partial(imagenet_resnet, _depth), 224)
for _depth in (20, 32, 44, 56, 110, 1202):
  MODELS[f'resnet{_depth}'] = (partial(CifarResNet, depth=_depth), 32)


def list_models(pattern: str | None = None) -> list[str]:
  """Registered names, sorted; `pattern` is a shell glob such as 'resnet*'."""
  names = sorted(MODELS)
  return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def _lookup(name: str):
  if name not in MODELS:
    close = difflib.get_close_matches(name, MODELS, n=5, cutoff=0.5)
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    raise ValueError(f'unknown model {name!r}{hint} (python -c "import models; '
                     f'print(models.list_models())" lists all {len(MODELS)})')
  return MODELS[name]


def _takes_image_size(constructor) -> bool:
  # (an nnx.Module class's own signature is its metaclass's (*args, **kwargs): read
  # __init__'s)
  target = constructor.func if isinstance(constructor, partial) else constructor
  init = target.__init__ if isinstance(target, type) else target
  return 'image_size' in inspect.signature(init).parameters


def create_model(name: str, *, rngs: nnx.Rngs | None = None, image_size: int | None = None,
                 **overrides) -> nnx.Module:
  """The registered model `name` (parameters drawn from `rngs`, default nnx.Rngs(0)),
  with constructor arguments overridden; `image_size` (default: the model's native one)
  reaches the models whose layers depend on it."""
  constructor, native = _lookup(name)
  if _takes_image_size(constructor):
    overrides['image_size'] = image_size or native
  try:
    model = constructor(**overrides, rngs=rngs or nnx.Rngs(0))
  except TypeError as e:
    raise ValueError(f'model {name!r}: bad argument ({e})') from None
  return layers.name_layers(model)


def default_image_size(name: str) -> int:
  """The input height/width the model was designed for (e.g. 224, 227, 32)."""
  return _lookup(name)[1]


def create_model_from_config(model_config, num_classes: int, dtype=None, *,
                             image_size: int | None = None, in_channels: int = 3,
                             rngs: nnx.Rngs | None = None) -> nnx.Module:
  """The model a config's `model` block describes: `name` plus constructor arguments."""
  kwargs = dict(model_config.to_dict() if hasattr(model_config, 'to_dict') else model_config)
  name = kwargs.pop('name')
  if dtype is not None:
    kwargs['dtype'] = dtype
  return create_model(name, num_classes=num_classes, in_channels=in_channels,
                      image_size=image_size, rngs=rngs, **kwargs)


def create_functional(name: str, **overrides) -> Functional:
  """create_model's model split into functions of its variables (models.functional)."""
  return functional(lambda rngs: create_model(name, rngs=rngs, **overrides))
