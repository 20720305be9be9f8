"""evaluate.py: 10-crop and multi-scale evaluation against explicit loops over the views,
VGG's dense evaluation, and the CLI on a mnist5k checkpoint."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import evaluate
import input_pipeline
import models
from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64  # crops; the imagenet preset resizes the shorter side to 73 (64 / 0.875)


def imagenet_config():
  c = default.get_config()
  c.model = {'name': 'convnet', 'head': {'pool': 'gap'},  # takes any image size
             'stages': ({'width': 8, 'stride': 2}, {'width': 16, 'stride': 2})}
  c.dataset.update({'name': 'imagenet2012', 'augment': 'imagenet', 'image_size': SIZE,
                    'eval_split': 'validation'})
  return c


def normalize(image):
  mean, std = input_pipeline.STATS['imagenet']
  return (image - np.array(mean)) / np.array(std)


def resize(image, height, width):
  return tf.image.resize(image, (height, width), method='bilinear', antialias=True).numpy()


def posterior(model, variables, view):
  return np.asarray(jax.nn.softmax(model.apply(variables, view[None], train=False)))[0]


@pytest.fixture(scope='module')
def mock_imagenet():
  """Six variable-size validation images, a random model and its variables."""
  config = imagenet_config()
  with tfds.testing.mock_data(num_examples=6):
    raw = list(tfds.load('imagenet2012', split='validation').as_numpy_iterator())
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
    image = ex['image'].astype(np.float32) / 255
    h, w = image.shape[:2]
    short = round(SIZE / 0.875)
    h, w = (short, round(w * short / h)) if h <= w else (round(h * short / w), short)
    image = resize(image, h, w)
    corners = [(0, 0), (0, w - SIZE), (h - SIZE, 0), (h - SIZE, w - SIZE),
               ((h - SIZE) // 2, (w - SIZE) // 2)]
    views = [image[t:t + SIZE, l:l + SIZE] for t, l in corners]
    views += [v[:, ::-1] for v in views]  # the mirror images
    want = np.mean([posterior(model, variables, normalize(v)) for v in views], axis=0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def test_multiscale_is_the_mean_over_scales_and_mirrors(mock_imagenet):
  _, model, variables, raw, _, (probs, labels) = mock_imagenet
  for ex, got in zip(raw, probs):
    image = ex['image'].astype(np.float32) / 255
    h, w = image.shape[:2]
    views = []
    for q in (64, 96):  # shorter side Q; the longer side rounded to 32 pixels
      longer = round(max(h, w) * q / min(h, w) / 32) * 32
      full = normalize(resize(image, *((q, longer) if h <= w else (longer, q))))
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


def test_evaluate_cli_on_a_mnist5k_checkpoint(tmp_path):
  workdir = str(tmp_path / 'lenet')
  result = run_cli('train.py', '--config=configs/lenet.py', '--config.num_epochs=1',
                   f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-2000:]
  final = json.load(open(os.path.join(workdir, 'final_metrics.json')))
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--checkpoint=latest')
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.load(open(os.path.join(workdir, 'eval', 'latest_center.json')))
  # The centre view is the training's own evaluation: same checkpoint, same numbers.
  assert record['top1'] == pytest.approx(final['top1'], abs=1e-6)
  assert record['num_examples'] == 1000 and record['step'] == 62
  assert f"top-1 {100 * final['top1']:.2f}%" in result.stdout
  last = json.loads(open(os.path.join(workdir, 'metrics.jsonl')).readlines()[-1])
  assert last['mode'] == 'center' and last['checkpoint'] == 'latest'
  # 10 crops (with mirrored digits) run; a whole-image mode is refused in one line.
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--mode=10crop',
                   '--config.batch_size=200')
  assert result.returncode == 0, result.stderr[-2000:]
  assert os.path.exists(os.path.join(workdir, 'eval', 'best_10crop.json'))
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--mode=dense')
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith(
      'evaluate.py: error: --mode=dense runs LeNet5 on whole images'), result.stderr
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--checkpoint=5')
  assert result.returncode == 2 and 'no such step' in result.stderr
