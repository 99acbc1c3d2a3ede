r"""CelebA faces from TFDS `celeb_a`, whose 40 binary attributes are the human-labelled tasks.

Command:
  python -m task_discovery.main --config=configs/celeb_a.py --workdir=runs/celeb_a

Data: TFDS `celeb_a` (prepare it once on a machine with internet, see docs/datasets.md), its
162,770 training faces, each cropped to the centred 178x178 square and resized to 32x32
(`data.image_size`; --config.data.image_size=64 for more detail, four times the memory and
compute), split 80% / 10% / 10% with a fixed seed. CelebA has no classes: every image is in one
class, and the human-labelled tasks are its 40 attributes (5_o_Clock_Shadow ... Young, in TFDS's
order), named in report.json. Everything else is configs/cifar.py's: ResNet-18s, d = 32, 100,000
meta-steps, the evaluation. `:smoke` is its smoke.
"""

import os

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  # The CIFAR-10 setting (with its smoke), so that the datasets are run alike.
  c = config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar.py"), arg)
  c.data.name = "celeb_a"
  c.data.image_size = 32
  c.eval.num_human_tasks = 40 if arg != "smoke" else 2  # all attributes (smoke: 2 of them)
  return c
