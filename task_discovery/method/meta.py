"""The differentiable agreement score and the meta-step, as pure functions
(docs/method.md#the-differentiable-agreement-score, docs/method.md#the-meta-step).

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

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from task_discovery import keys
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
                     diversity_coef: float) -> tuple[jax.Array, estimators.LossAux]:
  """J, and its `LossAux` (metrics, new encoder running statistics, learners' final state),
  from the learners after the unroll."""
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
  return loss, estimators.LossAux(metrics, result.encoder_batch_stats, carry)


def _make_unrolled_loss(encoder: models.Model, learner: models.Model, config, *,
                        persistent: bool, unroll_scans: bool) -> Callable:
  setup = unroll.make_setup(encoder, learner, config, persistent=persistent,
                            unroll_scans=unroll_scans)
  streamed = config.meta.estimator != "full"  # see make_meta_loss: "Where the soft labels..."
  diversity_coef = config.task.diversity_coef

  def unrolled_loss(theta, encoder_batch_stats, inputs: estimators.UnrollInputs, start, reset):
    num_tasks, num_steps = inputs.directions.shape[0], inputs.batch_idx.shape[0]
    # `truncated` with K >= T is `full`'s computation, to the bit.
    if streamed and (setup.truncation is None or setup.truncation < num_steps):
      form = unroll.streamed_unroll
    else:
      form = unroll.batched_unroll
    result = form(setup, theta, encoder_batch_stats, inputs.learner_vars, inputs.directions,
                  inputs.directions_all, inputs.images, inputs.batch_idx, inputs.heldout_x,
                  start, reset)
    return loss_and_metrics(result, num_tasks, setup.num_learners, diversity_coef)

  return unrolled_loss


def make_meta_loss(encoder: models.Model, learner: models.Model, config, *,
                   unroll_scans: bool = False) -> Callable:
  """The meta-objective of `config` (sections `task`, `inner`, `meta`):
  `meta_loss(theta, encoder_batch_stats, inputs: estimators.UnrollInputs) -> (J, LossAux)`.

  The learners start from `inputs.learner_vars` (leading axes `[M, L]`) and train on the T
  batches of `inputs.batch_idx`; J = mean AS loss over the M tasks plus the diversity term.
  `inputs.window` is not read.

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
  """
  unrolled_loss = _make_unrolled_loss(encoder, learner, config, persistent=False,
                                      unroll_scans=unroll_scans)

  def meta_loss(theta, encoder_batch_stats, inputs: estimators.UnrollInputs):
    return unrolled_loss(theta, encoder_batch_stats, inputs, None, None)

  return meta_loss


def make_window_loss(encoder: models.Model, learner: models.Model, config) -> Callable:
  """The objective of one window of a longer unroll (`estimators.pes`):
  `window_loss(theta, encoder_batch_stats, inputs, start, reset) -> (J, LossAux)`.

  The learners start from `start` (the weight-space state of `inner_loop.weight_space`,
  leading axis M * L, as `LossAux.carry` returns it) or, where the traced bool `reset` is
  true, from `inputs.learner_vars`; `inputs.batch_idx` holds the window's steps only.
  """
  return _make_unrolled_loss(encoder, learner, config, persistent=True, unroll_scans=False)


OBJECTIVE = estimators.Objective(make_meta_loss, make_window_loss,
                                 unroll.make_diversity_grad, unroll.flatten_learners)


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
  """The key of `task_ids_for_step` for `meta.task_order`: None for 'cyclic', the root's
  `keys.Stream.TASK_ORDER` for 'shuffled'."""
  if task_order == "cyclic":
    return None
  if task_order != "shuffled":
    raise ValueError(f"meta.task_order={task_order!r} is not one of 'shuffled', 'cyclic'")
  return keys.stream(root, keys.Stream.TASK_ORDER)


class DiscoveryData(NamedTuple):
  """The dataset as the meta-step reads it (device arrays; batches are gathered by index
  inside the compiled step).

  Attributes:
    images: `[N, H, W, C]` normalised images.
    train_idx: `[n]` the images the learners train on.
    heldout_idx: `[m]` the images of the differentiable AS's held-out batch (`discovery`
      passes the meta-validation part).
  """
  images: jax.Array
  train_idx: jax.Array
  heldout_idx: jax.Array


class MetaState(NamedTuple):
  """The discovery state: the same fields for every config.

  Attributes:
    step: int32 scalar, meta-steps done.
    params, batch_stats: the task network's encoder (parameters theta, running statistics).
    opt_state: the outer optimiser's state.
    learner_init: the fixed initial learners (leaves `[L, ...]`), used unless
      `inner.random_init`.
    directions: `[d, d]` the task directions (fixed).
    key: the run's root key as raw `uint32` data (checkpoints hold arrays of numbers;
      `keys.wrap` gives the typed key back).
    estimator: the gradient estimator's persistent state (`pes`); `{}` for the others.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  learner_init: Any
  directions: jax.Array
  key: jax.Array
  estimator: Any

  def to_checkpoint(self) -> dict:
    """The state as the dict checkpoints store. An empty `estimator` is left out, so the
    checkpoints of the estimators without state keep the layout they always had."""
    tree = self._asdict()
    if not jax.tree.leaves(tree["estimator"]):
      del tree["estimator"]
    return tree

  @classmethod
  def from_checkpoint(cls, tree: dict) -> "MetaState":
    """The inverse of `to_checkpoint` (also for checkpoints written before `estimator`)."""
    return cls(**{"estimator": {}, **tree})


class InitKeys(NamedTuple):
  """The keys of the initial state (`keys.Stream.ENCODER_INIT`, `LEARNER_INIT`)."""
  encoder: jax.Array
  learners: jax.Array


def init_keys(root: jax.Array) -> InitKeys:
  return InitKeys(keys.stream(root, keys.Stream.ENCODER_INIT),
                  keys.stream(root, keys.Stream.LEARNER_INIT))


class StepKeys(NamedTuple):
  """The keys of meta-step `step` that runs unroll `unroll_index`: data, learners and
  held-out batch per unroll, perturbations per meta-step (`keys.Stream`)."""
  data: jax.Array
  learners: jax.Array
  heldout: jax.Array
  perturbations: jax.Array


def step_keys(root: jax.Array, step, unroll_index) -> StepKeys:
  return StepKeys(keys.stream(root, keys.Stream.STEP_DATA, unroll_index),
                  keys.stream(root, keys.Stream.STEP_LEARNERS, unroll_index),
                  keys.stream(root, keys.Stream.STEP_HELDOUT, unroll_index),
                  keys.stream(root, keys.Stream.PERTURBATIONS, step))


class MetaStep(NamedTuple):
  """The meta-step as a pair of pure functions built together from one config (the shape of
  optax's `GradientTransformation`); `jax.jit` `update` where the loop is built.

  Attributes:
    init: `init(root_key) -> MetaState`, the initial state of a run (typed root key).
    update: `update(state, data: DiscoveryData) -> (state, metrics)`.
    unroll_inputs: `unroll_inputs(state, data) -> (estimators.UnrollInputs, task_ids, key)`,
      what `update` feeds the estimator (and the perturbation key): for analyses that call the
      estimator themselves.
    estimator: the gradient estimator both use.
  """
  init: Callable
  update: Callable
  unroll_inputs: Callable
  estimator: estimators.GradientEstimator


def make_meta_step(encoder: models.Model, learner: models.Model, config, *,
                   shard_tasks: Callable = lambda tree: tree,
                   unroll_scans: bool = False) -> MetaStep:
  """The `MetaStep` of `config`: the outer optimiser and the gradient estimator
  (`meta.estimator`) are built here, once, for both functions.

  `shard_tasks` is applied to the learners' variables (leading axis: the meta-batch), e.g.
  `sharding.constrain_along_data(mesh)` to split the tasks of a meta-batch over devices.
  Unroll u (meta-step u, or meta-steps u W .. u W + W - 1 for `pes`'s W windows) draws its
  tasks, data and learner initialisation from the streams of `step_keys(root, s, u)`, a
  function of the root key and the step alone, so a resumed run draws the same numbers.
  `unroll_scans`: see `make_meta_loss`.
  """
  outer = optimizers.make_optimizer(config.meta.optimizer,
                                    learning_rate=config.meta.learning_rate)
  inner, meta_config = config.inner, config.meta
  num_tasks, meta_batch = config.task.num_tasks, meta_config.meta_batch_size
  task_order = meta_config.get("task_order", "shuffled")
  estimator = make_estimator(encoder, learner, config, shard_pairs=shard_tasks,
                             unroll_scans=unroll_scans)
  num_windows = estimator.num_windows

  def broadcast_to_tasks(learner_init):
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (meta_batch,) + a.shape), learner_init)

  def init(root: jax.Array) -> MetaState:
    k = init_keys(root)
    variables = encoder.init(k.encoder)
    learner_init = jax.vmap(learner.init)(jax.random.split(k.learners, inner.num_learners))
    return MetaState(
        step=jnp.zeros((), jnp.int32),
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        opt_state=outer.init(variables["params"]),
        learner_init=learner_init,
        directions=jnp.asarray(task_directions(config.task)),
        key=jax.random.key_data(root),
        estimator=estimator.init_state(variables["params"], broadcast_to_tasks(learner_init)))

  def unroll_inputs(state: MetaState, data: DiscoveryData):
    root = keys.wrap(state.key)
    unroll_index = state.step // num_windows  # the meta-step itself unless `pes` has windows
    k = step_keys(root, state.step, unroll_index)
    task_ids = task_ids_for_step(unroll_index, meta_batch, num_tasks,
                                 task_order_key(root, task_order))
    if inner.random_init:
      learner_vars = jax.vmap(learner.init)(
          jax.random.split(k.learners, meta_batch * inner.num_learners))
      learner_vars = jax.tree.map(
          lambda a: a.reshape((meta_batch, inner.num_learners) + a.shape[1:]), learner_vars)
    else:  # the same initial pair for every task and meta-step (original)
      learner_vars = broadcast_to_tasks(state.learner_init)
    heldout_idx = data.heldout_idx
    if inner.resample_heldout:
      heldout_idx = jax.random.permutation(k.heldout, heldout_idx)
    inputs = estimators.UnrollInputs(
        learner_vars=shard_tasks(learner_vars),
        directions=state.directions[task_ids],
        directions_all=state.directions,
        images=data.images,
        batch_idx=inner_batch_indices(k.data, data.train_idx, inner.num_steps,
                                      inner.batch_size),
        heldout_x=data.images[heldout_idx[: inner.heldout_batch_size]],
        window=(state.step % num_windows).astype(jnp.int32))
    return inputs, task_ids, k.perturbations

  def update(state: MetaState, data: DiscoveryData):
    inputs, task_ids, noise_key = unroll_inputs(state, data)
    out = estimator.grad(state.params, state.batch_stats, state.estimator, inputs, noise_key)
    updates, opt_state = outer.update(out.grads, state.opt_state, state.params)
    new_state = state._replace(step=state.step + 1,
                               params=optax.apply_updates(state.params, updates),
                               batch_stats=out.encoder_batch_stats, opt_state=opt_state,
                               estimator=out.state)
    metrics = dict(out.metrics, grad_norm=global_norm(out.grads), task_ids=task_ids)
    return new_state, metrics

  return MetaStep(init, update, unroll_inputs, estimator)


def task_directions(task_config) -> np.ndarray:
  """`[d, d]` task directions: Gaussian rows for `diversity='mutual_information'` (the
  original's), else the orthonormal rows of a Haar-random rotation; seeded by `rotation_seed`."""
  if task_config.diversity == "mutual_information":
    return task_network.gaussian_directions(task_config.num_tasks, task_config.rotation_seed)
  return task_network.haar_directions(task_config.num_tasks, task_config.rotation_seed)
