r"""Adversarial train/test splits on CelebA with an attribute as the target: the original's
CelebA split, on Blond_Hair (docs/method.md#adversarial-splits).

Command (after a discovery run with configs/celeb_a.py, which this file shares its data with):
  python -m task_discovery.main --config=configs/celeb_a.py --workdir=runs/celeb_a
  python -m task_discovery.main --config=configs/celeb_a_adversarial.py \
      --workdir=runs/celeb_a_adv --config.adversarial.discovery_workdir=runs/celeb_a
  # without a discovery run (random ResNet-18s thresholded at their median):
  python -m task_discovery.main --config=configs/celeb_a_adversarial.py \
      --workdir=runs/celeb_a_adv_rn --config.adversarial.source=random_network

Target: human task 9 of CelebA, the attribute Blond_Hair (the original trains on its adversarial
CelebA split with Blond_Hair as the target; --config.adversarial.target_tasks='(9, 20)' adds
Male, 20). Discovered tasks: the first 8 of the discovery run. One split per pair, learners
trained as in configs/cifar_adversarial.py. CelebA has no classes, so no K-way learners
(`adversarial.include_kway=False`).

Expected (the paper's finding): test accuracy on the adversarial split far below that on a
random split of the same sizes.
"""

import os

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  c = config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "celeb_a.py"), arg)
  c.job = "adversarial_split"
  c.adversarial.source = "discovery"
  c.adversarial.target_tasks = (9,)  # Blond_Hair
  c.adversarial.discovered_tasks = tuple(range(8))
  c.adversarial.num_random_networks = 8
  c.adversarial.random_network = config_lib.model_config("resnet18")  # like the learners
  c.adversarial.mirror = False
  c.adversarial.include_kway = False  # one class: nothing K-way to learn
  if arg == "smoke":
    c.adversarial.random_network.resnet_width = 8
    c.adversarial.discovered_tasks = (0, 1)
    c.adversarial.num_random_networks = 2
    c.eval.num_epochs = 1
    c.eval.batch_size = 32
  return c
