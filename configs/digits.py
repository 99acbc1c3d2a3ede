r"""Quickstart on scikit-learn's bundled digits (1,797 8x8 images, no download).

Command (2 CPU cores):
  python -m task_discovery.main --config=configs/digits.py --workdir=runs/digits

Shrunk for tests: `--config=configs/digits.py:smoke`.

Data parts: 1,258 training / 180 meta-validation / 359 held-out images.

What it produced under the previous defaults (Flax initialisation, meta-validation from the
held-out part, cyclic task order; one seed per run): d = 4 discovered tasks with a mean AS of
about 0.99, like the 126 human-labelled 5-vs-5 digit splits on this easy dataset (over seeds 0,
1, 2 on an AMD EPYC CPU: discovered 0.983 / 0.992 / 0.981, human 0.989 / 0.988 / 0.989, so
"discovered >= human" did not hold on average); random-labelled tasks far below (about 0.69: two
networks that memorise random labels still agree through shared nearest neighbours). Not yet
re-measured under the current defaults (PyTorch initialisation, meta-validation part, shuffled
task order); measure with
  python -m task_discovery.main --config=configs/digits.py --workdir=runs/digits3 --seeds=0,1,2

Choices that differ from the original (CIFAR-10, d = 32, uniformity 5), measured on this
dataset with 1,500 meta-steps under the previous defaults, one seed each: uniformity coefficient 5 -> 1 -> 0.3 -> 0.1 raised the discovered
mean AS 0.95 -> 0.97 -> 0.98 -> 0.987 (the uniformity term dominates the AS term on 1,797 images);
d = 8 -> 4 raised it to 0.991, as d = 32 -> 8 does in the paper; fresh learner initialisation per
meta-step, a larger inner learning rate or 2,400 meta-steps did not help.
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
  c.task.num_tasks = 4
  c.task.diversity_coef = 0.1

  c.inner.num_steps = 20
  c.inner.batch_size = 256
  c.inner.learning_rate = 0.1  # SGD on 8x8 digits: 0.005 barely moves the learners in 20 steps
  c.inner.heldout_batch_size = 180  # the whole meta-validation part (10% of 1,797 images)
  c.meta.num_steps = 1500
  c.meta.learning_rate = 0.01
  c.meta.meta_batch_size = 1
  c.meta.log_every = 100
  c.checkpoint.every_steps = 500

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
