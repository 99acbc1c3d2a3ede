r"""Fashion-MNIST with convolutional learners and a convolutional encoder, on 2 CPU cores.

Command:
  sudo apt-get install -y dataset-fashion-mnist   # or have TFDS prepare fashion_mnist
  python -m task_discovery.main --config=configs/fashion_mnist_cnn.py --workdir=runs/fmnist_cnn

The data of `configs/fashion_mnist.py` (the same seeded subset of 10,000 training images:
8,000 train / 1,000 meta-validation / 1,000 held-out) and the same d = 8 tasks and diversity
loss, with the library's small CNN (3x3 conv, BatchNorm, ReLU per stage; widths 16-32-64,
stride 2 after the first stage; global average pooling) as learners and as the task network's
backbone. The unroll is shorter and its batches smaller than the MLP config's (T = 10 inner
steps on 128 images, 600 meta-steps) and the evaluation lighter (16 human tasks, 5 epochs), to
bring a seed's whole `discover` job towards 20 minutes on 2 cores: sized from the meta-step's
measured cost (benchmarks/README.md, workload e), not yet timed end to end, and its results over
seeds are not yet measured. `:smoke` shrinks it for tests.
"""

import os

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  # The sibling MLP config, so both share the data subset, d and the diversity loss; its
  # `:smoke` shrinks data, meta-steps and evaluation alike (and rejects unknown arguments).
  c = config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist.py"), arg)
  for network in (c.learner, c.task.encoder):
    network.name = "cnn"
    network.cnn_widths = (16, 32, 64)
  c.inner.batch_size = 128
  if arg == "smoke":  # the MLP config's smoke sizes, CNNs
    return c
  c.inner.num_steps = 10
  c.inner.heldout_batch_size = 256
  c.meta.num_steps = 600
  c.checkpoint.every_steps = 200
  # CNN learners train several times slower than the MLPs: fewer human tasks and epochs keep
  # the evaluation a few minutes; every family is still scored by the same protocol.
  c.eval.num_epochs = 5
  c.eval.num_human_tasks = 16
  c.eval.tasks_per_chunk = 8
  return c
