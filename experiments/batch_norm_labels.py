r"""How far a task network's two BatchNorm labellings differ, on the images it was trained on.

Command (from the repository root):
  python -m experiments.batch_norm_labels runs/digits runs/fmnist runs/fmnist_cnn \
      [--batch_size=512] [--out=FILE.json]

Each argument is a discovery workdir (or an imported one whose dataset loads here). Its task
network labels all images of its data config three ways (`task_discovery.load(DIR,
batch_norm=...)`):
  * `running`: BatchNorm on its running statistics, as this library's runs export their tasks;
  * `batch`: each batch of `--batch_size` consecutive images (the dataset's order) on its own
    statistics, as the original labels every image;
  * `batch, other order`: the same on a seeded permutation of the images, i.e. other batches.
Printed per workdir: the share of labels (images x tasks) where `running` and `batch` differ,
its largest value over the tasks, and the share where the two batch orders differ (how much a
label depends on the images it is batched with). `--out` writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

import numpy as np


def compare(workdir: str, *, batch_size: int, seed: int = 0) -> dict:
  """The three labellings of `workdir`'s tasks on its dataset, compared (module docstring)."""
  import task_discovery
  from task_discovery import config as config_lib
  from task_discovery.data import datasets
  config = config_lib.load_config_json(os.path.join(workdir, "config.json"))
  images = datasets.load_dataset(config.data).raw_images()
  net = task_discovery.load(workdir)
  running = net.labels(images, batch_norm="running")
  batch = net.labels(images, batch_norm="batch", batch_size=batch_size)
  order = np.random.default_rng(seed).permutation(len(images))
  other = np.empty_like(batch)
  other[order] = net.labels(images[order], batch_norm="batch", batch_size=batch_size)
  per_task = (running != batch).mean(axis=0)
  return {"workdir": workdir, "dataset": config.data.name, "num_images": len(images),
          "encoder": config.task.encoder.name, "num_tasks": net.num_tasks, "step": net.step,
          "batch_size": batch_size,
          "running_vs_batch": float(per_task.mean()),
          "running_vs_batch_max_task": float(per_task.max()),
          "running_vs_batch_per_task": per_task.tolist(),
          "batch_orders_differ": float((batch != other).mean()),
          "class_1_share_running": float(running.mean()),
          "class_1_share_batch": float(batch.mean())}


def main(argv: Sequence[str] | None = None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--batch_size", type=int, default=512)
  parser.add_argument("--out", default="", help="also write the rows as JSON here")
  args = parser.parse_args(argv)
  rows = [compare(w, batch_size=args.batch_size) for w in args.workdirs]
  print(f"{'workdir':<28} {'dataset':<14} {'encoder':<8} {'d':>3} {'running vs batch':>16} "
        f"{'worst task':>10} {'two batch orders':>16}")
  for r in rows:
    print(f"{r['workdir']:<28} {r['dataset']:<14} {r['encoder']:<8} {r['num_tasks']:>3} "
          f"{r['running_vs_batch']:>16.4f} {r['running_vs_batch_max_task']:>10.4f} "
          f"{r['batch_orders_differ']:>16.4f}")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(rows, f, indent=1)
  return rows


if __name__ == "__main__":
  main()
