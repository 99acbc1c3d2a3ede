"""The named random streams of a run: every random draw of the library comes from exactly one.

A run has one seed (`config.seed`). Its root key is `root(seed)`, a typed threefry key, and each
stream is the root folded with the stream's number; a stream that draws again per meta-step,
per task or per epoch folds in that index after it:

    key(seed, Stream.STEP_DATA, step) = fold_in(fold_in(root(seed), STEP_DATA), step)

Streams are separated by `fold_in` with distinct constants, never by taking element i of
`split(key, n)`: with `jax_threefry_partitionable` on, `split(k, 2)[i] == split(k, 3)[i]`, so
two splits of one key with different arities hand out the same keys. Host-side draws (numpy:
random labels, adversarial splits) use `numpy_rng`, a `SeedSequence` of (seed, stream,
indices...), so they never coincide with each other either.

Not seed streams, on purpose: the dataset's subset and split (`data.split_seed`) and the task
directions (`task.rotation_seed`) have their own config seeds, so runs over several seeds share
the same images and heads.

`jax_threefry_partitionable` changes the bits threefry draws; JAX turned it on by default in
0.5.0, and `pyproject.toml` admits versions on both sides, so `task_discovery/__init__.py` sets
it explicitly: one seed draws the same numbers on every admitted JAX version.
"""

from __future__ import annotations

import enum

import jax
import numpy as np

# The PRNG implementation of every key (explicit, so `jax_default_prng_impl` cannot change it).
IMPL = "threefry2x32"


class Stream(enum.IntEnum):
  """The random streams of a run. Never renumber one: that changes every result drawn from it."""
  ENCODER_INIT = 1  # the task network's initial parameters
  LEARNER_INIT = 2  # the fixed initial learners (`inner.random_init=False`, the original)
  STEP_DATA = 3  # per unroll: the order of the inner training batches
  STEP_LEARNERS = 4  # per unroll: fresh learner initialisations (`inner.random_init=True`)
  STEP_HELDOUT = 5  # per unroll: the held-out batch (`inner.resample_heldout`)
  TASK_ORDER = 6  # per cycle of d meta-steps: the order the tasks are visited in
  PERTURBATIONS = 7  # per meta-step: ES / PES perturbations
  EVAL_DATA = 8  # per epoch: the batch order of the evaluation's learners
  EVAL_LEARNERS = 9  # per (family, task): the evaluation learners' initialisations
  RANDOM_TASKS = 10  # (numpy) the labels of the random-labelled tasks
  ADVERSARIAL_DATA = 11  # per epoch: batch order of the adversarial job's learners
  ADVERSARIAL_LEARNERS = 12  # per split: the adversarial job's learner initialisations
  RANDOM_NETWORKS = 13  # per network: the untrained networks of the 'random_network' variant
  SPLITS = 14  # (numpy) per (target, task, mirror): subsampling of adversarial splits


def root(seed: int) -> jax.Array:
  """The typed root key of `seed`."""
  return jax.random.key(int(seed), impl=IMPL)


def wrap(key_data: jax.Array) -> jax.Array:
  """A typed key from its raw data (`uint32[2]`, as checkpoints store it)."""
  return jax.random.wrap_key_data(key_data, impl=IMPL)


def stream(root_key: jax.Array, name: Stream, *indices) -> jax.Array:
  """`fold_in(root_key, name)`, then each of `indices` folded in order (ints or traced int
  scalars)."""
  if not jax.dtypes.issubdtype(root_key.dtype, jax.dtypes.prng_key):
    raise TypeError("keys.stream takes a typed key (keys.root(seed) or keys.wrap(data)), "
                    f"got an array of dtype {root_key.dtype}")
  key = jax.random.fold_in(root_key, int(name))
  for index in indices:
    key = jax.random.fold_in(key, index)
  return key


def key(seed: int, name: Stream, *indices) -> jax.Array:
  """`stream(root(seed), name, *indices)`."""
  return stream(root(seed), name, *indices)


def numpy_rng(seed: int, name: Stream, *indices: int) -> np.random.Generator:
  """A numpy generator for a host-side stream: `SeedSequence([seed, name, *indices])`.

  A stream is always called with the same number of indices, so two calls differ in a value,
  never only in length (a SeedSequence may not tell `[a, b]` from `[a, b, 0]`).
  """
  entropy = [int(seed), int(name)] + [int(i) for i in indices]
  if any(e < 0 for e in entropy):
    raise ValueError(f"numpy_rng takes non-negative seeds and indices, got {entropy}")
  return np.random.default_rng(np.random.SeedSequence(entropy))
