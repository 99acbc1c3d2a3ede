"""The differentiable agreement score (SPEC section 3) and the meta-step, as pure functions.

`make_meta_loss` builds `meta_loss(theta, ...) -> (J, aux)`: learners start from given initial
variables, train for T steps of an optax optimiser on SOFT labels `softmax(task_logits(x))` from
the task network with parameters `theta` (`jax.lax.scan` over steps, `jax.checkpoint` on each
step), then the symmetric soft cross-entropy between the learners' predictions on a held-out batch
is the AS loss. `jax.grad` w.r.t. `theta` alone is the exact second-order meta-gradient; the
learners' initial variables are inputs, never differentiated.

The unroll's named steps are in `unroll` (the task network's forwards and soft labels, the
learners' scan in its two forms); this module holds J on top of them (`make_meta_loss`) and the
meta-step around it (tasks, data and learner initialisation of a step, the estimator's gradient,
the outer update, the initial state).

Shapes: M = tasks in the meta-batch, L = learners per task, B = inner batch, C = 2 classes.
The encoder runs once per inner step on the shared batch; only the learners are vmapped over
`[M, L]`, so a meta-batch of M tasks costs M learner pairs but one encoder forward per step.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from task_discovery import models
from task_discovery.method import agreement
from task_discovery.method import estimators
from task_discovery.method import inner_loop
from task_discovery.method import optimizers
from task_discovery.method import unroll
from task_discovery.models import task_network


def symmetric_agreement_loss(logits: jax.Array) -> jax.Array:
  """Differentiable disagreement of L learners: `[..., L, B, C]` logits -> `[...]`.

  Mean over learner pairs i < j of `0.5 * [CE(softmax z_i -> z_j) + CE(softmax z_j -> z_i)]`,
  gradients through both sides (no stop-gradient), as the original.
  """
  num_learners = logits.shape[-3]
  probs = jax.nn.softmax(logits, axis=-1)
  i, j = np.triu_indices(num_learners, k=1)
  ce_ij = inner_loop.soft_cross_entropy(probs[..., i, :, :], logits[..., j, :, :])
  ce_ji = inner_loop.soft_cross_entropy(probs[..., j, :, :], logits[..., i, :, :])
  return (0.5 * (ce_ij + ce_ji)).mean(axis=-1)


def inner_batch_indices(key: jax.Array, train_idx: jax.Array, num_steps: int,
                        batch_size: int) -> jax.Array:
  """`[num_steps, batch_size]` image indices: consecutive batches of fresh shuffles of the
  training split (as many shuffles as the unroll needs)."""
  n = train_idx.shape[0]
  num_perms = -(-num_steps * batch_size // n)
  perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, num_perms))
  positions = perms.reshape(-1)[: num_steps * batch_size].reshape(num_steps, batch_size)
  return train_idx[positions]


def loss_and_metrics(result: unroll.UnrollResult, num_tasks: int, num_learners: int,
                     diversity_coef: float):
  """J, metrics and new state from the learners after the unroll: `(J, (metrics,
  new_encoder_batch_stats, new_carry))`."""
  steps, carry, inner_loss = result.steps, result.carry, result.inner_loss
  num_steps = inner_loss.shape[0]
  inner_loss = inner_loss.reshape(num_steps, num_tasks, num_learners).mean(axis=-1)  # [T, M]
  # Learners stay in training mode (batch statistics) on the held-out batch, as the original.
  logits = steps.heldout_logits(carry)  # [K, B_h, C]
  logits = logits.reshape((num_tasks, num_learners) + logits.shape[1:])  # [M, L, B_h, C]
  as_loss = symmetric_agreement_loss(logits)  # [M]
  loss = as_loss.mean() + diversity_coef * result.diversity
  metrics = {
      "loss": loss,
      "as_loss": as_loss,
      "meta_as": agreement.pairwise_agreement(jnp.argmax(logits, -1)),  # [M] hard agreement
      "diversity": result.diversity,
      "inner_loss_first": inner_loss[0],  # [M]
      "inner_loss_last": inner_loss[-1],  # [M]
      "label_balance": result.balance,
  }
  return loss, (metrics, result.encoder_batch_stats, carry)


def make_meta_loss(encoder: models.Model, learner: models.Model, config, *,
                   persistent: bool = False, unroll_scans: bool = False) -> Callable:
  """Builds the meta-objective for `config` (sections `task`, `inner`, `meta`).

  `unroll_scans=True` fully unrolls every `jax.lax.scan` of the objective (same math, one
  straight-line program): XLA's cost analysis counts a scan body once, an unrolled program's
  every step, so benchmarks count FLOPs on such a compile; training never sets it.

  Where the soft labels are computed depends on `meta.estimator`:
    * `full` (and `truncated` with K >= T, the same computation): the task network does not
      change during the unroll, so its soft labels for all T inner batches are computed before
      the learners' scan (`inner.encoder_mode`), and the scan carries only the learners' state
      (`inner_loop`). Reverse mode through all T steps is linear in T anyway.
    * `truncated` (K < T), `es`, `pes`: each scanned step runs the encoder on its inner batch
      (the encoder's running statistics in the carry), makes that batch's soft labels, trains
      the learners one step and adds up the diversity term, so nothing of size
      `[T, B, ...]` exists and memory does not grow with T (`inner.encoder_mode` is unused).
  The learners' BatchNorm running statistics are not carried: the learners stay in training
  mode on the held-out batch (as the original), so nothing reads them.

  Returns:
    `meta_loss(theta, encoder_batch_stats, learner_vars, directions, directions_all, images,
    batch_idx, heldout_x) -> (J, (metrics, new_encoder_batch_stats))` where
    `learner_vars` has leading axes `[M, L]`, `directions` is `[M, d]`, `batch_idx` is
    `[T, B]` and `heldout_x` is `[B_h, H, W, C]`. J = mean AS loss over the M tasks plus the
    diversity term.

    With `persistent=True` the unroll is one window of a longer one (`estimators.pes`):
    `meta_loss(..., heldout_x, start, reset) -> (J, (metrics, new_encoder_batch_stats,
    new_carry))`, where the learners start from `start` (the weight-space state of
    `inner_loop.weight_space`, leading axis M * L) or, where the traced bool `reset` is true,
    from `learner_vars`; `batch_idx` holds the window's steps only.
  """
  setup = unroll.make_setup(encoder, learner, config, persistent=persistent,
                            unroll_scans=unroll_scans)
  streamed = config.meta.estimator != "full"  # see "Where the soft labels are computed"

  def unrolled_loss(theta, encoder_batch_stats, learner_vars, directions, directions_all,
                    images, batch_idx, heldout_x, start=None, reset=None):
    num_tasks, num_steps = directions.shape[0], batch_idx.shape[0]
    # `truncated` with K >= T is `full`'s computation, to the bit.
    if streamed and (setup.truncation is None or setup.truncation < num_steps):
      form = unroll.streamed_unroll
    else:
      form = unroll.batched_unroll
    result = form(setup, theta, encoder_batch_stats, learner_vars, directions, directions_all,
                  images, batch_idx, heldout_x, start, reset)
    return loss_and_metrics(result, num_tasks, setup.num_learners, config.task.diversity_coef)

  if persistent:
    return unrolled_loss

  def meta_loss(*args, **kwargs):
    loss, (metrics, encoder_batch_stats, _) = unrolled_loss(*args, **kwargs)
    return loss, (metrics, encoder_batch_stats)

  return meta_loss


OBJECTIVE = estimators.Objective(make_meta_loss, unroll.make_diversity_grad,
                                 unroll.flatten_learners)


def make_estimator(encoder: models.Model, learner: models.Model, config, *,
                   shard_pairs: Callable = lambda tree: tree,
                   unroll_scans: bool = False) -> estimators.GradientEstimator:
  """The gradient estimator of `config.meta.estimator` for this module's objective
  (`estimators.make_estimator`)."""
  return estimators.make_estimator(OBJECTIVE, encoder, learner, config, shard_pairs=shard_pairs,
                                   unroll_scans=unroll_scans)


def global_norm(tree) -> jax.Array:
  """L2 norm of all leaves together (optax renamed its helper across releases)."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


# fold_in data of the task-order stream: no meta-step key uses it (steps are int32 >= 0).
TASK_ORDER_STREAM = 0xFFFFFFFF
# fold_in data of the stream of ES/PES perturbations (`fold_in(stream, step)` per meta-step).
PERTURBATION_STREAM = 0xFFFFFFFE


def task_ids_for_step(step: jax.Array, meta_batch_size: int, num_tasks: int,
                      key: jax.Array | None = None) -> jax.Array:
  """Tasks of a meta-step: `[meta_batch_size]` indices into the d tasks.

  The tasks are visited in cycles of d, one per step (the original); a meta-batch takes the
  next `meta_batch_size` of the sequence (it may span two cycles, and then hold a task twice
  unless `meta_batch_size` divides d). Without `key` every cycle is 0, 1, ..., d-1. With
  `key`, cycle c is `jax.random.permutation(fold_in(key, c), d)`: a fresh order every cycle, as
  the original's shuffling loader over the task indices, and a function of the key and the
  step alone, so a resumed run draws the same order.
  """
  positions = step * meta_batch_size + jnp.arange(meta_batch_size)
  offsets = positions % num_tasks
  if key is None:
    return offsets
  cycles = positions // num_tasks
  orders = jax.vmap(lambda c: jax.random.permutation(jax.random.fold_in(key, c), num_tasks))(
      cycles)  # [meta_batch_size, d]
  return orders[jnp.arange(meta_batch_size), offsets]


def task_order_key(root: jax.Array, task_order: str) -> jax.Array | None:
  """The key of `task_ids_for_step` for `meta.task_order`: None for 'cyclic', a stream of the
  root key (disjoint from the per-step keys `fold_in(root, step)`) for 'shuffled'."""
  if task_order == "cyclic":
    return None
  if task_order != "shuffled":
    raise ValueError(f"meta.task_order={task_order!r} is not one of 'shuffled', 'cyclic'")
  return jax.random.fold_in(root, jnp.uint32(TASK_ORDER_STREAM))


def make_meta_step(encoder: models.Model, learner: models.Model, config, *,
                   shard_tasks: Callable = lambda tree: tree,
                   unroll_scans: bool = False) -> Callable:
  """`meta_step(state, data) -> (state, metrics)`, pure; `jax.jit` it where the loop is built.

  `shard_tasks` is applied to the learners' variables (leading axis: the meta-batch), e.g.
  `sharding.constrain_along_data(mesh)` to split the tasks of a meta-batch over devices.

  `state` is a dict pytree: step, params, batch_stats (encoder), opt_state, learner_init
  (`[L, ...]` fixed learner variables), directions (`[d, d]`), key (root PRNG key data), and
  for estimators with a persistent state (`pes`) `estimator`.
  `data` is a dict: images `[N, H, W, C]`, train_idx `[n]`, heldout_idx `[m]` (the images of
  the differentiable AS's held-out batch: `discovery` passes the meta-validation part).
  The gradient comes from `estimators.make_estimator` (`meta.estimator`). Unroll u (meta-step
  u, or meta-steps u W .. u W + W - 1 for `pes`'s W windows) draws its tasks, data and
  learner initialisation from `fold_in(root, u)`, so a resumed run draws the same numbers.
  `unroll_scans`: see `make_meta_loss`.
  """
  outer = optimizers.make_optimizer(config.meta.optimizer,
                                    learning_rate=config.meta.learning_rate)
  inner, meta = config.inner, config.meta
  estimator = make_estimator(encoder, learner, config, shard_pairs=shard_tasks,
                             unroll_scans=unroll_scans)
  num_windows = estimator.num_windows

  def meta_step(state, data):
    root = jax.random.wrap_key_data(state["key"])
    step = state["step"]
    unroll_index = step // num_windows  # the meta-step itself unless `pes` has windows
    key = jax.random.fold_in(root, unroll_index)
    data_key, init_key, heldout_key = jax.random.split(key, 3)
    task_ids = task_ids_for_step(unroll_index, meta.meta_batch_size, config.task.num_tasks,
                                 task_order_key(root, meta.get("task_order", "shuffled")))
    directions = state["directions"][task_ids]
    if inner.random_init:
      keys = jax.random.split(init_key, meta.meta_batch_size * inner.num_learners)
      learner_vars = jax.vmap(learner.init)(keys)
      learner_vars = jax.tree.map(
          lambda a: a.reshape((meta.meta_batch_size, inner.num_learners) + a.shape[1:]),
          learner_vars)
    else:  # the same initial pair for every task and meta-step (original)
      learner_vars = jax.tree.map(
          lambda a: jnp.broadcast_to(a, (meta.meta_batch_size,) + a.shape), state["learner_init"])
    learner_vars = shard_tasks(learner_vars)
    batch_idx = inner_batch_indices(data_key, data["train_idx"], inner.num_steps,
                                    inner.batch_size)
    heldout_idx = data["heldout_idx"]
    if inner.resample_heldout:
      heldout_idx = jax.random.permutation(heldout_key, heldout_idx)
    heldout_x = data["images"][heldout_idx[: inner.heldout_batch_size]]
    unroll = dict(learner_vars=learner_vars, directions=directions,
                  directions_all=state["directions"], images=data["images"],
                  batch_idx=batch_idx, heldout_x=heldout_x,
                  window=(step % num_windows).astype(jnp.int32))
    noise_key = jax.random.fold_in(
        jax.random.fold_in(root, jnp.uint32(PERTURBATION_STREAM)), step)
    grads, metrics, batch_stats, estimator_state = estimator.grad(
        state["params"], state["batch_stats"], state.get("estimator", {}), unroll, noise_key)
    updates, opt_state = outer.update(grads, state["opt_state"], state["params"])
    new_state = dict(state, step=step + 1,
                     params=optax.apply_updates(state["params"], updates),
                     batch_stats=batch_stats, opt_state=opt_state)
    if "estimator" in state:
      new_state["estimator"] = estimator_state
    metrics = dict(metrics, grad_norm=global_norm(grads), task_ids=task_ids)
    return new_state, metrics

  return meta_step


def task_directions(task_config) -> np.ndarray:
  """`[d, d]` task directions: Gaussian rows for `diversity='mutual_information'` (the
  original's), else the orthonormal rows of a Haar-random rotation; seeded by `rotation_seed`."""
  if task_config.diversity == "mutual_information":
    return task_network.gaussian_directions(task_config.num_tasks, task_config.rotation_seed)
  return task_network.haar_directions(task_config.num_tasks, task_config.rotation_seed)


def init_state(encoder: models.Model, learner: models.Model, config, key: jax.Array) -> dict:
  """Initial discovery state (see `make_meta_step`)."""
  enc_key, learner_key = jax.random.split(jax.random.fold_in(key, 0))
  variables = encoder.init(enc_key)
  learner_init = jax.vmap(learner.init)(jax.random.split(learner_key, config.inner.num_learners))
  outer = optimizers.make_optimizer(config.meta.optimizer,
                                    learning_rate=config.meta.learning_rate)
  state = {
      "step": jnp.zeros((), jnp.int32),
      "params": variables["params"],
      "batch_stats": variables.get("batch_stats", {}),
      "opt_state": outer.init(variables["params"]),
      "learner_init": learner_init,
      "directions": jnp.asarray(task_directions(config.task)),
      "key": jax.random.key_data(key),
  }
  estimator = make_estimator(encoder, learner, config)
  learner_vars = jax.tree.map(
      lambda a: jnp.broadcast_to(a, (config.meta.meta_batch_size,) + a.shape), learner_init)
  estimator_state = estimator.init_state(variables["params"], learner_vars)
  # Only an estimator with a persistent state adds the key: checkpoints of the others keep
  # the layout they had before estimators had state.
  if jax.tree.leaves(estimator_state):
    state["estimator"] = estimator_state
  return state

