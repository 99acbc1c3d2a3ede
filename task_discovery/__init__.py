"""task_discovery: find the tasks neural networks generalise on (JAX/Flax).

`task_discovery.load(workdir)` returns the trained task network of a discovery run.
"""

__version__ = "0.1.0"


def load(workdir: str, step: int | None = None):
  """The task network of a discovery workdir (see `loader.TaskNetwork`)."""
  from task_discovery import loader  # imported lazily: keeps `import task_discovery` light
  return loader.load(workdir, step)
