"""The Vision Transformer family: pre-norm blocks, a class token and learned position
embeddings, with BatchNorm (the original's) or LayerNorm.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from task_discovery.models import norm as norm_lib

_VIT_NORMS = ("batch", "layer")
_VIT_FINAL_NORMS = ("head", "tokens")


class ViT(nn.Module):
  """Vision Transformer with pre-norm blocks, CLS token and learned position embeddings.

  With ``norm='batch'`` (the original) every norm is a BatchNorm over the feature dimension,
  with statistics over batch and tokens; ``norm='layer'`` uses LayerNorm and has no batch_stats.
  ``final_norm='head'`` (the original) returns the class token as it leaves the last block: a
  classifier normalises it in its head (`builder._Classifier`), an encoder projects it as it is (the
  original's ``penultimate`` output). ``'tokens'`` normalises all tokens first, then takes the
  class token.
  """
  patch_size: int = 4
  dim: int = 256
  depth: int = 6
  num_heads: int = 6
  head_dim: int = 64
  mlp_dim: int = 256
  norm: str = "batch"
  final_norm: str = "head"
  dtype: Any = jnp.float32

  def _norm(self, x: jax.Array, train: bool) -> jax.Array:
    if self.norm == "batch":
      return norm_lib.batch_norm(self.dtype)(x, use_running_average=not train)
    return nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, param_dtype=self.dtype)(x)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dense = lambda f, **kw: nn.Dense(f, dtype=self.dtype, param_dtype=self.dtype, **kw)
    b, h, w, c = x.shape
    p = self.patch_size
    # Patch embedding as reshape + Dense: a stride-p conv without any convolution.
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    x = dense(self.dim)(x.reshape(b, (h // p) * (w // p), p * p * c))  # [B, N, dim]
    init = nn.initializers.normal(0.02)
    cls = self.param("cls_token", init, (self.dim,), self.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.dim)), x], axis=1)
    x = x + self.param("pos_embedding", init, (x.shape[1], self.dim), self.dtype)  # [N+1, dim]
    for _ in range(self.depth):
      y = dense(3 * self.num_heads * self.head_dim, use_bias=False)(self._norm(x, train))
      q, k, v = jnp.split(y.reshape(b, -1, 3 * self.num_heads, self.head_dim), 3, axis=2)
      logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.head_dim)
      y = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
      x = x + dense(self.dim)(y.reshape(b, -1, self.num_heads * self.head_dim))
      y = nn.gelu(dense(self.mlp_dim)(self._norm(x, train)), approximate=False)
      x = x + dense(self.dim)(y)
    if self.final_norm == "head":
      return x[:, 0]  # CLS pooling: [B, dim]
    return self._norm(x, train)[:, 0]  # CLS pooling: [B, dim]



def from_config(config: Any, input_shape: Sequence[int], conv_impl: str, dtype: Any) -> ViT:
  """The backbone of a model config with ``name='vit'`` (``vit_*``), checked against the input
  size (the patch size must divide it)."""
  del conv_impl  # the patch embedding is a reshape and a Dense: no convolution
  height, width = input_shape[0], input_shape[1]
  patch = getattr(config, "vit_patch_size", 4)
  if height % patch or width % patch:
    divisors = [d for d in range(2, math.gcd(height, width) + 1) if height % d == width % d == 0]
    raise ValueError(f"vit_patch_size={patch} does not divide the input size {height}x{width}; "
                     f"use a common divisor such as one of {divisors or [1]}.")
  norm = getattr(config, "vit_norm", "batch")
  if norm not in _VIT_NORMS:
    raise ValueError(f"vit_norm={norm!r} is not one of {_VIT_NORMS}.")
  final_norm = getattr(config, "vit_final_norm", "head")
  if final_norm not in _VIT_FINAL_NORMS:
    raise ValueError(f"vit_final_norm={final_norm!r} is not one of {_VIT_FINAL_NORMS}.")
  return ViT(patch, getattr(config, "vit_dim", 256), getattr(config, "vit_depth", 6),
             getattr(config, "vit_num_heads", 6), getattr(config, "vit_head_dim", 64),
             getattr(config, "vit_mlp_dim", 256), norm, final_norm, dtype=dtype)
