"""What the data layer runs on the device, inside the jitted steps.

Batches cross the host-device link as uint8 (a quarter of float32's bytes); here they
become the model's input (colour_noise where the augmentation lists it, normalize). A
dataset resident on the devices is gathered and augmented here too (gather_batch), so
its training steps need no host work at all.
"""

import jax
import jax.numpy as jnp
import numpy as np

from data import augment
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


def colour_noise(images, config, step):
  """AlexNet section 4.1's PCA colour noise on a training batch: uint8 NHWC -> float32
  pixels on the same 0-255 scale, each image with its own RGB offset sum_i alpha_i *
  lambda_i * p_i added to every pixel, alpha ~ N(0, 0.1) drawn per stream position."""
  base = jax.random.key(config.seed)  # a key per position, folded in
  draw = lambda q: jax.random.normal(jax.random.fold_in(jax.random.fold_in(base, q), 1), (3,))
  alpha = jax.vmap(draw)(positions(step, images.shape[0])) * 0.1
  offset = jnp.einsum('ij,nj->ni', PCA_EIGVEC, alpha * PCA_EIGVAL) * 255.
  return images.astype(jnp.float32) + offset[:, None, None, :]


def normalize(images, config, dtype=jnp.float32):
  """Pixels on the 0-255 scale (uint8, or float32 after colour_noise) -> the model's
  input: x / 255, minus the dataset's mean, over its std."""
  x = images.astype(jnp.float32) / 255.
  mean, std = sources.channel_stats(config.dataset, x.shape[-1])
  return ((x - jnp.array(mean)) / jnp.array(std)).astype(dtype)


def gather_batch(data, step, config, mesh=None):
  """Step `step`'s global batch of a resident dataset, augmented: {'image' uint8,
  'label'}, each example as the sampler says, augmented by the ops the host runs
  (data/augment.py, here with jax.numpy), keyed by the same stream positions.

  On a `mesh`, every device computes the whole batch's example indices: split over the
  devices, each pass of the sampler's cycle walk would end in an all-reduce, a
  collective per pass on GPUs and a deadlock on XLA:CPU once the devices outnumber the
  cores. The gather and the augmentation stay split."""
  d = config.dataset
  images, labels = data['image'], data['label']
  n = images.shape[0]
  q = positions(step, config.batch_size)
  # On a mesh, the walk's input and output pinned whole to every device.
  whole = lambda x: x if mesh is None else jax.lax.with_sharding_constraint(
      x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  index = whole(sampler.example_index(whole(q), n, config.seed, jnp))
  examples = augment.Examples(config.seed, q, index, q // jnp.uint32(n), d.image_size, jnp)
  batch = augment.apply(images[index], transforms.array_ops(config), examples)
  return {'image': augment.fit(batch, d.image_size, jnp), 'label': labels[index]}


def put_resident(source, config, mesh) -> dict:
  """The whole split on every device, uint8, with the config's channels."""
  images = transforms.match_channels(np.asarray(source.images), config.dataset.channels)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  put = lambda a: jax.make_array_from_callback(a.shape, replicated, lambda i: a[i])
  with parallel.host_to_devices():  # once per run
    return {'image': put(images), 'label': put(np.asarray(source.labels, np.int32))}
