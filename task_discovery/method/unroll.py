"""The unroll inside the meta-objective (`meta.make_meta_loss`), as named steps: the task
network's training-mode forwards over the T inner batches and its diversity term, the learners
of a meta-batch, their soft labels, and the unroll in its two forms, with the soft labels made
before the learners' scan (`batched_unroll`) or inside it (`streamed_unroll`).

Shapes as in `meta`: M tasks in the meta-batch, L learners per task, K = M * L learners on one
vmapped axis (`inner_loop`), B images per inner batch, T inner steps, C = 2 classes.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from task_discovery import models
from task_discovery.method import inner_loop
from task_discovery.method import optimizers
from task_discovery.models import task_network


def flatten_learners(tree, num_tasks: int, num_learners: int):
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
  `unroll_scans`: see `meta.make_meta_loss`."""
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


class LossSetup(NamedTuple):
  """What `meta.make_meta_loss` derives from the config once; the steps below read it.

  Attributes:
    encoder, learner: the task network's encoder and the learners' network.
    optimizer: the learners' optax optimiser (`inner.optimizer`).
    inner: the config's `inner` section.
    temperature: `task.temperature` of the task logits.
    num_learners: L, `inner.num_learners`.
    truncation: K for `meta.estimator='truncated'`, else None.
    remat_block: `inner.remat_block` (0: off).
    unroll: `jax.lax.scan`'s `unroll` argument (True: `unroll_scans`, else 1, a loop).
    diversity: `diversity(h [B, d], directions_all [d, d]) -> scalar` (`make_diversity`).
    encode: the task network on every inner batch (`make_encode`).
    persistent: the unroll is one window of a longer one (`estimators.pes`).
  """
  encoder: models.Model
  learner: models.Model
  optimizer: optax.GradientTransformation
  inner: Any
  temperature: float
  num_learners: int
  truncation: int | None
  remat_block: int
  unroll: int | bool
  diversity: Callable
  encode: Callable
  persistent: bool


def make_setup(encoder: models.Model, learner: models.Model, config, *, persistent: bool,
               unroll_scans: bool) -> LossSetup:
  """The `LossSetup` of `config` (sections `task`, `inner`, `meta`)."""
  inner = config.inner
  optimizer = optimizers.make_optimizer(
      inner.optimizer, learning_rate=inner.learning_rate, momentum=inner.momentum,
      eps_root=inner.eps_root)
  truncation = config.meta.truncation_length if config.meta.estimator == "truncated" else None
  return LossSetup(
      encoder=encoder, learner=learner, optimizer=optimizer, inner=inner,
      temperature=config.task.temperature, num_learners=inner.num_learners,
      truncation=truncation, remat_block=int(inner.get("remat_block", 0)),
      unroll=True if unroll_scans else 1,  # jax.lax.scan's default: a loop
      diversity=make_diversity(config.task),
      encode=make_encode(encoder, config, unroll_scans=unroll_scans), persistent=persistent)


class UnrollResult(NamedTuple):
  """The learners after the unroll and what the unroll measured on the way.

  Attributes:
    steps: the learners' `inner_loop.Unroll` (its `heldout_logits` reads `carry`).
    carry: the learners' state after the last step (leading axis K).
    inner_loss: `[T, K]` each learner's training loss at each step.
    diversity: the diversity term, averaged over the inner batches.
    balance: `[M]` fraction of images with soft label 1 above 0.5, over the inner batches.
    encoder_batch_stats: the task network's running statistics after the unroll.
  """
  steps: inner_loop.Unroll
  carry: Any
  inner_loss: jax.Array
  diversity: jax.Array
  balance: jax.Array
  encoder_batch_stats: Any


def make_learners(setup: LossSetup, learner_vars, images, batch_idx, heldout_x,
                  num_tasks: int) -> inner_loop.Unroll:
  """The learners of a meta-batch (`learner_vars` leaves `[M, L, ...]`) as an `Unroll`, in
  sample space where `inner.learner_updates` allows it, else in weight space."""
  inner, num_learners = setup.inner, setup.num_learners
  flat = flatten_learners(learner_vars, num_tasks, num_learners)
  kwargs = dict(num_tasks=num_tasks, num_learners=num_learners, data_mode=inner.data_mode)
  # A window of a persistent unroll continues the learners' weights: the sample-space form
  # holds the input layer as a function of the whole unroll's inputs, so it can not.
  if not setup.persistent and inner_loop.use_sample_space(setup.learner, inner,
                                                          int(np.prod(images.shape[1:]))):
    return inner_loop.sample_space(setup.learner, inner.learning_rate, flat["params"],
                                   flat.get("batch_stats", {}), images, batch_idx, heldout_x,
                                   **kwargs)
  return inner_loop.weight_space(setup.learner, setup.optimizer, flat["params"],
                                 flat.get("batch_stats", {}), images, heldout_x,
                                 microbatch_size=int(inner.get("microbatch_size", 0)), **kwargs)


def initial_carry(steps: inner_loop.Unroll, start, reset):
  """The learners' fresh state, or (`persistent`) `start` where the traced `reset` is false."""
  if start is None:
    return steps.carry
  return jax.tree.map(lambda fresh, kept: jnp.where(reset, fresh, kept), steps.carry, start)


def learner_labels(probs: jax.Array, data_mode: str, num_learners: int) -> jax.Array:
  """Each learner's soft labels `[..., K, b, C]` from the tasks' `[..., M, B, C]` ('meta': its
  slice of the batch; 'full': all of it)."""
  if data_mode == "meta":
    return probs.reshape(probs.shape[:-3] + (probs.shape[-3] * num_learners, -1,
                                             probs.shape[-1]))
  return jnp.repeat(probs, num_learners, axis=-3)


def batched_unroll(setup: LossSetup, theta, encoder_batch_stats, learner_vars, directions,
                   directions_all, images, batch_idx, heldout_x, start=None,
                   reset=None) -> UnrollResult:
  """The unroll with a constant task network (`full`): its soft labels of all T inner batches
  come first (`setup.encode`), then the learners' scan carries only the learners' state."""
  num_tasks, num_steps = directions.shape[0], batch_idx.shape[0]
  h, encoder_batch_stats = setup.encode(theta, encoder_batch_stats, images, batch_idx)
  probs = jax.nn.softmax(jax.vmap(lambda e: task_network.task_logits(
      e, directions, setup.temperature))(h), -1)  # [T, M, B, C]
  steps = make_learners(setup, learner_vars, images, batch_idx, heldout_x, num_tasks)
  carry0 = initial_carry(steps, start, reset)
  xs = (jnp.arange(num_steps), batch_idx,
        learner_labels(probs, setup.inner.data_mode, setup.num_learners))
  carry, inner_loss = inner_loop.scan_steps(steps.step, carry0, xs, remat=setup.inner.remat,
                                            remat_block=setup.remat_block, unroll=setup.unroll)
  diversity_value = jax.vmap(setup.diversity, in_axes=(0, None))(h, directions_all).mean()
  balance = jnp.mean(probs[..., 1] > 0.5, axis=(0, 2))  # [M] fraction of label 1
  return UnrollResult(steps, carry, inner_loss, diversity_value, balance, encoder_batch_stats)


def _streamed_step(setup: LossSetup, steps: inner_loop.Unroll, theta, images, directions,
                   directions_all) -> Callable:
  """One scanned step of `streamed_unroll` with the task network's parameters `theta`: the
  encoder on the step's inner batch, its soft labels, one learners' step, the diversity term."""
  def step(carry, xs):
    learners_carry, stats, diversity_sum, balance_sum = carry
    t, idx = xs
    h, stats = setup.encoder.apply({"params": theta, "batch_stats": stats}, images[idx], True)
    probs = jax.nn.softmax(task_network.task_logits(h, directions, setup.temperature),
                           -1)  # [M, B, C]
    learners_carry, loss = steps.step(
        learners_carry,
        (t, idx, learner_labels(probs, setup.inner.data_mode, setup.num_learners)))
    diversity_sum = diversity_sum + setup.diversity(h, directions_all)
    balance_sum = balance_sum + jnp.mean(probs[..., 1] > 0.5, axis=-1,
                                         dtype=balance_sum.dtype)  # [M]
    return (learners_carry, stats, diversity_sum, balance_sum), loss
  return step


def streamed_unroll(setup: LossSetup, theta, encoder_batch_stats, learner_vars, directions,
                    directions_all, images, batch_idx, heldout_x, start=None,
                    reset=None) -> UnrollResult:
  """The unroll with the soft labels made inside the learners' scan (`truncated` with K < T,
  `es`, `pes`): the encoder's running statistics and the diversity sum ride in the carry, so
  nothing of size `[T, B, ...]` exists and memory does not grow with T."""
  num_tasks, num_steps = directions.shape[0], batch_idx.shape[0]
  steps = make_learners(setup, learner_vars, images, batch_idx, heldout_x, num_tasks)
  carry0 = initial_carry(steps, start, reset)
  make_step = lambda theta: _streamed_step(setup, steps, theta, images, directions,
                                           directions_all)
  dtype = jax.tree.leaves(theta)[0].dtype
  carry = (carry0, encoder_batch_stats, jnp.zeros((), dtype), jnp.zeros((num_tasks,), dtype))
  xs = (jnp.arange(num_steps), batch_idx)
  scan = lambda step, carry, xs: inner_loop.scan_steps(
      step, carry, xs, remat=setup.inner.remat, remat_block=setup.remat_block,
      unroll=setup.unroll)
  if setup.truncation is not None and setup.truncation < num_steps:
    # The first T-K steps see a constant task network: a forward scan, nothing of it is
    # stored for the backward pass; the meta-gradient flows through the last K steps (and
    # the diversity term of their batches only, as in the batched form).
    split = num_steps - setup.truncation
    carry, loss_head = scan(make_step(jax.lax.stop_gradient(theta)), carry,
                            jax.tree.map(lambda a: a[:split], xs))
    carry, loss_tail = scan(make_step(theta), jax.lax.stop_gradient(carry),
                            jax.tree.map(lambda a: a[split:], xs))
    inner_loss = jnp.concatenate([loss_head, loss_tail])
  else:
    carry, inner_loss = scan(make_step(theta), carry, xs)  # inner_loss [T, K]
  learners_carry, encoder_batch_stats, diversity_sum, balance_sum = carry
  return UnrollResult(steps, learners_carry, inner_loss, diversity_sum / num_steps,
                      balance_sum / num_steps, encoder_batch_stats)
