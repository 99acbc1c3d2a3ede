r"""Quickstart on scikit-learn's bundled digits (1,797 8x8 images, no download).

Command (2 CPU cores):
  python -m task_discovery.main --config=configs/digits.py --workdir=runs/digits

Shrunk for tests: `--config=configs/digits.py:smoke`.

What it produces: see the README's results table for the measured numbers (discovered tasks
reach a mean AS at least that of the human-labelled 5-vs-5 digit splits, random labels about 0.5).
"""

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  c = config_lib.base()
  c.data.name = "digits"
  c.data.heldout_fraction = 0.2

  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (128, 64)
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (128, 64)
  c.task.num_tasks = 8

  c.inner.num_steps = 20
  c.inner.batch_size = 256
  c.inner.learning_rate = 0.1
  c.inner.heldout_batch_size = 256
  c.meta.num_steps = 400
  c.meta.meta_batch_size = 1
  c.meta.log_every = 20
  c.checkpoint.every_steps = 200

  c.eval.batch_size = 128
  c.eval.num_epochs = 30
  c.eval.tasks_per_chunk = 32
  c.eval.num_human_tasks = 126
  c.eval.num_random_tasks = 16

  if arg == "smoke":
    c.meta.num_steps = 4
    c.meta.log_every = 1
    c.checkpoint.every_steps = 2
    c.inner.num_steps = 3
    c.eval.num_epochs = 2
    c.eval.num_human_tasks = 4
    c.eval.num_random_tasks = 2
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use '' or 'smoke'")
  return c
