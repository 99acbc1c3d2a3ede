r"""Adversarial train/test splits on CIFAR-10: the original's setting, for GPUs
(docs/method.md#adversarial-splits).

Command (after a discovery run with configs/cifar.py, which this file shares its data with):
  python -m task_discovery.main --config=configs/cifar.py --workdir=runs/cifar
  python -m task_discovery.main --config=configs/cifar_adversarial.py --workdir=runs/cifar_adv \
      --config.adversarial.discovery_workdir=runs/cifar
  # without a discovery run (the original's ImageNet variant: random ResNet-18s, median split):
  python -m task_discovery.main --config=configs/cifar_adversarial.py \
      --workdir=runs/cifar_adv_rn --config.adversarial.source=random_network

The original: targets 0, 11, 18, 27, 31, 38, 40 of the human 5-vs-5 task list x 8 discovered
tasks, one split per pair (no mirror), CIFAR ResNet-18 learners trained with Adam 1e-3, batch 512,
100 epochs, no augmentation, and the 10-way labels on the same splits. This uses the first 8
tasks of a d = 32 run (with a d = 8 run, `--config.adversarial.discovered_tasks='()'` takes all).
Splits cover all 50k training images (every split's parts subsampled to the run's smallest, see
task_discovery/data/splits.py).

Expected (the paper's finding): test accuracy on adversarial splits far below that on random
splits of the same sizes, for the binary targets and the 10-way labels alike.

Cost: 56 splits x (adversarial + random) x (binary + 10-way) = 224 tasks x 2 ResNet-18s x 100
epochs on ~25k images; plan on a GPU and raise `eval.tasks_per_chunk` to fill it. `:smoke`
shrinks everything for a quick check of the pipeline.
"""

import os

from task_discovery import config as config_lib


def _discovery_config(arg: str):
  # Load the sibling discovery config, so both runs share one data config.
  return config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar.py"), arg)


def get_config(arg: str = ""):
  c = _discovery_config(arg)  # raises on an unknown argument
  c.job = "adversarial_split"
  c.adversarial.source = "discovery"
  c.adversarial.target_tasks = (0, 11, 18, 27, 31, 38, 40)
  c.adversarial.discovered_tasks = tuple(range(8))
  c.adversarial.num_random_networks = 8
  c.adversarial.random_network = config_lib.model_config("resnet18")  # like the learners
  c.adversarial.mirror = False
  c.adversarial.include_kway = True
  # The original's learners (already the `eval` defaults; restated because they define the result).
  c.eval.optimizer = "adam"
  c.eval.learning_rate = 1e-3
  c.eval.batch_size = 512
  c.eval.num_epochs = 100
  if arg == "smoke":
    c.adversarial.random_network.resnet_width = 8
    c.adversarial.target_tasks = (0, 11)
    c.adversarial.discovered_tasks = (0, 1)
    c.adversarial.num_random_networks = 2
    c.eval.num_epochs = 1
    c.eval.batch_size = 32  # within the smallest train part of a split of the smoke's 256 images
  return c
