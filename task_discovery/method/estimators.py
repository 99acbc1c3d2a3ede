"""Gradient estimators of the meta-objective: full and truncated backprop, ES and PES.

Every estimator is a `GradientEstimator`: pure functions that map the task network's
parameters, the estimator's persistent state, the unroll's inputs and a key to a gradient
estimate, metrics and the new state (the shape of learned_optimization's estimators).
`make_meta_step` builds the unroll's inputs and applies the outer optimiser; nothing there
depends on which estimator runs.

  * `full`: exact reverse-mode gradient through all T inner steps (memory grows with T).
  * `truncated`: backprop through the last K steps only (biased; memory of K steps).
  * `es`: antithetic evolution strategies (Salimans et al., 2017) on the AS loss of the whole
    unroll: `g = 1/(2 n sigma) sum_i eps_i [L(theta + sigma eps_i) - L(theta - sigma eps_i)]`,
    `eps_i ~ N(0, I)`, an unbiased estimate of the gradient of the Gaussian-smoothed loss
    `E_eps L(theta + sigma eps)`. Forward unrolls only: no second-order terms, nothing kept
    per inner step. All 2n perturbed unrolls of a meta-step share its data and learner
    initialisation (common random numbers), and are vmapped; their leading axis is placed
    like the meta-batch (`shard_tasks`).
  * `pes`: persistent evolution strategies (Vicol, Metz and Sohl-Dickstein, ICML 2021). The
    T inner steps are split into W = T / K windows; meta-step s runs window `s mod W` of
    unroll `s // W` (one set of data, tasks and learner initialisation per unroll) for
    K steps, continuing each perturbed particle's learners from where the previous window
    left them. Window w has its own perturbations eps_w, and particle i accumulates
    `xi_i = eps_1 + ... + eps_w` (reset with the learners every W meta-steps). The estimate
    of window w is `1/(2 n sigma) sum_i xi_i [L_w(+) - L_w(-)]`, where L_w is the AS loss of
    the learners after the window's steps (the loss at each truncation, as Vicol et al.).
    Here is what it is unbiased for, with theta held fixed over an unroll: the sum over the
    W windows of the estimates has expectation
      `d/dtheta E_{eps_1..eps_W} sum_w L_w(theta + sigma eps_1, ..., theta + sigma eps_w)`,
    the full unroll's summed truncation losses smoothed with independent noise per window
    (`L_w` depends on the parameters used in windows 1..w). Plain ES on the same sum uses
    one eps for all windows; both tend to the exact gradient as sigma -> 0. While the outer
    optimiser moves theta within an unroll the estimate carries the (small) bias of the
    online setting, as in the paper. With W = 1 it is `es`, to rounding.

Choices for `es` and `pes`:
  * The diversity term (uniformity or mutual information of the task network's embeddings)
    does not pass through the learners' unroll, is smooth and cheap: its gradient is exact
    (reverse mode through the encoder at the unperturbed theta, one inner batch at a time:
    `unroll.make_diversity_grad`), only the AS loss is estimated. The estimate is then of the
    gradient of `E_eps AS(theta + sigma eps) + coef * D(theta)`. For `pes` D is averaged over
    the window's inner batches.
  * The encoder's BatchNorm running statistics come from that unperturbed forward, so they
    follow the same recurrence as under `full` (perturbed forwards use batch statistics
    only, like every training-mode forward, and their running statistics are dropped).
  * Metrics (`as_loss`, `meta_as`, `inner_loss_*`, `label_balance`) are means over the 2n
    perturbed unrolls; `loss` is their mean AS loss plus the exact diversity term.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.method import inner_loop
from task_discovery.method import optimizers

ESTIMATORS = config_lib.ESTIMATORS


class UnrollInputs(NamedTuple):
  """What one unroll of the meta-objective reads (`meta.make_meta_step` builds it per step).

  Attributes:
    learner_vars: the learners' initial variables, leaves `[M, L, ...]`.
    directions: `[M, d]` the task directions of the meta-batch.
    directions_all: `[d, d]` all task directions (the diversity term reads them).
    images: `[N, H, W, C]` the dataset; the batches are gathered from it by index.
    batch_idx: `[T, B]` the image indices of the T inner batches.
    heldout_x: `[B_h, H, W, C]` the held-out batch of the differentiable AS.
    window: int32 scalar, the window of `pes` this meta-step runs (0 for the others).
  """
  learner_vars: Any
  directions: jax.Array
  directions_all: jax.Array
  images: jax.Array
  batch_idx: jax.Array
  heldout_x: jax.Array
  window: jax.Array


class LossAux(NamedTuple):
  """What the meta-objective returns beside J.

  Attributes:
    metrics: dict of scalars and `[M]` arrays (`meta.loss_and_metrics` names them).
    encoder_batch_stats: the task network's running statistics after the unroll.
    carry: the learners' state after the unroll (leading axis M * L), where `pes` continues.
  """
  metrics: dict
  encoder_batch_stats: Any
  carry: Any


class EstimatorOut(NamedTuple):
  """A gradient estimate and what came with it.

  Attributes:
    grads: the estimate, shaped like the task network's parameters.
    metrics: `LossAux.metrics`, averaged over perturbations for `es` and `pes`.
    encoder_batch_stats: the task network's running statistics after the meta-step.
    state: the estimator's new persistent state (`{}` when it keeps none).
  """
  grads: Any
  metrics: dict
  encoder_batch_stats: Any
  state: Any


class Objective(NamedTuple):
  """The builders of what an estimator differentiates or perturbs (`meta` passes its own, so
  this module sits below `meta` in the import graph instead of importing it back).

  Attributes:
    meta_loss: `(encoder, learner, config, *, unroll_scans) -> meta_loss`, as
      `meta.make_meta_loss`: `meta_loss(theta, encoder_batch_stats, inputs) -> (J, LossAux)`.
    window_loss: `(encoder, learner, config) -> window_loss`, as `meta.make_window_loss`:
      `window_loss(theta, encoder_batch_stats, inputs, start, reset) -> (J, LossAux)`.
    diversity_grad: `(encoder, config) -> diversity_grad`, as `unroll.make_diversity_grad`.
    flatten_learners: `(tree [M, L, ...], M, L) -> tree [M * L, ...]`.
  """
  meta_loss: Callable
  window_loss: Callable
  diversity_grad: Callable
  flatten_learners: Callable


class GradientEstimator(NamedTuple):
  """A meta-gradient estimator as pure functions.

  Attributes:
    name: one of `ESTIMATORS`.
    num_windows: meta-steps per unroll (W = T / K for `pes`, else 1): meta-step s runs
      window `s mod W` of unroll `s // W`.
    init_state: `(theta, learner_vars) -> state`, the persistent state (a dict pytree, `{}`
      when the estimator keeps none); `learner_vars` leaves have leading axes `[M, L]`.
    grad: `(theta, encoder_batch_stats, state, inputs: UnrollInputs, key) -> EstimatorOut`;
      `inputs` holds the whole unroll, `key` draws the perturbations (unused by `full` and
      `truncated`).
  """
  name: str
  num_windows: int
  init_state: Callable
  grad: Callable


def _no_state(theta, learner_vars) -> dict:
  del theta, learner_vars
  return {}


def backprop(objective: Objective, encoder: models.Model, learner: models.Model, config, *,
             unroll_scans: bool = False) -> GradientEstimator:
  """`full` and `truncated` (`meta.truncation_length`): reverse mode through the unroll."""
  grad_fn = jax.value_and_grad(
      objective.meta_loss(encoder, learner, config, unroll_scans=unroll_scans), has_aux=True)

  def grad(theta, encoder_batch_stats, state, inputs: UnrollInputs, key) -> EstimatorOut:
    del key
    (_, aux), grads = grad_fn(theta, encoder_batch_stats, inputs)
    return EstimatorOut(grads, aux.metrics, aux.encoder_batch_stats, state)

  return GradientEstimator(config.meta.estimator, 1, _no_state, grad)


def gaussian_like(key: jax.Array, tree, num: int):
  """`num` standard normal draws shaped like `tree`: leaves `[num, ...]`."""
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(treedef, [jax.random.normal(k, (num,) + a.shape, a.dtype)
                                      for k, a in zip(keys, leaves)])


def antithetic(theta, eps, sigma: float):
  """`[2n, ...]` parameters: `theta + sigma * eps_i` for i < n, then `theta - sigma * eps_i`."""
  return jax.tree.map(
      lambda t, e: jnp.concatenate([t + sigma * e, t - sigma * e]), theta, eps)


def antithetic_estimate(xi, losses: jax.Array, sigma: float):
  """`1/(2 n sigma) sum_i xi_i (losses_i - losses_{n+i})`: `xi` leaves `[n, ...]`, `losses`
  `[2n]` in the order of `antithetic`."""
  n = losses.shape[0] // 2
  weights = (losses[:n] - losses[n:]) / (2 * n * sigma)  # [n]
  return jax.tree.map(lambda x: jnp.tensordot(weights.astype(x.dtype), x, axes=1), xi)


def es_gradient(loss_fn: Callable, theta, key: jax.Array, *, sigma: float, num_pairs: int):
  """Antithetic ES estimate of the gradient of `E_eps loss_fn(theta + sigma eps)`.

  `loss_fn` maps one parameter pytree to a scalar; it is vmapped over the 2n perturbations.
  Returns `(grads, losses [2n])`.
  """
  eps = gaussian_like(key, theta, num_pairs)
  losses = jax.vmap(loss_fn)(antithetic(theta, eps, sigma))
  return antithetic_estimate(eps, losses, sigma), losses


def _as_only(config):
  """`config` with the diversity term off: ES/PES estimate the AS loss alone, the diversity
  term is differentiated exactly."""
  as_only = config.copy_and_resolve_references()
  with as_only.unlocked():
    as_only.task.diversity = "none"
  return as_only


def _combine(losses, metrics, div_loss, div_value, as_grads, div_grads):
  metrics = jax.tree.map(lambda a: a.mean(axis=0), metrics)  # means over the 2n unrolls
  metrics = dict(metrics, loss=losses.mean() + div_loss, diversity=div_value)
  grads = jax.tree.map(lambda a, b: a + b.astype(a.dtype), div_grads, as_grads)
  return grads, metrics


def es(objective: Objective, encoder: models.Model, learner: models.Model, config, *,
       shard_pairs: Callable = lambda tree: tree) -> GradientEstimator:
  """Antithetic ES on the whole unroll (module docstring); `meta.es_sigma`,
  `meta.es_num_pairs`."""
  sigma, num_pairs = float(config.meta.es_sigma), int(config.meta.es_num_pairs)
  as_loss = objective.meta_loss(encoder, learner, _as_only(config))
  diversity_grad = objective.diversity_grad(encoder, config)

  def grad(theta, encoder_batch_stats, state, inputs: UnrollInputs, key) -> EstimatorOut:
    (div_loss, (div_value, batch_stats)), div_grads = diversity_grad(
        theta, encoder_batch_stats, inputs.directions_all, inputs.images, inputs.batch_idx)
    eps = gaussian_like(key, theta, num_pairs)
    thetas = shard_pairs(antithetic(theta, eps, sigma))
    losses, aux = jax.vmap(lambda t: as_loss(t, encoder_batch_stats, inputs))(thetas)
    grads, metrics = _combine(losses, aux.metrics, div_loss, div_value,
                              antithetic_estimate(eps, losses, sigma), div_grads)
    return EstimatorOut(grads, metrics, batch_stats, state)

  return GradientEstimator("es", 1, _no_state, grad)


def pes(objective: Objective, encoder: models.Model, learner: models.Model, config, *,
        shard_pairs: Callable = lambda tree: tree) -> GradientEstimator:
  """Persistent ES over windows of `meta.truncation_length` inner steps (module docstring).

  State: `learners`, the weight-space learner state of every particle (leaves
  `[2n, M * L, ...]`), and `xi`, the accumulated perturbations of the n pairs (leaves
  `[n, ...]` shaped like theta); both restart at window 0.
  """
  inner, meta_config = config.inner, config.meta
  sigma, num_pairs = float(meta_config.es_sigma), int(meta_config.es_num_pairs)
  window_length = int(meta_config.truncation_length)
  if inner.num_steps % window_length:
    raise ValueError(f"meta.truncation_length={window_length} must divide inner.num_steps="
                     f"{inner.num_steps} for estimator='pes'")
  if inner.get("learner_updates", "auto") == "samples":
    raise ValueError("estimator='pes' carries the learners' weights across windows: use "
                     "inner.learner_updates='auto' or 'weights'")
  window_loss = objective.window_loss(encoder, learner, _as_only(config))
  diversity_grad = objective.diversity_grad(encoder, config)
  optimizer = optimizers.make_optimizer(
      inner.optimizer, learning_rate=inner.learning_rate, momentum=inner.momentum,
      eps_root=inner.eps_root)

  def fresh_learners(learner_vars):
    """The learners' initial weight-space state, leading axis M * L."""
    num_tasks = jax.tree.leaves(learner_vars)[0].shape[0]
    flat = objective.flatten_learners(learner_vars, num_tasks, inner.num_learners)
    return inner_loop.weight_space(learner, optimizer, flat["params"],
                                   flat.get("batch_stats", {}), None, None,
                                   num_tasks=num_tasks, num_learners=inner.num_learners,
                                   data_mode=inner.data_mode).carry

  def init_state(theta, learner_vars):
    carry = fresh_learners(learner_vars)
    return {
        "learners": jax.tree.map(lambda a: jnp.broadcast_to(a, (2 * num_pairs,) + a.shape),
                                 carry),
        "xi": jax.tree.map(lambda a: jnp.zeros((num_pairs,) + a.shape, a.dtype), theta),
    }

  def grad(theta, encoder_batch_stats, state, inputs: UnrollInputs, key) -> EstimatorOut:
    reset = inputs.window == 0
    window = inputs._replace(batch_idx=jax.lax.dynamic_slice_in_dim(
        inputs.batch_idx, inputs.window * window_length, window_length))
    (div_loss, (div_value, batch_stats)), div_grads = diversity_grad(
        theta, encoder_batch_stats, window.directions_all, window.images, window.batch_idx)
    eps = gaussian_like(key, theta, num_pairs)
    xi = jax.tree.map(lambda x, e: jnp.where(reset, jnp.zeros_like(x), x) + e,
                      state["xi"], eps)
    thetas = shard_pairs(antithetic(theta, eps, sigma))
    particles = lambda t, start: window_loss(t, encoder_batch_stats, window, start, reset)
    losses, aux = jax.vmap(particles)(thetas, state["learners"])
    grads, metrics = _combine(losses, aux.metrics, div_loss, div_value,
                              antithetic_estimate(xi, losses, sigma), div_grads)
    return EstimatorOut(grads, metrics, batch_stats, {"learners": aux.carry, "xi": xi})

  return GradientEstimator("pes", inner.num_steps // window_length, init_state, grad)


def make_estimator(objective: Objective, encoder: models.Model, learner: models.Model, config,
                   *, shard_pairs: Callable = lambda tree: tree,
                   unroll_scans: bool = False) -> GradientEstimator:
  """The estimator of `config.meta.estimator` (use `meta.make_estimator`, which passes the
  objective); `shard_pairs` places the leading axis of the perturbed parameters (`es`,
  `pes`); `unroll_scans` (`full`, `truncated`): see `meta.make_meta_loss`."""
  name = config.meta.estimator
  if name in ("full", "truncated"):
    return backprop(objective, encoder, learner, config, unroll_scans=unroll_scans)
  if name == "es":
    return es(objective, encoder, learner, config, shard_pairs=shard_pairs)
  if name == "pes":
    return pes(objective, encoder, learner, config, shard_pairs=shard_pairs)
  raise ValueError(f"meta.estimator={name!r} is not one of {ESTIMATORS}")

