"""The canonical convolution: the same function and derivatives as `lax.conv_general_dilated`,
and only channel-last convolutions in a compiled meta-gradient."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from task_discovery.models import canonical_conv
from task_discovery.models import conv as conv_lib

# (kernel size, stride, padding, height, width): the geometries the networks use (3x3 stride 1
# and 2, 1x1 stride 1 and 2), with odd and even sizes for the strided ones (a stride that does
# not divide the padded input leaves rows that no output reads).
GEOMETRIES = [(3, 1, 1, 5, 6), (3, 2, 1, 7, 6), (3, 2, 1, 8, 8), (1, 2, 0, 7, 8), (1, 1, 0, 4, 5)]


def _reference(x, k, stride, padding):
  return jax.lax.conv_general_dilated(x, k, (stride, stride), ((padding, padding),) * 2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _inputs(h, w, ksize, batch=(2,)):
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], batch + (3, h, w, 2), jnp.float64)
  k = jax.random.normal(keys[1], batch + (ksize, ksize, 2, 3), jnp.float64)
  return x, k


def _unrolled_loss(conv):
  """A learner's SGD step on its kernel and its input, then a loss: second order in (x, k)."""

  def one(x, k):
    k1 = k - 0.1 * jax.grad(lambda k: jnp.sum(jnp.tanh(conv(x, k)) ** 2))(k)
    x1 = x - 0.1 * jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, k))))(x)
    return jnp.sum(jnp.cos(conv(x1, k1)))
  return one


@pytest.mark.parametrize("ksize,stride,padding,h,w", GEOMETRIES)
def test_values_and_derivatives_equal_xla(ksize, stride, padding, h, w):
  with jax.enable_x64(True):
    x, k = _inputs(h, w, ksize)
    new = functools.partial(canonical_conv.conv2d, stride=stride, padding=padding)
    ref = functools.partial(_reference, stride=stride, padding=padding)
    np.testing.assert_allclose(jax.vmap(new)(x, k), jax.vmap(ref)(x, k), rtol=0, atol=1e-12)
    # vmapped learners (both operands batched), second order through an SGD step
    loss = lambda conv: lambda x, k: jax.vmap(_unrolled_loss(conv))(x, k).sum()
    got = jax.grad(loss(new), (0, 1))(x, k)
    want = jax.grad(loss(ref), (0, 1))(x, k)
    for a, b in zip(got, want):
      np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * float(jnp.max(jnp.abs(b))))
    # third order: the gradient of a function of the second-order gradient
    third = lambda conv: jax.grad(lambda k: jnp.sum(jax.grad(loss(conv), 0)(x, k) ** 2))(k)
    np.testing.assert_allclose(third(new), third(ref), rtol=0,
                               atol=1e-10 * float(jnp.max(jnp.abs(third(ref)))))


@pytest.mark.parametrize("ksize,stride,padding,h,w", GEOMETRIES[:3])
def test_second_order_matches_central_differences(ksize, stride, padding, h, w):
  """The exact gradient of the unrolled loss against central finite differences (float64)."""
  with jax.enable_x64(True):
    x, k = _inputs(h, w, ksize, batch=())
    new = functools.partial(canonical_conv.conv2d, stride=stride, padding=padding)
    loss = jax.jit(_unrolled_loss(new))
    direction = jax.random.normal(jax.random.key(3), k.shape, jnp.float64)
    exact = jnp.sum(jax.jit(jax.grad(loss, 1))(x, k) * direction)
    eps = 1e-6
    central = (loss(x, k + eps * direction) - loss(x, k - eps * direction)) / (2 * eps)
    assert abs(float(central)) > 1e-2  # a non-trivial check
    np.testing.assert_allclose(exact, central, rtol=1e-7)


@pytest.mark.parametrize("in_axes,size", [((0, 0), 2), ((0, None), 3), ((None, 0), 3),
                                          ((0, 0), canonical_conv._MAX_UNROLLED + 1)])
def test_batching_rule_equals_a_loop(in_axes, size):
  """Each way a learner axis can batch the operands (image, kernel, both; both beyond the
  unrolled size, where the rule maps a loop) equals one convolution per learner."""
  with jax.enable_x64(True):
    x, k = _inputs(6, 6, 3, batch=(size,))
    x = x if in_axes[0] == 0 else x[0]
    k = k if in_axes[1] == 0 else k[0]
    conv = lambda x, k: canonical_conv.conv2d(x, k, 2, 1)
    got = jax.vmap(jax.grad(lambda x, k: jnp.sum(jnp.sin(conv(x, k))), (0, 1)),
                   in_axes=in_axes)(x, k)
    for i in range(size):
      xi = x[i] if in_axes[0] == 0 else x
      ki = k[i] if in_axes[1] == 0 else k
      want = jax.grad(lambda x, k: jnp.sum(jnp.sin(_reference(x, k, 2, 1))), (0, 1))(xi, ki)
      for g, w in zip(got, want):  # vmap returns every learner's gradients, batched or not
        np.testing.assert_allclose(g[i], w, rtol=0, atol=1e-11)


def _compiled_convolutions(impl: str) -> list[str]:
  """The convolutions of a compiled meta-gradient: two vmapped CNN learners, each trained by
  three scanned, rematerialised SGD steps (second order), as in the discovery meta-step."""
  conv = conv_lib.Conv2D(4, 3, 2, impl=impl)
  x = jnp.ones((2, 8, 9, 9, 3))  # [learners, batch, H, W, C]
  kernels = jax.vmap(lambda key: conv.init(key, x[0])["params"]["kernel"])(
      jax.random.split(jax.random.key(0), 2))

  def outer(scale):
    def step(k, _):
      loss = lambda k: jnp.sum(jnp.tanh(scale * conv.apply({"params": {"kernel": k}}, x[0])) ** 2)
      return k - 0.1 * jax.grad(loss)(k), None
    def one(k):
      k, _ = jax.lax.scan(jax.checkpoint(step), k, None, length=3)
      return jnp.sum(conv.apply({"params": {"kernel": k}}, x[0]) ** 2)
    return jax.vmap(one)(kernels).sum()

  hlo = jax.jit(jax.grad(outer)).lower(1.0).compile().as_text()
  return [line for line in hlo.splitlines() if " convolution(" in line]


def test_meta_gradient_compiles_to_channel_last_convolutions_only():
  convolutions = _compiled_convolutions("canonical")
  assert convolutions
  for line in convolutions:
    assert "dim_labels=b01f_01io->b01f" in line, line
    assert not re.search(r"(feature|batch)_group_count=", line), line
  # The check can fail: XLA's own convolution, differentiated and vmapped, is not all canonical.
  assert any("dim_labels=b01f_01io->b01f" not in line or "group_count" in line
             for line in _compiled_convolutions("xla"))

