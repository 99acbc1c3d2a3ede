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


def make_labeler(encoder: interface.Model, *, batch_size: int = 1024) -> Callable:
  """`label(params, batch_stats, directions, images) -> scores [d, N]` with the encoder in eval
  mode (running statistics), in chunks of `batch_size` images. Hard labels are
  `hard_labels(scores)`. The one way this library labels images with a task network: the
  exported tasks and `loader.TaskNetwork` both go through it."""

  @jax.jit
  def scores_of(params, batch_stats, directions, x):
    h, _ = encoder.apply({"params": params, "batch_stats": batch_stats}, x, False)
    return task_scores(h, directions)

  def label(params, batch_stats, directions, images):
    return interface.apply_in_chunks(lambda x: scores_of(params, batch_stats, directions, x),
                                     images, batch_size=batch_size, axis=-1)

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
