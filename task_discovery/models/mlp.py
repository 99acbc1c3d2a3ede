"""The MLP family: flatten, then dense layers with ReLU and BatchNorm; its first layer can take
its matmul as given (`InputLayer`, for learners trained in sample space).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from task_discovery.models import norm


class _InputDense(nn.Module):
  """``nn.Dense`` (same parameters and initialisation) that can take its matmul ``z`` as given."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array | None, z: jax.Array | None = None) -> jax.Array:
    if z is None:
      kernel = self.param("kernel", nn.initializers.lecun_normal(),
                          (x.shape[-1], self.features), self.dtype)
      z = jnp.dot(x.astype(self.dtype), kernel)
    return z + self.param("bias", nn.initializers.zeros, (self.features,), self.dtype)


class MLP(nn.Module):
  """Flatten -> [Dense -> ReLU (-> BatchNorm except after the last hidden layer)].

  ``z``, if given, replaces the first layer's matmul ``flatten(x) @ kernel`` (`InputLayer`).
  """
  widths: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array | None, train: bool, z: jax.Array | None = None) -> jax.Array:
    if x is not None:
      x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.widths):
      if i == 0:
        x = _InputDense(width, dtype=self.dtype, name="Dense_0")(x, z)
      else:
        x = nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype, name=f"Dense_{i}")(x)
      x = nn.relu(x)
      if i < len(self.widths) - 1:
        x = norm.batch_norm(self.dtype)(x, use_running_average=not train)
    return x



def from_config(config: Any, input_shape: Sequence[int], conv_impl: str, dtype: Any) -> MLP:
  """The backbone of a model config with ``name='mlp'`` (``mlp_widths``)."""
  del input_shape, conv_impl  # a dense network of any input size; no convolution
  return MLP(tuple(getattr(config, "mlp_widths", (1024, 512, 256, 64))), dtype=dtype)
