"""The BatchNorm of every network family: this library's constants and dtype policy.

Momentum 0.9 and epsilon 1e-5 (PyTorch's momentum 0.1 / eps 1e-5: Flax's momentum is the weight
of the old running average, PyTorch's the weight of the new batch). Running variances are the
biased batch variance (PyTorch stores the unbiased one).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

# Weight of the old running average in every BatchNorm update: r <- m * r + (1 - m) * batch stat.
BATCH_NORM_MOMENTUM = 0.9


def batch_norm(dtype: Any, **kwargs) -> nn.BatchNorm:
  """`nn.BatchNorm` with this library's constants (module docstring); `kwargs` as its own."""
  # Statistics in ``dtype`` (float32 or float64) so running averages keep the parameters' dtype
  # and a scan carry never changes type; half precision still reduces in float32.
  return nn.BatchNorm(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-5, dtype=dtype, param_dtype=dtype,
                      use_fast_variance=False,
                      force_float32_reductions=jnp.dtype(dtype).itemsize < 4, **kwargs)
