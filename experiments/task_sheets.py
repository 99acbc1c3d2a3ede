r"""The discovered tasks of several discovery runs beside each other, in one figure.

Command (from the repository root):
  python -m experiments.task_sheets --source=MLP=runs/fmnist3/seed_0 \
      --source=CNN=runs/fmnist_cnn_d5/seed_0 --out=docs/images/fmnist_mlp_vs_cnn_tasks.png

Each --source=LABEL=WORKDIR is a finished `discover` run over the same images (checked: the same
data config); per run and task the figure shows the images its task network puts most
confidently in each class (`tasks.npz` scores) and the task's AS from its `report.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np

from experiments import common


def _discovered_as(workdir: str, num_tasks: int) -> np.ndarray | None:
  report = common.read_json(os.path.join(workdir, "report.json"))
  by_index = {t["index"]: t["agreement"] for t in report.get("tasks", [])
              if t["family"] == "discovered"}
  return np.asarray([by_index[i] for i in range(num_tasks)]) if len(by_index) == num_tasks \
      else None


def main(argv: Sequence[str] | None = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--source", action="append", required=True, metavar="LABEL=WORKDIR")
  parser.add_argument("--out", required=True, help="the PNG to write")
  parser.add_argument("--per_side", type=int, default=4)
  args = parser.parse_args(argv)
  from task_discovery import config as config_lib
  from task_discovery.data import datasets
  from task_discovery.run import plots
  sources = dict(s.split("=", 1) for s in args.source)
  first = next(iter(sources.values()))
  config = config_lib.load_config_json(os.path.join(first, "config.json"))
  for workdir in sources.values():
    common.check_same_data(config, workdir)
  dataset = datasets.load_dataset(config.data)
  panels = {}
  for label, workdir in sources.items():
    with np.load(os.path.join(workdir, "tasks.npz")) as f:
      scores = f["scores"]
    panels[label] = (scores, _discovered_as(workdir, scores.shape[0]))
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  plots.task_sheets_side_by_side(dataset.raw_images(), panels, args.out,
                                 per_side=args.per_side,
                                 title=f"{dataset.name}: discovered tasks")
  print(args.out)
  return args.out


if __name__ == "__main__":
  main(sys.argv[1:])
