r"""Architecture specificity as a paired design: the same tasks under two learner architectures.

Command (from the repository root), after a `cross_architecture` run over evaluation seeds:
  python -m experiments.cross_architecture --config=configs/fashion_mnist_cnn.py \
      --out=runs/xarch_pairs --scale=cpu --eval_archs=mlp,cnn \
      --source=cnn=runs/fmnist_cnn --seeds=0,1,2 --set eval.num_human_tasks=8
  python -m experiments.architecture_pairs runs/xarch_pairs --source=cnn --own=cnn --other=mlp

Every task of `--source` was scored by learners of both architectures in every seed's
`OUT/seed_S/eval_ARCH/SOURCE/report.json` (a seed changes the learners' initialisations and
the batch order, not the tasks). Per task: the difference `AS(own) - AS(other)`, averaged over
the seeds; the tasks are the units of the paired design, so the 95% t-interval of the mean
difference is over tasks (n - 1 degrees of freedom). The same for the human-labelled baseline
tasks (`eval_ARCH/<first source>`'s 'human' family), against which the shift of the learners
themselves reads: the third line is the discovered tasks' mean difference minus the human
tasks', with its Welch 95% interval (two independent sets of tasks). Prints the three lines
and writes them to `OUT/architecture_pairs.json`.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from typing import Sequence

import numpy as np


def per_task_as(report_path: str, family: str) -> dict[int, float]:
  with open(report_path) as f:
    report = json.load(f)
  return {int(t["index"]): float(t["agreement"]) for t in report.get("tasks", [])
          if t["family"] == family}


def paired(out: str, source: str, own: str, other: str, family: str) -> dict:
  """Per-task differences own - other over the seeds of `out` (module docstring)."""
  from scipy import stats
  seeds = sorted(glob.glob(os.path.join(out, "seed_*"))) or [out]
  diffs = {}
  for seed_dir in seeds:
    a = per_task_as(os.path.join(seed_dir, f"eval_{own}", source, "report.json"), family)
    b = per_task_as(os.path.join(seed_dir, f"eval_{other}", source, "report.json"), family)
    for task in sorted(set(a) & set(b)):
      diffs.setdefault(task, []).append(a[task] - b[task])
  if len(diffs) < 2:
    raise ValueError(f"{out}: fewer than two tasks of family {family!r} scored by both "
                     f"{own} and {other} learners (source {source!r})")
  per_task = np.asarray([np.mean(v) for v in diffs.values()])
  mean = float(per_task.mean())
  half = float(stats.t.ppf(0.975, len(per_task) - 1) * per_task.std(ddof=1)
               / np.sqrt(len(per_task)))
  return dict(family=family, tasks=len(per_task), seeds=len(seeds), mean_difference=mean,
              interval=[mean - half, mean + half], width=2 * half,
              per_task=per_task.tolist(),
              decided=bool(mean - half > 0 or mean + half < 0 or 2 * half < 0.01))


def relative(found: dict, human: dict) -> dict:
  """The discovered tasks' mean difference minus the human tasks', Welch's 95% interval."""
  from scipy import stats
  a, b = np.asarray(found["per_task"]), np.asarray(human["per_task"])
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  mean = float(a.mean() - b.mean())
  if va + vb == 0:
    half = 0.0
  else:
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df) * np.sqrt(va + vb))
  return dict(family="file-human", tasks=len(a), seeds=found["seeds"], mean_difference=mean,
              interval=[mean - half, mean + half], width=2 * half,
              decided=bool(mean - half > 0 or mean + half < 0 or 2 * half < 0.01))


def main(argv: Sequence[str] | None = None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("out", help="a cross_architecture --out directory (with seed_S/ or not)")
  parser.add_argument("--source", required=True, help="the label of the tasks' source")
  parser.add_argument("--own", required=True, help="the architecture that discovered them")
  parser.add_argument("--other", required=True, help="the architecture to compare with")
  parser.add_argument("--baseline_source", default="",
                      help="the eval_ARCH/ folder holding the human baseline (default --source)")
  args = parser.parse_args(argv)
  rows = [paired(args.out, args.source, args.own, args.other, "file"),
          paired(args.out, args.baseline_source or args.source, args.own, args.other, "human")]
  rows.append(relative(*rows))
  for r, what in zip(rows, (f"tasks discovered with {args.source}", "human tasks",
                            "discovered minus human")):
    low, high = r["interval"]
    print(f"{what:<32} {args.own} - {args.other}: {r['mean_difference']:+.4f} (95% interval "
          f"{low:+.4f} .. {high:+.4f}; {r['tasks']} tasks x {r['seeds']} seeds) "
          + ("decided" if r["decided"] else "not decided (contains 0, wider than 0.01)"))
  with open(os.path.join(args.out, "architecture_pairs.json"), "w") as f:
    json.dump(rows, f, indent=1)
  return rows


if __name__ == "__main__":
  main()
