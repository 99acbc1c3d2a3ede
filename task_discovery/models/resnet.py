"""The ResNet family: the CIFAR ResNet-18 (3x3 stem, no max-pool) and its BasicBlock."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from task_discovery.models import conv as conv_lib
from task_discovery.models import norm


class BasicBlock(nn.Module):
  """ResNet BasicBlock: two 3x3 conv-BN, with a 1x1 conv-BN shortcut when the shape changes."""
  features: int
  strides: int
  conv_impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda f, k, s: conv_lib.Conv2D(f, k, s, impl=self.conv_impl, dtype=self.dtype)
    bn = lambda: norm.batch_norm(self.dtype, use_running_average=not train)
    y = nn.relu(bn()(conv(self.features, 3, self.strides)(x)))
    y = bn()(conv(self.features, 3, 1)(y))
    if self.strides != 1 or x.shape[-1] != self.features:
      x = bn()(conv(self.features, 1, self.strides)(x))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """CIFAR ResNet-18: 3x3 stem (no max-pool), BasicBlocks [2, 2, 2, 2], global average pool."""
  width: int = 64
  conv_impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = conv_lib.Conv2D(self.width, 3, 1, impl=self.conv_impl, dtype=self.dtype)(x)
    x = nn.relu(norm.batch_norm(self.dtype)(x, use_running_average=not train))
    for stage, strides in enumerate((1, 2, 2, 2)):
      for block in range(2):
        x = BasicBlock(self.width * 2**stage, strides if block == 0 else 1,
                       conv_impl=self.conv_impl, dtype=self.dtype)(x, train)
    return x.mean(axis=(1, 2))



def from_config(config: Any, input_shape: Sequence[int], conv_impl: str, dtype: Any
                ) -> ResNet18:
  """The backbone of a model config with ``name='resnet18'`` (``resnet_width``)."""
  del input_shape  # fully convolutional, global pooling: any input size
  return ResNet18(getattr(config, "resnet_width", 64), conv_impl, dtype=dtype)
