"""ES and PES against the quantities they estimate, on problems small enough to average.

Statistical tests use fixed seeds; their tolerances are stated in units of the estimate's own
seed-to-seed standard error, measured in the test, so they hold on any CPU's rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np

import numerics
from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.method import estimators
from task_discovery.method import meta

INPUT_SHAPE = (2, 2, 1)  # 4 pixels: few task-network parameters, so ES averages quickly


def small_config(estimator="es", num_steps=2, window=2, **meta_fields):
  c = config_lib.base()
  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (4,)
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (4,)
  c.task.num_tasks = 2
  c.task.diversity = "none"
  c.inner.num_steps = num_steps
  c.inner.batch_size = 8
  c.inner.heldout_batch_size = 16
  c.inner.learning_rate = 0.5
  c.inner.learner_updates = "weights"
  c.meta.meta_batch_size = 1
  c.meta.estimator = estimator
  c.meta.truncation_length = window
  c.meta.update(meta_fields)
  return c


def setup(config, seed=0):
  """Models, the task network's parameters, its BatchNorm statistics and the unroll's inputs
  (float64; call under `jax.enable_x64`)."""
  encoder = models.make_encoder(config.task.encoder, input_shape=INPUT_SHAPE,
                                embedding_dim=config.task.num_tasks, dtype=jnp.float64)
  learner = models.make_model(config.learner, input_shape=INPUT_SHAPE, num_outputs=2,
                              dtype=jnp.float64)
  k_img, k_state, k_idx = jax.random.split(jax.random.key(seed), 3)
  images = jax.random.normal(k_img, (48,) + INPUT_SHAPE, jnp.float64)
  state = meta.make_meta_step(encoder, learner, config).init(k_state)
  learner_vars = jax.tree.map(lambda a: a[None], state.learner_init)
  batch_idx = meta.inner_batch_indices(k_idx, jnp.arange(32), config.inner.num_steps,
                                       config.inner.batch_size)
  inputs = estimators.UnrollInputs(
      learner_vars=learner_vars, directions=state.directions[:1],
      directions_all=state.directions, images=images, batch_idx=batch_idx,
      heldout_x=images[32:48], window=jnp.int32(0))
  return encoder, learner, state.params, state.batch_stats, inputs


def flat(tree) -> np.ndarray:
  return np.concatenate([np.ravel(a) for a in jax.tree.leaves(tree)])


def cosine(a, b) -> float:
  a, b = flat(a), flat(b)
  return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_es_estimates_the_gradient_of_the_gaussian_smoothed_function():
  """For f = sum sin(a theta): E f(theta + sigma eps) = exp(-(a sigma)^2 / 2) f(theta), so the
  smoothed gradient is the exact one shrunk by exp(-1/2) at a sigma = 1."""
  with jax.enable_x64(True):
    a, sigma = 2.0, 0.5
    theta = {"u": jnp.array([0.3, -1.2]), "v": jnp.array([[0.7], [2.0]])}
    f = lambda t: sum(jnp.sum(jnp.sin(a * x)) for x in jax.tree.leaves(t))
    grad, losses = estimators.es_gradient(f, theta, jax.random.key(0), sigma=sigma,
                                          num_pairs=50000)
    assert losses.shape == (100000,)
    exact = jax.grad(f)(theta)
    smoothed = jax.tree.map(lambda g: np.exp(-0.5 * (a * sigma) ** 2) * g, exact)
    # Per-pair standard deviation is about |f'| here: 5e4 pairs give errors ~ 0.01.
    numerics.assert_close_to_scale(grad, smoothed, rtol=0.05)
    assert np.max(np.abs(flat(grad) - flat(exact))) > 0.2 * np.max(np.abs(flat(exact)))


def test_es_tends_to_the_exact_meta_gradient_as_sigma_shrinks():
  """At sigma = 1e-6 the smoothed and exact gradients coincide; 1,024 pairs in 30 dimensions
  leave a cosine ~ 0.99 and the projection on the exact gradient within ~5% of 1.
  A large sigma smooths over the unroll's roughness and lands elsewhere."""
  with jax.enable_x64(True):
    config = small_config("es", es_num_pairs=1024)
    encoder, learner, theta, stats, unroll = setup(config)
    full = meta.make_estimator(encoder, learner, small_config("full"))
    exact, _, _, _ = jax.jit(full.grad)(theta, stats, {}, unroll, None)
    result = {}
    for sigma in (1e-6, 0.3):
      config.meta.es_sigma = sigma
      es = meta.make_estimator(encoder, learner, config)
      result[sigma], _, _, _ = jax.jit(es.grad)(theta, stats, {}, unroll,
                                                jax.random.key(1))
    g, e = flat(result[1e-6]), flat(exact)
    assert cosine(g, e) > 0.95
    assert abs(g @ e / (e @ e) - 1) < 0.15  # unbiased: no missing factor or sign
    assert cosine(result[0.3], exact) < cosine(g, e)


def test_es_differentiates_the_diversity_term_exactly():
  """With a learner step of 1e-30 the AS loss ignores theta: every ES pair sees equal losses,
  and the estimate is the exact gradient of the diversity term, with full's running stats."""
  with jax.enable_x64(True):
    configs = {name: small_config(name, es_num_pairs=2) for name in ("full", "es")}
    for c in configs.values():
      c.task.diversity = "uniformity"
      c.task.diversity_coef = 3.0
      c.inner.learning_rate = 1e-30
    encoder, learner, theta, stats, unroll = setup(configs["full"])
    out = {name: jax.jit(meta.make_estimator(encoder, learner, c).grad)(
        theta, stats, {}, unroll, jax.random.key(0)) for name, c in configs.items()}
    (g_full, m_full, s_full, _), (g_es, m_es, s_es, _) = out["full"], out["es"]
    assert np.abs(flat(g_full)).max() > 1e-3
    numerics.assert_close_to_scale(g_es, g_full, rtol=1e-10)
    numerics.assert_close_to_scale(s_es, s_full, rtol=1e-12)
    np.testing.assert_allclose(m_es["loss"], m_full["loss"], rtol=1e-12)


def test_pes_with_one_window_is_es():
  with jax.enable_x64(True):
    config = small_config("es", num_steps=2, window=2, es_num_pairs=8, es_sigma=0.1)
    encoder, learner, theta, stats, unroll = setup(config)
    es = meta.make_estimator(encoder, learner, config)
    config.meta.estimator = "pes"
    pes = meta.make_estimator(encoder, learner, config)
    assert pes.num_windows == 1
    key = jax.random.key(3)
    g_es, m_es, s_es, _ = jax.jit(es.grad)(theta, stats, {}, unroll, key)
    g_pes, m_pes, s_pes, _ = jax.jit(pes.grad)(
        theta, stats, pes.init_state(theta, unroll.learner_vars), unroll, key)
    numerics.assert_close_to_scale(g_pes, g_es, rtol=1e-12)
    numerics.assert_close_to_scale(s_pes, s_es, rtol=1e-12)
    for name in ("loss", "as_loss", "meta_as", "inner_loss_last"):
      np.testing.assert_allclose(m_pes[name], m_es[name], rtol=1e-12, err_msg=name)


def test_pes_over_windows_is_unbiased_for_the_full_unroll_and_truncated_es_is_not():
  """T = 4 steps in W = 2 windows, theta fixed. PES's estimates summed over the windows of an
  unroll estimate the gradient of F(theta) = AS(after 2 steps) + AS(after 4 steps), the
  losses at each truncation of one unroll. Its mean over seeds is compared with F's exact
  gradient and with ES on F, in units of the seed-to-seed standard error: within 3 SE for
  PES; window-local perturbations (truncated ES, no accumulation) miss how window 1's
  parameters shape window 2's loss and are more than 3 SE off."""
  num_seeds, sigma = 16, 1e-3
  with jax.enable_x64(True):
    config = small_config("pes", num_steps=4, window=2, es_num_pairs=2048, es_sigma=sigma)
    encoder, learner, theta, stats, unroll = setup(config)
    pes = meta.make_estimator(encoder, learner, config)
    assert pes.num_windows == 2
    window_loss = meta.make_window_loss(encoder, learner, config)
    idx = unroll.batch_idx

    def full_unroll(t):  # F(theta): both truncation losses of one unroll
      first, aux = window_loss(t, stats, unroll._replace(batch_idx=idx[:2]), None, None)
      second, _ = window_loss(t, stats, unroll._replace(batch_idx=idx[2:]), aux.carry, False)
      return first + second

    exact = flat(jax.grad(full_unroll)(theta))

    @jax.jit
    def pes_unroll(key, accumulate):
      k0, k1 = jax.random.split(key)
      g0, _, _, state = pes.grad(theta, stats, pes.init_state(theta, unroll.learner_vars),
                                 unroll, k0)
      state = dict(state, xi=jax.tree.map(lambda x: jnp.where(accumulate, x, 0), state["xi"]))
      g1, _, _, _ = pes.grad(theta, stats, state, unroll._replace(window=jnp.int32(1)), k1)
      return jax.tree.map(jnp.add, g0, g1)

    es_full = jax.jit(lambda key: estimators.es_gradient(
        full_unroll, theta, key, sigma=sigma, num_pairs=2048)[0])
    keys = jax.random.split(jax.random.key(0), num_seeds)
    samples = {
        "pes": np.stack([flat(pes_unroll(k, True)) for k in keys]),
        "truncated_es": np.stack([flat(pes_unroll(k, False)) for k in keys]),
        "es": np.stack([flat(es_full(k)) for k in keys]),
    }

  def error_in_standard_errors(s, target, extra_variance=0.0):
    mean = s.mean(0)
    variance = s.var(0, ddof=1).sum() / len(s) + extra_variance  # E|mean - target|^2
    return float(np.sqrt(np.sum((mean - target) ** 2) / variance))

  assert error_in_standard_errors(samples["es"], exact) < 3
  assert error_in_standard_errors(samples["pes"], exact) < 3
  es_variance = samples["es"].var(0, ddof=1).sum() / num_seeds
  assert error_in_standard_errors(samples["pes"], samples["es"].mean(0), es_variance) < 3
  assert error_in_standard_errors(samples["truncated_es"], exact) > 3


def test_pes_resumes_mid_window_from_its_checkpointed_state(tmp_path):
  """Interrupted after 3 meta-steps (window 1 of unroll 1 next), resumed: the same final
  state, persistent learners and accumulated perturbations included, as one straight run."""
  import test_discovery  # pylint: disable=import-outside-toplevel

  def config(num_steps):
    c = test_discovery.tiny_config(num_steps)
    c.meta.meta_batch_size = 1
    c.inner.num_steps = 4
    c.meta.estimator = "pes"
    c.meta.truncation_length = 2
    c.meta.es_num_pairs = 2
    c.meta.es_sigma = 0.05
    return c

  straight, _ = test_discovery.train_only(config(4), str(tmp_path / "straight"))
  learners = straight.estimator["learners"]
  k = 1 * config(4).inner.num_learners  # M * L learners per particle
  assert all(a.shape[:2] == (4, k) for a in jax.tree.leaves(learners))
  assert all(a.shape[0] == 2 for a in jax.tree.leaves(straight.estimator["xi"]))
  interrupted = str(tmp_path / "resumed")
  middle, _ = test_discovery.train_only(config(3), interrupted)
  # After window 0 of unroll 1 the particles' learners have moved away from their
  # initialisation, so a resume that lost them would not match.
  fresh = meta.make_meta_step(*models.build_models(config(3), datasets.load_dataset(
      config(3).data).input_shape), config(3)).init(jax.random.key(0)).estimator["learners"]
  assert max(float(jnp.abs(a - b).max()) for a, b in zip(
      jax.tree.leaves(middle.estimator["learners"]), jax.tree.leaves(fresh))) > 1e-4
  resumed, rows = test_discovery.train_only(config(4), interrupted)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert jax.tree.structure(resumed) == jax.tree.structure(straight)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)
