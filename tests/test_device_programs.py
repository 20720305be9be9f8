"""What runs on the devices, proven on the CPU for the GPU: every host-device transfer is
explicit (JAX_TRANSFER_GUARD=disallow holds in training, resuming, evaluate.py and
predict.py), each step function compiles once per run, and a bfloat16 run's train step
convolves and multiplies in bfloat16."""

import json
import os
import re
import shutil
import sys

import pytest
from flax import nnx

from configs import default, resnet
import input_pipeline
from lib import compile_options
from lib import experiment
from lib import parallel
import models

from tests import prewarmed
from tests.support import GUARDED, xla_devices

# XLA:CPU's default emitters (which name their loops), where the suite compiles with the
# classic ones (tests/support.XLA_FLAGS).
DEFAULT_EMITTERS = {'xla_cpu_use_fusion_emitters': True}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args, devices=1):
  env = {**os.environ, **GUARDED, 'XLA_FLAGS': xla_devices(devices)}
  result = prewarmed.run([sys.executable, *args], cwd=ROOT, text=True, timeout=600, env=env)
  assert 'Disallowed' not in result.stderr, result.stderr[-3000:]
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def compilations(log: str) -> dict:
  """How many times each jitted function was compiled (or loaded from the cache)."""
  names = re.findall(r'Finished XLA compilation of jit\((\w+)\)', log)
  return {name: names.count(name) for name in set(names)}


def test_training_resuming_evaluating_and_predicting_transfer_only_explicitly(
    trained_lenet, tmp_path):
  """The session's LeNet-5 run (GUARDED: data resident on the device, 1,240 steps, 3
  evaluations and 3 checkpoints), resumed to 1,300 steps, then evaluate.py, predict.py
  and visualize.py on its checkpoint. Each run compiles its train and eval steps once."""
  trained, result = trained_lenet
  assert 'Disallowed' not in result.stderr and result.returncode == 0, result.stderr[-3000:]
  counts = compilations(result.stderr)
  assert (counts['train_step'], counts['eval_step']) == (1, 1), counts
  evals = [json.loads(l)['step'] for l in open(trained / 'metrics.jsonl')
           if json.loads(l)['split'] == 'test']
  assert evals == [500, 1000, 1240]
  workdir = tmp_path / 'lenet'  # a copy: the session's run stays as it was
  shutil.copytree(trained, workdir)
  resumed = run('train.py', '--config=configs/lenet.py', f'--workdir={workdir}',
                '--config.num_epochs=None', '--config.num_train_steps=1300',
                '--config.eval_every_steps=500', '--allow_schedule_change')
  assert f'Resuming {workdir} from step 1240' in resumed.stdout and 'Done in' in resumed.stdout
  counts = compilations(resumed.stderr)
  assert (counts['train_step'], counts['eval_step']) == (1, 1), counts
  result = run('evaluate.py', f'--workdir={workdir}', '--checkpoint=latest')
  assert 'step 1300' in result.stdout and 'on 1000 examples' in result.stdout
  assert compilations(result.stderr)['on_devices'] == 1  # one batch shape
  result = run('predict.py', f'--workdir={workdir}', '--top_k=1', 'docs/digits')
  assert [l.split(': ')[1][0] for l in result.stdout.splitlines()] == ['0', '3', '6']
  # Its three images are one batch of three, not padded to the config's batch_size.
  assert re.search(r'Compiling jit\(on_devices\) .*uint8\[3,', result.stderr), result.stderr
  for mode in ('features', 'saliency'):  # (visualize.py's other modes: host arrays only)
    run('visualize.py', mode, f'--workdir={workdir}', '--image=docs/digits/digit_3.png',
        f'--out={tmp_path}/{mode}.png')


def lenet(workdir, steps, *extra):
  return ('train.py', '--config=configs/lenet.py', f'--workdir={workdir}',
          '--config.num_epochs=None', f'--config.num_train_steps={steps}',
          '--config.eval_every_steps=40', '--config.checkpoint_every_steps=40',
          '--config.log_every_steps=20', *extra)


def test_host_pipeline_on_two_devices_transfers_only_explicitly(tmp_path):
  """The host path: Grain's batches copied to 2 devices ahead of the step."""
  result = run(*lenet(tmp_path / 'host', 80, '--config.dataset.device_resident=False'),
               devices=2)
  assert 'over 2 devices' in result.stdout and ', data resident' not in result.stdout
  counts = compilations(result.stderr)
  assert (counts['train_step'], counts['eval_step']) == (1, 1), counts


@pytest.mark.parametrize('precision, dtype', [('bfloat16', 'bf16'), ('float32', 'f32')])
def test_every_convolution_and_matmul_of_the_train_step_has_the_precision(precision, dtype):
  """CIFAR ResNet-20's lowered train step: 19 convolutions and 1 dense layer forward;
  backward, the gradient of each weight (20) and of each input but the image's (19)."""
  config = resnet.get_config()
  config.precision, config.batch_size = precision, 8
  config.dataset.name = 'synthetic'
  info = input_pipeline.dataset_info(config)
  exp = experiment.setup(config, info, parallel.data_mesh())
  text = exp.train_step.lower(exp.state_target(),
                              input_pipeline.train_spec(config, info, exp.mesh)).as_text()
  ops = [l for l in text.splitlines()
         if 'stablehlo.convolution' in l or 'stablehlo.dot_general' in l]
  assert len(ops) == 20 + 20 + 19
  for op in ops:
    signature = op.rsplit(' : ', 1)[1]  # (tensor<AxBxdtype>, tensor<...>) -> tensor<...>
    types = re.findall(r'tensor<[\dx]*x(\w+)>', signature)
    assert types and set(types) == {dtype}, op


@pytest.mark.fast
def test_the_cpu_init_compiles_at_level_1_only_where_it_draws_a_large_weight():
  """lib/compile_options.init: AlexNet's and VGG's fully connected weights are drawn at
  LLVM level 1; LeNet-5's and ResNet-50's inits keep run_once's level 0, as GPUs do."""
  def shapes(name):
    return nnx.state(nnx.eval_shape(lambda: models.create_model(name, rngs=nnx.Rngs(0))))
  levels = [compile_options.init('cpu', shapes(n))['xla_backend_optimization_level']
            for n in ('lenet5', 'resnet50', 'alexnet', 'vgg16')]
  assert levels == [0, 0, 1, 1]
  assert compile_options.init('gpu', shapes('vgg16')) == compile_options.run_once('gpu')


@pytest.mark.parametrize('residual', [False, True])
@pytest.mark.fast
def test_the_cpu_train_step_drops_xla_fusion_for_residual_networks_only(residual):
  """lib/compile_options: on a CPU the train step of a network with shortcuts compiles
  without XLA's fusion pass (each elementwise op its own loop, `wrapped_`), any other
  with it (loops of several ops: `add_select_fusion`...)."""
  config = default.get_config()
  config.model = {'name': 'convnet', 'stages': tuple(
      {'width': 8, 'residual': residual} for _ in range(2))}
  config.batch_size, config.num_classes = 4, 10
  config.dataset.name, config.dataset.image_size = 'synthetic', 8
  info = experiment.validate(config)
  exp = experiment.setup(config, info, parallel.data_mesh())
  assert exp.net.module.residual == residual
  text = exp.train_step.lower(exp.state_target(), input_pipeline.train_spec(
      config, info, exp.mesh)).compile(DEFAULT_EMITTERS).as_text()
  loops = re.findall(r'%(\S+) = \S+ fusion\(.*kind=kLoop', text)
  assert loops and all(name.startswith('wrapped_') for name in loops) == residual
