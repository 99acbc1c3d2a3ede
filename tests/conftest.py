"""Test set-up shared by every test module.

Eight simulated CPU devices let the sharding tests compare a sharded computation with the
unsharded one on a laptop. The flag must be set before JAX is imported anywhere. It is added
to any `XLA_FLAGS` already set (e.g. `--xla_cpu_enable_fast_math=false` to check rounding-order
dependence), not replaced by them.
"""
import os

_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
if _DEVICE_COUNT_FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_DEVICE_COUNT_FLAG}=8".strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

# absl helpers that read flags (absltest.create_tempdir) need parsed flags under pytest.
flags.FLAGS.mark_as_parsed()

import jax  # noqa: E402

# Many tests compile the same tiny meta-step; a persistent compilation cache turns every repeat
# into a cache hit (compilation dominates these tests on CPU). Numerics are unaffected.
jax.config.update("jax_compilation_cache_dir",
                  os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
