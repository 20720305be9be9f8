"""The trainer end to end, as tests, sweeps and users call it."""

import json
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds

from configs import common, default, resnet
from configs import lenet as lenet_config
import evaluate
import input_pipeline
from lib import checkpoints
from lib import experiment
from lib import optim
from lib import parallel
from lib import steps
import train
from tests import prewarmed
from tests.support import xla_devices

MOCK = tfds.testing.MockPolicy.USE_CODE
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {'name': 'convnet', 'stages': ({'width': 8, 'stride': 2}, {'width': 16, 'stride': 2}),
        'head': {'pool': 'gap'}}


def tiny_config(steps=6, **dataset):
  c = default.get_config()
  c.model = TINY
  c.dataset.update({'name': 'cifar10', 'augment': 'cifar', 'workers': 0, **dataset})
  c.batch_size = 8
  c.num_train_steps = steps
  c.schedule.name = 'constant'
  c.schedule.learning_rate = 0.05
  c.log_every_steps = 2
  c.eval_every_steps = 3
  c.checkpoint_every_steps = 3
  return c


def final_params(workdir):
  return checkpoints.read_state(str(workdir))['params']


def printed_steps(text, kind):
  """The steps of the console's `train step` or `eval  step` lines."""
  return [int(m) for m in re.findall(rf'^{kind} +step +(\d+)', text, re.MULTILINE)]


@pytest.mark.fast
def test_mock_cifar10_end_to_end_and_resume(tmp_path, capsys):
  with tfds.testing.mock_data(num_examples=40, policy=MOCK):
    final = train.train_and_evaluate(tiny_config(6), str(tmp_path / 'full'))
    train.train_and_evaluate(tiny_config(3), str(tmp_path / 'resumed'))
    capsys.readouterr()
    resumed = train.train_and_evaluate(tiny_config(6), str(tmp_path / 'resumed'))
  # The second call starts from the checkpoint at step 3: it trains steps 4 to 6 only.
  out = capsys.readouterr().out
  assert f"Resuming {tmp_path / 'resumed'} from step 3" in out
  assert printed_steps(out, 'train') == [4, 6] and printed_steps(out, 'eval ') == [6]
  records = [json.loads(l) for l in open(tmp_path / 'full' / 'metrics.jsonl')]
  assert [r['step'] for r in records if r['split'] == 'train'] == [2, 4, 6]
  evals = [r for r in records if r['split'] == 'test']
  assert [r['step'] for r in evals] == [3, 6] and evals[-1]['num_examples'] == 40
  assert {'loss', 'top1', 'learning_rate', 'images_per_sec', 'wall_time'} <= set(records[0])
  assert os.path.exists(tmp_path / 'full' / 'config.json')
  assert final['top1'] == resumed['top1'] and final['loss'] == resumed['loss']
  for a, b in zip(jax.tree.leaves(final_params(tmp_path / 'full')),
                  jax.tree.leaves(final_params(tmp_path / 'resumed'))):
    np.testing.assert_array_equal(a, b)


def test_mock_imagenet_end_to_end(tmp_path):
  c = tiny_config(2, name='imagenet2012', augment='imagenet', image_size=32,
                  eval_split='validation')
  with tfds.testing.mock_data(num_examples=16, policy=MOCK):
    final = train.train_and_evaluate(c, str(tmp_path))
    # evaluate.py's own path (views, posteriors on the host) scores the same checkpoint.
    again = evaluate.evaluate(c, str(tmp_path), 'center', 'latest')
  assert final['num_examples'] == again['num_examples'] == 16
  assert (final['top1'], final['top5']) == (again['top1'], again['top5'])
  np.testing.assert_allclose(final['loss'], again['loss'], rtol=1e-5)


def run_cli(*args, env=None, timeout=600):
  return prewarmed.run([sys.executable, 'train.py', *args], cwd=ROOT, text=True,
                       capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})


def compiled(log: str, kind: str) -> list[str]:
  """The functions JAX_LOG_COMPILES=1 reports as compiled ('Finished XLA compilation of
  jit(NAME)') or as loaded ('cache hit') in a process's log."""
  pattern = {'compiled': r'Finished XLA compilation of jit\((\w+)\)',
             'loaded': r"Persistent compilation cache hit for 'jit_(\w+)'"}[kind]
  return re.findall(pattern, log)


def test_a_rerun_loads_its_steps_from_the_compilation_cache(tmp_path):
  """train.py keeps every compiled program in JAX's persistent cache
  ($JAX_COMPILATION_CACHE_DIR): a second run of the same config compiles nothing new."""
  env = {'JAX_LOG_COMPILES': '1', 'JAX_COMPILATION_CACHE_DIR': str(tmp_path / 'cache')}
  logs = []
  for run in ('first', 'second'):
    result = run_cli('--config=configs/lenet.py', f'--workdir={tmp_path / run}',
                     '--config.num_epochs=None', '--config.num_train_steps=6',
                     '--config.eval_every_steps=3', env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    logs.append(result.stderr)
  assert compiled(logs[0], 'loaded') == []
  assert {'train_step', 'eval_step'} <= set(compiled(logs[0], 'compiled'))
  assert sorted(compiled(logs[1], 'loaded')) == sorted(compiled(logs[1], 'compiled'))
  assert {'train_step', 'eval_step'} <= set(compiled(logs[1], 'loaded'))


def lenet(steps, **overrides):
  c = lenet_config.get_config()
  c.num_epochs, c.num_train_steps = None, steps
  c.eval_every_steps = c.checkpoint_every_steps = steps
  c.update(overrides)
  return c


def test_label_smoothing_is_the_smoothed_cross_entropy_of_torch():
  """config.label_smoothing=0.1: the step's loss is torch's cross-entropy with
  label_smoothing=0.1 (targets (1 - 0.1) one-hot + 0.1 / 10) on the model's logits."""
  import torch  # pylint: disable=import-outside-toplevel
  config = lenet(1, label_smoothing=0.1)
  info = input_pipeline.dataset_info(config)
  exp = experiment.setup(config, info, parallel.data_mesh())
  state = exp.init(jax.random.key(config.seed))
  inputs = next(input_pipeline.train_inputs(config, info, exp.mesh))
  prepare, _ = input_pipeline.train_model_input(config, info, exp.mesh)
  batch = jax.jit(prepare, static_argnums=2)(jnp.int32(0), inputs, jnp.float32)
  logits, _, _ = exp.net.apply({'params': state.params, 'batch_stats': state.batch_stats},
                                  batch['image'], train=True)
  want = torch.nn.functional.cross_entropy(
      torch.from_numpy(np.asarray(logits, np.float64)),
      torch.from_numpy(np.asarray(batch['label'], np.int64)), label_smoothing=0.1)
  state = exp.train_step(state, inputs)
  assert float(state.metrics['loss']) == pytest.approx(float(want), rel=1e-5)


def test_lenet5_trains_in_bfloat16(tmp_path):
  """precision=bfloat16 end to end: bf16 computation learns the digits (300 steps), and
  the checkpoint keeps float32 parameters."""
  final = train.train_and_evaluate(lenet(300, precision='bfloat16'), str(tmp_path))
  assert final['top1'] >= 0.9, final
  params = jax.tree.leaves(final_params(tmp_path))
  assert params and all(p.dtype == np.float32 for p in params)


def test_lenet5_offline_reaches_97_percent(trained_lenet):
  workdir, result = trained_lenet  # python train.py --config=configs/lenet.py
  assert result.returncode == 0, result.stderr[-2000:]
  final = [json.loads(l) for l in open(workdir / 'metrics.jsonl')][-1]
  assert final['split'] == 'test' and final['num_examples'] == 1000
  assert final['top1'] >= 0.97


@pytest.mark.parametrize('key, value', [('batch_size', 0), ('num_epochs', -1.0),
                                        ('schedule.learning_rate', -0.1),
                                        ('eval_every_steps', 0)])
@pytest.mark.fast
def test_non_positive_sizes_name_the_field(key, value):
  c = tiny_config()
  *parents, leaf = key.split('.')
  (c[parents[0]] if parents else c)[leaf] = value
  default.clear_duration_partners(c, {key})  # as the command line does
  with pytest.raises(ValueError, match=rf'config.{key} must be (positive|> 0); got {value}'):
    experiment.check(c)


@pytest.mark.fast
def test_durations_in_epochs_or_steps():
  c = tiny_config()
  info = input_pipeline.DatasetInfo('x', 10, (32, 32, 3), 100, 10)  # 12 steps an epoch
  common.in_epochs(c, 2.5, eval_every=1, checkpoint_every=0.5)
  c.log_every_epochs, c.log_every_steps = 0.01, None  # under a step: one step
  length = experiment.run_length(c, info)
  assert (length.steps_per_epoch, length.total_steps, length.eval_every,
          length.checkpoint_every, length.log_every) == (12, 30, 12, 6, 1)
  c.eval_every_steps = 5  # both set: one message naming both and the fix
  with pytest.raises(ValueError, match=r'set one of config.eval_every_steps and '
                     r'config.eval_every_epochs, the other None; got both \(5 and 1.0\)'):
    experiment.check(c)


@pytest.mark.fast
def test_a_batch_larger_than_the_training_split_is_refused():
  """Issue 36: a batch of 5,000 over mnist5k's 4,000 training digits was called one epoch
  and drew a thousand digits twice; a batch of 64 from 10 images was '1 per epoch'."""
  c = tiny_config()
  for examples, batch in ((4000, 5000), (10, 64)):
    c.batch_size = batch
    info = input_pipeline.DatasetInfo('x', 10, (32, 32, 3), examples, 10)
    with pytest.raises(ValueError, match=rf'config.batch_size={batch} is larger than the '
                       rf'training split \(train: {examples} examples\)'):
      experiment.run_length(c, info)
  c.batch_size = 10  # as large as the split: one step an epoch, each image once
  assert experiment.run_length(c, info).steps_per_epoch == 1


@pytest.mark.parametrize('args, message', [
    (['--config.optimizer.learning_rate=0.05'],
     "unknown config key 'optimizer.learning_rate'; did you mean 'schedule.learning_rate'?"),
    (['--config.model.name=resnet51'], "unknown model 'resnet51'; did you mean resnet56, resnet50"),
    (['--config.schedule.name=cosinus'], 'config.schedule.name'),
    (['--config.num_train_steps=None'], 'set one of config.num_train_steps and config.num_epochs'),
])
def test_bad_input_is_named_before_any_data_is_opened(tmp_path, args, message):
  """resnet.py trains on CIFAR-10, which is not here: each mistake must be named first."""
  result = run_cli('--config=configs/resnet.py', f'--workdir={tmp_path}/w', *args,
                   env={'TFDS_DATA_DIR': str(tmp_path / 'no_data')})
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr, result.stderr[-2000:]
  assert 'cifar10' not in result.stderr.lower() and 'Traceback' not in result.stderr


def test_a_config_in_epochs_switches_to_steps_from_the_command_line(tmp_path):
  result = run_cli('--config=configs/lenet.py', f'--workdir={tmp_path}/w',
                   '--config.num_epochs=None', '--config.num_train_steps=3',
                   '--config.eval_every_steps=3', '--config.log_every_steps=1')
  assert result.returncode == 0, result.stderr[-2000:]
  records = [json.loads(l) for l in open(tmp_path / 'w' / 'metrics.jsonl')]
  assert [r['step'] for r in records if r['split'] == 'train'] == [1, 2, 3]
  config = json.load(open(tmp_path / 'w' / 'config.json'))
  assert config['num_epochs'] is None and config['num_train_steps'] == 3


@pytest.mark.fast
def test_indivisible_batch_is_one_line_error(monkeypatch):
  """A multi-process job (as an accelerator) keeps every device in the mesh, so a batch
  they do not divide is refused, in one line that names the fix. (One process's CPU
  devices take any batch: tests/test_cpu_devices.py.)"""
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(jax, 'device_count', lambda: 4)
  assert parallel.mesh_size(30) == 4 and parallel.mesh_size(32) == 4
  config = default.get_config()
  config.batch_size = 30
  with pytest.raises(ValueError, match='config.batch_size=30 is not divisible by the 4 '
                     'devices; use a multiple of 4'):
    experiment._check_training(config)  # pylint: disable=protected-access


def loss_trajectory(devices, workdir):
  code = f"""
import json, sys
sys.path.insert(0, {ROOT!r})
import train
from tests.test_train import tiny_config
c = tiny_config(6, name='mnist5k', channels=1)
c.log_every_steps = 1
train.train_and_evaluate(c, {str(workdir)!r})
"""
  env = {**os.environ, 'XLA_FLAGS': xla_devices(devices)}
  result = prewarmed.run([sys.executable, '-c', code], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  return [r['loss'] for r in map(json.loads, open(workdir / 'metrics.jsonl'))
          if r['split'] == 'train']


def test_four_devices_match_one(tmp_path):
  one = loss_trajectory(1, tmp_path / 'one')
  four = loss_trajectory(4, tmp_path / 'four')
  assert len(one) == 6
  np.testing.assert_allclose(four, one, rtol=0, atol=1e-5)


RESIDENT_RUN = """
import hashlib, json, re, sys
sys.path.insert(0, {root!r})
import jax, numpy as np
import input_pipeline, train
from data import device
from lib import experiment, parallel
from tests.test_train import tiny_config
c = tiny_config(40, name={dataset!r}, channels=1)
c.log_every_steps = c.eval_every_steps = c.checkpoint_every_steps = 40  # steps queue up
train.train_and_evaluate(c, {workdir!r})
info = input_pipeline.dataset_info(c)
exp = experiment.setup(c, info, parallel.data_mesh())
hlo = exp.train_step.lower(exp.state_target(), input_pipeline.train_spec(
    c, info, exp.mesh)).compile().as_text()
loops = set(re.findall(r'(?:condition|body)=(%[\\w.-]+)', hlo))
blocks = {{b.split(' ', 1)[0]: b for b in hlo.split('\\n\\n')}}
in_loops = sum(blocks.get(name, '').count('all-reduce(') for name in loops)
# Every global batch of the 40 steps, as the mesh's program gathers and augments it.
data = next(input_pipeline.train_inputs(c, info, exp.mesh))
gather = jax.jit(lambda data, step: device.gather_batch(data, step, c, exp.mesh))
digest = hashlib.sha256()
for step in range(40):
  batch = jax.device_get(gather(data, np.int32(step)))
  digest.update(np.ascontiguousarray(batch['image']).tobytes())
  digest.update(np.ascontiguousarray(batch['label']).tobytes())
# The first steps' losses, one log each: before float reordering can compound.
c.num_train_steps, c.log_every_steps = 4, 1
train.train_and_evaluate(c, {workdir!r} + '_first')
first = [r['loss'] for r in map(json.loads, open({workdir!r} + '_first/metrics.jsonl'))
         if r['split'] == 'train']
print(json.dumps({{'resident': input_pipeline.resident(c, info), 'first': first,
                  'batches': digest.hexdigest(), 'loops': len(loops), 'in_loops': in_loops,
                  'all_reduce': hlo.count('all-reduce(')}}))
"""


def resident_run(devices, workdir, dataset='mnist5k'):
  env = {**os.environ, 'XLA_FLAGS': xla_devices(devices)}
  result = prewarmed.run([sys.executable, '-c', RESIDENT_RUN.format(
      root=ROOT, workdir=str(workdir), dataset=dataset)],
                         cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('dataset', ['mnist5k', 'folder'])
def test_resident_data_on_more_devices_than_cores_matches_one_device(tmp_path, dataset):
  """2 and 8 host devices on this 2-core machine, 40 steps queued between host looks:
  the run ends (no collective deadlock), the batch indices are computed with no collective
  (the sampler's walk loop has none), and each device count trains on the same global
  batches as one device. On mnist5k, and on a folder of 1,437 PNG digits (resident too:
  a walk domain of 4,096, many passes).

  What is compared is what the claim is about: the 40 batches bit for bit, and the losses
  of the first 4 steps. Not the loss after 40 steps: the same batches summed in another
  order differ by ~1e-7 at first, and a near-chance model amplifies that over 40 steps by
  an amount that depends on the processor (1e-3 on one x86-64, 1e-2 on another)."""
  if dataset == 'folder':
    from PIL import Image  # pylint: disable=import-outside-toplevel
    from data import sources  # pylint: disable=import-outside-toplevel
    digits = sources.open_split(tiny_config(name='mnist5k', channels=1), 'train')
    for split, part in (('train', slice(0, 1437)), ('test', slice(1437, 1637))):
      for i in range(part.start, part.stop):
        folder = tmp_path / 'digits' / split / str(digits.labels[i])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(digits.images[i][..., 0]).save(folder / f'{i}.png')
    dataset = f"folder:{tmp_path / 'digits'}"
  one = resident_run(1, tmp_path / 'one', dataset)
  assert len(one['first']) == 4
  for devices in ((2, 8) if dataset == 'mnist5k' else (8,)):
    many = resident_run(devices, tmp_path / f'{devices}', dataset)
    assert one['resident'] and many['resident']
    assert many['loops'] >= 2 and many['in_loops'] == 0 and many['all_reduce'] >= 1
    assert many['batches'] == one['batches']  # every pixel and label of all 40 steps
    np.testing.assert_allclose(many['first'], one['first'], rtol=1e-5)


@pytest.mark.fast
def test_piecewise_schedule_boundaries():
  c = resnet.get_config('depth=110')
  schedule = optim.create_schedule(c, 390, 64000)
  got = [float(schedule(jnp.int32(s))) for s in (0, 399, 400, 31999, 32000, 47999, 48000)]
  np.testing.assert_allclose(got, [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)


@pytest.mark.fast
def test_step_and_cosine_schedules():
  c = resnet.get_config('imagenet,depth=18')
  step = optim.create_schedule(c, 100, 9000)
  np.testing.assert_allclose([float(step(s)) for s in (0, 2999, 3000, 6000)],
                             [0.1, 0.1, 0.01, 0.001], rtol=1e-6)
  c.schedule.name, c.schedule.warmup_steps = 'cosine', 10
  cosine = optim.create_schedule(c, 100, 110)
  np.testing.assert_allclose([float(cosine(s)) for s in (0, 9, 10, 110)],
                             [0.01, 0.1, 0.1, 0.0], atol=1e-7)


@pytest.mark.fast
def test_weight_decay_only_on_kernels():
  params = {'conv': {'kernel': jnp.ones(3), 'bias': jnp.ones(3)},
            'bn': {'scale': jnp.ones(3), 'bias': jnp.ones(3)}}
  c = default.get_config()
  c.optimizer.momentum = 0.0
  tx = optim.create_optimizer(c)
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  assert float(updates['conv']['kernel'][0]) == pytest.approx(-0.1 * 1e-4)
  assert float(updates['conv']['bias'][0]) == 0 and float(updates['bn']['scale'][0]) == 0


@pytest.mark.fast
def test_parse_arg():
  assert common.parse_arg('imagenet,depth=50', depth=0, imagenet=False) == {
      'depth': 50, 'imagenet': True}
  assert resnet.get_config('depth=56').model.name == 'resnet56'
  with pytest.raises(ValueError, match="'dpeth'"):
    common.parse_arg('dpeth=5', depth=0)


@pytest.mark.fast
def test_unknown_optimizer_names_the_closest():
  c = tiny_config()
  c.optimizer.name = 'adamww'
  with pytest.raises(ValueError, match=r"config.optimizer.name: unknown name 'adamww'.*"
                     r"did you mean 'adamw'"):
    optim.create_optimizer(c)


def test_a_new_model_with_an_auxiliary_loss_needs_only_its_registry_entry(monkeypatch):
  """A model sows its side classifier with a weight; the trainer adds weight * its loss
  with no change to train.py or lib/experiment.py."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from data import device  # pylint: disable=import-outside-toplevel
  from lib import parallel  # pylint: disable=import-outside-toplevel
  import models  # pylint: disable=import-outside-toplevel
  from models import layers  # pylint: disable=import-outside-toplevel

  class TwoHeads(nnx.Module):
    def __init__(self, num_classes=10, *, in_channels=1, dtype=jnp.float32, rngs):
      self.side = layers.Linear(32 * 32 * in_channels, num_classes, rngs=rngs)
      self.main = layers.Linear(32 * 32 * in_channels, num_classes, rngs=rngs)
      self.deterministic = False  # model.eval() sets it: no side head when evaluating

    def __call__(self, x):
      x = x.reshape(x.shape[0], -1)
      if not self.deterministic:
        layers.sow_auxiliary(self, 'side', 0.25, self.side(x))
      return self.main(x)

  monkeypatch.setitem(models.MODELS, 'two_heads', (TwoHeads, 32))
  c = tiny_config(1, name='mnist5k', channels=1, augment='none', device_resident=False)
  c.model = {'name': 'two_heads'}
  experiment.check(c)
  info = input_pipeline.dataset_info(c)
  exp = experiment.setup(c, info, parallel.data_mesh())
  state = jax.jit(exp.init)(jax.random.key(0))
  rng = np.random.RandomState(0)
  batch = {'image': rng.randint(0, 256, (8, 32, 32, 1)).astype(np.uint8),
           'label': rng.randint(0, 10, 8).astype(np.int32)}
  params = jax.device_get(state.params)
  after = exp.train_step(state, input_pipeline.to_global(batch, exp.mesh))
  x = device.normalize(jnp.asarray(batch['image']), c).reshape(8, -1)
  head = lambda p: x @ p['kernel'] + p['bias']
  loss = lambda name: steps.cross_entropy(head(params[name]), batch['label'], 10,
                                          0.0).mean()
  np.testing.assert_allclose(float(after.metrics['loss']),
                             float(loss('main') + 0.25 * loss('side')), rtol=1e-5)


def test_bfloat16_precision_computes_the_steps_convolutions_in_bfloat16():
  """config.precision='bfloat16': every convolution and matrix product of the compiled
  train and eval steps (forward and backward) takes bfloat16 operands, while the
  parameters and the optimizer state stay float32 (the mixed precision a user asks
  for, read from the programs that run, not from the config)."""
  config = lenet(1, precision='bfloat16')
  info = input_pipeline.dataset_info(config)
  exp = experiment.setup(config, info, parallel.data_mesh())
  target = exp.state_target()
  programs = {
      'train': exp.train_step.lower(target, input_pipeline.train_spec(config, info, exp.mesh)),
      'eval': exp.eval_step.lower(target, input_pipeline.batch_spec(config, exp.mesh, True))}
  for name, lowered in programs.items():
    ops = [line for line in lowered.as_text().splitlines()
           if re.search(r'stablehlo\.(convolution|dot_general)', line)]
    # LeNet-5's 3 convs and 2 FCs; training adds each one's weight gradient and, all but
    # the first, its input gradient: 5 + 5 + 4.
    assert len(ops) >= (5 if name == 'eval' else 14), (name, len(ops))
    operands = [re.search(r':\s*\((.*)\)\s*->', line).group(1) for line in ops]
    assert all(o.count('bf16') == 2 for o in operands), (name, operands)
  assert {a.dtype for a in jax.tree.leaves(target.params)} == {jnp.dtype(jnp.float32)}
  assert {a.dtype for a in jax.tree.leaves(target.opt_state)
          if jnp.issubdtype(a.dtype, jnp.floating)} == {jnp.dtype(jnp.float32)}


def test_dropout_masks_come_from_the_steps_key():
  """In train mode each dropout layer draws its own mask from the key the step gives
  (config.seed folded with the step): another key, another mask; the same key, the same
  mask, so a resumed step repeats exactly."""
  from flax import nnx  # pylint: disable=import-outside-toplevel
  import models  # pylint: disable=import-outside-toplevel

  class TwoDropouts(nnx.Module):
    def __init__(self, *, rngs):
      self.first = nnx.Dropout(0.5, rngs=rngs)
      self.second = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
      return jnp.stack([self.first(x), self.second(x)])

  net = models.functional(lambda rngs: TwoDropouts(rngs=rngs))
  variables = net.init(jax.random.key(0))
  x = jnp.ones((256,))
  masks = jax.jit(lambda key: net.apply(variables, x, train=True, rng=key)[0])
  a, b = masks(jax.random.key(1)), masks(jax.random.key(2))
  assert not np.array_equal(a, b), 'another key, another mask'
  assert not np.array_equal(a[0], a[1]), 'each layer its own mask'
  np.testing.assert_array_equal(a, masks(jax.random.key(1)))
  np.testing.assert_array_equal(net.apply(variables, x), jnp.stack([x, x]))  # eval: none
