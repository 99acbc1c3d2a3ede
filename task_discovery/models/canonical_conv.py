"""A 2-D convolution whose every derivative, to any order, is a channel-last forward convolution.

Why: XLA:CPU runs a convolution inside a loop body (`lax.scan`) on its fast runtime kernel
only when every operand is channel-last: NHWC input, HWIO kernel, NHWC output, stride 1
(jax-ml/jax#12868). Autodiff's kernel gradient of `lax.conv_general_dilated` exchanges the
batch and feature dimensions and falls to a loop emitter at about 1 GFLOP/s, and grouped
convolutions (what `vmap` over learners with their own kernels makes of a convolution) run
6-10x below a loop over the learners. The meta-gradient differentiates a learner's SGD step,
so the second-order terms need the same care as the first.

How: a convolution of stride s and padding p is one trilinear form
`T(x, k, y) = sum x[b, s o + i - p, c] k[i, c, f] y[b, o, f]` between an image `x [B, H, W, C]`,
a kernel `k [kh, kw, C, F]` and a response `y [B, Ho, Wo, F]`. Its three bilinear maps each have
a channel-last forward form:
  * `response(x, k)`: the convolution itself, `conv(x, k)`, stride s, padding p;
  * `image(y, k)` (the input gradient): `conv(y, flip(k)^T)` with padding `k - 1 - p`; for
    a stride s > 1, one such convolution per phase of the input (every s-th row and column),
    with the sub-kernel of the taps that reach it, interleaved (a dilated `y` would spend
    s^2 times the FLOPs on inserted zeros);
  * `kernel(x, y)` (the kernel gradient): `conv(x^T [C, H, W, B], y^T [Ho, Wo, B, F])` with
    the kernel dilated by s (`rhs_dilation`) and padding p, transposed back to
    `[kh, kw, C, F]`: the batch is the contraction.
The VJP of each map is made of the other two, so the set is closed under differentiation and
no derivative of any order leaves the fast path. A 1x1 kernel is a matmul (`conv2d`).

Learners are vmapped; `_channel_last_conv` has its own batching rule: a batched image folds
into the batch, a batched kernel into the output features, and both batched (each learner its
kernel and its images) becomes a loop over the learners, never a grouped convolution.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# Up to this many (learner) convolutions a vmapped axis is unrolled in Python; beyond it they
# run as a `lax.map` loop, which keeps compile time flat for wide evaluations (126 tasks x 2).
_MAX_UNROLLED = 8


@functools.lru_cache(maxsize=None)
def _channel_last_conv(padding: tuple[tuple[int, int], tuple[int, int]], strides: int = 1,
                       rhs_dilation: int = 1):
  """`conv(lhs [N, H, W, C], rhs [kh, kw, C, F]) -> [N, Ho, Wo, F]` with the batching rule
  above; one function per geometry (static arguments)."""

  @jax.custom_batching.custom_vmap
  def conv(lhs, rhs):
    return jax.lax.conv_general_dilated(
        lhs, rhs, (strides, strides), padding, rhs_dilation=(rhs_dilation, rhs_dilation),
        dimension_numbers=_DIMENSIONS)

  @conv.def_vmap
  def _batched(axis_size, in_batched, lhs, rhs):
    lhs_batched, rhs_batched = in_batched
    if lhs_batched and not rhs_batched:  # [A, N, ...] -> [A * N, ...]: one larger batch
      out = conv(lhs.reshape((-1,) + lhs.shape[2:]), rhs)
      return out.reshape((axis_size, lhs.shape[1]) + out.shape[1:]), True
    if rhs_batched and not lhs_batched:  # kernels side by side on the output features
      kh, kw, cin, cout = rhs.shape[1:]
      out = conv(lhs, jnp.moveaxis(rhs, 0, 3).reshape(kh, kw, cin, axis_size * cout))
      return jnp.moveaxis(out.reshape(out.shape[:3] + (axis_size, cout)), 3, 0), True
    if axis_size <= _MAX_UNROLLED:
      return jnp.stack([conv(lhs[a], rhs[a]) for a in range(axis_size)]), True
    return jax.lax.map(lambda operands: conv(*operands), (lhs, rhs)), True

  return conv


def _flip_transpose(k: jax.Array) -> jax.Array:
  """`[kh, kw, C, F] -> [kh, kw, F, C]`, spatially reversed: the input gradient's kernel."""
  return jnp.transpose(k[::-1, ::-1], (0, 1, 3, 2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def response(x: jax.Array, k: jax.Array, stride: int, padding: int) -> jax.Array:
  """The convolution `[B, H, W, C] x [kh, kw, C, F] -> [B, Ho, Wo, F]`."""
  return _channel_last_conv(((padding, padding),) * 2, strides=stride)(x, k)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def image(y: jax.Array, k: jax.Array, stride: int, padding: int, size: tuple[int, int]
          ) -> jax.Array:
  """The transpose of `response(., k)` applied to `y`: `[B, Ho, Wo, F] -> [B, *size, C]`."""
  if stride > 1:  # a dilated input would multiply s^2 zeros: 4x the FLOPs at stride 2
    return _strided_image_by_phases(y, k, stride, padding, size)
  pads = tuple((k.shape[d] - 1 - padding, size[d] - y.shape[1 + d] + padding) for d in range(2))
  return _channel_last_conv(pads)(y, _flip_transpose(k))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def kernel(x: jax.Array, y: jax.Array, stride: int, padding: int, size: tuple[int, int]
           ) -> jax.Array:
  """The kernel gradient `sum_b x * y`: `[B, H, W, C], [B, Ho, Wo, F] -> [*size, C, F]`."""
  pads = []
  for d in range(2):
    span = x.shape[1 + d] + 2 * padding - (y.shape[1 + d] - 1) * stride  # taps reachable
    pads.append((padding, padding - (span - size[d])))
  out = _channel_last_conv(tuple(pads), rhs_dilation=stride)(
      jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(y, (1, 2, 0, 3)))  # [C, kh, kw, F]
  return jnp.transpose(out, (1, 2, 0, 3))


def _strided_image_by_phases(y, k, stride, padding, size):
  """`image` for a stride s > 1 without the s^2 zeros of a dilated input: row `s u + a` of the
  padded input gradient is a stride-1 full convolution of `y` with the sub-kernel `k[a::s]`
  (its taps `s j + a` read output `u - j`); the s x s phases are interleaved and cropped."""
  kh, kw, cin, _ = k.shape
  lengths = [-(-(size[d] + 2 * padding) // stride) for d in range(2)]  # rows per phase
  rows = []
  for a in range(stride):
    cols = []
    for b in range(stride):
      sub = k[a::stride, b::stride]  # [ka, kb, C, F]
      ka, kb = sub.shape[:2]
      if ka and kb:
        phase = _channel_last_conv(((ka - 1, ka - 1), (kb - 1, kb - 1)))(y, _flip_transpose(sub))
        phase = phase[:, :lengths[0], :lengths[1]]
        phase = jnp.pad(phase, ((0, 0), (0, lengths[0] - phase.shape[1]),
                                (0, lengths[1] - phase.shape[2]), (0, 0)))
      else:
        phase = jnp.zeros((y.shape[0], *lengths, cin), y.dtype)
      cols.append(phase)
    rows.append(jnp.stack(cols, axis=3))  # [B, Lh, Lw, s(b), C]
  full = jnp.stack(rows, axis=2)  # [B, Lh, s(a), Lw, s(b), C]
  full = full.reshape(y.shape[0], lengths[0] * stride, lengths[1] * stride, cin)
  return full[:, padding:padding + size[0], padding:padding + size[1]]


# Each map's VJP is the other two maps: closed under differentiation, to any order.
response.defvjp(
    lambda x, k, s, p: (response(x, k, s, p), (x, k)),
    lambda s, p, res, dy: (image(dy, res[1], s, p, res[0].shape[1:3]),
                           kernel(res[0], dy, s, p, res[1].shape[:2])))
image.defvjp(
    lambda y, k, s, p, size: (image(y, k, s, p, size), (y, k)),
    lambda s, p, size, res, dx: (response(dx, res[1], s, p),
                                 kernel(dx, res[0], s, p, res[1].shape[:2])))
kernel.defvjp(
    lambda x, y, s, p, size: (kernel(x, y, s, p, size), (x, y)),
    lambda s, p, size, res, dk: (image(res[1], dk, s, p, res[0].shape[1:3]),
                                 response(res[0], dk, s, p)))


def conv2d(x: jax.Array, k: jax.Array, stride: int, padding: int) -> jax.Array:
  """`lax.conv_general_dilated(x, k, (s, s), ((p, p), (p, p)))` (NHWC, HWIO), every derivative
  on the fast path. A 1x1 kernel is a matmul of the (strided) pixels, which autodiff and vmap
  already keep fast (its gradients are matmuls and pads)."""
  kh, kw, cin, cout = k.shape
  if kh == kw == 1:
    if padding:
      x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    return jnp.dot(x[:, ::stride, ::stride], k.reshape(cin, cout))
  return response(x, k, stride, padding)
