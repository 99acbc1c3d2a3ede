"""task_discovery: find the tasks neural networks generalise on (JAX/Flax).

`task_discovery.load(workdir)` returns the trained task network of a discovery run.
"""

import jax as _jax

__version__ = "0.1.0"

# Random bits depend on this flag, whose default JAX changed in 0.5.0 (off before, on since);
# `pyproject.toml` admits versions on both sides, so it is set here, where the library starts:
# one seed then draws the same numbers on every admitted JAX (see `task_discovery.keys`).
_jax.config.update("jax_threefry_partitionable", True)


def load(workdir: str, step: int | None = None, *, batch_norm: str | None = None):
  """The task network of a discovery workdir (see `loader.load` and `loader.TaskNetwork`).

  Args:
    workdir: a discovery run's workdir, or one written by `task_discovery.import_original`.
    step: the checkpoint step; default the latest.
    batch_norm: "running" (BatchNorm's running statistics) or "batch" (each labelled batch's
      own, as the original labels images); default what the workdir records.
  """
  from task_discovery import loader  # imported lazily: keeps `import task_discovery` light
  return loader.load(workdir, step, batch_norm=batch_norm)
