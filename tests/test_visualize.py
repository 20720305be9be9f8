"""predict.py and visualize.py on the session's trained LeNet-5 (tests/conftest.py), and
predict.py on torchvision weights; the first-layer filters in TensorBoard."""

import io
import json
import os
import struct
import sys

from flax import nnx
import jax
import numpy as np
import pytest
from PIL import Image

from configs import lenet
from data import sources
from lib import run_contract
from lib import trained as trained_lib
import models
from models import layers
from tests import prewarmed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(program, *args):
  result = prewarmed.run([sys.executable, program, *map(str, args)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
  return result


def first_test_digits(n):
  """The first n test digits of mnist5k and their labels."""
  split = sources.open_split(lenet.get_config(), 'eval')
  return split.images[:n], split.labels[:n]


@pytest.fixture(scope='module')
def lenet_run(trained_lenet):
  workdir, result = trained_lenet  # python train.py --config=configs/lenet.py
  assert result.returncode == 0, result.stderr[-2000:]
  return workdir


def best_lenet(workdir, which='best'):
  """LeNet-5 (as functions of its variables) and the variables of `workdir`'s best (or
  `which`) checkpoint."""
  variables, _, _ = trained_lib.variables_from_checkpoint(str(workdir), which)
  config = run_contract.read_saved(str(workdir))  # ReLU and max pooling (configs/lenet.py)
  return models.functional(lambda rngs: models.create_model_from_config(
      config.model, 10, image_size=32, in_channels=1, rngs=rngs)), variables  # grey digits


def intermediates(model, variables, x):
  """Every layer's output in eval mode, by path: nnx.capture sows the output of each
  module's __call__ (a tuple, one entry per call)."""
  _, sown = nnx.capture(model.merge(variables), nnx.Intermediate,
                        method_outputs=nnx.Intermediate)(x)
  return nnx.to_pure_dict(sown)


def lenet_input(path):
  """A 28x28 digit PNG as LeNet-5's input batch: padded to 32, MNIST-normalised."""
  digit = np.asarray(Image.open(path), np.float32)
  return ((np.pad(digit, 2) / 255 - 0.1307) / 0.3081)[None, :, :, None]


def scaled(tiles):
  """Each tile (first axis) scaled to [0, 1] on its own, as the figure shows it."""
  low = tiles.min(axis=(1, 2), keepdims=True)
  return (tiles - low) / (tiles.max(axis=(1, 2), keepdims=True) - low)


@pytest.fixture(scope='module')
def digit_png(tmp_path_factory):
  """A test digit as a PNG file, and its label."""
  images, labels = first_test_digits(1)
  path = tmp_path_factory.mktemp('digit') / f'digit_{labels[0]}.png'
  Image.fromarray(images[0][..., 0]).save(path)
  return path, int(labels[0])


def test_predict_agrees_with_the_checkpoints_own_evaluation(lenet_run, tmp_path):
  images, labels = first_test_digits(24)
  for i, image in enumerate(images):
    Image.fromarray(image[..., 0]).save(tmp_path / f'{i:02d}.png')
  result = run('predict.py', f'--workdir={lenet_run}', '--json', '--top_k=3', tmp_path,
               tmp_path / 'missing.png')
  assert result.returncode == 1  # one image could not be read ...
  assert result.stderr.count('predict.py: ') == 1 and 'missing.png: no such file' in \
      result.stderr
  predictions = json.loads(result.stdout)  # ... and the 24 others were predicted
  assert [os.path.basename(p['path']) for p in predictions] == [f'{i:02d}.png'
                                                                 for i in range(24)]
  # The reference, written out: the best checkpoint's LeNet-5 on each digit padded from
  # 28 to 32 pixels and normalised by MNIST's mean and std.
  model, variables = best_lenet(lenet_run)
  x = (np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0))) / 255 - 0.1307) / 0.3081
  probs = np.asarray(jax.nn.softmax(model.apply(variables, x.astype(np.float32))))
  for p, want, label in zip(predictions, probs, labels):
    best = p['predictions']
    assert [b['label'] for b in best] == list(np.argsort(-want)[:3])
    assert best[0]['name'] == str(best[0]['label'])  # MNIST's names are its digits
    np.testing.assert_allclose([b['prob'] for b in best], np.sort(want)[::-1][:3],
                               rtol=1e-4, atol=1e-6)
  assert np.mean([p['predictions'][0]['label'] == y for p, y in
                  zip(predictions, labels)]) >= 0.9


def test_predict_prints_a_line_per_image_from_the_latest_checkpoint(lenet_run, tmp_path):
  images, _ = first_test_digits(3)
  for i, image in enumerate(images):
    Image.fromarray(image[..., 0]).save(tmp_path / f'{i}.png')
  result = run('predict.py', f'--workdir={lenet_run}', '--checkpoint=latest', '--top_k=2',
               tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  model, variables = best_lenet(lenet_run, 'latest')
  x = np.concatenate([lenet_input(tmp_path / f'{i}.png') for i in range(3)])
  probs = np.asarray(jax.nn.softmax(model.apply(variables, x)))
  want = [f'{tmp_path}/{i}.png: ' + ', '.join(f'{c} ({p[c]:.3f})' for c in np.argsort(-p)[:2])
          for i, p in enumerate(probs)]
  assert result.stdout.splitlines() == want


@pytest.mark.parametrize('args,message', [
    (['--top_k=0'], '--top_k=0: give the number of classes to show per image, 1 or more'),
    (['--top_k=-2'], '--top_k=-2: give the number'),
    ([], 'no PNG or JPEG image in {empty}'),
])
def test_predict_refuses_what_it_cannot_show(lenet_run, tmp_path, args, message):
  os.makedirs(tmp_path / 'empty' / '.hidden')
  (tmp_path / 'empty' / '._x.png').write_bytes(b'\x00\x05')
  target = tmp_path / 'empty' if not args else os.path.join(ROOT, 'docs', 'digits')
  result = run('predict.py', f'--workdir={lenet_run}', *args, target)
  assert result.returncode == 2 and result.stdout == '', result.stdout
  assert result.stderr.count('\n') == 1, result.stderr
  assert message.format(empty=tmp_path / 'empty') in result.stderr


def test_predict_on_torchvision_resnet18_matches_torch(tmp_path):
  torch = pytest.importorskip('torch')
  import torchvision  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  net = torchvision.models.resnet18(weights=None).eval()
  torch.save(net.state_dict(), tmp_path / 'resnet18.pth')
  rng = np.random.RandomState(0)
  path = tmp_path / 'photo.png'
  Image.fromarray(rng.randint(0, 256, (260, 300, 3), np.uint8)).save(path)
  config_arg = 'configs/resnet.py:imagenet,depth=18'
  result = run('predict.py', '--torchvision=resnet18', f'--weights={tmp_path}/resnet18.pth',
               f'--config={config_arg}', '--json', '--top_k=5', path)
  assert result.returncode == 0, result.stderr[-2000:]
  ours = json.loads(result.stdout)[0]['predictions']
  # torch on the same evaluation view (shorter side 256, centre 224), ImageNet-normalised.
  # 260x300: the shorter side to 256 (width 295), then the centre 224x224.
  view = np.asarray(Image.open(path).resize((295, 256), Image.BILINEAR))[16:240, 35:259]
  view = view.astype(np.float32) / 255
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  x = torch.from_numpy(((view - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
  with torch.no_grad():
    want = torch.softmax(net(x), -1)[0].numpy()
  assert [p['label'] for p in ours] == list(np.argsort(-want)[:5])
  np.testing.assert_allclose([p['prob'] for p in ours], np.sort(want)[::-1][:5],
                             rtol=1e-3, atol=1e-6)


def test_filters_and_features_have_a_tile_per_kernel_and_map(lenet_run, digit_png, tmp_path):
  path, _ = digit_png
  result = run('visualize.py', 'filters', f'--workdir={lenet_run}', f'--out={tmp_path}/f.png',
               f'--save_array={tmp_path}/f.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  model, variables = best_lenet(lenet_run)
  c1 = np.asarray(variables['params']['C1']['kernel'])  # (5, 5, 1, 6)
  # C1: the 6 filters of 5x5 on grey, filter i = kernel[:, :, 0, i].
  np.testing.assert_allclose(np.load(tmp_path / 'f.npy'), scaled(c1[:, :, 0].transpose(2, 0, 1)),
                             rtol=1e-6)
  result = run('visualize.py', 'filters', f'--workdir={lenet_run}', '--layer=C3',
               f'--out={tmp_path}/c3.png', f'--save_array={tmp_path}/c3.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  c3 = np.asarray(variables['params']['C3']['kernel'])  # (5, 5, 6, 16)
  tiles = [c3[:, :, c, f] for f in range(16) for c in range(6)]  # a row per filter
  np.testing.assert_allclose(np.load(tmp_path / 'c3.npy'), scaled(np.stack(tiles)), rtol=1e-6)
  result = run('visualize.py', 'features', f'--workdir={lenet_run}', f'--image={path}',
               f'--out={tmp_path}/m.png', f'--save_array={tmp_path}/m.npz')
  assert result.returncode == 0, result.stderr[-2000:]
  maps = np.load(tmp_path / 'm.npz')
  assert sorted(maps) == ['C1', 'C3', 'C5']  # each stage's last conv
  # C1's maps are its valid 5x5 convolution of the input, summed out here; C3's and
  # C5's are the model's own intermediate outputs.
  x = lenet_input(path)[0, :, :, 0]
  windows = np.lib.stride_tricks.sliding_window_view(x, (5, 5))  # (28, 28, 5, 5)
  want = np.einsum('ijkl,klf->ijf', windows, c1[:, :, 0]) + variables['params']['C1']['bias']
  np.testing.assert_allclose(maps['C1'], want, rtol=1e-4, atol=1e-5)
  state = intermediates(model, variables, lenet_input(path))
  for name, shape in (('C3', (10, 10, 16)), ('C5', (1, 1, 120))):
    assert maps[name].shape == shape
    np.testing.assert_allclose(maps[name], state[name]['__call__'][0][0],
                               rtol=1e-5, atol=1e-6)
  for name in ('f.png', 'c3.png', 'm.png'):
    assert Image.open(tmp_path / name).size[0] > 100
  result = run('visualize.py', 'filters', f'--workdir={lenet_run}', '--layer=C9',
               f'--out={tmp_path}/x.png')
  assert result.returncode == 2 and 'its conv layers are C1, C3, C5' in result.stderr


def test_features_of_chosen_layers_and_colour_filters_of_an_rgb_model(lenet_run, digit_png,
                                                                     tmp_path):
  path, _ = digit_png
  result = run('visualize.py', 'features', f'--workdir={lenet_run}', f'--image={path}',
               '--layers=C1,F6', f'--out={tmp_path}/m.png', f'--save_array={tmp_path}/m.npz')
  assert result.returncode == 0, result.stderr[-2000:]
  maps = np.load(tmp_path / 'm.npz')
  model, variables = best_lenet(lenet_run)
  state = intermediates(model, variables, lenet_input(path))
  assert sorted(maps) == ['C1', 'F6'] and maps['F6'].shape == (1, 1, 84)  # a vector's map
  np.testing.assert_allclose(maps['F6'][0, 0], state['F6']['__call__'][0][0],
                             rtol=1e-5, atol=1e-6)
  # An RGB first layer (torchvision's ResNet-18, conv1: 64 filters of 7x7x3): one colour
  # tile per filter, as AlexNet's Figure 3 shows them.
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  net = torchvision.models.resnet18(weights=None)
  torch.save(net.state_dict(), tmp_path / 'r18.pth')
  result = run('visualize.py', 'filters', '--torchvision=resnet18',
               f'--weights={tmp_path}/r18.pth', '--config=configs/resnet.py:imagenet,depth=18',
               f'--out={tmp_path}/f.png', f'--save_array={tmp_path}/f.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  kernel = net.conv1.weight.detach().numpy().transpose(0, 2, 3, 1)  # (64, 7, 7, 3)
  low = kernel.min(axis=(1, 2, 3), keepdims=True)
  want = (kernel - low) / (kernel.max(axis=(1, 2, 3), keepdims=True) - low)
  np.testing.assert_allclose(np.load(tmp_path / 'f.npy'), want, rtol=1e-5, atol=1e-6)


def test_saliency_and_occlusion_of_a_chosen_class_and_patch(lenet_run, digit_png, tmp_path):
  """--label=3 (not the digit's class) and --patch=28 --step=4: four occluded views."""
  path, label = digit_png
  assert label != 3
  args = [f'--workdir={lenet_run}', f'--image={path}', '--label=3']
  result = run('visualize.py', 'saliency', *args, f'--out={tmp_path}/s.png',
               f'--save_array={tmp_path}/s.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  model, variables = best_lenet(lenet_run)
  x = lenet_input(path)
  grad = jax.grad(lambda x: model.apply(variables, x)[0, 3])(x)
  np.testing.assert_allclose(np.load(tmp_path / 's.npy'), np.abs(grad[0, :, :, 0]),
                             rtol=1e-4, atol=1e-7)
  result = run('visualize.py', 'occlusion', *args, '--patch=28', '--step=4',
               f'--out={tmp_path}/o.png', f'--save_array={tmp_path}/o.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  digit = np.pad(np.asarray(Image.open(path)), 2)
  grey = round(0.1307 * 255)  # MNIST's mean: the occluding square
  views = [digit]
  for t, l in ((0, 0), (0, 4), (4, 0), (4, 4)):
    view = digit.copy()
    view[t:t + 28, l:l + 28] = grey
    views.append(view)
  x = ((np.stack(views) / 255 - 0.1307) / 0.3081)[..., None].astype(np.float32)
  p = np.asarray(jax.nn.softmax(model.apply(variables, x)))[:, 3]
  drop, covered = np.zeros((32, 32)), np.zeros((32, 32))
  for (t, l), q in zip(((0, 0), (0, 4), (4, 0), (4, 4)), p[1:]):
    drop[t:t + 28, l:l + 28] += p[0] - q
    covered[t:t + 28, l:l + 28] += 1
  np.testing.assert_allclose(np.load(tmp_path / 'o.npy'), drop / np.maximum(covered, 1),
                             rtol=1e-4, atol=1e-7)


def test_occlusion_and_saliency_fall_on_the_digit(lenet_run, digit_png, tmp_path):
  path, label = digit_png
  for mode in ('occlusion', 'saliency'):
    result = run('visualize.py', mode, f'--workdir={lenet_run}', f'--image={path}',
                 f'--out={tmp_path}/{mode}.png', f'--save_array={tmp_path}/{mode}.npy')
    assert result.returncode == 0, result.stderr[-2000:]
  digit = np.pad(np.asarray(Image.open(path)), 2) > 0  # the 32x32 view's ink
  # A pixel's occlusion value averages the 8x8 squares (--patch) that covered it: the
  # pixels within 7 of the ink are those a square over ink can reach; beyond lies the
  # empty border, where no square touches the digit.
  ink = np.argwhere(digit)
  grid = np.stack(np.meshgrid(np.arange(32), np.arange(32), indexing='ij'), -1)
  distance = np.abs(grid[:, :, None, :] - ink[None, None]).max(-1).min(-1)  # Chebyshev
  near, border = distance < 8, distance >= 8
  assert border.sum() > 100  # (the digit leaves an empty border to compare with)
  occlusion = np.clip(np.load(tmp_path / 'occlusion.npy'), 0, None)
  assert occlusion[near].sum() > 0.95 * occlusion.sum()
  assert occlusion[digit].mean() > 10 * occlusion[border].mean()
  saliency = np.load(tmp_path / 'saliency.npy')
  assert saliency[digit].mean() > 0 and saliency[digit].mean() > 2 * saliency[border].mean()


@pytest.mark.parametrize('n', [1, 5, 7, 28, 32])
@pytest.mark.fast
def test_conv_arithmetic_output_size_is_the_convolutions(n):
  import visualize  # pylint: disable=import-outside-toplevel
  for k in (1, 2, 3, 5):
    for s in (1, 2, 3):
      for d in (1, 2):
        for padding in (0, 1, 2, 'SAME', 'VALID'):
          pads, out = visualize.conv_geometry(n, k, s, padding, d)
          if n + sum(pads) < layers.effective_kernel(k, d):
            continue
          real = jax.eval_shape(lambda x: jax.lax.conv_general_dilated(
              x, np.zeros((1, 1, k, k), np.float32), (s, s), [pads, pads],
              rhs_dilation=(d, d)), jax.ShapeDtypeStruct((1, 1, n, n), np.float32))
          assert out == real.shape[-1], (n, k, s, d, padding)


@pytest.mark.fast
def test_conv_arithmetic_cli(tmp_path):
  result = run('visualize.py', 'conv-arithmetic', '--kernel=3', '--stride=2', '--padding=1',
               '--input_size=7', f'--out={tmp_path}/c.png', f'--save_array={tmp_path}/c.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  coverage = np.load(tmp_path / 'c.npy')  # how many outputs read each padded input cell
  assert coverage.shape == (9, 9) and coverage.sum() == 4 * 4 * 9
  # The JSON line names the files written: an array given as .npz is saved as numpy does,
  # with .npy added (it had named the file given); a figure without a format's suffix,
  # which matplotlib would have saved under another name, is refused.
  result = run('visualize.py', 'conv-arithmetic', f'--out={tmp_path}/c.png',
               f'--save_array={tmp_path}/c.npz')
  assert json.loads(result.stdout)['array'] == f'{tmp_path}/c.npz.npy'
  assert os.path.exists(tmp_path / 'c.npz.npy')
  result = run('visualize.py', 'conv-arithmetic', f'--out={tmp_path}/figure')
  assert result.returncode == 2 and result.stderr.splitlines() == [
      f'visualize.py: error: give --out=FILE.png (not {tmp_path}/figure): where the '
      'conv-arithmetic figure goes (.pdf, .svg or .jpg for those formats)']
  # A kernel, stride or dilation below 1: one line naming it (a stride of 0 had been a
  # ZeroDivisionError, a kernel of 0 or a dilation of 0 a figure of no convolution).
  for flag in ('--stride=0', '--kernel=0', '--dilation=0', '--kernel=-3'):
    result = run('visualize.py', 'conv-arithmetic', flag, f'--out={tmp_path}/bad.png')
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f'visualize.py: error: flag {flag}: {flag.split("=")[1]} is not a positive integer']
  assert not os.path.exists(tmp_path / 'bad.png')


def test_conv_arithmetic_of_a_runs_layer_and_curves_cli(lenet_run, tmp_path):
  result = run('visualize.py', 'conv-arithmetic', f'--workdir={lenet_run}', '--layer=C1',
               f'--out={tmp_path}/c1.png', f'--save_array={tmp_path}/c1.npy')
  assert result.returncode == 0, result.stderr[-2000:]
  assert np.load(tmp_path / 'c1.npy').sum() == 28 * 28 * 25  # 32 -> 28, a 5x5 kernel
  # Two runs of one name in different folders (a/lenet: the session's run; b/lenet: its
  # records up to step 500): each keeps its own series.
  records = [json.loads(l) for l in open(lenet_run / 'metrics.jsonl')]
  for run_dir, kept in (('a', records), ('b', [r for r in records if r['step'] <= 500])):
    os.makedirs(tmp_path / run_dir / 'lenet')
    with open(tmp_path / run_dir / 'lenet' / 'metrics.jsonl', 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in kept)
  result = run('visualize.py', 'curves', f'--workdir={tmp_path}/a/lenet,{tmp_path}/b/lenet',
               f'--out={tmp_path}/curves.png', f'--save_array={tmp_path}/curves.npz')
  assert result.returncode == 0, result.stderr[-2000:]
  series = np.load(tmp_path / 'curves.npz')
  for run_dir, last in (('a', None), ('b', 500)):
    kept = [r for r in records if last is None or r['step'] <= last]
    for key, split, field in (('eval_top1', 'test', 'top1'), ('train_loss', 'train', 'loss'),
                              ('learning_rate', 'train', 'learning_rate')):
      want = [[r['step'], r[field]] for r in kept if r['split'] == split]
      np.testing.assert_array_equal(series[f'{run_dir}.lenet.{key}'], want)
  assert series['a.lenet.eval_top1'][-1, 0] == 1240
  # A workdir whose metrics.jsonl holds no training record (empty, or lines cut short):
  # one line naming it, where empty axes had been drawn.
  (tmp_path / 'b' / 'lenet' / 'metrics.jsonl').write_text('{"split": "tr\n')
  result = run('visualize.py', 'curves', f'--workdir={tmp_path}/b/lenet',
               f'--out={tmp_path}/empty.png')
  assert result.returncode == 2 and result.stderr.splitlines() == [
      f'visualize.py: error: --workdir={tmp_path}/b/lenet has no training records in '
      'metrics.jsonl'], result.stderr
  assert not os.path.exists(tmp_path / 'empty.png')


@pytest.mark.fast
def test_a_series_of_one_point_is_drawn_with_a_marker(tmp_path, monkeypatch):
  """A run with one training record: its train-loss and learning-rate lines of one point
  each carry a marker (a line alone draws nothing there, though the legend named it)."""
  from visualization import plots  # pylint: disable=import-outside-toplevel  (matplotlib)
  figures = []
  monkeypatch.setattr(plots, 'save', lambda fig, path, extra=None: figures.append(fig))
  plots.show_curves({'r/train_loss': np.array([[20, 2.3]]),
                     'r/learning_rate': np.array([[20, 0.1]]),
                     'r/train_top1': np.array([[20, 0.1], [40, 0.2]])}, str(tmp_path / 'c.png'))
  (fig,) = figures
  assert [[line.get_marker() for line in ax.lines] for ax in fig.axes] == [
      ['o'], ['None'], ['o']]  # (loss and rate: one point; top-1: two, a line)


def read_events(path):
  """The Event protos of a TensorBoard event file (length, CRC, data, CRC records)."""
  from tensorboard.compat.proto import event_pb2  # pylint: disable=import-outside-toplevel
  events, data = [], open(path, 'rb').read()
  while data:
    (length,) = struct.unpack('<Q', data[:8])
    events.append(event_pb2.Event.FromString(data[12:12 + length]))
    data = data[12 + length + 4:]
  return events


def test_training_writes_its_first_filters_at_each_evaluation(lenet_run):
  (path,) = [f for f in os.listdir(lenet_run) if f.startswith('events.out.tfevents')]
  images = [(e.step, v) for e in read_events(os.path.join(lenet_run, path))
            for v in e.summary.value if v.HasField('image')]
  evals = [json.loads(l)['step'] for l in open(os.path.join(lenet_run, 'metrics.jsonl'))
           if json.loads(l)['split'] == 'test']
  assert [step for step, _ in images] == evals
  assert all(v.tag == 'filters/C1' for _, v in images)
  first, last = (Image.open(io.BytesIO(v.image.encoded_image_string))
                 for v in (images[0][1], images[-1][1]))
  assert first.size == last.size and first.size[0] > 50
  # Each picture is the model's own C1 kernel at that step: the 6 filters of 5x5, each
  # scaled to [0, 1] on its own, 9 pixels per weight (48 // 5), 3 to a row, 1-pixel white
  # gaps. Held against the checkpoints saved at evaluation steps.
  pictures = {step: np.asarray(Image.open(io.BytesIO(v.image.encoded_image_string))
                               .convert('RGB')) for step, v in images}
  compared = 0
  for which in ('best', 'latest'):
    variables, step, _ = trained_lib.variables_from_checkpoint(str(lenet_run), which)
    if step not in pictures:
      continue
    picture = pictures[step]
    assert picture.shape == (2 * 46 + 1, 3 * 46 + 1, 3)
    tiles = scaled(np.asarray(variables['params']['C1']['kernel'])[:, :, 0].transpose(2, 0, 1))
    for i, tile in enumerate(tiles):
      r, c = divmod(i, 3)
      top, left = 1 + 46 * r, 1 + 46 * c
      shown = picture[top:top + 45:9, left:left + 45:9]  # one pixel per weight
      np.testing.assert_allclose(shown, np.repeat((tile * 255)[..., None], 3, -1), atol=0.51)
    compared += 1
  assert compared, 'a checkpoint saved at an evaluation step'
