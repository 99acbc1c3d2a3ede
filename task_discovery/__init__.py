"""task_discovery: find the tasks neural networks generalise on (JAX/Flax).

`task_discovery.load(workdir)` returns the trained task network of a discovery run.
"""

import jax as _jax

__version__ = "0.1.0"

# Random bits depend on this flag, whose default JAX changed in 0.5.0 (off before, on since);
# `pyproject.toml` admits versions on both sides, so it is set here, where the library starts:
# one seed then draws the same numbers on every admitted JAX (see `task_discovery.keys`).
_jax.config.update("jax_threefry_partitionable", True)


def load(workdir: str, step: int | None = None):
  """The task network of a discovery workdir (see `loader.TaskNetwork`)."""
  from task_discovery import loader  # imported lazily: keeps `import task_discovery` light
  return loader.load(workdir, step)
