"""Test set-up shared by every test module.

Eight simulated CPU devices let the sharding tests compare a sharded computation with the
unsharded one on a laptop, and XLA compiles at -O0 (see `xla_flags.py`). The flags must be set
before JAX is imported anywhere. They are added to any `XLA_FLAGS` already set (e.g.
`--xla_cpu_enable_fast_math=false` to check rounding-order dependence), not replaced by them.

Under pytest-xdist (`-n 2`, the README's command) tests are spread over processes one by one,
except that the tests sharing an expensive module-scoped fixture (a finished discovery run, an
executed notebook) go to one process together, so the fixture is built once.
"""
import os

import pytest

import xla_flags

os.environ["XLA_FLAGS"] = xla_flags.with_defaults(os.environ.get("XLA_FLAGS", ""),
                                                  xla_flags.SIMULATED_DEVICES,
                                                  xla_flags.COMPILE_FAST)
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
# `python -m task_discovery.main` opens the user's cache (config.compilation_cache): a test that
# starts it in a subprocess turns that off or points XDG_CACHE_HOME at its tmp_path.

# Module-scoped fixtures that run a job or a notebook (seconds each): their tests share a worker.
SHARED_FIXTURES = ("finished_run", "families", "executed", "workdirs", "trained", "shared_run")


def pytest_itemcollected(item):
  # At collection, before any `pytest_collection_modifyitems` (xdist's reads the marks there).
  # The fixtures are module-scoped, so the group is the module: fixtures built on one another
  # (the notebook's `executed` on `workdirs`) then always land on one worker.
  if any(name in SHARED_FIXTURES for name in getattr(item, "fixturenames", ())):
    item.add_marker(pytest.mark.xdist_group(item.module.__name__))  # inert without xdist


# The longest tests (tens of seconds each, most of it compiling) start first: with two workers,
# one of them left at the end would otherwise run alone while the other waits (xdist hands out
# tests in collection order). Prefixes of node ids; a name that no longer exists changes nothing.
LONGEST_FIRST = ("tests/test_cifar_smoke.py", "tests/test_discovery.py::test_fashion_mnist_cnn",
                 "tests/test_sharding.py::test_two_processes", "tests/test_experiments.py",
                 "tests/test_estimators.py::test_pes_over_windows", "tests/test_notebook.py")


def pytest_collection_modifyitems(items):
  first = lambda item: not any(item.nodeid.startswith(p) for p in LONGEST_FIRST)
  items.sort(key=first)  # stable: the order within each part is kept
