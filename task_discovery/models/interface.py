"""What every network of the library is to the rest of it: `Model`, a pair of pure functions,
`InputLayer` for networks whose input enters through one dense layer, and helpers over them.

No Flax here: the method and the jobs see networks only through this interface.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class InputLayer(NamedTuple):
  """A network whose input enters through one dense layer: `z = flatten(x) @ kernel`.

  Learners trained by SGD keep this layer's weights as `kernel_0 - lr * sum_s x_s^T delta_s`,
  so the meta-objective can train them in sample space (`inner_loop.sample_space`) without
  touching the kernel.

  Attributes:
    kernel_path: keys of the `[in_features, out_features]` kernel in `variables['params']`.
    apply_rest: ``(variables, z, train) -> (outputs, new_batch_stats)``: the network given
      ``z = flatten(x) @ kernel`` (before the bias); `variables['params']` may lack the kernel.
  """
  kernel_path: tuple[str, ...]
  apply_rest: Callable[[dict, jax.Array, bool], tuple[jax.Array, dict]]


class Model(NamedTuple):
  """A network as two pure functions.

  Attributes:
    init: ``key -> variables``, a dict ``{'params': ..., 'batch_stats': ...}`` (``batch_stats`` is
      ``{}`` when the network has no BatchNorm).
    apply: ``(variables, x, train) -> (outputs, new_batch_stats)``. ``x`` is ``[B, H, W, C]``. With
      ``train=True`` BatchNorm normalises with batch statistics and ``new_batch_stats`` holds the
      updated running averages; with ``train=False`` it uses the running averages and returns
      ``variables['batch_stats']`` unchanged. ``train`` must be a Python bool.
    input_layer: for networks whose first layer is dense on the flattened input (the MLP), how
      to run the rest of the network from that layer's matmul; None otherwise.
  """
  init: Callable[[jax.Array], dict]
  apply: Callable[[dict, jax.Array, bool], tuple[jax.Array, dict]]
  input_layer: InputLayer | None = None


def num_params(variables: dict) -> int:
  """Number of scalars in ``variables['params']`` (running statistics are not counted)."""
  return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(variables["params"]))


def apply_in_chunks(fn: Callable[[jax.Array], jax.Array], images, *, batch_size: int,
                    axis: int = 0) -> jax.Array:
  """`fn` over consecutive chunks of `batch_size` images (the leading axis of `images`), the
  outputs concatenated along their `axis`: inference over a whole image array in bounded memory.

  `fn` is typically a jitted forward pass; every chunk but the last has one shape, so it compiles
  at most twice.
  """
  return jnp.concatenate([fn(images[i:i + batch_size])
                          for i in range(0, images.shape[0], batch_size)], axis=axis)
