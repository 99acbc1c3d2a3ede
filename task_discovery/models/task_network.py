"""The task network's heads, its labeler and its diversity losses
(docs/method.md#the-task-network).

The encoder (a `models.make_encoder` network) maps images to embeddings `h(x)` of size d whose
every dimension is zero-centred per batch by a BatchNorm without offset. Task i is the fixed
direction `w_i` (row i of a Haar-random rotation; with the original's mutual-information
diversity, row i of a Gaussian matrix): its logits are
`temperature * [-<w_i, h>, <w_i, h>]`, so label 1 <=> `<w_i, h(x)> > 0`, everywhere in this
library (hard labels, exports, splits).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from task_discovery.models import interface


def haar_directions(num_tasks: int, seed: int) -> np.ndarray:
  """`[d, d]` float32 orthonormal rows of a Haar-random rotation (QR with sign fix)."""
  rng = np.random.default_rng(seed)
  q, r = np.linalg.qr(rng.standard_normal((num_tasks, num_tasks)))
  # Multiplying by the signs of diag(r) makes the distribution exactly Haar (Mezzadri 2007).
  q = q * np.sign(np.diag(r))[None, :]
  return q.T.astype(np.float32)


def gaussian_directions(num_tasks: int, seed: int) -> np.ndarray:
  """`[d, d]` float32 rows drawn i.i.d. N(0, 1): the original's task directions with its
  mutual-information diversity (`torch.randn(n_tasks, h_dim)`, not normalised)."""
  return np.random.default_rng(seed).standard_normal((num_tasks, num_tasks)).astype(np.float32)


def task_scores(embeddings: jax.Array, directions: jax.Array) -> jax.Array:
  """Projections `<w_i, h(x)>`: embeddings `[B, d]`, directions `[M, d]` -> `[M, B]`."""
  return jnp.einsum("bd,md->mb", embeddings, directions.astype(embeddings.dtype))


def task_logits(embeddings: jax.Array, directions: jax.Array, temperature: float) -> jax.Array:
  """Two-class logits of M tasks: `[M, B, 2]`; class 1 is the positive side of `w_i`."""
  s = task_scores(embeddings, directions)
  return temperature * jnp.stack([-s, s], axis=-1)


def hard_labels(scores: jax.Array) -> jax.Array:
  """Hard labels from task scores: 1 iff the score is positive."""
  return (scores > 0).astype(jnp.int32)


# How BatchNorm normalises when a task network labels images: "running" uses the running
# statistics (true eval mode; this library's discovery runs export their tasks so), "batch" the
# statistics of the batch being labelled, as the original's encoder always does (its `train()`
# override ignores `mode`, so its `encoder.eval()` changes nothing; docs/original.md).
BATCH_NORM_MODES = ("running", "batch")
# The original's evaluation batches (train-2net.py: batch_size 512, shuffle False): with
# batch_norm="batch" the labels depend on which images share a batch, so this is part of a task.
ORIGINAL_BATCH_SIZE = 512


def check_batch_norm(batch_norm: str) -> str:
  if batch_norm not in BATCH_NORM_MODES:
    raise ValueError(f"batch_norm={batch_norm!r} is not one of {BATCH_NORM_MODES}: 'running' "
                     "labels with BatchNorm's running statistics (eval mode), 'batch' with the "
                     "statistics of each labelled batch (the original's labelling)")
  return batch_norm


def batch_chunks(num_images: int, batch_size: int) -> list[slice]:
  """Consecutive chunks of `batch_size` images; a last chunk of one image joins the one before
  it (BatchNorm has no statistics of one image: PyTorch refuses such a batch in training mode)."""
  starts = list(range(0, num_images, batch_size))
  if len(starts) > 1 and num_images - starts[-1] == 1:
    starts.pop()
  return [slice(a, b) for a, b in zip(starts, starts[1:] + [num_images])]


def _chunked(fn: Callable, images: jax.Array, *, batch_size: int, batch_norm: str,
             axis: int = 0) -> jax.Array:
  """`fn` over chunks of `batch_size` images, concatenated along `axis`. With "batch" every
  chunk is a BatchNorm batch (`batch_chunks`); with "running" the chunks only bound memory."""
  n = images.shape[0]
  if n == 0:
    raise ValueError("no images to label")
  if batch_norm == "batch":
    if n == 1:
      raise ValueError("batch_norm='batch' can not label a single image (BatchNorm has no "
                       "statistics of one image): label it with others, or use "
                       "batch_norm='running'")
    chunks = batch_chunks(n, batch_size)
  else:
    chunks = [slice(i, i + batch_size) for i in range(0, n, batch_size)]
  return jnp.concatenate([fn(images[sl]) for sl in chunks], axis=axis)


def make_embedder(encoder: interface.Model, *, batch_size: int = 1024,
                  batch_norm: str = "running") -> Callable:
  """`embed(params, batch_stats, images) -> h [N, d]` in chunks of `batch_size` images.

  `batch_norm="running"`: eval mode; the chunking changes nothing but memory.
  `batch_norm="batch"`: every chunk is one BatchNorm batch, normalised with its own statistics
  (the running statistics are neither used nor updated), so the chunks are part of the result.
  """
  train = check_batch_norm(batch_norm) == "batch"

  @jax.jit
  def embed_chunk(params, batch_stats, x):
    return encoder.apply({"params": params, "batch_stats": batch_stats}, x, train)[0]

  def embed(params, batch_stats, images):
    return _chunked(lambda x: embed_chunk(params, batch_stats, x), images,
                    batch_size=batch_size, batch_norm=batch_norm)

  return embed


def make_labeler(encoder: interface.Model, *, batch_size: int = 1024,
                 batch_norm: str = "running") -> Callable:
  """`label(params, batch_stats, directions, images) -> scores [d, N]`, in chunks of
  `batch_size` images, with BatchNorm as `batch_norm` says (`make_embedder`). Hard labels are
  `hard_labels(scores)`. The one way this library labels images with a task network: the
  exported tasks and `loader.TaskNetwork` both go through it."""
  train = check_batch_norm(batch_norm) == "batch"

  @jax.jit
  def scores_of(params, batch_stats, directions, x):
    h, _ = encoder.apply({"params": params, "batch_stats": batch_stats}, x, train)
    return task_scores(h, directions)

  def label(params, batch_stats, directions, images):
    return _chunked(lambda x: scores_of(params, batch_stats, directions, x), images,
                    batch_size=batch_size, batch_norm=batch_norm, axis=-1)

  return label


def uniformity_loss(embeddings: jax.Array, t: float = 2.0) -> jax.Array:
  """Uniformity of L2-normalised embeddings on the sphere (Wang & Isola 2020).

  `log mean_{i<j} exp(-t ||z_i - z_j||^2) + 4t`. The original adds 4t, which makes the value
  non-negative (||z_i - z_j||^2 <= 4) and changes no gradient.

  Args:
    embeddings: `[B, d]`.
    t: the temperature of the Gaussian potential.

  Returns:
    scalar.
  """
  z = embeddings / jnp.maximum(jnp.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)
  sq = jnp.sum(z**2, -1)
  dist2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
  i, j = np.triu_indices(embeddings.shape[0], k=1)
  return jax.nn.logsumexp(-t * dist2[i, j]) - jnp.log(i.size) + 4.0 * t


def mutual_information_loss(embeddings: jax.Array, directions: jax.Array,
                            temperature: float, floor: float = 1e-9) -> jax.Array:
  """The original's diversity loss: the log of the summed pairwise mutual information.

  For tasks i, j with soft labels `p_i(x)` over a batch, the joint distribution of their labels
  is `P_ij = mean_x p_i(x) p_j(x)^T` (2x2) and `MI_ij = KL(P_ij || P_i P_j)`. The loss is
  `log sum_{i<j} max(MI_ij, floor)`, written in the original as a smooth maximum (logsumexp
  with alpha 1) of `log max(MI_ij, floor)`; marginals and joints are floored at `floor` before
  their logarithms, as there. Its gradient weights each pair by its share of the total, so the
  most dependent pairs dominate (the DivDis variant, `mean_pairwise_mutual_information_loss`,
  weights all pairs alike).

  Args:
    embeddings: `[B, d]`.
    directions: `[M, d]` task directions (the original: Gaussian, `gaussian_directions`).
    temperature: task logits are `temperature * [-<w, h>, <w, h>]`.
    floor: the original's `clamp_min` value.

  Returns:
    scalar; `log(floor)` (about -20.7) when fewer than two tasks.
  """
  probs = jax.nn.softmax(task_logits(embeddings, directions, temperature), axis=-1)  # [M, B, 2]
  marg = jnp.maximum(probs.mean(axis=1), floor)  # [M, 2]
  joint = jnp.maximum(jnp.einsum("ibk,jbl->ijkl", probs, probs) / probs.shape[1], floor)
  indep = marg[:, None, :, None] * marg[None, :, None, :]  # [M, M, 2, 2]
  mi = jnp.sum(joint * (jnp.log(joint) - jnp.log(indep)), axis=(-1, -2))  # [M, M]
  i, j = np.triu_indices(probs.shape[0], k=1)
  if not i.size:
    return jnp.full((), np.log(floor), embeddings.dtype)
  return jax.nn.logsumexp(jnp.log(jnp.maximum(mi[i, j], floor)))


def mean_pairwise_mutual_information_loss(embeddings: jax.Array, directions: jax.Array,
                                          temperature: float) -> jax.Array:
  """Mean pairwise mutual information between the soft labels of all tasks (as in DivDis).

  For tasks i, j the joint distribution of their labels over a batch is
  `P_ij = mean_x p_i(x) p_j(x)^T` (2x2); the loss is the mean over i < j of `KL(P_ij || P_i P_j)`.
  """
  probs = jax.nn.softmax(task_logits(embeddings, directions, temperature), axis=-1)  # [d, B, 2]
  joint = jnp.einsum("ibk,jbl->ijkl", probs, probs) / probs.shape[1]  # [d, d, 2, 2]
  marg = probs.mean(axis=1)  # [d, 2]
  indep = marg[:, None, :, None] * marg[None, :, None, :]
  mi = jnp.sum(joint * (jnp.log(joint + 1e-12) - jnp.log(indep + 1e-12)), axis=(-1, -2))
  i, j = np.triu_indices(probs.shape[0], k=1)
  return mi[i, j].mean() if i.size else jnp.zeros((), embeddings.dtype)
