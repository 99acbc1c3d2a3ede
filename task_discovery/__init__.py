"""task_discovery: find the tasks neural networks generalise on (JAX/Flax)."""

__version__ = "0.1.0"
