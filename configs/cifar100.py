r"""CIFAR-100 (fine labels, 100 classes): the CIFAR-10 setting of configs/cifar.py on TFDS
`cifar100`.

Command:
  python -m task_discovery.main --config=configs/cifar100.py --workdir=runs/cifar100
  # AS of human- and random-labelled tasks only:
  python -m task_discovery.main --config=configs/cifar100.py --workdir=runs/cifar100_as \
      --config.job=agreement

Data: TFDS `cifar100` (prepare it once on a machine with internet, see docs/datasets.md), its
`label` feature (the 100 fine classes; `coarse_label` is not read), the 50k training images split
as CIFAR-10's. Human-labelled tasks: 50-vs-50 splits of the classes, the first 126 of the seeded
sequence of distinct splits (task_discovery/data/tasks.py), so their AS is comparable between
runs. Everything else (ResNet-18s, d = 32, 100,000 meta-steps, the evaluation) is
configs/cifar.py's; `:smoke` is its smoke.
"""

import os

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  # The CIFAR-10 setting, so both datasets are run alike.
  c = config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar.py"), arg)
  c.data.name = "cifar100"
  return c
