r"""TinyImageNet (200 classes) from its directory, at 32x32 as the original's `tiny_imagenet` or
at 64x64 as its `tiny_imagenet_64` (argument `64`).

Command (after downloading http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzipping it
into DIR, see docs/datasets.md):
  python -m task_discovery.main --config=configs/tiny_imagenet.py --workdir=runs/tiny \
      --config.data.data_dir=DIR
  python -m task_discovery.main --config=configs/tiny_imagenet.py:64 --workdir=runs/tiny64 \
      --config.data.data_dir=DIR

Data: `data.source='directory'`, the 100k training images (`data.split='train'`), each resized
to 32x32 (PIL bilinear, as the original's torchvision `Resize(32)`) or kept at 64x64, split 80k
train / 10k meta-validation / 10k held-out with a fixed seed (the original trains on the 100k and
scores on the 10k validation images), normalised with the training part's per-channel mean and
std (the original: ImageNet's). Human-labelled tasks: 100-vs-100 splits of the classes, the
first 126 of the seeded sequence of distinct splits (task_discovery/data/tasks.py; the original
evaluates 5 random splits). Everything else is configs/cifar.py's: ResNet-18s, d = 32, 100,000
meta-steps, the evaluation. `:smoke` (or `64,smoke`) is its smoke on the same directory.
"""

import os

from task_discovery import config as config_lib


def get_config(arg: str = ""):
  args = set(arg.split(",")) - {""}
  if args - {"64", "smoke"}:
    raise ValueError(f"unknown config argument {arg!r}; use '', '64', 'smoke' or '64,smoke'")
  # The CIFAR-10 setting (with its smoke), so that the datasets are run alike.
  c = config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar.py"),
      "smoke" if "smoke" in args else "")
  c.data.name = "tiny_imagenet"
  c.data.source = "directory"
  c.data.data_dir = ""  # the tiny-imagenet-200 directory or its parent: set on the command line
  c.data.image_size = 64 if "64" in args else 32
  c.data.heldout_fraction = 0.1  # 10k held-out, and 10k meta-validation (data.meta_val_fraction)
  return c
