r"""Adversarial train/test splits on Fashion-MNIST, 2 CPU cores
(docs/method.md#adversarial-splits).

Commands:
  python -m task_discovery.main --config=configs/fashion_mnist.py --workdir=runs/fmnist
  python -m task_discovery.main --config=configs/fashion_mnist_adversarial.py \
      --workdir=runs/fmnist_adv --config.adversarial.discovery_workdir=runs/fmnist
  # without a discovery run:
  python -m task_discovery.main --config=configs/fashion_mnist_adversarial.py \
      --workdir=runs/fmnist_adv_rn --config.adversarial.source=random_network

Same data (the seeded 10,000-image subset), MLP learners and `eval` protocol (Adam 1e-3, 10
epochs, 2 learners) as configs/fashion_mnist.py. Three of the original's targets x every
discovered task (d = 8; or 4 random networks) x both mirror images, binary and 10-way labels.

What it should show: test accuracy on the adversarial splits far below that on random splits of
the same images and sizes, and the 10-way accuracy lower on adversarial splits too. See
docs/results.md for the measured numbers and wall time. `:smoke` shrinks it for tests.
"""

import os

from task_discovery import config as config_lib


def _discovery_config(arg: str):
  # Load the sibling discovery config, so both runs share one data config.
  return config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist.py"), arg)


def get_config(arg: str = ""):
  c = _discovery_config(arg)  # raises on an unknown argument
  c.job = "adversarial_split"
  c.adversarial.source = "discovery"
  c.adversarial.target_tasks = (0, 11, 18)    # the first three of the original's targets
  c.adversarial.discovered_tasks = ()         # every task of the discovery run
  c.adversarial.num_random_networks = 4
  c.adversarial.random_network = config_lib.model_config("mlp")  # like the learners
  c.adversarial.random_network.mlp_widths = (128, 64)
  c.adversarial.mirror = True
  c.adversarial.include_kway = True
  if arg == "smoke":
    c.adversarial.target_tasks = (0,)
    c.adversarial.num_random_networks = 2
  return c
