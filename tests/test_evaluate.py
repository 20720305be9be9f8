"""evaluate.py: 10-crop and multi-scale evaluation against explicit loops over the views,
VGG's dense evaluation, and the CLI on a mnist5k checkpoint."""

import io
import json
import os
import pwd
import shutil
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import default
import evaluate
import input_pipeline
from lib import checkpoints
from lib import experiment
from lib import run_contract
from lib import trained as trained_lib
import models
from tests import prewarmed

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
  return np.asarray(jax.nn.softmax(model.apply(variables, view[None])))[0]


@pytest.fixture(scope='module')
def mock_imagenet():
  """Six variable-size validation images, a random model and its variables."""
  config = imagenet_config()
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    source = tfds.data_source('imagenet2012', split='validation',
                              decoders={'image': tfds.decode.SkipDecoding()})
    raw = [{'image': np.asarray(Image.open(io.BytesIO(ex['image'])).convert('RGB')),
            'label': ex['label']} for ex in (source[i] for i in range(len(source)))]
    model = experiment.create_net(config, 1000)
    variables = model.init(jax.random.key(0))
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


def whole_image_longer_side(h, w, q):
  """The longer side of a whole-image view at test scale Q: the shorter side is Q, the
  longer one exceeds it by the multiple of 32 nearest to the image's aspect."""
  return q + 32 * round((max(h, w) * q / min(h, w) - q) / 32)


@pytest.mark.fast
def test_whole_image_views_keep_the_shorter_side_at_q_exactly():
  """VGG section 3.2's test scale Q is the shorter side: a square image at Q=300 is
  300x300 (it was rounded to 288x300), at Q=240 240x240; only the longer side moves to a
  step of 32 pixels (VGG's pool5 stride): 400x300 at Q=256 is 341.3 -> 256 + 3 * 32."""
  from data import transforms  # pylint: disable=import-outside-toplevel
  config = imagenet_config()
  for (w, h), q, want in [((300, 300), 300, (300, 300)), ((300, 300), 240, (240, 240)),
                          ((400, 300), 256, (256, 352)), ((300, 400), 256, (352, 256)),
                          ((301, 300), 300, (300, 300)), ((500, 240), 240, (240, 496))]:
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    views = transforms.views(image, config, 'full', q)
    assert views.shape == (2, *want, 3), ((w, h), q)
    np.testing.assert_array_equal(views[1], views[0][:, ::-1])  # and its mirror image


def test_multiscale_is_the_mean_over_scales_and_mirrors(mock_imagenet):
  _, model, variables, raw, _, (probs, labels) = mock_imagenet
  assert probs.shape == (6, 1000) and list(labels) == [ex['label'] for ex in raw]
  for ex, got in zip(raw, probs, strict=True):
    image = ex['image']
    h, w = image.shape[:2]
    views = []
    for q in (64, 96):
      longer = whole_image_longer_side(h, w, q)
      full = normalize(resize(image, *((q, longer) if h <= w else (longer, q))) / 255)
      views += [full, full[:, ::-1]]
    want = np.mean([posterior(model, variables, v) for v in views], axis=0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def fc_head(params, features):
  """VGG's three FC layers in numpy (torchvision's classifier[0], [3], [6]), on a
  (7, 7, 512) map flattened in NHWC order."""
  x = features.reshape(-1)
  fc = params['classifier']
  for i in (0, 3):
    x = np.maximum(x @ fc[i]['kernel'] + fc[i]['bias'], 0)
  return x @ fc[6]['kernel'] + fc[6]['bias']


@pytest.fixture(scope='module')
def vgg_a():
  model = models.create_functional('vgg_a', num_classes=10)
  variables = jax.jit(model.init)(jax.random.key(0))
  return model, jax.device_get(variables)


def test_vgg_dense_evaluation_is_the_fc_head_on_every_window(vgg_a):
  """VGG section 3.2: at 288 pixels pool5 is 9x9, so the FC layers as convolutions see
  nine 7x7 windows; dense mode is their class scores averaged."""
  model, variables = vgg_a
  apply = jax.jit(model.apply, static_argnames='dense')
  big = jax.random.normal(jax.random.key(2), (1, 288, 288, 3))
  dense = apply(variables, big, dense=True)
  pool5 = jax.jit(lambda v, x: model.merge(v).features(x))(variables, big)  # torchvision's
  assert pool5.shape == (1, 9, 9, 512)
  pool5 = np.asarray(pool5[0], np.float64)
  want = np.mean([fc_head(variables['params'], pool5[t:t + 7, l:l + 7])
                  for t in range(3) for l in range(3)], axis=0)
  np.testing.assert_allclose(dense[0], want, rtol=1e-4, atol=1e-5)
  # At 224 pool5 is 7x7: one window, so dense mode is the ordinary forward pass.
  x = jax.random.normal(jax.random.key(1), (1, 224, 224, 3))
  np.testing.assert_allclose(apply(variables, x, dense=True), apply(variables, x),
                             rtol=1e-4, atol=1e-5)


def test_vgg_dense_mode_of_evaluate_averages_the_image_and_its_mirror(vgg_a):
  """evaluate.py --mode=dense on VGG-A: at test scale Q=224, each image whole (its
  shorter side 224, the longer one 224 plus a multiple of 32) and its mirror image,
  posteriors averaged."""
  model, variables = vgg_a
  config = imagenet_config()
  config.num_classes = 10
  config.dataset.update({'augment': 'vgg', 'image_size': 224, 'eval_resize': 224})
  with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_CODE):
    probs, _ = evaluate.predict(config, model, variables, 'dense', examples_per_batch=1)
    source = tfds.data_source('imagenet2012', split='validation',
                              decoders={'image': tfds.decode.SkipDecoding()})
    images = [np.asarray(Image.open(io.BytesIO(source[i]['image'])).convert('RGB'))
              for i in range(2)]
  assert probs.shape == (2, 10)
  for image, got in zip(images, probs, strict=True):
    h, w = image.shape[:2]
    longer = whole_image_longer_side(h, w, 224)
    full = normalize(resize(image, *((224, longer) if h <= w else (longer, 224))) / 255)
    views = jnp.asarray(np.stack([full, full[:, ::-1]]), jnp.float32)
    logits = model.apply(variables, views, dense=True)
    want = np.asarray(jax.nn.softmax(logits)).mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)


def run_cli(*args):
  return prewarmed.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)


@pytest.mark.fast
def test_evaluate_without_a_run_says_what_to_give(tmp_path):
  result = run_cli('evaluate.py', f'--workdir={tmp_path}')
  assert result.returncode == 2, result.stderr[-2000:]
  (line,) = result.stderr.splitlines()
  assert 'no config.json' in line and '--config=configs/FILE.py' in line, line


@pytest.mark.fast
def test_a_checkpoint_is_found_by_step_in_either_kept_set(tmp_path):
  """A step is looked for among the latest checkpoints, then the best; a missing one is
  named with every step there is, even when best_checkpoint/ is empty (it had named
  that folder, as if the run had no checkpoints)."""
  for kind, step in ((checkpoints.LATEST, 4), (checkpoints.LATEST, 8), (checkpoints.BEST, 2)):
    os.makedirs(tmp_path / kind / str(step))
  assert trained_lib.checkpoint_to_load(str(tmp_path), '8') == (checkpoints.LATEST, 8, 'step8')
  assert trained_lib.checkpoint_to_load(str(tmp_path), '2') == (checkpoints.BEST, 2, 'step2')
  assert trained_lib.checkpoint_to_load(str(tmp_path), 'best') == (checkpoints.BEST, 2, 'best')
  os.rmdir(tmp_path / checkpoints.BEST / '2')
  with pytest.raises(trained_lib.LoadError, match=r'--checkpoint=5: no such step .* has \[4, 8\]$'):
    trained_lib.checkpoint_to_load(str(tmp_path), '5')
  with pytest.raises(trained_lib.LoadError, match='has no checkpoint in best_checkpoint/'):
    trained_lib.checkpoint_to_load(str(tmp_path), 'best')
  for step in (4, 8):
    os.rmdir(tmp_path / checkpoints.LATEST / str(step))
  with pytest.raises(trained_lib.LoadError, match=r'checkpoints/; train first \(python '
                     r'train.py ...\)$'):  # (not: or give --checkpoint=latest, as it was)
    trained_lib.checkpoint_to_load(str(tmp_path), 'latest')


def test_evaluate_cli_on_a_mnist5k_checkpoint(trained_lenet, tmp_path, monkeypatch):
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
  (line,) = result.stderr.strip().splitlines()
  # (the shape it was probed at is no image's: the line names the test scale instead)
  assert line.startswith('evaluate.py: error: --mode=dense runs LeNet5 on whole images at '
                         'test scale Q=256 (the shorter side 256 pixels'), line
  assert '256x288' not in line
  # The same workdir in-process: 10 crops (with mirrored digits) run; a missing step is
  # named with the ones there are. The dataset is opened once (ImageNet's builder and its
  # 64 validation files; a folder's files decoded once when resident).
  config = run_contract.read_saved(workdir)
  opened = []
  dataset_info = input_pipeline.dataset_info
  monkeypatch.setattr(input_pipeline, 'dataset_info',
                      lambda *a, **k: opened.append(a) or dataset_info(*a, **k))
  ten = evaluate.evaluate(config, workdir, '10crop', checkpoint='best')
  assert len(opened) == 1
  assert ten['num_examples'] == 1000 and 0.5 < ten['top1'] <= 1
  assert os.path.exists(os.path.join(workdir, 'eval', 'best_10crop.json'))
  with pytest.raises(evaluate.EvalError, match=r'--checkpoint=5: no such step .* it has'):
    trained_lib.variables_from_checkpoint(workdir, '5')


@pytest.fixture(scope='module')
def declining_run(tmp_path_factory):
  """60 steps of a small convnet on mnist5k whose rate jumps to 1e30 at step 22 (the
  NaN steps skipped): evaluations at 20, 40 and 60, the first the best; checkpoints
  every 7 steps, the last two kept. (AdamW at 2e-2: the SGD recipe's first 20 steps
  leave this BatchNorm convnet at chance, 10% top-1 as the diverged one; at 2e-2 it has
  23% at step 20.)"""
  workdir = tmp_path_factory.mktemp('declining') / 'run'
  result = run_cli('train.py', '--config=configs/convnet.py:dataset=mnist5k,width=8,stages=2,'
                   'depth=1,epochs=0.48', '--config.batch_size=32',
                   '--config.eval_every_steps=20', '--config.checkpoint_every_steps=7',
                   '--config.schedule.name=piecewise', '--config.schedule.boundaries=(22,)',
                   '--config.schedule.multipliers=(1,2e31)', '--config.on_nonfinite=skip',
                   '--config.optimizer.name=adamw', '--config.schedule.learning_rate=0.02',
                   f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-2000:]
  evals = {r['step']: r for r in map(json.loads, open(workdir / 'metrics.jsonl'))
           if r['split'] == 'test'}
  assert sorted(evals) == [20, 40, 60]
  return workdir, evals


def test_the_best_checkpoint_is_the_best_top1_and_only_the_last_two_are_kept(declining_run):
  workdir, evals = declining_run
  best = max(evals, key=lambda step: evals[step]['top1'])
  assert best == 20 and evals[20]['top1'] > evals[60]['top1']
  assert checkpoints.saved_steps(str(workdir), checkpoints.BEST) == [20]
  assert checkpoints.saved_steps(str(workdir)) == [56, 60]  # keep_checkpoints = 2
  # The best checkpoint holds step 20's weights: evaluated, they give step 20's numbers.
  result = run_cli('evaluate.py', f'--workdir={workdir}')
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.load(open(workdir / 'eval' / 'best_center.json'))
  assert (record['step'], record['checkpoint']) == (20, 'best')
  assert round(record['top1'] * 1000) == round(evals[20]['top1'] * 1000)  # of 1000
  assert record['loss'] == pytest.approx(evals[20]['loss'], rel=1e-5)


def test_evaluate_a_step_other_scales_and_another_split(declining_run):
  workdir, evals = declining_run
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--checkpoint=56')
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.load(open(workdir / 'eval' / 'step56_center.json'))
  assert (record['step'], record['checkpoint']) == (56, 'step56')
  assert 'step56 (step 56), center' in result.stdout
  # --scales: the multiscale posteriors are the mean of dense evaluations at each Q.
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--mode=multiscale', '--scales=28,36')
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.load(open(workdir / 'eval' / 'best_multiscale.json'))
  assert record['scales'] == [28, 36] and record['num_examples'] == 1000
  config = run_contract.read_saved(str(workdir))
  loaded = trained_lib.load(config, 10, str(workdir), 'best')
  dense = []
  for q in (28, 36):
    config.dataset.eval_resize = q
    dense.append(evaluate.predict(config, loaded.net, loaded.variables, 'dense'))
  probs, labels = (dense[0][0] + dense[1][0]) / 2, dense[0][1]
  want = evaluate.metrics(probs, labels)
  assert record['top1'] == want['top1'] and record['loss'] == pytest.approx(want['loss'])
  # --config.KEY=VALUE: the 4,000 training digits, in a file of their own.
  result = run_cli('evaluate.py', f'--workdir={workdir}', '--config.dataset.eval_split=train')
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.load(open(workdir / 'eval' / 'best_center_train.json'))
  assert record['num_examples'] == 4000 and record['split'] == 'train'
  assert json.load(open(workdir / 'eval' / 'best_center.json'))['num_examples'] == 1000


def test_flip_and_tta_modes_average_the_logits_of_their_views(declining_run):
  """--mode=flip: each test digit's logits and its mirror image's, averaged, then the
  softmax; --mode=tta adds the two 1-pixel translations (tests/test_airbench.py holds
  the levels against airbench's own `infer`)."""
  workdir, _ = declining_run
  config = run_contract.read_saved(str(workdir))
  loaded = trained_lib.load(config, 10, str(workdir), 'best')
  probs, labels = evaluate.predict(config, loaded.net, loaded.variables, 'flip')
  views = np.stack([v[0] for _, v, _ in input_pipeline.eval_views(config, 'center')])
  x = ((views / 255 - 0.1307) / 0.3081).astype(np.float32)  # MNIST's statistics
  logits = lambda x: np.asarray(loaded.net.apply(loaded.variables, x))
  mirrored = lambda x: 0.5 * logits(x) + 0.5 * logits(x[:, :, ::-1])
  want = np.asarray(jax.nn.softmax(mirrored(x)))
  np.testing.assert_allclose(probs, want, rtol=1e-4, atol=1e-6)
  # tta, airbench's level 2 written out: half the mirrored logits, half their mean over
  # the two 1-pixel translations of the image reflect-padded by 1 (its crops at offsets
  # (0, 0) and (2, 2)).
  tta, _ = evaluate.predict(config, loaded.net, loaded.variables, 'tta')
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='reflect')
  h, w = x.shape[1:3]
  shifted = [mirrored(padded[:, t:t + h, t:t + w]) for t in (0, 2)]
  want_tta = np.asarray(jax.nn.softmax(0.5 * mirrored(x) + 0.25 * (shifted[0] + shifted[1])))
  np.testing.assert_allclose(tta, want_tta, rtol=1e-4, atol=1e-6)
  assert np.abs(want_tta - want).max() > 1e-3  # (level 2 is not level 1 here)
  for mode in ('flip', 'tta'):  # (in-process; the CLI's flags: the tests above)
    evaluate.evaluate(config, str(workdir), mode)
    record = json.load(open(workdir / 'eval' / f'best_{mode}.json'))
    assert record['mode'] == mode and record['num_examples'] == 1000
  flip = json.load(open(workdir / 'eval' / 'best_flip.json'))
  assert flip['top1'] == pytest.approx(np.mean(want.argmax(1) == labels), abs=1e-9)


def test_torchvision_weights_evaluate_as_torch_predicts(tmp_path):
  """A torchvision ResNet-18 with random weights and random BatchNorm statistics (every
  converted tensor matters): evaluate.py's posteriors are torch's softmax, its loss
  torch's cross-entropy."""
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  net = torchvision.models.resnet18(weights=None, num_classes=7).eval()
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
    net.fc.weight.mul_(0.05)  # logits of a few units: posteriors far from one-hot
  torch.save(net.state_dict(), tmp_path / 'r18.pth')
  config = default.get_config()
  config.num_classes = 7
  config.dataset.update({'name': 'synthetic', 'synthetic_size': 32, 'image_size': 64,
                         'augment': 'none'})
  record = evaluate.evaluate(config, str(tmp_path), 'center', torchvision='resnet18',
                             weights=str(tmp_path / 'r18.pth'))
  loaded = trained_lib.load(config, 7, str(tmp_path), torchvision='resnet18',
                            weights=str(tmp_path / 'r18.pth'))
  probs, labels = evaluate.predict(config, loaded.net, loaded.variables, 'center')
  views = list(input_pipeline.eval_views(config, 'center'))
  images = np.concatenate([v for _, v, _ in views])  # (32, 64, 64, 3) uint8
  # torchvision's ImageNet normalisation, written out.
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  images = ((images / 255 - mean) / std).astype(np.float32)
  with torch.no_grad():
    logits = net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    want = torch.softmax(logits, -1).numpy()
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels).long())
  assert list(labels) == [label for _, _, label in views]
  assert want.max() < 0.9, 'posteriors spread over the classes'
  np.testing.assert_allclose(probs, want, rtol=1e-4, atol=1e-6)
  assert record['checkpoint'] == 'torchvision_resnet18' and record['num_examples'] == 32
  assert record['top1'] == np.mean(want.argmax(1) == labels)
  assert record['loss'] == pytest.approx(float(loss), rel=1e-5)
  assert os.path.exists(tmp_path / 'eval' / 'torchvision_resnet18_center.json')


def tree_state(top):
  """Every path under top with its bytes (a folder: None)."""
  out = {}
  for root, dirs, files in os.walk(top):
    out.update({os.path.join(root, d): None for d in dirs})
    out.update({os.path.join(root, f): open(os.path.join(root, f), 'rb').read()
                for f in files})
  return out


def test_a_read_only_workdir_is_refused_before_evaluating(trained_lenet):
  """A workdir this user cannot write: one line naming the result file, exit 2, before
  the dataset is read or anything compiles (it used to evaluate, then fail to write
  eval/best_center.json). Run as an unprivileged user, since root may write anywhere."""
  trained, _ = trained_lenet
  top = tempfile.mkdtemp(prefix='read-only-')  # (reachable by that user, unlike tmp_path)
  os.chmod(top, 0o755)
  workdir = os.path.join(top, 'lenet')
  shutil.copytree(trained, workdir)
  command = ['evaluate.py', f'--workdir={workdir}']
  if os.geteuid() == 0:  # the user nobody, once Python and the program's modules are
    nobody = pwd.getpwnam('nobody')  # loaded (they may lie under root's home)
    command = ['-c', f'import os, runpy, sys; import evaluate; os.setgroups([]); '
               f'os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid}); '
               f'sys.argv = {command!r}; runpy.run_path("evaluate.py", run_name="__main__")']
  for root, dirs, files in os.walk(workdir):
    for name in files:
      os.chmod(os.path.join(root, name), 0o444)
    os.chmod(root, 0o555)
  try:
    before = tree_state(workdir)
    result = prewarmed.run([sys.executable, *command], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        f'evaluate.py: error: --workdir: cannot save the result to {workdir}/eval/'
        f'best_center.json ({workdir} is not writable by this user); make {workdir}/eval '
        'a folder this user can write, or evaluate a copy of the workdir'], result.stderr
    assert result.stdout == '' and tree_state(workdir) == before
  finally:
    for root, _, _ in os.walk(top):
      os.chmod(root, 0o755)
    shutil.rmtree(top)


def test_a_result_that_cannot_be_written_is_printed_and_named(declining_run, monkeypatch,
                                                             capsys):
  """A write that fails after the check (a disk that filled up meanwhile): the result is
  not lost: printed, with one line saying it was not saved, exit status 1."""
  workdir, evals = declining_run
  def full_disk(path, value):
    raise OSError(28, 'No space left on device', path)
  monkeypatch.setattr(evaluate.workdir_lib, 'write_json', full_disk)
  monkeypatch.setattr(evaluate, 'FLAGS', type('Flags', (), dict(
      config=run_contract.read_saved(str(workdir)), workdir=str(workdir), torchvision=None,
      weights=None, checkpoint='best', mode='center', scales=['256']))())
  with pytest.raises(SystemExit) as exit_:
    evaluate.main(['evaluate.py'])
  out, err = capsys.readouterr()
  assert exit_.value.code == 1
  assert f"best (step 20), center: top-1 {100 * evals[20]['top1']:.2f}%" in out
  assert err.splitlines() == [
      'evaluate.py: error: the result above could not be saved: '
      f'{workdir}/eval/best_center.json: No space left on device']
