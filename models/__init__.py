"""The model zoo: `create_model(name, **overrides)` and `list_models(pattern)`.

Every model is an nnx.Module built as PyTorch builds one: layers declared in
`__init__(..., num_classes, in_channels, dtype, *, rngs)`, applied in `__call__` to NHWC
float images, returning logits (N, num_classes); `dtype` is the computation's (the
parameters stay float32). `model.eval()` / `model.train()` switch BatchNorm and dropout,
as in PyTorch. The trainer and tools work on the model split once into pure functions
(models.functional).

What the trainer and evaluator need from a model beyond that, the model declares by
subclassing `Model` (models/base.py: its additions to training, dense evaluation) or
sows as it runs (auxiliary classifiers: layers.sow_auxiliary); `image_size` among its
arguments, where a layer's shape depends on it (LeNet-5's F6), create_model passes.
"""

import difflib
import fnmatch
from functools import partial
import inspect
import math
import typing

from flax import nnx

from models.airbench import AirBench, WIDTHS as AIRBENCH_VARIANTS
from models.alexnet import AlexNet, AlexNetV1, ZFNet
from models.convnet import ConvNet
from models.googlenet import GoogLeNet
from models.lenet import LeNet5
from models.nin import NiN
from models.resnet import CifarResNet, IMAGENET_STAGES, ResNet
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
    'se_resnet50': (partial(ResNet, IMAGENET_STAGES[50], True, se_reduction=16), 224),
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
  MODELS[f'resnet{_depth}'] = (partial(ResNet, IMAGENET_STAGES[_depth], _depth >= 50), 224)
for _depth in (20, 32, 44, 56, 110, 1202):
  MODELS[f'resnet{_depth}'] = (partial(CifarResNet, depth=_depth), 32)


def list_models(pattern: str | None = None) -> list[str]:
  """Registered names, sorted; `pattern` is a shell glob such as 'resnet*'."""
  return fnmatch.filter(sorted(MODELS), pattern) if pattern else sorted(MODELS)


def _lookup(name: str):
  if name not in MODELS:
    close = difflib.get_close_matches(name, MODELS, n=5, cutoff=0.5)
    hint = f'; did you mean {", ".join(close)}?' if close else ''
    raise ValueError(f'unknown model {name!r}{hint} (python -c "import models; '
                     f'print(models.list_models())" lists all {len(MODELS)})')
  return MODELS[name]


# Arguments every model takes that the trainer sets, from the dataset (classes,
# channels), the input's side and the precision: not config.model keys.
SET_BY_TRAINER = ('num_classes', 'in_channels', 'image_size', 'dtype', 'rngs')


def _signature(constructor) -> list[inspect.Parameter]:
  """The constructor's parameters, less those its registry partial binds. (An nnx.Module
  class's own signature is its metaclass's (*args, **kwargs): __init__'s is read.)"""
  positional, bound = 0, set()
  while isinstance(constructor, partial):
    positional += len(constructor.args)
    bound |= set(constructor.keywords)
    constructor = constructor.func
  init = constructor.__init__ if isinstance(constructor, type) else constructor
  params = list(inspect.signature(init).parameters.values())
  params = params[1:] if isinstance(constructor, type) else params  # (self)
  return [p for p in params[positional:] if p.name not in bound
          and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def arguments(name: str) -> dict[str, inspect.Parameter]:
  """The model's own config keys, `config.model.ARG`: its constructor's arguments with
  their defaults and annotated types (a Literal's values are its range), less those its
  registry entry binds (`resnet50`'s stages) and those the trainer sets
  (SET_BY_TRAINER). Declared once, in the model's signature."""
  return {p.name: p for p in _signature(_lookup(name)[0]) if p.name not in SET_BY_TRAINER}


def argument_type(param: inspect.Parameter) -> tuple:
  """(the type an argument's annotation gives, its range or None): an Annotated[type,
  (test, in words)] (models.base.Rate) is both."""
  if typing.get_origin(param.annotation) is typing.Annotated:
    return typing.get_args(param.annotation)
  return param.annotation, None


def check_argument(name: str, arg: str, value) -> str | None:
  """Why `value` is not one model `name`'s argument `arg` takes (None: it is one): an
  unknown argument, or a value outside its annotation (a type, or a Literal's values).
  Values the model checks further (a depth of 6n+2) it refuses when built."""
  params = arguments(name)
  if arg not in params:
    close = difflib.get_close_matches(arg, params, n=1, cutoff=0.6)
    known = ', '.join(params) or 'none'
    return (f'model {name!r} takes no argument {arg!r}' +
            (f'; did you mean {close[0]!r}?' if close else f' (its arguments: {known})'))
  kind, limits = argument_type(params[arg])
  if typing.get_origin(kind) is typing.Literal:
    choices = typing.get_args(kind)
    return None if value in choices else f'must be one of {list(choices)}; got {value!r}'
  if value is None and params[arg].default is None:
    return None
  # the Python types each annotation takes (a bool is an int: only bool takes one)
  takes = {bool: bool, int: int, float: (int, float), str: str}.get(kind)
  if takes and isinstance(value, float) and not math.isfinite(value):
    return f'must be a finite number; got {value!r}'
  if takes and (not isinstance(value, takes) or isinstance(value, bool) and kind is not bool):
    return f'must be {"a number" if kind is float else kind.__name__}; got {value!r}'
  if limits and not limits[0](value):
    return f'must be {limits[1]}; got {value!r}'
  return None


def create_model(name: str, *, rngs: nnx.Rngs | None = None, image_size: int | None = None,
                 **overrides) -> nnx.Module:
  """The registered model `name` (parameters drawn from `rngs`, default nnx.Rngs(0)),
  with constructor arguments overridden; `image_size` (default: the model's native one)
  reaches the models whose layers depend on it."""
  constructor, native = _lookup(name)
  if any(p.name == 'image_size' for p in _signature(constructor)):
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
