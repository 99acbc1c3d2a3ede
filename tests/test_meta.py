"""Numerical tests of the differentiable agreement score and the task network's losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numerics
from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.method import estimators
from task_discovery.method import meta
from task_discovery.models import task_network

INPUT_SHAPE = (8, 8, 1)


def tiny_config(**inner):
  c = config_lib.base()
  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (8, 8)  # one BatchNorm layer: second-order terms through BN are tested
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (8, 8)
  c.task.num_tasks = 4
  c.inner.num_steps = 3
  c.inner.batch_size = 16
  c.inner.heldout_batch_size = 16
  c.inner.learning_rate = 0.1
  c.meta.meta_batch_size = 2
  c.inner.update(inner)
  return c


def setup(config, dtype=jnp.float32, seed=0):
  """Models, initial state and the arguments of `meta_loss` for a tiny problem."""
  encoder = models.make_encoder(config.task.encoder, input_shape=INPUT_SHAPE,
                                embedding_dim=config.task.num_tasks, dtype=dtype)
  learner = models.make_model(config.learner, input_shape=INPUT_SHAPE, num_outputs=2,
                              dtype=dtype)
  key = jax.random.key(seed)
  k_img, k_state, k_idx = jax.random.split(key, 3)
  images = jax.random.normal(k_img, (64,) + INPUT_SHAPE, dtype)
  state = meta.make_meta_step(encoder, learner, config).init(k_state)
  state = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating)
                       else a, state)
  m = config.meta.meta_batch_size
  learner_vars = jax.tree.map(lambda a: jnp.broadcast_to(a, (m,) + a.shape),
                              state.learner_init)
  batch_idx = meta.inner_batch_indices(k_idx, jnp.arange(48), config.inner.num_steps,
                                       config.inner.batch_size)
  args = dict(encoder_batch_stats=state.batch_stats, learner_vars=learner_vars,
              directions=state.directions[:m], directions_all=state.directions,
              images=images, batch_idx=batch_idx, heldout_x=images[48:64])
  return encoder, learner, state, args


def unroll_inputs(args) -> estimators.UnrollInputs:
  return estimators.UnrollInputs(
      window=jnp.int32(0), **{k: v for k, v in args.items() if k != "encoder_batch_stats"})


def loss_fn(config, encoder, learner, args):
  meta_loss = meta.make_meta_loss(encoder, learner, config)
  return jax.jit(lambda theta: meta_loss(theta, args["encoder_batch_stats"],
                                         unroll_inputs(args)))


@pytest.mark.parametrize("data_mode,learner_updates",
                         [("meta", "weights"), ("meta", "samples"), ("full", "weights"),
                          ("full", "samples")])
def test_meta_gradient_matches_central_finite_differences(data_mode, learner_updates):
  with jax.enable_x64(True):
    config = tiny_config(data_mode=data_mode, learner_updates=learner_updates)
    encoder, learner, state, args = setup(config, dtype=jnp.float64)
    f = loss_fn(config, encoder, learner, args)
    theta = state.params
    grad = jax.grad(lambda p: f(p)[0])(theta)
    leaves, treedef = jax.tree.flatten(theta)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    direction = jax.tree.unflatten(
        treedef, [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])
    # Central differences err by O(eps^2 f'''); the unrolled objective curves sharply (with
    # PyTorch's initialisation, eps 1e-5 erred by 3e-6 relative), so a small eps in float64:
    # truncation 100x smaller, rounding ~1e-16 |f| / eps ~ 1e-10 relative.
    eps = 1e-6
    shifted = lambda s: jax.tree.map(lambda p, d: p + s * eps * d, theta, direction)
    fd = (f(shifted(1.0))[0] - f(shifted(-1.0))[0]) / (2 * eps)
    analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad),
                                                  jax.tree.leaves(direction)))
    assert abs(float(analytic)) > 1e-6  # the test is vacuous if the gradient vanishes
    np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-6)


def _loss_and_grad(config, seed=0, **args_override):
  encoder, learner, state, args = setup(config, dtype=jnp.float64, seed=seed)
  f = loss_fn(config, encoder, learner, dict(args, **args_override))
  (loss, (metrics, stats, _)), grad = jax.value_and_grad(f, has_aux=True)(state.params)
  return loss, metrics, stats, grad


@pytest.mark.parametrize("data_mode", ["meta", "full"])
def test_sample_space_learners_equal_weight_space_learners(data_mode):
  """The input layer trained through its Gram matrix is the same SGD, to float64 rounding."""
  with jax.enable_x64(True):
    results = [_loss_and_grad(tiny_config(data_mode=data_mode, learner_updates=mode))
               for mode in ("weights", "samples")]
  (loss_w, met_w, _, grad_w), (loss_s, met_s, _, grad_s) = results
  np.testing.assert_allclose(loss_s, loss_w, rtol=1e-12)
  for name in ("as_loss", "inner_loss_first", "inner_loss_last", "meta_as"):
    np.testing.assert_allclose(met_s[name], met_w[name], rtol=1e-11, err_msg=name)
  numerics.assert_close_to_scale(grad_s, grad_w, rtol=1e-10)


def test_sample_space_is_refused_where_it_does_not_apply():
  config = tiny_config(learner_updates="samples", optimizer="momentum")
  encoder, learner, state, args = setup(config)
  with pytest.raises(ValueError, match="learner_updates='samples' needs"):
    loss_fn(config, encoder, learner, args)(state.params)


def test_batched_encoder_equals_per_step_encoder():
  """All T inner batches through the encoder at once: same labels, gradient, running stats."""
  with jax.enable_x64(True):
    results = [_loss_and_grad(tiny_config(encoder_mode=mode))
               for mode in ("batched", "per_step")]
  (loss_b, _, stats_b, grad_b), (loss_p, _, stats_p, grad_p) = results
  np.testing.assert_allclose(loss_b, loss_p, rtol=1e-12)
  numerics.assert_close_to_scale(grad_b, grad_p, rtol=1e-10)
  numerics.assert_close_to_scale(stats_b, stats_p, rtol=1e-12)
  _, _, state, _ = setup(tiny_config())
  moved = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(stats_b),
                                                          jax.tree.leaves(state.batch_stats)))
  assert moved > 1e-3  # the running statistics were updated, so the comparison has teeth


def test_labels_made_inside_the_scan_equal_labels_made_before_it():
  """The streamed form (`es`, `pes`, `truncated`: encoder, soft labels and diversity inside the
  learners' scan) is the same J as `full`'s batched form, gradient and running stats too."""
  with jax.enable_x64(True):
    results = []
    for estimator in ("full", "es"):
      config = tiny_config()
      config.meta.estimator = estimator
      results.append(_loss_and_grad(config))
  (loss_b, met_b, stats_b, grad_b), (loss_s, met_s, stats_s, grad_s) = results
  np.testing.assert_allclose(loss_s, loss_b, rtol=1e-12)
  for name in met_b:  # the batched form's label balance is a float32 mean
    rtol = 1e-6 if name == "label_balance" else 1e-11
    np.testing.assert_allclose(met_s[name], met_b[name], rtol=rtol, err_msg=name)
  assert float(met_b["diversity"]) > 1e-3  # the diversity term is part of the comparison
  numerics.assert_close_to_scale(grad_s, grad_b, rtol=1e-10)
  numerics.assert_close_to_scale(stats_s, stats_b, rtol=1e-12)


def test_streamed_estimators_keep_nothing_per_inner_step():
  """XLA's memory plan of `truncated` and `es` at T = 4 and T = 20 inner steps: the growth per
  step is far below one inner batch's `[B, B]` uniformity distances (what the batched form
  kept per step); what remains is O(T) indices and scalars."""
  batch = 64
  for estimator in ("truncated", "es"):
    temp = {}
    for num_steps in (4, 20):
      config = tiny_config(num_steps=num_steps, batch_size=batch)
      config.learner.mlp_widths = config.task.encoder.mlp_widths = (8,)  # faster to compile
      config.meta.estimator = estimator
      config.meta.truncation_length = 2
      config.meta.es_num_pairs = 2
      encoder, learner, state, args = setup(config)
      args["batch_idx"] = jnp.zeros((num_steps, batch), jnp.int32)
      grad = meta.make_estimator(encoder, learner, config).grad
      compiled = jax.jit(grad).lower(state.params, state.batch_stats, {},
                                     unroll_inputs(args), jax.random.key(0)).compile()
      temp[num_steps] = compiled.memory_analysis().temp_size_in_bytes
    per_step = (temp[20] - temp[4]) / 16
    assert per_step < batch * batch * 4 / 8, (estimator, temp)


@pytest.mark.parametrize("learner_updates", ["weights", "samples"])
def test_block_remat_equals_step_remat(learner_updates):
  """Nested checkpointing (blocks of 2 of 5 steps, with a tail) only reorders the work."""
  with jax.enable_x64(True):
    results = [_loss_and_grad(tiny_config(num_steps=5, remat_block=block,
                                          learner_updates=learner_updates))
               for block in (0, 2)]
  np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
  numerics.assert_close_to_scale(results[1][3], results[0][3], rtol=1e-10)


@pytest.mark.parametrize("data_mode", ["meta", "full"])
def test_microbatched_learner_gradients_equal_the_full_batch_without_batch_norm(data_mode):
  """Without BatchNorm (one hidden layer) the mean of the microbatches' gradients is the batch
  gradient: the unroll, J and its meta-gradient agree to float64 rounding."""
  def run(microbatch):
    config = tiny_config(data_mode=data_mode, learner_updates="weights",
                         microbatch_size=microbatch)
    config.learner.mlp_widths = (8,)
    return _loss_and_grad(config)
  with jax.enable_x64(True):
    full, micro = run(0), run(4)
  np.testing.assert_allclose(micro[0], full[0], rtol=1e-12)
  np.testing.assert_allclose(micro[1]["inner_loss_last"], full[1]["inner_loss_last"], rtol=1e-12)
  numerics.assert_close_to_scale(micro[3], full[3], rtol=1e-10)
  # the learners moved (new batches each step, so the loss need not fall)
  assert not np.allclose(full[1]["inner_loss_last"], full[1]["inner_loss_first"], rtol=1e-3)


def test_microbatches_normalise_batch_norm_per_microbatch():
  """With BatchNorm the microbatched step is a different function ("ghost" batch norm): J moves
  by more than rounding. A microbatch the size of the batch is the batch."""
  with jax.enable_x64(True):
    full, whole, micro = [_loss_and_grad(tiny_config(learner_updates="weights",
                                                     microbatch_size=m)) for m in (0, 8, 2)]
  np.testing.assert_allclose(whole[0], full[0], rtol=1e-14)
  assert abs(float(micro[0]) - float(full[0])) > 1e-6 * abs(float(full[0]))


def test_as_loss_gradient_reaches_theta_only_through_soft_labels():
  """With the diversity term off, theta influences J only through the learners' training."""
  config = tiny_config()
  config.task.diversity = "none"
  encoder, learner, state, args = setup(config)
  grad = jax.grad(lambda p: loss_fn(config, encoder, learner, args)(p)[0])(state.params)
  assert float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(grad))) > 0
  # Zero inner learning rate: the learners never move, so the AS loss ignores theta.
  config.inner.learning_rate = 1e-30
  grad = jax.grad(lambda p: loss_fn(config, encoder, learner, args)(p)[0])(state.params)
  assert float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(grad))) < 1e-20


def test_remat_on_and_off_give_equal_gradients():
  grads = []
  with jax.enable_x64(True):  # float64: remat only reorders computation, so equal to ~1e-12
    for remat in (True, False):
      config = tiny_config(remat=remat)
      encoder, learner, state, args = setup(config, dtype=jnp.float64)
      f = loss_fn(config, encoder, learner, args)
      grads.append(jax.grad(lambda p: f(p)[0])(state.params))
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_truncated_estimator_equals_full_backprop_at_full_length_and_differs_when_shorter():
  config = tiny_config()
  encoder, learner, state, args = setup(config)
  full = jax.grad(lambda p: loss_fn(config, encoder, learner, args)(p)[0])(state.params)

  def truncated(k):
    c = tiny_config()
    c.meta.estimator = "truncated"
    c.meta.truncation_length = k
    value, grad = jax.value_and_grad(lambda p: loss_fn(c, encoder, learner, args)(p)[0])(
        state.params)
    return value, grad

  value_t, same = truncated(config.inner.num_steps)
  for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(same)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
  value_1, short = truncated(1)
  np.testing.assert_allclose(value_1, value_t, rtol=1e-6)  # the loss itself is unchanged
  diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(full),
                                                         jax.tree.leaves(short)))
  assert diff > 1e-6
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(short))


def test_meta_batch_vmap_equals_python_loop_over_tasks():
  # float64: an equality of math, compared far above rounding on any CPU.
  with jax.enable_x64(True):
    config = tiny_config()
    encoder, learner, state, args = setup(config, dtype=jnp.float64)
    f = loss_fn(config, encoder, learner, args)
    (loss, (metrics, _, _)), grad = jax.value_and_grad(f, has_aux=True)(state.params)

    one = tiny_config()
    one.meta.meta_batch_size = 1
    losses, grads, as_values = [], [], []
    for m in range(config.meta.meta_batch_size):
      args_m = dict(args, directions=args["directions"][m:m + 1],
                    learner_vars=jax.tree.map(lambda a: a[m:m + 1], args["learner_vars"]))
      fm = loss_fn(one, encoder, learner, args_m)
      (lm, (met_m, _, _)), gm = jax.value_and_grad(fm, has_aux=True)(state.params)
      losses.append(lm)
      grads.append(gm)
      as_values.append(met_m["as_loss"][0])
    np.testing.assert_allclose(loss, np.mean(losses), rtol=1e-12)
    np.testing.assert_allclose(metrics["as_loss"], as_values, rtol=1e-12)
    mean_grad = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
    numerics.assert_close_to_scale(grad, mean_grad, rtol=1e-10)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_other_inner_optimizers_give_finite_meta_gradients(optimizer):
  config = tiny_config(optimizer=optimizer, learning_rate=0.01)
  encoder, learner, state, args = setup(config)
  grad = jax.grad(lambda p: loss_fn(config, encoder, learner, args)(p)[0])(state.params)
  leaves = jax.tree.leaves(grad)
  assert all(bool(jnp.isfinite(g).all()) for g in leaves)
  assert float(sum(jnp.abs(g).sum() for g in leaves)) > 0


def test_symmetric_agreement_loss_by_hand():
  z1 = jnp.array([[2.0, 0.0], [0.0, 1.0]])
  z2 = jnp.array([[0.0, 1.0], [3.0, 0.0]])
  p = lambda z: jax.nn.softmax(z, -1)
  ce = lambda a, b: float(-(p(a) * jax.nn.log_softmax(b, -1)).sum(-1).mean())
  expected = 0.5 * (ce(z1, z2) + ce(z2, z1))
  got = meta.symmetric_agreement_loss(jnp.stack([z1, z2]))
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # Swapping the learners changes nothing; identical learners give their mean entropy.
  np.testing.assert_allclose(meta.symmetric_agreement_loss(jnp.stack([z2, z1])), got, rtol=1e-6)
  entropy = float(-(p(z1) * jax.nn.log_softmax(z1, -1)).sum(-1).mean())
  np.testing.assert_allclose(meta.symmetric_agreement_loss(jnp.stack([z1, z1])), entropy,
                             rtol=1e-6)


def test_inner_batches_are_consecutive_fresh_shuffles():
  train_idx = jnp.arange(100, 140)  # 40 training images
  idx = np.asarray(meta.inner_batch_indices(jax.random.key(0), train_idx, 5, 16))
  assert idx.shape == (5, 16)
  flat = idx.reshape(-1)
  assert set(flat[:40]) == set(range(100, 140))  # first 40 draws: one whole shuffle
  assert set(flat[40:80]) == set(range(100, 140))  # next 40: the next shuffle
  assert not np.array_equal(flat[:40], flat[40:80])


def test_task_ids_cycle_over_tasks():
  ids = [list(np.asarray(meta.task_ids_for_step(jnp.int32(s), 3, 8))) for s in range(4)]
  assert ids == [[0, 1, 2], [3, 4, 5], [6, 7, 0], [1, 2, 3]]


def test_task_ids_shuffled_every_cycle_from_key_and_step():
  key = meta.task_order_key(jax.random.key(0), "shuffled")
  d = 8
  one = [int(meta.task_ids_for_step(jnp.int32(s), 1, d, key)[0]) for s in range(4 * d)]
  cycles = [one[c * d:(c + 1) * d] for c in range(4)]
  assert all(sorted(c) == list(range(d)) for c in cycles)  # each cycle visits every task once
  assert len({tuple(c) for c in cycles}) == 4  # in a fresh order each cycle
  assert cycles[0] != list(range(d))
  # The order depends on the key and the position in the sequence only: a meta-batch of 4
  # takes the same sequence four at a time, and a resumed step draws the same tasks.
  four = np.concatenate([np.asarray(meta.task_ids_for_step(jnp.int32(s), 4, d, key))
                         for s in range(d)])
  np.testing.assert_array_equal(four, one)
  again = meta.task_ids_for_step(jnp.int32(13), 1, d, key)
  assert int(again[0]) == one[13]
  other = meta.task_order_key(jax.random.key(1), "shuffled")
  assert [int(meta.task_ids_for_step(jnp.int32(s), 1, d, other)[0]) for s in range(d)] != one[:d]
  assert meta.task_order_key(jax.random.key(0), "cyclic") is None
  with pytest.raises(ValueError, match=r"meta.task_order='random'"):
    meta.task_order_key(jax.random.key(0), "random")


def test_haar_directions_are_orthonormal_and_seeded():
  w = task_network.haar_directions(16, seed=3)
  np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-5)
  np.testing.assert_array_equal(w, task_network.haar_directions(16, seed=3))
  assert not np.allclose(w, task_network.haar_directions(16, seed=4))


def test_task_logits_and_hard_labels_follow_one_convention():
  h = jnp.array([[1.0, 0.0], [-2.0, 0.5]])
  w = jnp.eye(2)
  logits = task_network.task_logits(h, w, temperature=5.0)  # [2 tasks, 2 images, 2]
  np.testing.assert_allclose(logits[0, 0], [-5.0, 5.0])
  labels = task_network.hard_labels(task_network.task_scores(h, w))
  np.testing.assert_array_equal(labels, [[1, 0], [0, 1]])
  np.testing.assert_array_equal(jnp.argmax(logits, -1), labels)


def test_uniformity_loss_by_hand():
  t = 2.0
  antipodal = jnp.array([[1.0, 0.0], [-3.0, 0.0]])  # ||z1 - z2||^2 = 4 -> log exp(-4t) + 4t = 0
  np.testing.assert_allclose(task_network.uniformity_loss(antipodal, t), 0.0, atol=1e-6)
  same = jnp.array([[1.0, 1.0], [2.0, 2.0]])  # distance 0 -> 4t, the maximum
  np.testing.assert_allclose(task_network.uniformity_loss(same, t), 4 * t, rtol=1e-6)
  square = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
  d2 = np.array([2, 4, 2, 2, 4, 2], dtype=float)  # pairs i<j of the square's corners
  expected = np.log(np.mean(np.exp(-t * d2))) + 4 * t
  np.testing.assert_allclose(task_network.uniformity_loss(square, t), expected, rtol=1e-6)


def test_mutual_information_loss_is_zero_for_independent_and_positive_for_equal_tasks():
  # Embeddings on the corners of a square: task 0 reads coordinate 0, task 1 coordinate 1.
  h = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]) * 10
  divdis = task_network.mean_pairwise_mutual_information_loss
  independent = divdis(h, jnp.eye(2), temperature=5.0)
  np.testing.assert_allclose(independent, 0.0, atol=1e-6)
  same = divdis(h, jnp.array([[1.0, 0.0], [1.0, 0.0]]), 5.0)
  np.testing.assert_allclose(same, np.log(2), rtol=1e-4)


def _mutual_information(p_i, p_j):
  """MI of two binary soft labellings `[B]` (probability of label 1), in float64 by hand."""
  p_i, p_j = np.asarray(p_i, np.float64), np.asarray(p_j, np.float64)
  a, b = np.stack([1 - p_i, p_i], -1), np.stack([1 - p_j, p_j], -1)
  joint = np.einsum("bk,bl->kl", a, b) / len(p_i)
  indep = np.outer(a.mean(0), b.mean(0))
  return float(np.sum(joint * np.log(joint / indep)))


def test_original_mutual_information_loss_is_the_log_of_the_summed_pairwise_mi():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    h = jnp.asarray(rng.normal(size=(32, 3)))
    w = jnp.asarray(task_network.gaussian_directions(3, seed=1), jnp.float64)
    t = 0.7
    p = 1.0 / (1.0 + np.exp(-2 * t * np.asarray(h @ w.T)))  # softmax of t * [-s, s]: label 1
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.log(sum(_mutual_information(p[:, i], p[:, j]) for i, j in pairs))
    got = task_network.mutual_information_loss(h, w, t)
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)
    # The DivDis variant is the mean, not the log of the sum.
    mean = np.mean([_mutual_information(p[:, i], p[:, j]) for i, j in pairs])
    np.testing.assert_allclose(
        float(task_network.mean_pairwise_mutual_information_loss(h, w, t)), mean, rtol=1e-8)
    # Independent tasks: every MI is 0, floored at 1e-9 -> log(3e-9).
    square = jnp.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]) * 10
    np.testing.assert_allclose(float(task_network.mutual_information_loss(
        jnp.pad(square, ((0, 0), (0, 1))), jnp.eye(3), 5.0)), np.log(3e-9), rtol=1e-6)


def test_gaussian_directions_and_the_directions_of_each_diversity():
  w = task_network.gaussian_directions(64, seed=0)
  assert w.shape == (64, 64) and w.dtype == np.float32
  assert abs(np.var(w) - 1.0) < 5 * np.sqrt(2.0 / w.size)  # N(0, 1), not normalised
  c = tiny_config()
  c.task.diversity = "mutual_information"
  np.testing.assert_array_equal(meta.task_directions(c.task),
                                task_network.gaussian_directions(4, c.task.rotation_seed))
  for diversity in ("uniformity", "mutual_information_divdis", "none"):
    c.task.diversity = diversity
    np.testing.assert_array_equal(meta.task_directions(c.task),
                                  task_network.haar_directions(4, c.task.rotation_seed))
