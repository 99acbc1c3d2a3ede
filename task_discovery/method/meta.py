"""The differentiable agreement score (SPEC section 3) and the meta-step, as pure functions.

`make_meta_loss` builds `meta_loss(theta, ...) -> (J, aux)`: learners start from given initial
variables, train for T steps of an optax optimiser on SOFT labels `softmax(task_logits(x))` from
the task network with parameters `theta` (`jax.lax.scan` over steps, `jax.checkpoint` on each
step), then the symmetric soft cross-entropy between the learners' predictions on a held-out batch
is the AS loss. `jax.grad` w.r.t. `theta` alone is the exact second-order meta-gradient; the
learners' initial variables are inputs, never differentiated.

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

from task_discovery.method import agreement
from task_discovery.method import estimators
from task_discovery.method import inner_loop
from task_discovery import models
from task_discovery.method import optimizers
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


def _flatten_learners(tree, num_tasks: int, num_learners: int):
  """`[M, L, ...]` leaves -> `[M * L, ...]`: the learners of all tasks on the one vmapped axis
  of `inner_loop` (its docstring says why one axis, not two)."""
  return jax.tree.map(lambda a: a.reshape((num_tasks * num_learners,) + a.shape[2:]), tree)


def _running_stats_after(initial, step_updates, unroll: int | bool = 1):
  """Running statistics after T BatchNorm updates, from per-step updates made from zero.

  `step_updates` leaves are `[T, ...]`: `(1 - momentum) * batch_stat_t`, which is what a model
  applied with zero running statistics returns. The running average is then the recurrence
  `r_t = momentum * r_{t-1} + update_t`, the same arithmetic as T sequential applications.
  """
  def fold(r, u):
    return jax.tree.map(lambda a, b: models.BATCH_NORM_MOMENTUM * a + b, r, u), None
  return jax.lax.scan(fold, initial, step_updates, unroll=unroll)[0]


def resolve_encoder_mode(mode: str, encoder_name: str) -> str:
  """`'auto'` -> `'batched'` for an MLP encoder, `'per_step'` otherwise.

  `'batched'` runs the encoder once over all T inner batches (one big matmul per layer, nothing
  recomputed) and keeps its activations for all T steps: a few MB per step for the MLP, about
  3 GB per step for ResNet-18 at batch 512. `'per_step'` scans the T batches with
  `jax.checkpoint`, keeping only the embeddings and recomputing the forward in the backward pass.
  """
  if mode == "auto":
    return "batched" if encoder_name == "mlp" else "per_step"
  if mode not in ("batched", "per_step"):
    raise ValueError(f"inner.encoder_mode={mode!r} is not one of 'auto', 'batched', 'per_step'")
  return mode


def make_diversity(task) -> Callable:
  """`diversity(h [B, d], directions_all [d, d]) -> scalar` for `task.diversity`."""
  def diversity(h, directions_all):
    if task.diversity == "uniformity":
      return task_network.uniformity_loss(h, task.uniformity_t)
    if task.diversity == "mutual_information":
      return task_network.mutual_information_loss(h, directions_all, task.temperature)
    if task.diversity == "mutual_information_divdis":
      return task_network.mean_pairwise_mutual_information_loss(h, directions_all,
                                                                task.temperature)
    return jnp.zeros((), h.dtype)
  return diversity


def make_encode(encoder: models.Model, config, *, unroll_scans: bool = False) -> Callable:
  """`encode(theta, enc_stats, images, batch_idx [T, B]) -> (h [T, B, d], new_enc_stats)`:
  the task network in training mode on every inner batch (`inner.encoder_mode`).
  `unroll_scans`: see `make_meta_loss`."""
  unroll = True if unroll_scans else 1  # jax.lax.scan's default: a loop
  encoder_mode = resolve_encoder_mode(config.inner.get("encoder_mode", "auto"),
                                      config.task.encoder.name)

  def encode(theta, enc_stats, images, batch_idx):
    if encoder_mode == "batched":
      zeros = jax.tree.map(jnp.zeros_like, enc_stats)
      apply = lambda x: encoder.apply({"params": theta, "batch_stats": zeros}, x, True)
      h, updates = jax.vmap(apply)(images[batch_idx])  # statistics per inner batch
      return h, _running_stats_after(enc_stats, updates, unroll)

    def one(stats, idx):
      h, stats = encoder.apply({"params": theta, "batch_stats": stats}, images[idx], True)
      return stats, h
    stats, h = jax.lax.scan(jax.checkpoint(one), enc_stats, batch_idx, unroll=unroll)
    return h, stats
  return encode


def make_diversity_grad(encoder: models.Model, config) -> Callable:
  """The diversity term of J alone, which does not pass through the learners' unroll, and its
  exact gradient:
  `(theta, enc_stats, directions_all, images, batch_idx) -> ((coef * D, (D, new_enc_stats)),
  grads)`, the output of `jax.value_and_grad(..., has_aux=True)`, with D the diversity averaged
  over the inner batches `batch_idx` `[T, B]`.

  A forward scan over the inner batches differentiates each batch's term and adds the
  gradients up, so nothing is kept per inner batch (reverse mode through a vmap over all T
  would hold, for uniformity, `[T, B, B]` pairwise distances and their residuals).
  """
  diversity = make_diversity(config.task)
  coef = config.task.diversity_coef

  def diversity_grad(theta, enc_stats, directions_all, images, batch_idx):
    def batch_term(theta, stats, idx):
      h, stats = encoder.apply({"params": theta, "batch_stats": stats}, images[idx], True)
      return diversity(h, directions_all), stats

    def one(carry, idx):
      stats, total, grads = carry
      (value, stats), g = jax.value_and_grad(batch_term, has_aux=True)(theta, stats, idx)
      return (stats, total + value, jax.tree.map(jnp.add, grads, g)), None

    dtype = jax.tree.leaves(theta)[0].dtype
    carry = (enc_stats, jnp.zeros((), dtype), jax.tree.map(jnp.zeros_like, theta))
    (enc_stats, total, grads), _ = jax.lax.scan(one, carry, batch_idx)
    num_steps = batch_idx.shape[0]
    value = total / num_steps
    grads = jax.tree.map(lambda g: (coef / num_steps) * g, grads)
    return (coef * value, (value, enc_stats)), grads
  return diversity_grad


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
  inner, task = config.inner, config.task
  optimizer = optimizers.make_optimizer(
      inner.optimizer, learning_rate=inner.learning_rate, momentum=inner.momentum,
      eps_root=inner.eps_root)
  num_learners = inner.num_learners
  truncation = config.meta.truncation_length if config.meta.estimator == "truncated" else None
  remat_block = int(inner.get("remat_block", 0))
  unroll = True if unroll_scans else 1  # jax.lax.scan's default: a loop
  diversity = make_diversity(task)
  encode = make_encode(encoder, config, unroll_scans=unroll_scans)
  streamed = config.meta.estimator != "full"  # see "Where the soft labels are computed"

  def learners(learner_vars, images, batch_idx, heldout_x, num_tasks) -> inner_loop.Unroll:
    flat = _flatten_learners(learner_vars, num_tasks, num_learners)
    kwargs = dict(num_tasks=num_tasks, num_learners=num_learners, data_mode=inner.data_mode)
    # A window of a persistent unroll continues the learners' weights: the sample-space form
    # holds the input layer as a function of the whole unroll's inputs, so it can not.
    if not persistent and inner_loop.use_sample_space(learner, inner,
                                                      int(np.prod(images.shape[1:]))):
      return inner_loop.sample_space(learner, inner.learning_rate, flat["params"],
                                     flat.get("batch_stats", {}), images, batch_idx, heldout_x,
                                     **kwargs)
    return inner_loop.weight_space(learner, optimizer, flat["params"],
                                   flat.get("batch_stats", {}), images, heldout_x, **kwargs)

  def initial_carry(steps, start, reset):
    """The learners' fresh state, or (`persistent`) `start` where the traced `reset` is false."""
    if start is None:
      return steps.carry
    return jax.tree.map(lambda fresh, kept: jnp.where(reset, fresh, kept), steps.carry, start)

  def learner_labels(probs, num_learners):
    """Each learner's soft labels `[..., K, b, C]` from the tasks' `[..., M, B, C]` ('meta': its
    slice of the batch; 'full': all of it)."""
    if inner.data_mode == "meta":
      return probs.reshape(probs.shape[:-3] + (probs.shape[-3] * num_learners, -1,
                                               probs.shape[-1]))
    return jnp.repeat(probs, num_learners, axis=-3)

  def outputs(steps, carry, inner_loss, num_tasks, diversity_value, balance, encoder_batch_stats):
    """J, metrics and new state from the learners after the unroll (`inner_loss` `[T, K]`)."""
    num_steps = inner_loss.shape[0]
    inner_loss = inner_loss.reshape(num_steps, num_tasks, num_learners).mean(axis=-1)  # [T, M]
    # Learners stay in training mode (batch statistics) on the held-out batch, as the original.
    logits = steps.heldout_logits(carry)  # [K, B_h, C]
    logits = logits.reshape((num_tasks, num_learners) + logits.shape[1:])  # [M, L, B_h, C]
    as_loss = symmetric_agreement_loss(logits)  # [M]
    loss = as_loss.mean() + task.diversity_coef * diversity_value
    metrics = {
        "loss": loss,
        "as_loss": as_loss,
        "meta_as": agreement.pairwise_agreement(jnp.argmax(logits, -1)),  # [M] hard agreement
        "diversity": diversity_value,
        "inner_loss_first": inner_loss[0],  # [M]
        "inner_loss_last": inner_loss[-1],  # [M]
        "label_balance": balance,
    }
    return loss, (metrics, encoder_batch_stats, carry)

  def streamed_loss(theta, encoder_batch_stats, learner_vars, directions, directions_all,
                    images, batch_idx, heldout_x, start=None, reset=None):
    """`unrolled_loss` with the soft labels made inside the learners' scan (docstring)."""
    num_tasks, num_steps = directions.shape[0], batch_idx.shape[0]
    steps = learners(learner_vars, images, batch_idx, heldout_x, num_tasks)
    carry0 = initial_carry(steps, start, reset)

    def make_step(theta):
      def step(carry, xs):
        learners_carry, stats, diversity_sum, balance_sum = carry
        t, idx = xs
        h, stats = encoder.apply({"params": theta, "batch_stats": stats}, images[idx], True)
        probs = jax.nn.softmax(task_network.task_logits(h, directions, task.temperature),
                               -1)  # [M, B, C]
        learners_carry, loss = steps.step(learners_carry,
                                          (t, idx, learner_labels(probs, num_learners)))
        diversity_sum = diversity_sum + diversity(h, directions_all)
        balance_sum = balance_sum + jnp.mean(probs[..., 1] > 0.5, axis=-1,
                                             dtype=balance_sum.dtype)  # [M]
        return (learners_carry, stats, diversity_sum, balance_sum), loss
      return step

    dtype = jax.tree.leaves(theta)[0].dtype
    carry = (carry0, encoder_batch_stats, jnp.zeros((), dtype), jnp.zeros((num_tasks,), dtype))
    xs = (jnp.arange(num_steps), batch_idx)
    scan = lambda step, carry, xs: inner_loop.scan_steps(
        step, carry, xs, remat=inner.remat, remat_block=remat_block, unroll=unroll)
    if truncation is not None and truncation < num_steps:
      # The first T-K steps see a constant task network: a forward scan, nothing of it is
      # stored for the backward pass; the meta-gradient flows through the last K steps (and
      # the diversity term of their batches only, as in the batched form).
      split = num_steps - truncation
      carry, loss_head = scan(make_step(jax.lax.stop_gradient(theta)), carry,
                              jax.tree.map(lambda a: a[:split], xs))
      carry, loss_tail = scan(make_step(theta), jax.lax.stop_gradient(carry),
                              jax.tree.map(lambda a: a[split:], xs))
      inner_loss = jnp.concatenate([loss_head, loss_tail])
    else:
      carry, inner_loss = scan(make_step(theta), carry, xs)  # inner_loss [T, K]
    learners_carry, encoder_batch_stats, diversity_sum, balance_sum = carry
    return outputs(steps, learners_carry, inner_loss, num_tasks, diversity_sum / num_steps,
                   balance_sum / num_steps, encoder_batch_stats)

  def unrolled_loss(theta, encoder_batch_stats, learner_vars, directions, directions_all,
                    images, batch_idx, heldout_x, start=None, reset=None):
    num_tasks, num_steps = directions.shape[0], batch_idx.shape[0]
    # `truncated` with K >= T is `full`'s computation, to the bit.
    if streamed and (truncation is None or truncation < num_steps):
      return streamed_loss(theta, encoder_batch_stats, learner_vars, directions,
                           directions_all, images, batch_idx, heldout_x, start, reset)
    h, encoder_batch_stats = encode(theta, encoder_batch_stats, images, batch_idx)
    probs = jax.nn.softmax(jax.vmap(lambda e: task_network.task_logits(
        e, directions, task.temperature))(h), -1)  # [T, M, B, C]
    steps = learners(learner_vars, images, batch_idx, heldout_x, num_tasks)
    carry0 = initial_carry(steps, start, reset)
    xs = (jnp.arange(num_steps), batch_idx, learner_labels(probs, num_learners))
    carry, inner_loss = inner_loop.scan_steps(steps.step, carry0, xs, remat=inner.remat,
                                              remat_block=remat_block, unroll=unroll)
    diversity_value = jax.vmap(diversity, in_axes=(0, None))(h, directions_all).mean()
    balance = jnp.mean(probs[..., 1] > 0.5, axis=(0, 2))  # [M] fraction of label 1
    return outputs(steps, carry, inner_loss, num_tasks, diversity_value, balance,
                   encoder_batch_stats)

  if persistent:
    return unrolled_loss

  def meta_loss(*args, **kwargs):
    loss, (metrics, encoder_batch_stats, _) = unrolled_loss(*args, **kwargs)
    return loss, (metrics, encoder_batch_stats)

  return meta_loss


OBJECTIVE = estimators.Objective(make_meta_loss, make_diversity_grad, _flatten_learners)


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

