"""The learners' unrolled training inside the differentiable AS: state, one step, the scan.

Learners are stacked on ONE leading axis `K = M * L` (tasks x learners per task) and the step
is vmapped once over it: vmapping twice (tasks, then learners) made XLA:CPU carry extra
transposes and copies of the stacked kernels through the scan, and cost half the speed of the
MLP meta-step (benchmarks/README.md).

Two representations of the learners' state, with the same interface (`Unroll`):
  * `weight_space`: the parameters and optimiser state, updated by any optax optimiser.
  * `sample_space`: for networks whose input enters through one dense layer (`models.InputLayer`)
    trained by plain SGD. That layer's kernel after t steps is
    `W_t = W_0 - lr * sum_{s<t} x_s^T delta_s` (`delta_s`: the loss gradient w.r.t. the layer's
    pre-activation at step s), so its pre-activation on any batch is
    `x W_t = x W_0 - lr * sum_s (x x_s^T) delta_s`: a Gram matrix of the unroll's inputs times
    the stored deltas. The scan then never forms, updates or differentiates the
    `[in, out]` kernel (for the original MLP on 32x32x3 images: 3072 x 1024, three quarters
    of the learner's FLOPs); `x W_0` of every batch is one matmul before the scan, outside the
    meta-gradient (the initial weights are not differentiated). Exact algebra, other rounding.
    The stored deltas grow with the unroll (`T * b` rows), so it pays while `T * b` is below
    the input size (`use_sample_space`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from task_discovery import config as config_lib
from task_discovery import models


class Unroll(NamedTuple):
  """The learners of a meta-batch as an initial scan carry and pure functions.

  Attributes:
    carry: initial state of the `K` learners (a pytree, leading axis K in every leaf).
    step: `(carry, (t, idx, probs)) -> (carry, loss [K])` with `t` the step number, `idx` the
      `[B]` image indices of the inner batch and `probs` the `[K, b, C]` soft labels of each
      learner's part of it.
    heldout_logits: `carry -> [K, B_h, C]` logits on the held-out batch (training mode).
  """
  carry: Any
  step: Callable
  heldout_logits: Callable


def soft_cross_entropy(target_probs: jax.Array, logits: jax.Array) -> jax.Array:
  """`mean_x CE(target_probs -> log_softmax(logits))`, over all leading axes but the last."""
  return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1).mean(axis=-1)


def make_learner_step(model: models.Model, optimizer: optax.GradientTransformation,
                      loss: Callable[[jax.Array, Any], jax.Array], *,
                      microbatch_size: int = 0) -> Callable:
  """One optimiser step of one learner in training mode, for any loss of its logits.

  `microbatch_size = m > 0` (it must divide the batch): the gradient is the mean of the
  gradients of the batch's microbatches of m images, each computed under `jax.checkpoint` in a
  scan, so differentiating the step (the meta-gradient) holds one microbatch's forward and
  backward intermediates at a time instead of the batch's. For a mean loss this is the full
  batch's gradient exactly, except for BatchNorm: its batch statistics are those of each
  microbatch ("ghost" batch norm), which changes the function; 0 (the default) keeps the
  whole batch's statistics, as the original. The running statistics returned are the mean of
  the microbatches' updates.

  Returns:
    `step(params, batch_stats, opt_state, x, targets) -> (params, batch_stats, opt_state,
    loss_value)`, with `loss(logits, targets) -> scalar`: soft labels here (the differentiable
    AS), hard labels in `agreement` (the evaluation protocol). `batch_stats` are the BatchNorm
    running statistics after the step; a caller that never reads them may drop them.
  """

  def loss_fn(params, batch_stats, x, targets):
    logits, new_batch_stats = model.apply({"params": params, "batch_stats": batch_stats}, x, True)
    return loss(logits, targets), new_batch_stats

  value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)

  def microbatched(params, batch_stats, x, targets):
    count = x.shape[0] // microbatch_size
    split = lambda a: a.reshape((count, microbatch_size) + a.shape[1:])
    one = jax.checkpoint(lambda xt: value_and_grad(params, batch_stats, *xt))
    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(one, (split(x)[0], split(targets)[0])))

    def add(total, xt):
      return jax.tree.map(jnp.add, total, one(xt)), None
    total, _ = jax.lax.scan(add, zeros, (split(x), split(targets)))
    return jax.tree.map(lambda a: a / count, total)

  def step(params, batch_stats, opt_state, x, targets):
    if microbatch_size and microbatch_size < x.shape[0]:
      if x.shape[0] % microbatch_size:
        raise ValueError(f"inner.microbatch_size={microbatch_size} does not divide a "
                         f"learner's batch of {x.shape[0]} images.")
      (value, batch_stats), grads = microbatched(params, batch_stats, x, targets)
    else:
      (value, batch_stats), grads = value_and_grad(params, batch_stats, x, targets)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, value

  return step


def learner_inputs(x: jax.Array, num_tasks: int, num_learners: int, data_mode: str
                   ) -> jax.Array:
  """The inner batch `[B, ...]` as each learner sees it: `[K, B / L, ...]` ('meta': learner l
  of every task takes the l-th slice) or `[B, ...]` shared by all ('full')."""
  if data_mode != "meta":
    return x
  x = x.reshape((num_learners, -1) + x.shape[1:])  # [L, B/L, ...]
  x = jnp.broadcast_to(x[None], (num_tasks,) + x.shape)
  return x.reshape((num_tasks * num_learners,) + x.shape[2:])


def weight_space(learner: models.Model, optimizer: optax.GradientTransformation, params,
                 batch_stats, images: jax.Array, heldout_x: jax.Array, *, num_tasks: int,
                 num_learners: int, data_mode: str, microbatch_size: int = 0) -> Unroll:
  """Learners as parameters + optimiser state; `params`/`batch_stats` have leading axis K.

  The running statistics are not carried (nothing reads them: the learners stay in training
  mode on the held-out batch), so every step starts from `batch_stats`."""
  one = make_learner_step(learner, optimizer,
                          lambda logits, probs: soft_cross_entropy(probs, logits),
                          microbatch_size=microbatch_size)
  over_learners = jax.vmap(one, in_axes=(0, 0, 0, 0 if data_mode == "meta" else None, 0))

  def step(carry, xs):
    p, opt = carry
    _, idx, probs = xs
    x = learner_inputs(images[idx], num_tasks, num_learners, data_mode)
    p, _, opt, loss = over_learners(p, batch_stats, opt, x, probs)
    return (p, opt), loss

  def heldout_logits(carry):
    apply = lambda p, s: learner.apply({"params": p, "batch_stats": s}, heldout_x, True)[0]
    return jax.vmap(apply)(carry[0], batch_stats)

  return Unroll((params, jax.vmap(optimizer.init)(params)), step, heldout_logits)


def _get(tree: dict, path: tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def _without(tree: dict, path: tuple[str, ...]) -> dict:
  if len(path) == 1:
    return {k: v for k, v in tree.items() if k != path[0]}
  return {**tree, path[0]: _without(tree[path[0]], path[1:])}


def use_sample_space(learner: models.Model, inner, input_features: int) -> bool:
  """Whether `inner` (the config section) trains the learners in sample space.

  `inner.learner_updates`: 'weights', 'samples' (an error where it does not apply) or 'auto':
  samples when possible and the stored deltas (`T * b` rows per learner) are at most half the
  kernel's `input_features` rows, so memory and FLOPs both shrink.
  """
  mode = inner.get("learner_updates", "auto")
  if mode == "weights" or (mode == "auto" and inner.get("microbatch_size", 0)):
    return False
  possible = learner.input_layer is not None and inner.optimizer == "sgd"
  if mode == "samples":
    if not possible:
      raise ValueError(
          "inner.learner_updates='samples' needs a learner whose input enters through one "
          "dense layer (learner.name='mlp') and inner.optimizer='sgd'; use 'auto' or 'weights'.")
    return True
  if mode != "auto":
    raise ValueError(f"inner.learner_updates={mode!r} is not one of 'auto', 'weights', 'samples'")
  return possible and (inner.num_steps * config_lib.learner_batch_size(inner)
                       <= input_features // 2)


def sample_space(learner: models.Model, learning_rate: float, params, batch_stats,
                 images: jax.Array, batch_idx: jax.Array, heldout_x: jax.Array, *,
                 num_tasks: int, num_learners: int, data_mode: str) -> Unroll:
  """Learners trained by SGD with their input layer in sample space (module docstring).

  The carry holds the other parameters and `deltas` `[K, T * b, out]` (rows of step t written
  at step t, zero before); the input layer's kernel never enters the scan.
  """
  path = learner.input_layer.kernel_path
  apply_rest = learner.input_layer.apply_rest
  kernel0 = _get(params, path)  # [K, F, H], constant: the learners' initial weights
  rest = _without(params, path)
  num_steps, batch = batch_idx.shape
  shared = data_mode != "meta"
  b = batch if shared else batch // num_learners
  x = images[batch_idx].reshape(num_steps, batch, -1).astype(kernel0.dtype)  # [T, B, F]
  if shared:
    slots = x.reshape(1, num_steps * b, -1)  # [1, T*b, F]: every learner sees every batch
    slot_of = jnp.zeros((kernel0.shape[0],), jnp.int32)
  else:  # learner l of each task: rows t*b .. (t+1)*b of slot l are its part of batch t
    slots = x.reshape(num_steps, num_learners, b, -1).transpose(1, 0, 2, 3).reshape(
        num_learners, num_steps * b, -1)  # [L, T*b, F]
    slot_of = jnp.tile(jnp.arange(num_learners, dtype=jnp.int32), num_tasks)
  hx = heldout_x.reshape(heldout_x.shape[0], -1).astype(kernel0.dtype)  # [B_h, F]
  gram = jnp.einsum("sif,sjf->sij", slots, slots)[slot_of]  # [K, T*b, T*b]
  cross = jnp.einsum("hf,sjf->shj", hx, slots)[slot_of]  # [K, B_h, T*b]
  # x W_0 for every learner, [K, T*b, H], without copying the inputs once per task: learner
  # k = (task m, slot l) multiplies slot l by its own kernel.
  if shared:
    base = jnp.einsum("if,kfh->kih", slots[0], kernel0)
  else:
    kernels = kernel0.reshape((num_tasks, num_learners) + kernel0.shape[1:])  # [M, L, F, H]
    base = jnp.einsum("lif,mlfh->mlih", slots, kernels).reshape(
        (num_tasks * num_learners,) + slots.shape[1:2] + kernel0.shape[-1:])
  heldout_base = jnp.einsum("hf,kfo->kho", hx, kernel0)  # [K, B_h, H]
  deltas = jnp.zeros(base.shape, base.dtype)

  def loss_fn(p, s, z, probs):
    logits, _ = apply_rest({"params": p, "batch_stats": s}, z, True)
    return soft_cross_entropy(probs, logits)

  def one(p, s, d, gram_k, base_k, t, probs):
    rows = jax.lax.dynamic_slice_in_dim(gram_k, t * b, b, axis=0)  # [b, T*b]
    z = jax.lax.dynamic_slice_in_dim(base_k, t * b, b, axis=0) - learning_rate * (rows @ d)
    loss, (g, delta) = jax.value_and_grad(loss_fn, argnums=(0, 2))(p, s, z, probs)
    p = jax.tree.map(lambda a, ga: a - learning_rate * ga, p, g)
    return p, jax.lax.dynamic_update_slice_in_dim(d, delta, t * b, axis=0), loss

  over_learners = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None, 0))

  def step(carry, xs):
    p, d = carry
    t, _, probs = xs
    p, d, loss = over_learners(p, batch_stats, d, gram, base, t, probs)
    return (p, d), loss

  def heldout_logits(carry):
    p, d = carry
    z = heldout_base - learning_rate * jnp.einsum("khj,kjo->kho", cross, d)
    apply = lambda p_k, s_k, z_k: apply_rest({"params": p_k, "batch_stats": s_k}, z_k, True)[0]
    return jax.vmap(apply)(p, batch_stats, z)

  return Unroll((rest, deltas), step, heldout_logits)


def scan_steps(step: Callable, carry, xs, *, remat: bool, remat_block: int = 0,
               unroll: int | bool = 1):
  """`jax.lax.scan` of `step` over the leading axis of `xs`, with optional checkpointing.

  `unroll` is `jax.lax.scan`'s (True: a straight-line program, for cost-only compiles that
  count every step's FLOPs).

  `remat`: `jax.checkpoint` on every step (the backward pass keeps one carry per step and
  recomputes the step). `remat_block = K > 0` checkpoints blocks of K steps as well (nested
  checkpointing): the backward pass re-runs a block's forward, storing its K carries, before
  back-propagating through it, so memory is about `T / K + K` carries for one more forward.
  """
  if remat:
    step = jax.checkpoint(step)
  num_steps = jax.tree.leaves(xs)[0].shape[0]
  if not (remat_block and num_steps > remat_block):
    return jax.lax.scan(step, carry, xs, unroll=unroll)
  num_blocks, tail = divmod(num_steps, remat_block)
  head = jax.tree.map(
      lambda a: a[: num_blocks * remat_block].reshape((num_blocks, remat_block) + a.shape[1:]),
      xs)
  block = jax.checkpoint(lambda c, b: jax.lax.scan(step, c, b, unroll=unroll))
  carry, out = jax.lax.scan(block, carry, head, unroll=unroll)
  out = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)
  if tail:
    carry, tail_out = jax.lax.scan(step, carry, jax.tree.map(lambda a: a[-tail:], xs),
                                   unroll=unroll)
    out = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), out, tail_out)
  return carry, out
