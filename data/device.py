"""What the data layer runs on the device, inside the jitted steps.

Batches cross the host-device link as uint8 (a quarter of float32's bytes); here they
become the model's input: scaled to [0, 1], AlexNet's PCA colour noise in training,
normalised by the dataset's mean and std. A dataset resident on the devices (a fixed-size
split that fits: MNIST, CIFAR, SVHN) is gathered and augmented here too, so its training
steps need no host work at all: step s takes the examples the sampler names for
positions [s*B, (s+1)*B) and draws each one's crop and flip from a jax.random key folded
from (seed, position).
"""

import jax
import jax.numpy as jnp
import numpy as np

from data import sampler
from data import sources
from data import transforms
from lib import parallel

# AlexNet section 4.1: PCA of ImageNet RGB values (eigenvalues, eigenvectors as columns),
# the values fb.resnet.torch publishes, on the 0-1 scale.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], np.float32)


def positions(step, batch_size: int):
  """Global stream positions of a step's batch (uint32: ~4e9 positions, e.g. 90 ImageNet
  epochs are 1.2e8)."""
  return jnp.asarray(step, jnp.uint32) * jnp.uint32(batch_size) + jnp.arange(
      batch_size, dtype=jnp.uint32)


def example_keys(seed: int, q):
  """One jax.random key per position: the randomness of its augmentation."""
  base = jax.random.key(seed)
  return jax.vmap(lambda p: jax.random.fold_in(base, p))(q)


def normalize(images, config, dtype=jnp.float32, step=None):
  """uint8 NHWC -> the model's input: [0, 1], PCA noise (alexnet preset, training: give
  the step), minus mean, over std."""
  d = config.dataset
  x = images.astype(jnp.float32) / 255.
  if step is not None and transforms.PRESETS[d.augment].colour_noise:
    keys = example_keys(config.seed, positions(step, x.shape[0]))
    alpha = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (3,)))(keys) * 0.1
    # Each image gets sum_i alpha_i * lambda_i * p_i added to every pixel (AlexNet 4.1).
    x = x + jnp.einsum('ij,nj->ni', PCA_EIGVEC, alpha * PCA_EIGVAL)[:, None, None, :]
  mean, std = sources.channel_stats(d.name, x.shape[-1])
  return ((x - jnp.array(mean)) / jnp.array(std)).astype(dtype)


def resident_fits(config, info) -> bool:
  """Whether the training split goes on the devices: asked for, fixed-size images, a
  preset that runs on the device, and at most config.dataset.device_resident_max_mb."""
  d = config.dataset
  if not (d.device_resident and info.fixed_size and transforms.PRESETS[d.augment].resident):
    return False
  h, w, _ = info.image_shape
  if h > d.image_size or w > d.image_size:  # would need a resize: the host does that
    return False
  return info.num_train * h * w * d.channels <= d.device_resident_max_mb * 2**20


def gather_batch(data, step, config, mesh=None):
  """Step `step`'s global batch of a resident dataset, augmented: {'image' uint8,
  'label'}, each example as the sampler and its position's key say.

  On a `mesh`, every device computes the whole batch's example indices (a few hundred
  integers): the sampler's cycle walk is a loop until every index lands inside the
  dataset, and split over the devices each pass would end in an all-reduce of "is any
  still outside", a collective per pass on GPUs and a deadlock on XLA:CPU once the
  devices outnumber the cores. The gather and the augmentation stay split."""
  d = config.dataset
  images, labels = data['image'], data['label']
  n, h, w, _ = images.shape
  q = positions(step, config.batch_size)
  if mesh is None:
    index = sampler.example_index(q, n, config.seed, jnp)
  else:  # the walk's input and output pinned whole to every device
    whole = lambda x: jax.lax.with_sharding_constraint(
        x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    index = whole(sampler.example_index(whole(q), n, config.seed, jnp))
  batch = images[index]
  preset = transforms.PRESETS[d.augment]
  if preset.pad or preset.flip:  # the host's pad-crop and flip (data/transforms.py)
    keys = example_keys(config.seed, q)
    if preset.flip == transforms.ALTERNATING:  # by example, inverted every other epoch
      mirror = alternating_mirror(config.seed, index, q // jnp.uint32(n))
    else:  # drawn from each position's key
      mirror = jax.vmap(lambda k: jax.random.bernoulli(jax.random.split(k)[1]))(keys)
    batch = jax.vmap(lambda k, x, m: _pad_crop_flip(k, x, d.image_size, preset.pad,
                                                    preset.flip, d.pad_mode, m))(
                                                        keys, batch, mirror)
  batch = _fit(batch, d.image_size)
  return {'image': batch, 'label': labels[index]}


def alternating_mirror(seed: int, index, epoch):
  """transforms.alternating_mirror inside jit (its own draws): each example's choice in
  epoch 0, inverted in odd epochs."""
  base = jax.random.fold_in(jax.random.key(seed), transforms.ALTERNATING_SALT)
  first = jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(base, i)))(index)
  return first ^ (epoch % 2 == 1)


def _pad_crop_flip(key, image, size, pad, flip, pad_mode, mirror):
  """ResNet section 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly
  sampled from the padded image or its horizontal flip" (a smaller source: the crop is
  at most the padded size, then fitted). `mirror`: whether this example is flipped."""
  h, w, c = image.shape
  crop_h, crop_w = min(size, h + 2 * pad), min(size, w + 2 * pad)
  crop_key, _ = jax.random.split(key)  # (the second half: the random flip's draw)
  padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)),
                   mode='reflect' if pad_mode == 'reflect' else 'constant')
  top = jax.random.randint(jax.random.fold_in(crop_key, 0), (), 0, h + 2 * pad - crop_h + 1)
  left = jax.random.randint(jax.random.fold_in(crop_key, 1), (), 0, w + 2 * pad - crop_w + 1)
  crop = jax.lax.dynamic_slice(padded, (top, left, 0), (crop_h, crop_w, c))
  return jnp.where(mirror, crop[:, ::-1], crop) if flip else crop


def _fit(batch, size: int):
  """Pad smaller images to size x size, centred (LeNet's 28 -> 32)."""
  _, h, w, _ = batch.shape
  ph, pw = max(size - h, 0), max(size - w, 0)
  if ph or pw:
    batch = jnp.pad(batch, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
  return batch


def put_resident(source, config, mesh) -> dict:
  """The whole split on every device, uint8, with the config's channels."""
  images = transforms.match_channels(np.asarray(source.images), config.dataset.channels)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  put = lambda a: jax.make_array_from_callback(a.shape, replicated, lambda i: a[i])
  with parallel.host_to_devices():  # once per run
    return {'image': put(images), 'label': put(np.asarray(source.labels, np.int32))}
