"""The small CNN family: 3x3 conv, BatchNorm and ReLU per stage, then global average pooling."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from task_discovery.models import conv
from task_discovery.models import norm


class CNN(nn.Module):
  """[3x3 conv -> BatchNorm -> ReLU] per width (stride 1, then 2), global average pool."""
  widths: Sequence[int]
  conv_impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i, width in enumerate(self.widths):
      x = conv.Conv2D(width, 3, 1 if i == 0 else 2, impl=self.conv_impl, dtype=self.dtype)(x)
      x = nn.relu(norm.batch_norm(self.dtype)(x, use_running_average=not train))
    return x.mean(axis=(1, 2))



def from_config(config: Any, input_shape: Sequence[int], conv_impl: str, dtype: Any) -> CNN:
  """The backbone of a model config with ``name='cnn'`` (``cnn_widths``)."""
  del input_shape  # fully convolutional, global pooling: any input size
  return CNN(tuple(getattr(config, "cnn_widths", (32, 64, 128))), conv_impl, dtype=dtype)
