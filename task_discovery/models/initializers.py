"""Parameter initialisation as PyTorch draws the original's layers (``init='torch'``, the
default) or as Flax does (``init='flax'``: LeCun-normal kernels, zero biases, N(0, 0.02) ViT
tokens): `torch_init` redraws a Flax parameter tree.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax

INITS = ("torch", "flax")


def resolve_init(config: Any) -> str:
  """``config.init`` (default ``'torch'``), checked.

  Raises:
    ValueError: for a value other than ``'torch'`` or ``'flax'``.
  """
  init = getattr(config, "init", "torch")
  if init not in INITS:
    raise ValueError(f"init={init!r} is not one of {INITS}: 'torch' draws parameters as PyTorch "
                     "does (the original), 'flax' keeps Flax's defaults.")
  return init


def _uniform_like_torch(key: jax.Array, shape: Sequence[int], fan_in: int, dtype: Any
                        ) -> jax.Array:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn as a matrix (or vector) and reshaped.

  As for `conv._conv_kernel_init`: XLA:CPU compiles the sampler for a rank-4 shape several times
  slower than for a matrix; the distribution does not depend on the layout.
  """
  bound = 1.0 / math.sqrt(fan_in)
  flat_shape = (math.prod(shape[:-1]), shape[-1]) if len(shape) > 1 else tuple(shape)
  return jax.random.uniform(key, flat_shape, dtype, -bound, bound).reshape(shape)


def torch_init(params: dict, key: jax.Array) -> dict:
  """Redraws ``params`` as PyTorch initialises the original's layers.

  * Dense and convolution kernels (``kernel``, ``[..., fan_out]``, fan_in = product of the other
    dimensions: ``in_features`` or ``k * k * cin``): ``kaiming_uniform_(a=sqrt(5))``, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in).
  * Their biases (a ``bias`` next to a ``kernel``): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  * BatchNorm and LayerNorm (``scale``, ``bias`` without a kernel): scale 1, bias 0, as Flax
    already draws them.
  * The ViT's ``cls_token`` and ``pos_embedding``: N(0, 1) (``torch.randn`` in the original).

  Args:
    params: a model's ``variables['params']`` (from Flax's ``init``: shapes and dtypes).
    key: PRNG key; each leaf gets ``fold_in(key, i)`` for its position i in path order.

  Returns:
    params of the same structure, shapes and dtypes.
  """
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  kernels = {tuple(p[:-1]): leaf for p, leaf in flat if p[-1].key == "kernel"}
  new = []
  for i, (path, leaf) in enumerate(flat):
    name, leaf_key = path[-1].key, jax.random.fold_in(key, i)
    kernel = kernels.get(tuple(path[:-1]))
    if name in ("kernel", "bias") and kernel is not None:
      fan_in = math.prod(kernel.shape[:-1])
      new.append(_uniform_like_torch(leaf_key, leaf.shape, fan_in, leaf.dtype))
    elif name in ("cls_token", "pos_embedding"):
      new.append(jax.random.normal(leaf_key, leaf.shape, leaf.dtype))
    else:
      new.append(leaf)
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), new)

