"""evaluate.py: 10-crop and multi-scale evaluation against explicit loops over the views,
VGG's dense evaluation, and the CLI on a mnist5k checkpoint."""

import io
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import default
import evaluate
import input_pipeline
from lib import run_contract
from lib import trained as trained_lib
import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64  # crops; the imagenet preset resizes the shorter side to 73 (64 / 0.875)


def imagenet_config():
  c = default.get_config()
  c.model = {'name': 'convnet', 'head': {'pool': 'gap'},  # takes any image size
             'stages': ({'width': 8, 'stride': 2}, {'width': 16, 'stride': 2})}
  c.dataset.update({'name': 'imagenet2012', 'augment': 'imagenet', 'image_size': SIZE,
                    'eval_split': 'validation',
                    'workers': 0})  # worker processes would not see the mock
  return c


def normalize(image):
  mean, std = input_pipeline.STATS['imagenet']
  return (image - np.array(mean)) / np.array(std)


def resize(image, height, width):
  """uint8 HWC resized by Pillow's antialiased bilinear filter, as the pipeline does."""
  return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def posterior(model, variables, view):
  return np.asarray(jax.nn.softmax(model.apply(variables, view[None], train=False)))[0]


@pytest.fixture(scope='module')
def mock_imagenet():
  """Six variable-size validation images, a random model and its variables."""
  config = imagenet_config()
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    source = tfds.data_source('imagenet2012', split='validation',
                              decoders={'image': tfds.decode.SkipDecoding()})
    raw = [{'image': np.asarray(Image.open(io.BytesIO(ex['image'])).convert('RGB')),
            'label': ex['label']} for ex in (source[i] for i in range(len(source)))]
    model = models.create_model_from_config(config.model, 1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)), train=False)
    ten = evaluate.predict(config, model, variables, '10crop', examples_per_batch=4)
    multi = evaluate.predict(config, model, variables, 'multiscale', scales=(64, 96),
                             examples_per_batch=4)
  assert len({ex['image'].shape for ex in raw}) > 1, 'mock images of several sizes'
  return config, model, variables, raw, ten, multi


def test_ten_crop_is_the_mean_over_ten_explicit_views(mock_imagenet):
  _, model, variables, raw, (probs, labels), _ = mock_imagenet
  assert probs.shape == (6, 1000) and list(labels) == [ex['label'] for ex in raw]
  for ex, got in zip(raw, probs):
    image = ex['image']
    h, w = image.shape[:2]
    short = round(SIZE / 0.875)
    h, w = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
    image = resize(image, h, w)
    corners = [(0, 0), (0, w - SIZE), (h - SIZE, 0), (h - SIZE, w - SIZE),
               ((h - SIZE) // 2, (w - SIZE) // 2)]
    views = [image[t:t + SIZE, l:l + SIZE] for t, l in corners]
    views += [v[:, ::-1] for v in views]  # the mirror images
    want = np.mean([posterior(model, variables, normalize(v / 255)) for v in views], axis=0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def test_multiscale_is_the_mean_over_scales_and_mirrors(mock_imagenet):
  _, model, variables, raw, _, (probs, labels) = mock_imagenet
  for ex, got in zip(raw, probs):
    image = ex['image']
    h, w = image.shape[:2]
    views = []
    for q in (64, 96):  # shorter side Q; the longer side rounded to 32 pixels
      longer = round(max(h, w) * q / min(h, w) / 32) * 32
      full = normalize(resize(image, *((q, longer) if h <= w else (longer, q))) / 255)
      views += [full, full[:, ::-1]]
    want = np.mean([posterior(model, variables, v) for v in views], axis=0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def test_vgg_dense_evaluation_is_the_fc_head_as_convolutions():
  model = models.create_model('vgg_a', num_classes=10)
  x = jax.random.normal(jax.random.key(1), (1, 224, 224, 3))
  variables = jax.jit(lambda: model.init(jax.random.key(0), x, train=False))()
  apply = jax.jit(model.apply, static_argnames=('train', 'dense'))
  # At 224 the final map is 7x7: one window, so dense == the ordinary forward pass.
  np.testing.assert_allclose(apply(variables, x, train=False, dense=True),
                             apply(variables, x, train=False), rtol=1e-4, atol=1e-5)
  # At 288 the final map is 9x9 and the class score map 3x3, averaged: any size goes.
  big = jax.random.normal(jax.random.key(2), (1, 288, 288, 3))
  dense = apply(variables, big, train=False, dense=True)
  assert dense.shape == (1, 10) and np.all(np.isfinite(dense))


def run_cli(*args):
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)


def test_evaluate_cli_on_a_mnist5k_checkpoint(trained_lenet, tmp_path):
  trained, result = trained_lenet  # python train.py --config=configs/lenet.py
  assert result.returncode == 0, result.stderr[-2000:]
  workdir = str(tmp_path / 'lenet')  # a copy: the session's run stays as it was
  shutil.copytree(trained, workdir)
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--checkpoint=latest')
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.load(open(os.path.join(workdir, 'eval', 'latest_center.json')))
  # The centre view is the training's own evaluation: same checkpoint, same numbers.
  assert record['top1'] == pytest.approx(final['top1'], abs=1e-6)
  assert record['num_examples'] == 1000 and record['step'] == final['step']
  assert f"top-1 {100 * final['top1']:.2f}%" in result.stdout
  assert record['mode'] == 'center' and record['checkpoint'] == 'latest'
  assert open(os.path.join(workdir, 'metrics.jsonl')).read() == open(  # training's own
      os.path.join(trained, 'metrics.jsonl')).read()
  # A whole-image mode on a fixed-head model is refused in one line.
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--mode=dense')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      'evaluate.py: error: --mode=dense runs LeNet5 on whole images'), result.stderr
  # The same workdir in-process: 10 crops (with mirrored digits) run; a missing step is
  # named with the ones there are.
  config = run_contract.read_saved(workdir)
  ten = evaluate.evaluate(config, workdir, '10crop', checkpoint='best')
  assert ten['num_examples'] == 1000 and 0.5 < ten['top1'] <= 1
  assert os.path.exists(os.path.join(workdir, 'eval', 'best_10crop.json'))
  with pytest.raises(evaluate.EvalError, match=r'--checkpoint=5: no such step .* it has'):
    trained_lib.variables_from_checkpoint(workdir, '5')


def test_torchvision_weights_evaluate_as_torch_predicts(tmp_path):
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
  torch.save(net.state_dict(), tmp_path / 'r18.pth')
  config = default.get_config()
  config.num_classes = 7
  config.dataset.update({'name': 'synthetic', 'synthetic_size': 32, 'image_size': 64,
                         'augment': 'none'})
  record = evaluate.evaluate(config, str(tmp_path), 'center', torchvision='resnet18',
                             weights=str(tmp_path / 'r18.pth'))
  views = list(input_pipeline.eval_views(config, 'center'))
  images = np.concatenate([v for _, v, _ in views])  # (32, 64, 64, 3) uint8
  mean, std = input_pipeline.STATS['imagenet']
  images = ((images / 255 - np.array(mean)) / np.array(std)).astype(np.float32)
  with torch.no_grad():
    logits = net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
  labels = np.array([label for _, _, label in views])
  assert record['checkpoint'] == 'torchvision_resnet18' and record['num_examples'] == 32
  assert record['top1'] == pytest.approx(np.mean(logits.argmax(1) == labels))
  assert os.path.exists(tmp_path / 'eval' / 'torchvision_resnet18_center.json')
