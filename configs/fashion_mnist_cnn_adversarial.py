r"""Adversarial train/test splits on Fashion-MNIST from a CNN's discovered tasks, CNN learners
(docs/method.md#adversarial-splits), 2 CPU cores.

Commands:
  python -m task_discovery.main --config=configs/fashion_mnist_cnn.py --workdir=runs/fmnist_cnn
  python -m task_discovery.main --config=configs/fashion_mnist_cnn_adversarial.py \
      --workdir=runs/fmnist_cnn_adv --config.adversarial.discovery_workdir=runs/fmnist_cnn

The data, CNN learners and `eval` protocol of configs/fashion_mnist_cnn.py (Adam 1e-3, 5 epochs,
2 learners per split), two of the original's targets (0 and 18) x every discovered task (d = 8)
x both mirror images, binary targets only: CNN learners train several times slower than the
MLPs of configs/fashion_mnist_adversarial.py, so this keeps a seed to a few minutes.

What it produced (seeds 0, 1, 2 on a 2-core AMD EPYC, from runs/fmnist_cnn_d5;
`python -m experiments.results_table runs/fmnist_cnn_d5_adv3`): CNN learners on splits built
from tasks a CNN generalises on follow the discovered task and fail on the target: test
accuracy 0.288 (95% interval 0.226-0.350; per seed 0.315 / 0.266 / 0.284) against 0.793
(0.769-0.816) on random splits of the same images and sizes; 1629 s wall for the 3 seeds.
  python -m task_discovery.main --config=configs/fashion_mnist_cnn_adversarial.py \
      --workdir=runs/fmnist_cnn_d5_adv3 --seeds=0,1,2 \
      --config.adversarial.discovery_workdir=runs/fmnist_cnn_d5
(seed S reads runs/fmnist_cnn_d5/seed_S). From the near-duplicate tasks of the coefficient 1.0
run (configs/fashion_mnist_cnn.py) the splits were harder still: 0.148 against 0.787.
`:smoke` shrinks it for tests.
"""

import os

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  here = os.path.dirname(os.path.abspath(__file__))
  # The MLP adversarial config's job and split settings on the CNN discovery config's data,
  # networks and protocol, so both pairs of runs differ in the networks only.
  c = config_lib.load_config_file(os.path.join(here, "fashion_mnist_cnn.py"), arg)
  splits = config_lib.load_config_file(os.path.join(here, "fashion_mnist_adversarial.py"), arg)
  c.job = splits.job
  c.adversarial = splits.adversarial
  c.adversarial.random_network = config_lib.model_config("cnn")  # like the learners
  c.adversarial.random_network.cnn_widths = (16, 32, 64)
  c.adversarial.include_kway = False
  if arg != "smoke":
    c.adversarial.target_tasks = (0, 18)
  return c
