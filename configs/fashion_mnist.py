r"""Fashion-MNIST on 2 CPU cores (Debian's `dataset-fashion-mnist`, or TFDS `fashion_mnist`).

Command:
  sudo apt-get install -y dataset-fashion-mnist   # or have TFDS prepare fashion_mnist
  python -m task_discovery.main --config=configs/fashion_mnist.py --workdir=runs/fmnist

A seeded subset of 10,000 of the 60,000 training images (8,000 train / 1,000 meta-validation /
1,000 held-out), MLP
learners and an MLP encoder, d = 8 tasks. `:smoke` shrinks it for tests. The numbers in its
comments were measured under the previous defaults (Flax initialisation, meta-validation from the
held-out part, cyclic task order), one seed each; not yet re-measured under the current ones:
  python -m task_discovery.main --config=configs/fashion_mnist.py --workdir=runs/fmnist3 \
      --seeds=0,1,2
"""

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  c = config_lib.base()
  c.data.name = "fashion_mnist"
  c.data.num_images = 10000
  c.data.heldout_fraction = 0.1

  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (128, 64)
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (256, 128)
  c.task.num_tasks = 8
  # Diversity: the mean pairwise mutual information of the task heads (DivDis), not the
  # uniformity loss: with uniformity (0.1 or 1.0, 1,500 steps, one seed each, previous defaults)
  # two of the 8 tasks came out near-duplicates (max folded agreement ~0.99, mean 0.73-0.79).
  # The original's MI loss (log of the summed MI) collapsed to constant tasks on 1 of 3 seeds at
  # coefficient 1.0: its gradient grows as the MI falls. See the docstring for the measurements.
  c.task.diversity = "mutual_information_divdis"
  c.task.diversity_coef = 1.0

  c.inner.num_steps = 20
  c.inner.batch_size = 256
  c.inner.learning_rate = 0.1
  c.inner.heldout_batch_size = 512
  c.meta.num_steps = 1000
  c.meta.learning_rate = 0.01
  c.meta.log_every = 50
  c.checkpoint.every_steps = 250

  c.eval.batch_size = 256
  c.eval.num_epochs = 10
  c.eval.tasks_per_chunk = 16
  c.eval.num_human_tasks = 32
  c.eval.num_random_tasks = 8

  if arg == "smoke":
    c.data.num_images = 1000
    c.inner.heldout_batch_size = 100  # the whole meta-validation part of 1,000 images
    c.meta.num_steps = 2
    c.meta.log_every = 1
    c.inner.num_steps = 2
    c.eval.num_epochs = 1
    c.eval.num_human_tasks = 2
    c.eval.num_random_tasks = 2
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}; use '' or 'smoke'")
  return c
