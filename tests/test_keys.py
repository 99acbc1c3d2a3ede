"""The named random streams: no two draws of a run share a key, and the code draws from them."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from task_discovery import keys
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.jobs import discovery
from task_discovery.method import meta
from test_discovery import tiny_config

NUM_STEPS = 64


def _data(key: jax.Array) -> tuple[int, ...]:
  return tuple(int(x) for x in np.asarray(jax.random.key_data(key)).ravel())


def _run_keys(root: jax.Array, num_learners: int = 2) -> dict[str, tuple[int, ...]]:
  """Every key a run of `NUM_STEPS` meta-steps and its evaluation derives, by name."""
  found = {}
  init = meta.init_keys(root)
  found["init.encoder"] = _data(init.encoder)
  found["init.learners"] = _data(init.learners)
  for i, k in enumerate(jax.random.split(init.learners, num_learners)):
    found[f"init.learner_{i}"] = _data(k)
  task_order = meta.task_order_key(root, "shuffled")
  found["task_order"] = _data(task_order)
  for step in range(NUM_STEPS):
    for name, k in meta.step_keys(root, jnp.int32(step), jnp.int32(step))._asdict().items():
      found[f"step_{step}.{name}"] = _data(k)
    found[f"task_order.cycle_{step}"] = _data(jax.random.fold_in(task_order, step))
  for name in ("EVAL_DATA", "ADVERSARIAL_DATA", "RANDOM_NETWORKS"):
    found[name] = _data(keys.stream(root, keys.Stream[name]))
  for family in range(3):
    for task in range(8):
      found[f"eval.{family}.{task}"] = _data(
          keys.stream(root, keys.Stream.EVAL_LEARNERS, family, task))
  return found


def test_no_two_draws_of_a_run_share_a_key():
  found = _run_keys(keys.root(0))
  by_value = {}
  for name, value in found.items():
    by_value.setdefault(value, []).append(name)
  shared = [names for names in by_value.values() if len(names) > 1]
  assert not shared, f"keys used by more than one draw: {shared[:5]}"


def test_initialisation_keys_differ_from_every_meta_step_key():
  """With `split(k, 2)[i] == split(k, 3)[i]` (partitionable threefry), initialisation keys
  taken as `split(fold_in(root, 0))` were meta-step 0's data and learner keys."""
  found = _run_keys(keys.root(3))
  init = {v for n, v in found.items() if n.startswith("init.")}
  steps = {v for n, v in found.items() if n.startswith("step_")}
  assert len(init) == 2 + 2 and len(steps) == 4 * NUM_STEPS
  assert not init & steps
  # What the check guards against, on this JAX: splits of one key with different arities.
  k = jax.random.fold_in(keys.root(3), 0)
  assert _data(jax.random.split(k, 2)[0]) == _data(jax.random.split(k, 3)[0])


def test_the_meta_step_draws_from_the_named_streams():
  """The initial state and a meta-step's batches, learners and held-out batch come from
  `meta.init_keys` and `meta.step_keys`, not from keys derived some other way."""
  config = tiny_config()
  config.inner.random_init = True
  config.inner.resample_heldout = True
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  meta_step = meta.make_meta_step(encoder, learner, config)
  root = keys.root(5)
  state = meta_step.init(root)
  init = meta.init_keys(root)
  for a, b in zip(jax.tree.leaves(state.params),
                  jax.tree.leaves(encoder.init(init.encoder)["params"])):
    np.testing.assert_array_equal(a, b)
  data = discovery.device_data(dataset)
  state = state._replace(step=jnp.int32(7))
  inputs, _, noise_key = meta_step.unroll_inputs(state, data)
  k = meta.step_keys(root, jnp.int32(7), jnp.int32(7))
  np.testing.assert_array_equal(inputs.batch_idx, meta.inner_batch_indices(
      k.data, data.train_idx, config.inner.num_steps, config.inner.batch_size))
  m, n = config.meta.meta_batch_size, config.inner.num_learners
  learners = jax.vmap(learner.init)(jax.random.split(k.learners, m * n))
  for a, b in zip(jax.tree.leaves(inputs.learner_vars), jax.tree.leaves(learners)):
    np.testing.assert_array_equal(a.reshape(b.shape), b)
  heldout = jax.random.permutation(k.heldout, data.heldout_idx)
  np.testing.assert_array_equal(inputs.heldout_x,
                                data.images[heldout[:config.inner.heldout_batch_size]])
  assert _data(noise_key) == _data(k.perturbations)


def test_streams_take_typed_keys_only():
  with pytest.raises(TypeError, match="typed key"):
    keys.stream(jax.random.key_data(keys.root(0)), keys.Stream.STEP_DATA)
  assert _data(keys.wrap(jax.random.key_data(keys.root(4)))) == _data(keys.root(4))


def test_numpy_streams_differ_by_stream_and_index():
  draws = {
      "random_tasks": keys.numpy_rng(0, keys.Stream.RANDOM_TASKS).integers(0, 2**31, 8),
      "splits_0": keys.numpy_rng(0, keys.Stream.SPLITS, 0, 0, 0, 0).integers(0, 2**31, 8),
      "splits_1": keys.numpy_rng(0, keys.Stream.SPLITS, 0, 0, 0, 1).integers(0, 2**31, 8),
      "seed_1": keys.numpy_rng(1, keys.Stream.RANDOM_TASKS).integers(0, 2**31, 8),
  }
  values = [tuple(v) for v in draws.values()]
  assert len(set(values)) == len(values)
  np.testing.assert_array_equal(keys.numpy_rng(0, keys.Stream.RANDOM_TASKS).integers(0, 2**31, 8),
                                draws["random_tasks"])


def test_the_library_pins_threefry_partitionable():
  """Set to the opposite in the environment, the flag is on once the library is imported."""
  env = dict(os.environ, JAX_THREEFRY_PARTITIONABLE="false", JAX_PLATFORMS="cpu")
  code = ("import jax; before = jax.config.jax_threefry_partitionable; import task_discovery; "
          "print(before, jax.config.jax_threefry_partitionable)")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True, timeout=120)
  assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr
