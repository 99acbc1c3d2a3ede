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

from task_discovery import agreement
from task_discovery import models
from task_discovery import optimizers
from task_discovery import task_network


def soft_cross_entropy(target_probs: jax.Array, logits: jax.Array) -> jax.Array:
  """`mean_x CE(target_probs -> log_softmax(logits))`, over all leading axes but the last."""
  return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1).mean(axis=-1)


def symmetric_agreement_loss(logits: jax.Array) -> jax.Array:
  """Differentiable disagreement of L learners: `[..., L, B, C]` logits -> `[...]`.

  Mean over learner pairs i < j of `0.5 * [CE(softmax z_i -> z_j) + CE(softmax z_j -> z_i)]`,
  gradients through both sides (no stop-gradient), as the original.
  """
  num_learners = logits.shape[-3]
  probs = jax.nn.softmax(logits, axis=-1)
  i, j = np.triu_indices(num_learners, k=1)
  ce_ij = soft_cross_entropy(probs[..., i, :, :], logits[..., j, :, :])
  ce_ji = soft_cross_entropy(probs[..., j, :, :], logits[..., i, :, :])
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


def make_meta_loss(encoder: models.Model, learner: models.Model, config) -> Callable:
  """Builds the meta-objective for `config` (sections `task`, `inner`, `meta`).

  Returns:
    `meta_loss(theta, encoder_batch_stats, learner_vars, directions, images, batch_idx,
    heldout_x) -> (J, (metrics, new_encoder_batch_stats))` where
    `learner_vars` has leading axes `[M, L]`, `directions` is `[M, d]`, `batch_idx` is
    `[T, B]` and `heldout_x` is `[B_h, H, W, C]`. J = mean AS loss over the M tasks plus the
    diversity term.
  """
  inner, task = config.inner, config.task
  optimizer = optimizers.make_optimizer(
      inner.optimizer, learning_rate=inner.learning_rate, momentum=inner.momentum,
      eps_root=inner.eps_root)
  num_learners = inner.num_learners
  truncation = config.meta.truncation_length if config.meta.estimator == "truncated" else None

  def learner_loss(params, batch_stats, x, target_probs):
    logits, new_batch_stats = learner.apply(
        {"params": params, "batch_stats": batch_stats}, x, True)
    return soft_cross_entropy(target_probs, logits), new_batch_stats

  def learner_step(params, batch_stats, opt_state, x, target_probs):
    (loss, batch_stats), grads = jax.value_and_grad(learner_loss, has_aux=True)(
        params, batch_stats, x, target_probs)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  if inner.data_mode == "meta":  # learner l trains on its own slice of the batch
    over_learners = jax.vmap(learner_step, in_axes=(0, 0, 0, 0, 0))
  else:  # every learner sees the whole batch
    over_learners = jax.vmap(learner_step, in_axes=(0, 0, 0, None, None))
  over_tasks = jax.vmap(over_learners, in_axes=(0, 0, 0, None, 0))

  def diversity(h, directions_all):
    if task.diversity == "uniformity":
      return task_network.uniformity_loss(h, task.uniformity_t)
    if task.diversity == "mutual_information":
      return task_network.mutual_information_loss(h, directions_all, task.temperature)
    return jnp.zeros((), h.dtype)

  def make_step(theta, images, directions, directions_all):
    def step(carry, idx):
      params, batch_stats, opt_state, enc_stats = carry
      x = images[idx]
      h, enc_stats = encoder.apply({"params": theta, "batch_stats": enc_stats}, x, True)
      probs = jax.nn.softmax(task_network.task_logits(h, directions, task.temperature), -1)
      if inner.data_mode == "meta":
        x = x.reshape((num_learners, -1) + x.shape[1:])  # [L, B/L, ...]
        probs = probs.reshape(probs.shape[0], num_learners, -1, probs.shape[-1])
      params, batch_stats, opt_state, loss = over_tasks(params, batch_stats, opt_state, x, probs)
      balance = jnp.mean(probs[..., 1] > 0.5, axis=tuple(range(1, probs.ndim - 1)))
      out = {"diversity": diversity(h, directions_all), "inner_loss": loss.mean(axis=-1),
             "label_balance": balance}
      return (params, batch_stats, opt_state, enc_stats), out
    return jax.checkpoint(step) if inner.remat else step

  def meta_loss(theta, encoder_batch_stats, learner_vars, directions, directions_all, images,
                batch_idx, heldout_x):
    params, batch_stats = learner_vars["params"], learner_vars.get("batch_stats", {})
    opt_state = jax.vmap(jax.vmap(optimizer.init))(params)
    carry = (params, batch_stats, opt_state, encoder_batch_stats)
    if truncation is not None and truncation < batch_idx.shape[0]:
      # Truncated backprop: the first T-K steps run without gradient (nothing is stored for
      # them); the meta-gradient flows through the last K steps only.
      frozen = jax.lax.stop_gradient(theta)
      head = make_step(frozen, images, directions, directions_all)
      carry, out_head = jax.lax.scan(head, carry, batch_idx[:-truncation])
      carry = jax.lax.stop_gradient(carry)
      tail = make_step(theta, images, directions, directions_all)
      carry, out_tail = jax.lax.scan(tail, carry, batch_idx[-truncation:])
      out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out_head, out_tail)
    else:
      step = make_step(theta, images, directions, directions_all)
      carry, out = jax.lax.scan(step, carry, batch_idx)
    params, batch_stats, _, encoder_batch_stats = carry
    # Learners stay in training mode (batch statistics) on the held-out batch, as the original.
    apply_one = lambda p, s: learner.apply({"params": p, "batch_stats": s}, heldout_x, True)[0]
    logits = jax.vmap(jax.vmap(apply_one))(params, batch_stats)  # [M, L, B_h, C]
    as_loss = symmetric_agreement_loss(logits)  # [M]
    diversity_value = out["diversity"].mean()
    loss = as_loss.mean() + task.diversity_coef * diversity_value
    metrics = {
        "loss": loss,
        "as_loss": as_loss,
        "meta_as": agreement.pairwise_agreement(jnp.argmax(logits, -1)),  # [M] hard agreement
        "diversity": diversity_value,
        "inner_loss_first": out["inner_loss"][0],  # [M]
        "inner_loss_last": out["inner_loss"][-1],  # [M]
        "label_balance": out["label_balance"].mean(axis=0),  # [M] fraction of label 1
    }
    return loss, (metrics, encoder_batch_stats)

  return meta_loss


def global_norm(tree) -> jax.Array:
  """L2 norm of all leaves together (optax renamed its helper across releases)."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def task_ids_for_step(step: jax.Array, meta_batch_size: int, num_tasks: int) -> jax.Array:
  """Tasks of a meta-step: the original cycles over the d tasks one per step; a meta-batch
  takes the next `meta_batch_size` of the cycle."""
  return (step * meta_batch_size + jnp.arange(meta_batch_size)) % num_tasks


def make_meta_step(encoder: models.Model, learner: models.Model, config, *,
                   shard_tasks: Callable = lambda tree: tree) -> Callable:
  """`meta_step(state, data) -> (state, metrics)`, pure; `jax.jit` it where the loop is built.

  `shard_tasks` is applied to the learners' variables (leading axis: the meta-batch), e.g.
  `sharding.constrain_along_data(mesh)` to split the tasks of a meta-batch over devices.

  `state` is a dict pytree: step, params, batch_stats (encoder), opt_state, learner_init
  (`[L, ...]` fixed learner variables), directions (`[d, d]`), key (root PRNG key data).
  `data` is a dict: images `[N, H, W, C]`, train_idx `[n]`, heldout_idx `[m]`.
  Keys are `fold_in(root, step)`, so a resumed run draws the same numbers.
  """
  meta_loss = make_meta_loss(encoder, learner, config)
  outer = optimizers.make_optimizer(config.meta.optimizer,
                                    learning_rate=config.meta.learning_rate)
  inner, meta = config.inner, config.meta
  grad_fn = jax.value_and_grad(meta_loss, has_aux=True)

  def meta_step(state, data):
    key = jax.random.fold_in(jax.random.wrap_key_data(state["key"]), state["step"])
    data_key, init_key, heldout_key = jax.random.split(key, 3)
    task_ids = task_ids_for_step(state["step"], meta.meta_batch_size, config.task.num_tasks)
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
    (loss, (metrics, batch_stats)), grads = grad_fn(
        state["params"], state["batch_stats"], learner_vars, directions, state["directions"],
        data["images"], batch_idx, heldout_x)
    updates, opt_state = outer.update(grads, state["opt_state"], state["params"])
    new_state = dict(state, step=state["step"] + 1,
                     params=optax.apply_updates(state["params"], updates),
                     batch_stats=batch_stats, opt_state=opt_state)
    metrics = dict(metrics, grad_norm=global_norm(grads), task_ids=task_ids)
    return new_state, metrics

  return meta_step


def init_state(encoder: models.Model, learner: models.Model, config, key: jax.Array) -> dict:
  """Initial discovery state (see `make_meta_step`)."""
  enc_key, learner_key = jax.random.split(jax.random.fold_in(key, 0))
  variables = encoder.init(enc_key)
  learner_init = jax.vmap(learner.init)(jax.random.split(learner_key, config.inner.num_learners))
  outer = optimizers.make_optimizer(config.meta.optimizer,
                                    learning_rate=config.meta.learning_rate)
  return {
      "step": jnp.zeros((), jnp.int32),
      "params": variables["params"],
      "batch_stats": variables.get("batch_stats", {}),
      "opt_state": outer.init(variables["params"]),
      "learner_init": learner_init,
      "directions": jnp.asarray(task_network.haar_directions(config.task.num_tasks,
                                                             config.task.rotation_seed)),
      "key": jax.random.key_data(key),
  }


def make_labeler(encoder: models.Model, *, batch_size: int = 1024) -> Callable:
  """`label(params, batch_stats, directions, images) -> scores [d, N]` with the encoder in eval
  mode (running statistics). Hard labels are `task_network.hard_labels(scores)`."""

  @jax.jit
  def scores_of(params, batch_stats, directions, x):
    h, _ = encoder.apply({"params": params, "batch_stats": batch_stats}, x, False)
    return task_network.task_scores(h, directions)

  def label(params, batch_stats, directions, images):
    chunks = [scores_of(params, batch_stats, directions, images[i:i + batch_size])
              for i in range(0, images.shape[0], batch_size)]
    return jnp.concatenate(chunks, axis=-1)

  return label

