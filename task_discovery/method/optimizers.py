"""Optimisers by name, for learners (inner and evaluation training) and the task network."""

from __future__ import annotations

import optax

OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(name: str, *, learning_rate: float, momentum: float = 0.9,
                   eps_root: float = 0.0) -> optax.GradientTransformation:
  """Builds an optax optimiser.

  Args:
    name: 'sgd' (plain SGD, no momentum), 'momentum' (SGD with heavy-ball momentum) or 'adam'.
    learning_rate: step size, > 0.
    momentum: momentum coefficient for 'momentum'.
    eps_root: Adam's epsilon inside the square root. Must be > 0 when differentiating through
      Adam updates (meta-learning): the derivative of sqrt at 0 is infinite (optax docs).

  Returns:
    The optimiser.
  """
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
  if name == "sgd":
    return optax.sgd(learning_rate)
  if name == "momentum":
    return optax.sgd(learning_rate, momentum=momentum)
  if name == "adam":
    return optax.adam(learning_rate, eps_root=eps_root)
  raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")
