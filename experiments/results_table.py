r"""The README's results table, generated from the report.json files of finished runs.

Commands (from the repository root), after running the README's results commands:
  python -m experiments.results_table runs/digits3 runs/fmnist3 runs/digits_adv3 \
      runs/digits3_flax > runs/results.md

Each argument is the workdir of a job run with `--seeds=...` (its report.json holds the spread
over seeds, `task_discovery.run.seeds`) or of a single run. A `discover` run gives one row with
each family's mean AS and the discovered tasks' folded agreement; an `adversarial_split` run
gives the mean test accuracy on adversarial against random splits. Every number is the mean
over seeds with its 95% t-interval, so the table says how many seeds it rests on and never
copies numbers by hand.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from task_discovery.run import seeds

_DISCOVER = (
    ("summary.discovered.mean_as", "discovered AS"),
    ("summary.human.mean_as", "human AS"),
    ("summary.random.mean_as", "random AS"),
    ("similarity.mean_folded_agreement", "mean folded agreement"),
    ("similarity.max_folded_agreement", "max folded agreement"),
)
_ADVERSARIAL = (
    ("adversarial.summary.mean_adversarial_accuracy", "adversarial split accuracy"),
    ("adversarial.summary.mean_random_accuracy", "random split accuracy"),
    ("adversarial.summary.mean_kway_adversarial_accuracy", "10-way, adversarial"),
    ("adversarial.summary.mean_kway_random_accuracy", "10-way, random"),
)


def read_metrics(workdir: str) -> tuple[dict, int]:
  """`{path: {'mean', 'ci95'}}` and the number of seeds, from `WORKDIR/report.json`.

  Raises:
    FileNotFoundError: naming the file and the run that writes it.
  """
  path = os.path.join(workdir, "report.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: run the job with --workdir={workdir} first")
  with open(path) as f:
    report = json.load(f)
  if "metrics" in report and "seeds" in report:  # the spread over seeds
    return report["metrics"], len(report["seeds"])
  return {k: {"mean": v, "ci95": None} for k, v in seeds.numeric_leaves(report).items()}, 1


def cell(metrics: dict, path: str) -> str:
  """`0.987 (0.966-1.008)`: mean and 95% interval over seeds; the mean alone for one seed."""
  m = metrics.get(path)
  if m is None or m.get("mean") is None:
    return "-"
  if m.get("ci95"):
    lo, hi = m["ci95"]
    return f"{m['mean']:.3f} ({lo:.3f}-{hi:.3f})"
  return f"{m['mean']:.3f}"


def row(workdir: str) -> str:
  metrics, num_seeds = read_metrics(workdir)
  fields = _ADVERSARIAL if any(k.startswith("adversarial.") for k in metrics) else _DISCOVER
  parts = "; ".join(f"{name} {cell(metrics, path)}" for path, name in fields
                    if path in metrics)
  return f"| `{workdir}` | {num_seeds} | {parts} |"


def table(workdirs: Sequence[str]) -> str:
  lines = ["| workdir | seeds | mean over seeds (95% interval) |", "| --- | --- | --- |"]
  return "\n".join(lines + [row(w) for w in workdirs])


def main(argv: Sequence[str]) -> int:
  if not argv:
    print(__doc__, file=sys.stderr)
    return 2
  print(table(argv))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
