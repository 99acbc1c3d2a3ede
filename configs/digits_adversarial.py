r"""Adversarial train/test splits on scikit-learn digits, 2 CPU cores
(docs/method.md#adversarial-splits).

Commands:
  # discovered tasks of a discovery run (same data config: configs/digits.py):
  python -m task_discovery.main --config=configs/digits.py --workdir=runs/digits
  python -m task_discovery.main --config=configs/digits_adversarial.py --workdir=runs/digits_adversarial \
      --config.adversarial.discovery_workdir=runs/digits
  # no discovery run: randomly initialised networks split at their per-class median play tau_d
  python -m task_discovery.main --config=configs/digits_adversarial.py \
      --workdir=runs/digits_adv_rn --config.adversarial.source=random_network

The data, learner and `eval` protocol are those of configs/digits.py (MLP learners, Adam 1e-3,
30 epochs, 2 learners per split). Four of the original's target 5-vs-5 splits x every discovered
task (or 4 random networks) x both mirror images, with the binary targets and the 10-way labels.

What it should show: test accuracy on the adversarial splits far below that on random splits of
the same images and sizes (the learners follow the easier discovered task, which is reversed on the
test part), and the 10-way accuracy lower on adversarial splits too. See the README's results
table for the measured numbers and wall time. `:smoke` shrinks it for tests.
"""

import os

from task_discovery import config as config_lib


def _discovery_config(arg: str):
  # Load the sibling discovery config, so both runs share one data config.
  return config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.py"), arg)


def get_config(arg: str = ""):
  c = _discovery_config(arg)  # raises on an unknown argument
  c.job = "adversarial_split"
  c.adversarial.source = "discovery"
  c.adversarial.target_tasks = (0, 11, 18, 27)  # the first four of the original's targets
  c.adversarial.discovered_tasks = ()           # every task of the discovery run
  c.adversarial.num_random_networks = 4
  c.adversarial.random_network = config_lib.model_config("mlp")  # like the learners
  c.adversarial.random_network.mlp_widths = (128, 64)
  c.adversarial.mirror = True
  c.adversarial.include_kway = True
  if arg == "smoke":
    c.adversarial.target_tasks = (0, 11)
    c.adversarial.num_random_networks = 2
  return c
