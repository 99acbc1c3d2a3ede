r"""Effect of the number of tasks d (`task.num_tasks`) and of the uniformity coefficient
(`task.diversity_coef`) on the AS of the discovered tasks and on how similar they are.

Commands (from the repository root):
  python -m experiments.sweep_tasks_and_diversity --config=configs/digits.py \
      --out=runs/exp_sweep --scale=cpu
  # the paper's grid (d in {8, 16, 32} x coefficient in {0, 1, 5, 25}), on a GPU:
  python -m experiments.sweep_tasks_and_diversity --config=configs/cifar.py \
      --out=runs/exp_sweep_cifar --scale=gpu
  # any grid:
  python -m experiments.sweep_tasks_and_diversity --config=configs/digits.py \
      --out=runs/exp_sweep --num_tasks=4,8 --diversity_coefs=0,25

What it does: one `job='discover'` run per grid point in OUT/d{d}_coef{coef} (a rerun skips
finished points and resumes interrupted ones; a finished point of another config is an error),
then writes
  OUT/sweep_tasks_and_diversity.md    d | coef | mean / min / max AS of the discovered tasks |
                                      mean folded agreement | mean AMI (one row per grid point)
  OUT/sweep_tasks_and_diversity.json  the same rows and the grid
  OUT/sweep_tasks_and_diversity.png   two panels against the coefficient, one line per d:
                                      mean AS of the discovered tasks, mean folded agreement
Grids (--num_tasks / --diversity_coefs replace them):
  smoke: d in {2, 4} x coef {5}            (2 points; seconds each, for tests)
  cpu:   d in {4, 8, 16} x coef {0, 0.1, 5} (9 points; for configs/digits.py, whose default
         coefficient is 0.1)
  gpu:   d in {8, 16, 32} x coef {0, 1, 5, 25}  (12 points: the paper's grid)
Human- and random-labelled tasks do not depend on d or the coefficient, so they are not
evaluated here (eval.num_human_tasks = eval.num_random_tasks = 0; `--set` them back if wanted;
`experiments.as_families` gives them). meta.meta_batch_size is capped at d.

Expected (qualitatively): the uniformity loss is what spreads the d tasks apart
(docs/method.md#the-task-network),
so a larger coefficient should give less similar tasks (mean folded agreement towards 0.5), and
coef 0 the most similar ones; how much AS that costs, and how AS changes with d, is what this
sweep measures (the paper's released reference has mean AS 0.931 for d = 8 and 0.879 for d = 32
with ResNet-18 on CIFAR-10, docs/method.md#measuring-discovered-tasks).
Measured with the first command (configs/digits.py: 1,500 meta-steps then; --scale=cpu) on a 2-core
CPU machine shared with other jobs: 31 min wall for the 9 runs. Mean AS of the discovered tasks
/ mean folded agreement between them:
            coef 0          coef 0.1        coef 5
  d = 4     0.984 / 0.643   0.992 / 0.645   0.981 / 0.536
  d = 8     0.989 / 0.740   0.987 / 0.603   0.958 / 0.515
  d = 16    0.989 / 0.761   0.983 / 0.634   0.929 / 0.568
i.e. without the uniformity loss the tasks are the most alike (and more so for larger d) and all
highly agreeable; coefficient 5 makes them much less alike (0.52-0.57), at a cost in AS that
grows with d.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from experiments import common

NAME = "sweep_tasks_and_diversity"
GRIDS = {
    "smoke": ((2, 4), (5.0,)),
    "cpu": ((4, 8, 16), (0.0, 0.1, 5.0)),
    "gpu": ((8, 16, 32), (0.0, 1.0, 5.0, 25.0)),
}
# The baselines do not depend on the grid: leave them to experiments.as_families.
PRESETS = {"eval.num_human_tasks": 0, "eval.num_random_tasks": 0}


def point_name(num_tasks: int, coef: float) -> str:
  return f"d{num_tasks}_coef{coef:g}"


def point_config(config, num_tasks: int, coef: float):
  return common.copy_config(config, {
      "task.num_tasks": int(num_tasks), "task.diversity_coef": float(coef),
      "meta.meta_batch_size": min(int(config.meta.meta_batch_size), int(num_tasks))})


def row(num_tasks: int, coef: float, report: dict) -> dict:
  discovered = report["summary"]["discovered"]
  sim = report.get("similarity", {})
  return {"num_tasks": int(num_tasks), "diversity_coef": float(coef),
          "mean_as": discovered["mean_as"], "min_as": discovered["min_as"],
          "max_as": discovered["max_as"],
          "mean_folded_agreement": sim.get("mean_folded_agreement"),
          "mean_adjusted_mutual_information": sim.get("mean_adjusted_mutual_information"),
          "human_mean_as": report["summary"].get("human", {}).get("mean_as"),
          "meta_steps": report.get("discovery", {}).get("meta_steps"),
          "workdir": point_name(num_tasks, coef)}


def plot(rows: list[dict], path: str, title: str) -> None:
  from task_discovery.run import plots  # noqa: F401  (selects matplotlib's headless backend)
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
  for d in sorted({r["num_tasks"] for r in rows}):
    part = sorted((r for r in rows if r["num_tasks"] == d), key=lambda r: r["diversity_coef"])
    x = [r["diversity_coef"] for r in part]
    for ax, key in zip(axes, ("mean_as", "mean_folded_agreement")):
      ax.plot(x, [r[key] for r in part], "o-", label=f"d = {d}")
  coefs = sorted({r["diversity_coef"] for r in rows})
  for ax, ylabel in zip(axes, ("mean AS of discovered tasks",
                               "mean folded agreement between tasks")):
    # Linear up to the smallest positive coefficient, logarithmic above: 0 stays visible.
    ax.set_xscale("symlog", linthresh=min([c for c in coefs if c > 0] or [1.0]))
    ax.set_xticks(coefs, [f"{c:g}" for c in coefs])
    ax.set_xlabel("uniformity coefficient (task.diversity_coef)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.45, 1.02)
    ax.axhline(0.5, color="gray", lw=0.5, ls=":")
    ax.legend(fontsize=8)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def seed_figures(per_seed: dict, agg: dict, out: str) -> dict:
  """Mean AS of the discovered tasks per grid point over seeds, with 95% intervals."""
  from task_discovery.run import plots
  rows = next(iter(per_seed.values()))["rows"]
  groups = [point_name(r["num_tasks"], r["diversity_coef"]) for r in rows]
  series, intervals = {}, {}
  for key, label in (("mean_as", "mean AS"), ("mean_folded_agreement", "folded agreement")):
    spreads = [common.spread_of(agg, f"rows.{i}.{key}") for i in range(len(rows))]
    series[label] = [m for m, _ in spreads]
    intervals[label] = [ci for _, ci in spreads]
  path = os.path.join(out, NAME + "_over_seeds.png")
  plots.grouped_bars(groups, series, path, ylabel="mean over seeds",
                     title=f"discovered tasks over seeds {', '.join(map(str, per_seed))} "
                           "(bars: 95% interval)", intervals=intervals)
  return {"over_seeds": path}


def main(argv: Sequence[str] | None = None) -> dict:
  parser = common.make_parser(__doc__)
  parser.add_argument("--num_tasks", type=common.comma_list(int), default=None,
                      help="values of d, e.g. 8,16,32 (default: the scale's grid)")
  parser.add_argument("--diversity_coefs", type=common.comma_list(float), default=None,
                      help="uniformity coefficients, e.g. 0,1,5,25 (default: the scale's grid)")
  args = parser.parse_args(argv)
  if args.seeds:  # the table gives each grid point's (rows.I.*) mean AS with its interval
    return common.run_over_seeds(main, sys.argv[1:] if argv is None else argv, args.out,
                                 args.seeds, NAME, figure_fn=seed_figures)
  common.setup_logging()
  config = common.load_config(args.config, args.scale)
  common.apply_overrides(config, PRESETS)
  common.apply_overrides(config, args.overrides)
  config.job = "discover"
  grid_d, grid_coef = GRIDS[args.scale]
  grid_d, grid_coef = args.num_tasks or grid_d, args.diversity_coefs or grid_coef
  rows = []
  for d in grid_d:
    for coef in grid_coef:
      report = common.run_job(point_config(config, d, coef),
                              os.path.join(args.out, point_name(d, coef)))
      rows.append(row(d, coef, report))
  figure = os.path.join(args.out, NAME + ".png")
  plot(rows, figure, f"{config.data.name}: learner {config.learner.name}, "
                     f"encoder {config.task.encoder.name}, {config.meta.num_steps} meta-steps")
  table = common.markdown_table(
      ["d", "coef", "mean AS", "min AS", "max AS", "folded agreement", "AMI", "workdir"],
      [[r["num_tasks"], f"{r['diversity_coef']:g}", r["mean_as"], r["min_as"], r["max_as"],
        r["mean_folded_agreement"], r["mean_adjusted_mutual_information"], r["workdir"]]
       for r in rows])
  summary = {"rows": rows, "grid": {"num_tasks": list(grid_d), "diversity_coef": list(grid_coef)},
             "scale": args.scale, "config": args.config, "overrides": list(args.overrides),
             "outputs": {"figure": figure}}
  return common.write_outputs(args.out, NAME, summary, table)


if __name__ == "__main__":
  main(sys.argv[1:])
