"""Agreement score (AS) under the evaluation protocol (docs/method.md#the-agreement-score).

For every task, `num_learners` networks train from different initialisations on the task's hard
labels, on identical batches, and the AS is the mean pairwise agreement of their argmax
predictions on held-out images (BatchNorm in eval mode, i.e. running statistics, as the original).

Many tasks are evaluated in one compiled computation: learner state is a pytree with leading axes
`[num_tasks, num_learners]`, and the training step is vmapped over both. Tasks are processed in
chunks of `tasks_per_chunk` to bound memory. Every task's learner keys come from its own key and
all tasks see the same batch order, so the chunking changes nothing but floating-point rounding
(XLA picks kernels by the vmapped size); long training can turn that into a held-out image or two.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from task_discovery import keys as keys_lib
from task_discovery import models
from task_discovery.method import inner_loop
from task_discovery.method import optimizers
from task_discovery.run import progress as progress_lib
from task_discovery.run import sharding


class LearnerState(NamedTuple):
  """The evaluation's learners: every leaf with leading axes `[tasks, learners]`."""
  params: Any
  batch_stats: Any
  opt_state: Any


def pairwise_agreement(predictions: jax.Array) -> jax.Array:
  """Mean pairwise agreement of hard predictions.

  Args:
    predictions: `[..., num_learners, num_images]` integer predictions, num_learners >= 2.

  Returns:
    `[...]` mean over learner pairs i < j of the fraction of images where they agree.
  """
  num_learners = predictions.shape[-2]
  if num_learners < 2:
    raise ValueError(f"agreement needs at least 2 learners, got {num_learners}")
  same = predictions[..., :, None, :] == predictions[..., None, :, :]
  per_pair = same.mean(axis=-1)  # [..., L, L]
  i, j = np.triu_indices(num_learners, k=1)
  return per_pair[..., i, j].mean(axis=-1)


def init_learners(model: models.Model, optimizer: optax.GradientTransformation,
                  keys: jax.Array) -> LearnerState:
  """Initialises learners from a `[num_tasks, num_learners]` array of keys (typed, or their
  raw data, which is how they travel through numpy to the devices)."""
  if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
    keys = keys_lib.wrap(keys)
  variables = jax.vmap(jax.vmap(model.init))(keys)
  opt_state = jax.vmap(jax.vmap(optimizer.init))(variables["params"])
  return LearnerState(variables["params"], variables.get("batch_stats", {}), opt_state)


def batch_positions(key: jax.Array, num_train: int, batch_size: int) -> jax.Array:
  """`[steps, batch_size]` positions into the training indices: one epoch's batches, drawn from
  `key` (`num_train // batch_size` steps; the remainder is dropped)."""
  steps = num_train // batch_size
  return jax.random.permutation(key, num_train)[: steps * batch_size].reshape(steps, batch_size)


def epoch_key(key: jax.Array, epoch: int, reshuffle: bool = True) -> jax.Array:
  """The batch-order key of an epoch: `fold_in(key, epoch)`, or epoch 0's for every epoch
  without reshuffling (the original's train-2net.py, shuffle: False)."""
  return jax.random.fold_in(key, epoch if reshuffle else 0)


def make_train_epoch(model: models.Model, optimizer: optax.GradientTransformation, *,
                     batch_size: int) -> Callable:
  """Returns `train_epoch(state, images, labels, train_idx, key) -> (state, mean_loss [T, L])`.

  One epoch = `len(train_idx) // batch_size` steps over a permutation drawn from `key` (the
  remainder is dropped so that every step has one shape and one compilation). All learners of all
  tasks see the same batches. `train_idx` is `[n]` (shared by all tasks) or `[T, n]` (one training
  set per task, all of size n). `labels` is `[T, N]` over all images.
  """

  learner_step = inner_loop.make_learner_step(
      model, optimizer,
      lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
  over_learners = jax.vmap(learner_step, in_axes=(0, 0, 0, None, None))

  @functools.partial(jax.jit, donate_argnums=0)
  def train_epoch(state, images, labels, train_idx, key):
    shared = train_idx.ndim == 1
    positions = batch_positions(key, train_idx.shape[-1], batch_size)
    # Shared images are gathered once per step and broadcast over tasks.
    over_tasks = jax.vmap(over_learners, in_axes=(0, 0, 0, None if shared else 0, 0))

    def body(state, pos):
      idx = train_idx[..., pos]  # [B] or [T, B]
      x = images[idx]
      y = labels[:, idx] if shared else jnp.take_along_axis(labels, idx, axis=1)
      params, batch_stats, opt_state, loss = over_tasks(
          state.params, state.batch_stats, state.opt_state, x, y)
      return LearnerState(params, batch_stats, opt_state), loss

    state, losses = jax.lax.scan(body, state, positions)
    return state, losses.mean(axis=0)

  return train_epoch


def make_predict(model: models.Model, *, batch_size: int) -> Callable:
  """Returns `predict(params, batch_stats, images) -> [T, L, N]` argmax predictions (eval mode)."""

  def one(params, batch_stats, x):
    logits, _ = model.apply({"params": params, "batch_stats": batch_stats}, x, False)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)

  batched = jax.jit(jax.vmap(jax.vmap(one, in_axes=(0, 0, None)), in_axes=(0, 0, None)))

  def predict(params, batch_stats, images):
    return models.apply_in_chunks(lambda x: batched(params, batch_stats, x), images,
                                  batch_size=batch_size, axis=-1)

  return predict


def _heldout_predictions(predict: Callable, state: LearnerState, images, chunk_labels,
                         chunk_heldout: np.ndarray) -> tuple[jax.Array, jax.Array]:
  """`(predictions [t, L, m], targets [t, 1, m])` of a chunk's learners on its held-out images:
  `chunk_heldout` is `[m]` (shared by the chunk's tasks) or `[t, m]`."""
  if chunk_heldout.ndim == 1:
    preds = predict(state.params, state.batch_stats, images[chunk_heldout])  # [t, L, m]
    targets = chunk_labels[:, jnp.asarray(chunk_heldout)][:, None, :]
  else:  # one held-out set per task: predict on the union, then pick each task's part.
    preds_all = predict(state.params, state.batch_stats, images)  # [t, L, N]
    preds = jnp.take_along_axis(preds_all, jnp.asarray(chunk_heldout)[:, None, :], axis=2)
    targets = jnp.take_along_axis(chunk_labels, jnp.asarray(chunk_heldout), axis=1)[:, None]
  return preds, targets


def _raw_task_keys(key: jax.Array, task_keys: jax.Array | None, num_tasks: int) -> np.ndarray:
  """`[T]` learner keys (by default `fold_in(key, t)`) as raw key data: chunks are padded and
  placed on devices as numpy arrays."""
  if task_keys is None:
    task_keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(jnp.arange(num_tasks))
  if not jnp.issubdtype(task_keys.dtype, jax.dtypes.prng_key):
    task_keys = keys_lib.wrap(task_keys)
  return np.asarray(jax.random.key_data(task_keys))


def evaluate_tasks(model: models.Model, images: np.ndarray, labels: np.ndarray, *,
                   train_idx: np.ndarray, heldout_idx: np.ndarray, config, key: jax.Array,
                   task_keys: jax.Array | None = None, name: str = "tasks",
                   mesh=None) -> dict:
  """Trains learners on each task's hard labels and measures their agreement.

  Args:
    model: learner network with `num_outputs` >= the number of classes of every task.
    images: `[N, H, W, C]` normalised images.
    labels: `[T, N]` int labels of T tasks over all images.
    train_idx: `[n]` training indices shared by all tasks, or `[T, n]` one set per task.
    heldout_idx: `[m]` held-out indices shared by all tasks, or `[T, m]`.
    config: the `eval` config section: num_learners, optimizer, learning_rate, batch_size,
      num_epochs, tasks_per_chunk, predict_batch_size and optionally reshuffle (default True:
      a new batch order every epoch; False: epoch 0's order every epoch).
    key: data-order key (batches are identical across learners and tasks); epoch e's order
      comes from `fold_in(key, e)` (`fold_in(key, 0)` for every epoch without reshuffle).
    task_keys: `[T]` keys for the learners' initialisation; by default `fold_in(key, t)`.
    name: label for progress logs.
    mesh: if given, each chunk of tasks is split over the mesh's `data` axis (the chunk size is
      rounded up to a multiple of the number of devices); images are replicated.

  Returns:
    dict with numpy arrays `agreement` `[T]`, `accuracy` `[T, L]` (held-out accuracy of each
    learner on the task's labels) and `train_loss` `[T, L]` (mean loss of the last epoch).
  """
  labels = np.asarray(labels, np.int32)
  num_tasks = labels.shape[0]
  task_keys = _raw_task_keys(key, task_keys, num_tasks)
  optimizer = optimizers.make_optimizer(
      config.optimizer, learning_rate=config.learning_rate)
  n_train = np.shape(train_idx)[-1]
  if config.batch_size > n_train:
    raise ValueError(f"eval.batch_size={config.batch_size} exceeds the {n_train} training images")
  train_epoch = make_train_epoch(model, optimizer, batch_size=config.batch_size)
  predict = make_predict(model, batch_size=config.predict_batch_size)
  chunk = max(1, min(int(config.tasks_per_chunk), num_tasks))
  # False: every epoch replays epoch 0's order (the original's train-2net.py, shuffle: False).
  reshuffle = bool(getattr(config, "reshuffle", True))
  init = functools.partial(init_learners, model, optimizer)
  if mesh is None:
    put_tasks = put_shared = lambda x: jnp.asarray(x)
    init = jax.jit(init)  # one compilation instead of op-by-op dispatch of every initialiser
  else:
    chunk = -(-chunk // mesh.size) * mesh.size
    put_tasks = lambda x: sharding.put_along_data(x, mesh)
    put_shared = lambda x: sharding.put_replicated(x, mesh)
    init = jax.jit(init, out_shardings=sharding.along_data(mesh))
  images = put_shared(np.asarray(images))
  results = {"agreement": [], "accuracy": [], "train_loss": []}
  bar = progress_lib.Progress(num_tasks * config.num_epochs, f"eval[{name}] task-epochs")
  # The last chunk is padded with repeats of its last task (results dropped), so every chunk has
  # one shape and the training step compiles once.
  def pad(a, sl):
    return np.concatenate([a[sl]] + [a[sl.stop - 1:sl.stop]] * (chunk - (sl.stop - sl.start)))

  for start in range(0, num_tasks, chunk):
    sl = slice(start, min(start + chunk, num_tasks))
    size = sl.stop - sl.start
    chunk_labels = put_tasks(pad(labels, sl))
    chunk_train = (put_shared(np.asarray(train_idx)) if np.ndim(train_idx) == 1
                   else put_tasks(pad(train_idx, sl)))
    chunk_heldout = np.asarray(heldout_idx if np.ndim(heldout_idx) == 1 else pad(heldout_idx, sl))
    learner_keys = np.asarray(jax.random.key_data(jax.vmap(
        lambda k: jax.random.split(keys_lib.wrap(k), config.num_learners))(
            jnp.asarray(pad(task_keys, sl)))))
    state = init(put_tasks(learner_keys))
    for epoch in range(config.num_epochs):
      state, loss = train_epoch(state, images, chunk_labels, chunk_train,
                                epoch_key(key, epoch, reshuffle))
      bar.update(sl.start * config.num_epochs + size * (epoch + 1),
                 f"loss {float(sharding.to_host(loss).mean()):.4f}")
    preds, targets = _heldout_predictions(predict, state, images, chunk_labels, chunk_heldout)
    results["agreement"].append(sharding.to_host(pairwise_agreement(preds))[:size])
    results["accuracy"].append(sharding.to_host((preds == targets).mean(axis=-1))[:size])
    results["train_loss"].append(sharding.to_host(loss)[:size])
  return {k: np.concatenate(v) for k, v in results.items()}
