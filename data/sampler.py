"""Which example a position of the training stream holds: the one sampler of every source.

Position q of the global stream (q = step * global_batch + place in the batch) holds
example `permutation(seed, epoch)[q % n]` with epoch = q // n. The permutation is a
keyed Feistel network over the next power of four above n, walked until it lands inside
[0, n) ("cycle walking", Black & Rogaway 2002): a bijection computed per index in O(1),
with no table and no state. It is written once over an array module, so numpy on the
host and jax.numpy inside a jitted step compute the same indices bit for bit (all
arithmetic is uint32 and wraps alike in both).
"""

ROUNDS = 6  # Feistel rounds; 4 already make a pseudorandom permutation (Luby-Rackoff)


def _mix(x, xp):
  """A uint32 hash (the murmur3 finaliser): every input bit flips about half the output."""
  x = x ^ (x >> 16)
  x = x * xp.uint32(0x85EBCA6B)
  x = x ^ (x >> 13)
  x = x * xp.uint32(0xC2B2AE35)
  return x ^ (x >> 16)


def permute(i, n: int, seed, epoch, xp):
  """Element i (array, values in [0, n)) of the permutation keyed by (seed, epoch)."""
  half = max(1, ((n - 1).bit_length() + 1) // 2)  # the domain 4**half: smallest 4**k >= n
  mask = xp.uint32((1 << half) - 1)
  # (Shape (1,) or more, never 0-d: numpy warns when 0-d uint32 products wrap.)
  seed = xp.asarray(seed).astype(xp.uint32).reshape(-1)
  key = _mix(_mix(seed ^ xp.uint32(0x9E3779B9), xp) + xp.asarray(epoch).astype(xp.uint32), xp)

  round_keys = [_mix(key + xp.uint32(r), xp) for r in range(ROUNDS)]

  def feistel(x):
    left, right = x >> half, x & mask
    for round_key in round_keys:
      left, right = right, left ^ (_mix(right ^ round_key, xp) & mask)
    return (left << half) | right

  x = feistel(xp.asarray(i).astype(xp.uint32))
  # The network applied again where x fell outside [0, n): the domain is below 4n, so
  # each pass lands inside with probability above 1/4 (a few passes in all).
  if xp.__name__ == 'numpy':
    while (x >= n).any():
      x = xp.where(x >= n, feistel(x), x)
    return x
  import jax  # pylint: disable=import-outside-toplevel
  return jax.lax.while_loop(lambda x: xp.any(x >= n),
                            lambda x: xp.where(x >= n, feistel(x), x), x)


def example_index(q, n: int, seed, xp):
  """The example index held by global stream positions q (array of non-negative ints)."""
  q = xp.asarray(q).astype(xp.uint32)
  return permute(q % xp.uint32(n), n, seed, q // xp.uint32(n), xp).astype(xp.int32)
