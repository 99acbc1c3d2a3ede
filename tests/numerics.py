"""Comparisons of computed arrays that hold on any CPU.

Two computations of the same math (vmap vs loop, sharded vs unsharded, remat on/off) differ by
rounding, and how they round depends on the CPU (vector width, FMA, thread count). An absolute
tolerance below the rounding of the values compared fails on some machines and not others, so
these helpers scale the tolerance by the size of the tensor compared.
"""

import jax
import numpy as np


def assert_close_to_scale(actual, desired, rtol: float, err_msg: str = "") -> None:
  """`|actual - desired| <= rtol * max|desired|` elementwise, for arrays or pytrees of arrays.

  A gradient entry near zero is compared against the tensor's scale, not its own size: its
  relative error is meaningless (it is a difference of much larger terms).
  """
  a_leaves, a_def = jax.tree.flatten(actual)
  d_leaves, d_def = jax.tree.flatten(desired)
  assert a_def == d_def, f"tree structures differ: {a_def} vs {d_def}"
  for i, (a, d) in enumerate(zip(a_leaves, d_leaves)):
    a, d = np.asarray(a, np.float64), np.asarray(d, np.float64)
    assert a.shape == d.shape, f"leaf {i}: shape {a.shape} vs {d.shape}"
    scale = float(np.max(np.abs(d))) if d.size else 0.0
    np.testing.assert_allclose(a, d, rtol=0, atol=rtol * scale + 1e-300,
                               err_msg=f"{err_msg} leaf {i} (scale {scale:.3g})")
