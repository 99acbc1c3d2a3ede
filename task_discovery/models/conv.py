"""Square 2-D convolution (`Conv2D`) and its three implementations: XLA's, im2col (one matmul
whose patches are never kept) and canonical (every derivative a channel-last convolution,
`models/canonical_conv.py`), with the choice between them per backend (`resolve_conv_impl`).

Padding is PyTorch's explicit symmetric ``kernel_size // 2`` (1 for 3x3, 0 for 1x1), so a
stride-2 3x3 conv maps 32 -> 16 exactly like the PyTorch original. This differs from
``nn.Conv(padding='SAME')`` at stride 2 on even inputs, which pads only on the far side.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from task_discovery.models import canonical_conv

_CONV_IMPLS = ("auto", "xla", "im2col", "canonical")


USES = ("meta", "train")


def resolve_conv_impl(conv_impl: str, use: str = "meta") -> str:
  """Maps ``'auto'`` to the convolution implementation suited to the backend and the workload.

  XLA:CPU differentiates convolutions inside ``lax.scan`` 15-50x slower than in a Python loop
  (jax-ml/jax#12868): autodiff's kernel gradient and vmap's grouped convolutions leave its fast
  channel-last kernel. For the meta-gradient (``use='meta'``: second order through the unrolled
  inner loop) ``'canonical'`` keeps every convolution on that kernel and beats im2col's patch
  traffic (benchmarks/README.md: 1.2x on the small CNN, 1.15x on ResNet-18, and 12.2 against
  26.4 GiB planned for configs/cifar.py). For plain training (``use='train'``: the AS
  evaluation's and the adversarial splits' learners, first order, many learners vmapped)
  canonical loops over the learners one by one while im2col batches them into one matmul, and
  im2col is the faster (1.6x on the small CNN, benchmarks/eval_step.py). On GPU/TPU the native
  convolution is the better choice for both.

  Args:
    conv_impl: ``'auto'``, ``'xla'``, ``'im2col'`` or ``'canonical'``.
    use: ``'meta'`` (the networks of the differentiable AS) or ``'train'`` (learners trained
      by ordinary first-order training); matters only for ``'auto'``.

  Returns:
    ``'xla'``, ``'im2col'`` or ``'canonical'``.

  Raises:
    ValueError: for any other value.
  """
  if conv_impl not in _CONV_IMPLS:
    raise ValueError(f"conv_impl={conv_impl!r} is not one of {_CONV_IMPLS}.")
  if use not in USES:
    raise ValueError(f"use={use!r} is not one of {USES}.")
  if conv_impl == "auto":
    if jax.default_backend() != "cpu":
      return "xla"
    return "canonical" if use == "meta" else "im2col"
  return conv_impl


def _conv_kernel_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32
                      ) -> jax.Array:
  """LeCun-normal like ``nn.Conv``, drawn as a ``[k*k*cin, cout]`` matrix and reshaped.

  Same fan-in, hence the same distribution; but XLA:CPU compiles the partitionable threefry
  sampler for a rank-4 shape several times slower (~1.5 s vs 0.4 s a shape) than for a matrix.
  """
  flat = nn.initializers.lecun_normal()(key, (math.prod(shape[:-1]), shape[-1]), dtype)
  return flat.reshape(shape)


def _im2col_patches(x: jax.Array, k: int, s: int, pad: int) -> jax.Array:
  """`[B, Ho, Wo, k*k*C]` patches; static strided slices (their gradient is a pad, not a
  scatter) concatenated in the (i, j, cin) order of the HWIO kernel's row-major reshape."""
  batch, height, width, cin = x.shape
  out_h = (height + 2 * pad - k) // s + 1
  out_w = (width + 2 * pad - k) // s + 1
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  cols = [jax.lax.slice(xp, (0, i, j, 0), (batch, i + s * (out_h - 1) + 1,
                                           j + s * (out_w - 1) + 1, cin), (1, s, s, 1))
          for i in range(k) for j in range(k)]
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def _im2col_matmul(x: jax.Array, kernel: jax.Array, s: int, pad: int) -> jax.Array:
  k, cout = kernel.shape[0], kernel.shape[-1]
  return jnp.dot(_im2col_patches(x, k, s, pad), kernel.reshape(-1, cout))  # [B, Ho, Wo, cout]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _im2col_conv(x: jax.Array, kernel: jax.Array, s: int, pad: int) -> jax.Array:
  """Convolution as one matmul over im2col patches, whose patches are never kept.

  The patches are k*k times the input (9x for 3x3). The backward pass rebuilds them from `x`
  (slices: no FLOPs), and it runs under `jax.checkpoint`, so that differentiating the
  backward pass again (the meta-gradient through a learner's SGD step) keeps `x`, the kernel
  and the output gradient, not the patches. Plain autodiff of the matmul would keep the patches
  at both levels: 60% of the memory of a ResNet-18 meta-step (benchmarks/README.md).
  """
  return _im2col_matmul(x, kernel, s, pad)


def _im2col_conv_fwd(x, kernel, s, pad):
  return _im2col_matmul(x, kernel, s, pad), (x, kernel)


@functools.partial(jax.checkpoint, static_argnums=(3, 4))
def _im2col_conv_grads(x, kernel, dy, s, pad):
  _, vjp = jax.vjp(lambda x, kernel: _im2col_matmul(x, kernel, s, pad), x, kernel)
  return vjp(dy)


def _im2col_conv_bwd(s, pad, residuals, dy):
  x, kernel = residuals
  return _im2col_conv_grads(x, kernel, dy, s, pad)


_im2col_conv.defvjp(_im2col_conv_fwd, _im2col_conv_bwd)


class Conv2D(nn.Module):
  """Square 2-D convolution, NHWC, kernel ``[k, k, cin, cout]`` like ``nn.Conv``.

  Attributes:
    features: Output channels.
    kernel_size: Spatial size ``k`` of the square kernel.
    strides: Stride in both spatial dimensions.
    use_bias: Whether to add a bias.
    impl: ``'xla'`` (``lax.conv_general_dilated``), ``'im2col'`` (shifted strided slices
      concatenated on channels, then one matmul) or ``'canonical'`` (`canonical_conv.conv2d`:
      XLA's convolution with derivatives of every order as channel-last convolutions). All
      compute the same function.
    dtype: Parameter and compute dtype.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = False
  impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, pad = self.kernel_size, self.strides, self.kernel_size // 2
    cin = x.shape[-1]
    kernel = self.param("kernel", _conv_kernel_init, (k, k, cin, self.features), self.dtype)
    x = x.astype(self.dtype)
    if self.impl == "xla":
      y = jax.lax.conv_general_dilated(x, kernel, window_strides=(s, s),
                                       padding=((pad, pad), (pad, pad)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    elif self.impl == "im2col":
      y = _im2col_conv(x, kernel, s, pad)
    elif self.impl == "canonical":
      y = canonical_conv.conv2d(x, kernel, s, pad)
    else:
      raise ValueError(f"Conv2D impl={self.impl!r} is not one of ('xla', 'im2col', 'canonical').")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), self.dtype)
    return y

