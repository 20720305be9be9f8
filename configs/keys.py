"""Every config key, declared once: its default, meaning, type, range, when it is read
and what it affects.

Everything else is derived from KEYS: configs/default.py's `get_config()` (the other
config files start from it), the range and read-when checks of lib/experiment.py
(RANGES, READ_ONLY_WHEN), the key-coverage test (tests/test_config_keys.py) and the
README's key list (`python -m configs.keys --markdown`; tests/test_configs.py checks the
README holds it). Adding a key is one entry here and its use (docs/DESIGN.md, "Adding a
config key").

A condition of `read_when` is `(config, run) -> whether the key acts`: `run` is the
RunView of lib/experiment.py, which answers what the model and the data are
(`run.has('norm_biases')`, `run.dataset_kind`, `run.reads_pad_mode`, `run.augments_with(op)`,
`run.may_last_beyond(steps)`), so that this file imports nothing of the trainer.
"""

import dataclasses
import difflib
import math
import sys
from typing import Any, Callable

Test = tuple[Callable[..., bool], str]  # (the test, in words)


@dataclasses.dataclass(frozen=True)
class Key:
  """One config key.

  name       dotted: 'schedule.learning_rate'
  default    its value in configs/default.py
  meaning    what a user reads: what it does, the values it names
  kind       the type the command line parses (the default's type unless given: a key
             None by default needs one)
  none       whether it also admits None (`--config.KEY=None`); a key None by default
             always does
  range      (value -> whether valid, the values it admits), checked before any data:
             "config.KEY must be {admits}; got VALUE"; a None that the key admits is
             not tested
  read_when  ((config, run) -> whether the key acts, the condition in words): given on
             the command line where it would change nothing, the run refuses it
  affects    (the observable of tests/test_config_keys.py that must change when the key
             is set, the value it sets, the base settings under which the key is read);
             '{folder}' and '{trained}' there are the test's folder dataset and trained
             LeNet-5 workdir
  """
  name: str
  default: Any
  meaning: str
  kind: type | None = None
  none: bool = False
  range: Test | None = None
  read_when: Test | None = None
  affects: tuple = ()

  @property
  def type(self) -> type:
    return self.kind or type(self.default)

  @property
  def admits_none(self) -> bool:
    return self.none or self.default is None


# ------------------------------------------------------------------------------ ranges

POSITIVE = (lambda v: v > 0, '> 0')
COUNT = (lambda v: v > 0, 'positive')  # (the batch and the durations, in their words)
NON_NEGATIVE = (lambda v: v >= 0, '>= 0')
FRACTION = (lambda v: 0 <= v < 1, 'in [0, 1)')


def finite(value) -> bool:
  """Whether a number, or each number of a tuple, is neither NaN nor infinite (every
  range admits only these)."""
  values = value if isinstance(value, (tuple, list)) else (value,)
  return all(math.isfinite(v) for v in values if isinstance(v, (int, float)))


# ------------------------------------------------------------------ read-when conditions

def name_is(group: str, *names: str) -> Test:
  """schedule.name (or optimizer.name, `group`'s) is one of `names`."""
  return (lambda c, _: c[group].name in names,
          f"{group}.name is {' or '.join(map(repr, names))}")


def dataset_is(kind: str) -> Test:
  """`kind`: what data/sources.kind names the dataset ('folder', 'tfds', 'synthetic')."""
  return (lambda c, run: run.dataset_kind == kind,
          f"dataset.name is {'a folder:PATH' if kind == 'folder' else kind}"
          + (' (TFDS)' if kind == 'tfds' else ''))


def augments_with(op: str, preset: str, also: str = '') -> Test:
  return ((lambda c, run: run.augments_with(op)),
          f'dataset.augment has {op} (the {preset!r} preset){also}')


# -------------------------------------------------------------------------------- keys

FOLDER = 'folder:{folder}'  # (affects: the coverage test's folder dataset)

KEYS = {k.name: k for k in [
    Key('seed', 0, 'seeds the initialisation, the data order and the augmentation',
        range=(lambda v: 0 <= v < 2**31, 'in [0, 2**31)'),  # the samplers' uint32 keys
        affects=('first_batch', 1, {'dataset.augment': 'cifar'})),

    # ---- the model
    Key('model.name', 'resnet20', 'a registered model (models.list_models()); its '
        'constructor arguments are keys beside it: --config.model.activation=tanh for LeNet-5',
        affects=('model_output', 'simple_cnn', {})),
    Key('num_classes', None, "the model's outputs; None: the dataset's classes",
        kind=int, range=(lambda v: v > 0, "positive, or None for the dataset's"),
        affects=('model_output', 7, {'dataset.name': 'synthetic', 'dataset.channels': 3})),

    # ---- the data
    Key('dataset.name', 'cifar10', "a TFDS name, 'folder:/path', 'mnist5k' or "
        "'synthetic'", affects=('data', 'synthetic', {})),
    Key('dataset.data_dir', '', "TFDS's data_dir ('': ~/tensorflow_datasets)",
        read_when=dataset_is('tfds'),
        affects=('tfds_source', '/elsewhere', {'dataset.name': 'cifar10'})),
    Key('dataset.train_split', 'train', "the split trained on; TFDS slices work: "
        "'train[:45000]'", affects=('first_batch', 'train[100:]', {})),
    Key('dataset.eval_split', 'test', "the split evaluated; 'train[45000:]' for the "
        "ResNet paper's validation", affects=('data', 'test[:50%]', {})),
    Key('dataset.image_size', 32, "the side of the model's square input",
        range=POSITIVE,
        affects=('first_batch', 36, {})),  # (LeNet-5 refuses less than 32)
    Key('dataset.channels', 3, 'input channels the model takes (grey -> RGB)',
        range=POSITIVE, affects=('first_batch', 3, {})),
    Key('dataset.stats', '', "the dataset whose per-channel mean and std normalise the "
        "inputs ('': this one's); evaluate.py, predict.py and visualize.py set the run's",
        affects=('first_batch', 'cifar10', {})),
    Key('dataset.augment', 'cifar', 'a preset (cifar | imagenet | vgg | alexnet | '
        "airbench | none) or a list of ops and presets: 'cifar,cutout(16)', "
        "'pad_crop(4,reflect),flip' (data/transforms.py)",
        affects=('first_batch', 'cifar', {})),
    Key('dataset.pad_mode', 'zeros', "how a pad_crop without a mode of its own fills the "
        "border: zeros | reflect", read_when=(
            lambda c, run: run.reads_pad_mode,
            "dataset.augment has a pad_crop without a mode of its own ('cifar')"),
        affects=('first_batch', 'reflect', {'dataset.augment': 'cifar'})),
    Key('dataset.scale_min', 256, 'vgg preset: the training scale S is drawn from '
        '[scale_min, scale_max]', range=POSITIVE,
        read_when=augments_with('scale_jitter', 'vgg'),
        affects=('first_batch', 56, {'dataset.name': FOLDER, 'dataset.augment': 'vgg',
                                     'dataset.scale_min': 40, 'dataset.scale_max': 64})),
    Key('dataset.scale_max', 512, 'vgg preset: the largest training scale S',
        range=POSITIVE, read_when=augments_with('scale_jitter', 'vgg'),
        affects=('first_batch', 64, {'dataset.name': FOLDER, 'dataset.augment': 'vgg',
                                     'dataset.scale_min': 40, 'dataset.scale_max': 40})),
    Key('dataset.eval_resize', 256, 'vgg preset: the test scale Q', range=POSITIVE,
        read_when=augments_with('scale_jitter', 'vgg', ' (and evaluate.py --mode=dense)'),
        affects=('data', 48, {'dataset.name': FOLDER, 'dataset.augment': 'vgg'})),
    Key('dataset.device_resident', True, 'a fixed-size training split that fits (MNIST, '
        'CIFAR, SVHN) lives on the devices, gathered and augmented in jit (an '
        'augmentation of array ops only: cifar, airbench, none, cutout ...)',
        affects=('first_batch', False, {})),
    Key('dataset.device_resident_max_mb', 1024, 'the largest training split kept on the devices, in MB of uint8',
        range=NON_NEGATIVE,
        read_when=(lambda c, _: c.dataset.device_resident, 'dataset.device_resident is True'),
        affects=('data', 0, {})),
    Key('dataset.workers', -1, 'Grain decoding processes; -1: one per core for files '
        '(folders, TFDS), none for in-memory arrays',
        range=(lambda v: v >= -1, '>= 0, or -1 for one per core'),
        affects=('data', 1, {'dataset.name': FOLDER})),
    Key('dataset.on_corrupt', 'stop', "folder datasets: a corrupt image file stops the "
        "run naming it; 'skip' leaves it out, counted", read_when=dataset_is('folder'),
        affects=('data', 'skip', {'dataset.name': FOLDER + '_corrupt'})),
    Key('dataset.rescan', False, 'folder datasets: inspect every file again instead of '
        'trusting the cached index (data/folder_index.py)', read_when=dataset_is('folder'),
        affects=('files_opened', True, {'dataset.name': FOLDER})),
    Key('dataset.synthetic_size', 1024, 'examples of the synthetic source', range=POSITIVE,
        read_when=dataset_is('synthetic'),
        affects=('data', 64, {'dataset.name': 'synthetic'})),

    Key('batch_size', 128, 'global, over all devices and hosts', range=COUNT,
        affects=('length', 32, {})),
    # Durations, each in steps or in epochs: one of a pair (DURATIONS) set, the other
    # None. Setting one on the command line (or in a sweep) clears its partner
    # (default.clear_duration_partners).
    Key('num_train_steps', 64000, 'steps of the run (or num_epochs)', none=True,
        range=COUNT, affects=('length', 8, {})),
    Key('num_epochs', None, 'epochs of the run, a fraction allowed (or num_train_steps)',
        kind=float, range=COUNT, affects=('length', 2.0, {})),

    # ---- the optimizer
    Key('optimizer.name', 'sgd', 'sgd | adam | adamw: Adam with the weight decay added to '
        "the gradient (an L2 penalty, PyTorch's Adam(weight_decay=)), or decoupled from it "
        '(AdamW, Loshchilov & Hutter 2019)', affects=('updates', 'adamw', {})),
    Key('optimizer.momentum', 0.9, "SGD's momentum", range=FRACTION,
        read_when=name_is('optimizer', 'sgd'), affects=('updates', 0.5, {})),
    # (SGD without momentum has no velocity for Nesterov's look-ahead to use)
    Key('optimizer.nesterov', False, "SGD's Nesterov momentum",
        read_when=(lambda c, _: c.optimizer.name == 'sgd' and c.optimizer.momentum > 0,
                   "optimizer.name is 'sgd' with optimizer.momentum > 0"),
        affects=('updates', True, {})),
    Key('optimizer.weight_decay', 1e-4, 'weight decay', range=NON_NEGATIVE,
        affects=('updates', 0.1, {})),
    # (without momentum or Adam's scaling, SGD's decay added to the gradient and its
    # decay beside the update are one and the same step, lr * (g + wd * w))
    # (Adam's names say theirs: adam's is l2, adamw's decoupled)
    Key('optimizer.decay_style', 'l2', "SGD's weight decay: l2, added to the gradient; "
        'decoupled, beside the update (SGDW)',
        read_when=(lambda c, _: c.optimizer.weight_decay > 0 and c.optimizer.name == 'sgd'
                   and c.optimizer.momentum > 0,
                   "optimizer.weight_decay > 0, with optimizer.name 'sgd' and momentum > 0"),
        affects=('updates', 'decoupled', {'optimizer.weight_decay': 0.1})),
    Key('optimizer.decay_params', 'kernels', "kernels: conv/dense kernels only (the Caffe "
        "recipes: AlexNet, VGG, GoogLeNet); all: every parameter, BatchNorm's and biases "
        "too (torchvision's and fb.resnet.torch's ResNet recipes)",
        read_when=(lambda c, run: c.optimizer.weight_decay > 0 and run.has('non_kernels'),
                   'optimizer.weight_decay > 0 and the model has parameters other than '
                   'kernels (biases, BatchNorm scales)'),
        affects=('updates', 'all', {'optimizer.weight_decay': 0.1})),
    Key('optimizer.b1', 0.9, "Adam's first-moment decay", range=FRACTION,
        read_when=name_is('optimizer', 'adam', 'adamw'),
        affects=('updates', 0.5, {'optimizer.name': 'adamw'})),
    Key('optimizer.b2', 0.999, "Adam's second-moment decay", range=FRACTION,
        read_when=name_is('optimizer', 'adam', 'adamw'),
        affects=('updates', 0.5, {'optimizer.name': 'adamw'})),
    Key('optimizer.grad_clip_norm', 0.0, "the gradient's global norm is clipped to this; "
        '0: no clipping', range=NON_NEGATIVE, affects=('updates', 1.0, {})),
    # (optim.create_optimizer: the bias scaler is SGD's; it scales what norm_bias_mask picks)
    Key('optimizer.norm_bias_lr_scale', 1.0, "sgd: BatchNorm biases step this many times "
        "farther, their weight decay unchanged (airbench's bias_scaler, 64)",
        range=POSITIVE,
        read_when=(lambda c, run: c.optimizer.name == 'sgd' and run.has('norm_biases'),
                   "optimizer.name is 'sgd' and the model has normalisation biases "
                   "(BatchNorm's, biases beside no kernel)"),
        affects=('updates', 64.0, {'model.name': 'tutorial_resnet'})),
    Key('label_smoothing', 0.0, "the targets' share spread evenly over all classes",
        range=FRACTION, affects=('train_loss', 0.1, {})),
    Key('mixup_alpha', 0.0, 'mixup (Zhang et al. 2018): each example blended with '
        "another, x = lam x_i + (1 - lam) x_j, and so its target; lam ~ Beta(alpha, "
        'alpha) per batch (0.2 for ImageNet, 1.0 for CIFAR-10 in the paper); 0: none',
        range=NON_NEGATIVE, affects=('train_loss', 0.4, {})),

    # ---- the learning-rate schedule
    Key('schedule.name', 'piecewise', 'piecewise | step | cosine | plateau | triangle | '
        'constant', affects=('learning_rates', 'cosine', {})),
    Key('schedule.learning_rate', 0.1, 'the base rate', range=POSITIVE,
        affects=('learning_rates', 0.5, {'schedule.name': 'piecewise'})),
    Key('schedule.boundaries', (32000, 48000), 'piecewise: in steps, or in epochs with '
        'boundaries_in_epochs', range=(lambda v: all(b >= 0 for b in v) and list(v) == sorted(
            v), 'non-negative and increasing'), read_when=name_is('schedule', 'piecewise'),
        affects=('learning_rates', (10, 100), {'schedule.name': 'piecewise'})),
    Key('schedule.boundaries_in_epochs', False, 'piecewise: the boundaries count epochs',
        read_when=(lambda c, _: c.schedule.name == 'piecewise' and c.schedule.boundaries,
                   "schedule.name is 'piecewise' with schedule.boundaries"),
        affects=('learning_rates', True, {'schedule.name': 'piecewise',
                                          'schedule.boundaries': (1, 2)})),
    Key('schedule.multipliers', (1.0, 0.1, 0.01), 'piecewise: learning_rate times these, '
        'len(boundaries) + 1 of them', range=(lambda v: all(m > 0 for m in v), 'each > 0'),
        read_when=name_is('schedule', 'piecewise'),
        affects=('learning_rates', (1.0, 0.5, 0.2), {'schedule.name': 'piecewise'})),
    # (a factor of 1 keeps the rate: when it would drop, step_epochs or patience, is moot)
    Key('schedule.step_epochs', 30, 'step: divide by `factor` every step_epochs epochs',
        range=POSITIVE,
        read_when=(lambda c, _: c.schedule.name == 'step' and c.schedule.factor < 1,
                   "schedule.name is 'step' with schedule.factor < 1"),
        affects=('learning_rates', 2, {'schedule.name': 'step'})),
    Key('schedule.factor', 0.1, 'step and plateau: what each drop multiplies the rate by',
        range=(lambda v: 0 < v <= 1, 'in (0, 1]'), read_when=name_is('schedule', 'step', 'plateau'),
        affects=('learning_rates', 0.5, {'schedule.name': 'step'})),
    Key('schedule.warmup_steps', 0, 'cosine: steps of linear warm-up', range=NON_NEGATIVE,
        read_when=name_is('schedule', 'cosine'),
        affects=('learning_rates', 100, {'schedule.name': 'cosine'})),
    Key('schedule.patience', 1, 'plateau: evaluations without improvement before a drop',
        range=(lambda v: v >= 1, '>= 1'),
        read_when=(lambda c, _: c.schedule.name == 'plateau' and c.schedule.factor < 1,
                   "schedule.name is 'plateau' with schedule.factor < 1"),
        affects=('plateau', 3, {'schedule.name': 'plateau'})),
    # (the cosine's floor shows from the second step after its warm-up, the first being
    # the base rate; the plateau's, only after drops)
    Key('schedule.min_learning_rate', 0.0, "cosine and plateau: the rate's floor",
        range=NON_NEGATIVE,
        read_when=(lambda c, run: (c.schedule.name == 'cosine' and run.may_last_beyond(
            c.schedule.warmup_steps + 1)) or (c.schedule.name == 'plateau'
                                              and c.schedule.factor < 1),
                   "schedule.name is 'cosine' with a run longer than schedule.warmup_steps "
                   "+ 1, or 'plateau' with schedule.factor < 1"),
        affects=('learning_rates', 0.005, {'schedule.name': 'cosine'})),
    Key('schedule.triangle', (0.2, 0.23, 0.07), 'triangle: learning_rate times a line '
        'from start up to 1 at this fraction of the run, then down to end at its last '
        'step (airbench94)',
        range=(lambda v: len(v) == 3 and v[0] >= 0 and 0 <= v[1] <= 1 and v[2] >= 0,
               '(start >= 0, peak in [0, 1], end >= 0)'),
        read_when=name_is('schedule', 'triangle'),
        affects=('learning_rates', (0.5, 0.5, 0.1), {'schedule.name': 'triangle'})),

    # ---- airbench94's parameter averaging
    Key('lookahead.every', 0, "airbench94's parameter averaging: steps between the updates "
        'of the average of params and BatchNorm statistics, which the network then takes; '
        '0: none', range=NON_NEGATIVE,
        affects=('averaged', 5, {})),
    Key('lookahead.decay', 0.95, 'the average keeps decay**every * (t/T)**power of itself',
        range=(lambda v: 0 <= v <= 1, 'in [0, 1]'),
        read_when=(lambda c, _: c.lookahead.every > 0, 'lookahead.every > 0'),
        affects=('averaged', 0.5, {'lookahead.every': 5})),
    # (the average's weight decay**every * (t/T)**power is 0 for any power when decay is)
    Key('lookahead.power', 3.0, 'see lookahead.decay', range=NON_NEGATIVE,
        read_when=(lambda c, _: c.lookahead.every > 0 and c.lookahead.decay > 0,
                   'lookahead.every > 0 and lookahead.decay > 0'),
        affects=('averaged', 2.0, {'lookahead.every': 5})),

    # ---- the run
    Key('precision', 'float32', 'float32 | bfloat16: the compute; params stay float32',
        range=(lambda v: v in ('float32', 'bfloat16'), "one of ['float32', 'bfloat16']"),
        affects=('model_output', 'bfloat16', {})),
    Key('log_every_steps', 100, 'steps between progress lines and metrics.jsonl records '
        '(or log_every_epochs)', none=True, range=COUNT, affects=('length', 1, {})),
    Key('log_every_epochs', None, 'epochs between them (or log_every_steps)', kind=float,
        range=COUNT, affects=('length', 1.0, {})),
    Key('eval_every_steps', 2000, 'steps between evaluations (or eval_every_epochs)',
        none=True, range=COUNT, affects=('length', 1, {})),
    Key('eval_every_epochs', None, 'epochs between them (or eval_every_steps)', kind=float,
        range=COUNT, affects=('length', 1.0, {})),
    Key('checkpoint_every_steps', 2000, 'steps between checkpoints (or '
        'checkpoint_every_epochs)', none=True, range=COUNT, affects=('length', 1, {})),
    Key('checkpoint_every_epochs', None, 'epochs between them (or checkpoint_every_steps)',
        kind=float, range=COUNT, affects=('length', 1.0, {})),
    Key('keep_checkpoints', 2, 'the latest checkpoints kept', range=POSITIVE,
        affects=('run', 3, {'checkpoint_every_steps': 1})),
    Key('on_nonfinite', 'stop', "NaN/Inf loss: 'stop' (keep the last good checkpoint) "
        "or 'skip' the step (counted in metrics.jsonl)",
        range=(lambda v: v in ('stop', 'skip'), "'stop' or 'skip'"),
        affects=('run', 'skip', {'schedule.learning_rate': 1e30})),
    Key('distributed', False, 'force jax.distributed.initialize()',
        affects=('distributed', True, {})),
    Key('init_from', '', "a workdir: start from its latest checkpoint's weights (params, "
        "BatchNorm statistics) at step 0, with a fresh optimizer; '': random "
        'initialisation', affects=('initial_params', '{trained}', {})),
]}

DURATIONS = [('num_train_steps', 'num_epochs'), ('log_every_steps', 'log_every_epochs'),
             ('eval_every_steps', 'eval_every_epochs'),
             ('checkpoint_every_steps', 'checkpoint_every_epochs')]

RANGES = {k.name: k.range for k in KEYS.values() if k.range}
READ_ONLY_WHEN = {k.name: k.read_when for k in KEYS.values() if k.read_when}


# ----------------------------------------------------------------- declared keys only

def flatten(tree, prefix: str = '', whole: tuple = ()) -> dict:
  """{dotted path: value} of the leaves of a ConfigDict or of its JSON: {'schedule':
  {'name': 'cosine'}} -> {'schedule.name': 'cosine'}. Lists, empty groups and the keys of
  a group in `whole` ('model': its arguments, whatever their values) are leaves."""
  out = {}
  for key, value in tree.items():
    if hasattr(value, 'items') and value and prefix.rstrip('.') not in whole:
      out.update(flatten(value, f'{prefix}{key}.', whole))
    else:
      out[prefix + key] = value
  return out


def unknown_key(path: str, paths: list[str], where: str = '') -> str:
  """"unknown config key 'optimizer.learning_rate'; did you mean 'schedule.learning_rate'?"
  (`where` after the key): the declared key a misspelt or misplaced one most likely meant
  is the same name in another group first, else the most similar path."""
  leaf = path.rsplit('.', 1)[-1]
  def similarity(p):
    return max(difflib.SequenceMatcher(None, path, p).ratio(),
               difflib.SequenceMatcher(None, leaf, p.rsplit('.', 1)[-1]).ratio())
  close = next((p for p in paths if p.rsplit('.', 1)[-1] == leaf), None) or max(
      (p for p in paths if similarity(p) >= 0.6), key=similarity, default=None)
  return f'unknown config key {path!r}{where}' + (f'; did you mean {close!r}?' if close else '')


def declared(config) -> list[str]:
  """The keys `config` may have: KEYS's, and config.model.name's constructor arguments
  (models.arguments; none while the name is not a registered model's)."""
  import models  # pylint: disable=import-outside-toplevel  (flax: only where a model is)
  name = config.get('model', {}).get('name')
  own = list(models.arguments(name)) if name in models.MODELS else []
  return list(KEYS) + [f'model.{arg}' for arg in own]


def check_declared(config, origin: str = ''):
  """Every key of `config` is declared, and each model argument within its annotation;
  ValueError naming the first that is not, `origin` (where it was set: 'config file
  my_lenet.py'), and the closest declared key."""
  import models  # pylint: disable=import-outside-toplevel
  where = f' (set in {origin})' if origin else ''
  known = declared(config)
  name = config.get('model', {}).get('name')
  for path in flatten(config, whole=('model',)):
    if path in known or (path.startswith('model.') and name not in models.MODELS):
      continue  # (an unknown model: check_model names it, and the registered ones)
    if path.startswith('model.') and name in models.MODELS:
      raise ValueError(f'config.{path}{where}: '
                       f"{models.check_argument(name, path[len('model.'):], None)}")
    raise ValueError(unknown_key(path, known, where))
  for arg, value in config.get('model', {}).items():
    wrong = arg != 'name' and name in models.MODELS and models.check_argument(name, arg, value)
    if wrong:
      raise ValueError(f'config.model.{arg} {wrong}{where}')


def add_model_arguments(config, given, name: str | None = None):
  """Give config.model each argument that `given` (dotted keys about to be set: the
  command line's, a sweep's) names and the model declares but the config file left
  out, at its default, so that it can be set: --config.model.stride_in_1x1=True.
  `name`: the model the keys are for, where `given` changes config.model.name too."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  import models  # pylint: disable=import-outside-toplevel
  name = name or config.model.get('name')
  if name not in models.MODELS:
    return
  arguments = models.arguments(name)
  for key in sorted(given):
    arg = key.removeprefix('model.')
    if key.startswith('model.') and arg in arguments and arg not in config.model:
      param = arguments[arg]
      kind = models.argument_type(param)[0]
      with config.unlocked():
        config.model[arg] = (ml_collections.FieldReference(
            None, field_type=kind if isinstance(kind, type) else object)
                             if param.default is None else param.default)


# ----------------------------------------------------------------------- the README's list

def markdown() -> str:
  """The README's list of keys: a table row per key."""
  cell = lambda text: str(text).replace('|', '\\|')
  rows = ['| key | default | type | values | read only when | meaning |',
          '|---|---|---|---|---|---|']
  for k in KEYS.values():
    kind = k.type.__name__ + (' or None' if k.admits_none else '')
    admits = k.range[1] if k.range else ''
    when = k.read_when[1] if k.read_when else ''
    rows.append(f'| `{k.name}` | `{k.default!r}` | {kind} | {cell(admits)} | {cell(when)} '
                f'| {cell(k.meaning)} |')
  return '\n'.join(rows) + '\n'


if __name__ == '__main__':
  if sys.argv[1:] != ['--markdown']:
    sys.exit('usage: python -m configs.keys --markdown  (the README\'s list of keys)')
  sys.stdout.write(markdown())
