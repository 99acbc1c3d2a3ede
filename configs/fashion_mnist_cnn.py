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
keep a seed's whole `discover` job near 20 minutes on 2 cores.

What it produces (seeds 0, 1, 2 on a 2-core AMD EPYC; mean and 95% t-interval over seeds,
`python -m experiments.results_table runs/fmnist_cnn3`):
  discovered 0.981 (0.971-0.990) against human 0.900 (0.877-0.923, 16 tasks) and random 0.780
  (0.644-0.917, 8 tasks): discovered above human with the intervals apart, 0.20 above random.
  Mean folded agreement 0.663 (0.634-0.693), but the tasks are less varied than the MLP's:
  label balance from 8% to 91%, and on every seed two tasks are near-duplicates (most similar
  pair 0.991 / 0.947 / 0.996; on seed 0 tasks 1 and 2 put the same 10% of dark tops in class 1).
  python -m task_discovery.main --config=configs/fashion_mnist_cnn.py --workdir=runs/fmnist_cnn3 \
      --seeds=0,1,2
Time per seed: meta-training 9m00s and evaluation 14m11s for seed 2, alone on the machine
(seeds 0 and 1, beside other jobs: 11m41s + 15m22s, 14m20s + 20m42s). The evaluation then used
the canonical convolution; `conv_impl='auto'` now trains the evaluation's learners with im2col,
1.6x faster per step (benchmarks/eval_step.py), about 18 minutes a seed in all. The same tasks
under MLP learners, and the MLP's under CNN learners: docs/results.md#architecture-specificity.
`:smoke` shrinks it for tests.
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
