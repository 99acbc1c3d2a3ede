r"""Adversarial vs random train/test splits (docs/method.md#adversarial-splits): test accuracy
of learners trained on a human-labelled task when the split is built from a discovered task,
against random splits of the same sizes.

Commands (from the repository root):
  python -m experiments.adversarial_vs_random --config=configs/digits_adversarial.py \
      --out=runs/exp_adversarial --scale=cpu
  # discovered tasks of an existing discovery run (same data config: configs/digits.py):
  python -m experiments.adversarial_vs_random --config=configs/digits_adversarial.py \
      --out=runs/exp_adversarial --discovery_workdir=runs/digits
  # the original's CIFAR-10 setting (7 targets x 8 discovered tasks), on a GPU:
  python -m experiments.adversarial_vs_random --config=configs/cifar_adversarial.py \
      --out=runs/exp_adversarial_cifar --scale=gpu

What it does: for each split source (--sources; default discovery and random_network), one
`job='adversarial_split'` run in OUT/adversarial_SOURCE with `adversarial.source=SOURCE`:
  discovery:       tau_d = the discovered tasks of --discovery_workdir; without it, the config
                   (as job='discover') is first run in OUT/discover (reused when finished);
  random_network:  tau_d = randomly initialised networks split at their per-class median (the
                   original's ImageNet variant; no discovery run needed);
  file:            tau_d from `--set adversarial.labels_file=...`.
Targets, discovered-task rows, mirror splits and K-way learners come from the config's
`adversarial` section (use the configs/*_adversarial.py files); --scale=smoke additionally uses
targets (0, 11), discovered tasks (0, 1), no mirror and 2 random networks; cpu and gpu run the
config as written. Then it writes
  OUT/adversarial_vs_random.md    per source, and per source and target: splits, mean test
                                  accuracy on adversarial and on random splits, their gap, and
                                  the same for K-way learners on the original classes
  OUT/adversarial_vs_random.json  the same, and each run's `adversarial.summary`
  OUT/adversarial_vs_random.png   grouped bars per source (adversarial / random, binary / K-way)
  OUT/adversarial_accuracy_SOURCE.png  per-split bars of each run (copied from its workdir)
A rerun skips finished runs.

Expected (qualitatively, docs/method.md#adversarial-splits): with discovered tasks as tau_d,
test accuracy on the adversarial splits is far below that on random splits of the same images
(the learners follow the easier tau_d, whose correlation with the target is reversed on the
test part); random splits give ordinary test accuracy.
Measured with the first command (configs/digits_adversarial.py: 4 targets x the 4 discovered
tasks x mirror = 32 splits per source, MLP learners, 30 epochs; --scale=cpu) on a 2-core CPU
machine shared with other jobs: 5 min 23 s wall (discovery 4 min, each split run under 1 min).
Mean test accuracy, adversarial vs random splits (binary target; K-way on the same splits):
  discovery:       0.219 vs 0.973   (K-way 0.244 vs 0.961)
  random_network:  0.887 vs 0.981   (K-way 0.895 vs 0.972)
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import numpy as np

from experiments import common
from task_discovery.run import workdir as workdir_lib

NAME = "adversarial_vs_random"
SOURCES = ("discovery", "random_network", "file")
SMOKE = {"adversarial.target_tasks": (0, 11), "adversarial.discovered_tasks": (0, 1),
         "adversarial.mirror": False, "adversarial.num_random_networks": 2}
DEFAULT_SOURCES = {"smoke": ("discovery",), "cpu": ("discovery", "random_network"),
                   "gpu": ("discovery", "random_network")}
METRICS = ("adversarial_accuracy", "random_accuracy", "kway_adversarial_accuracy",
           "kway_random_accuracy")


def _mean(values) -> float | None:
  values = [v for v in values if v is not None]
  return sum(values) / len(values) if values else None


def _gap(adversarial, random):
  return None if adversarial is None or random is None else random - adversarial


def source_rows(source: str, section: dict) -> list[list]:
  """Table rows of one run: all splits, then one row per target."""
  s = section["summary"]
  rows = [[source, "all", s["num_splits"], s["mean_adversarial_accuracy"],
           s["mean_random_accuracy"], _gap(s["mean_adversarial_accuracy"],
                                           s["mean_random_accuracy"]),
           s.get("mean_kway_adversarial_accuracy"), s.get("mean_kway_random_accuracy")]]
  for target in sorted({e["target"] for e in section["splits"]}):
    entries = [e for e in section["splits"] if e["target"] == target]
    m = {k: _mean([e[k] for e in entries]) for k in METRICS}
    rows.append([source, target, len(entries), m["adversarial_accuracy"], m["random_accuracy"],
                 _gap(m["adversarial_accuracy"], m["random_accuracy"]),
                 m["kway_adversarial_accuracy"], m["kway_random_accuracy"]])
  return rows


def seed_figures(per_seed: dict, agg: dict, out: str) -> dict:
  """Mean test accuracies per split source over seeds, each bar with its 95% interval."""
  from task_discovery.run import plots
  sources = list(next(iter(per_seed.values()))["runs"])
  series, intervals = {}, {}
  for key in METRICS:
    spreads = [common.spread_of(agg, f"runs.{s}.summary.mean_{key}") for s in sources]
    if any(np.isfinite(m) for m, _ in spreads):
      series[key.removesuffix("_accuracy")] = [m for m, _ in spreads]
      intervals[key.removesuffix("_accuracy")] = [ci for _, ci in spreads]
  path = os.path.join(out, NAME + "_over_seeds.png")
  plots.grouped_bars(sources, series, path, ylabel="mean test accuracy over seeds",
                     title=f"adversarial vs random splits over seeds "
                           f"{', '.join(map(str, per_seed))} (bars: 95% interval)",
                     intervals=intervals)
  return {"over_seeds": path}


def main(argv: Sequence[str] | None = None) -> dict:
  parser = common.make_parser(__doc__)
  parser.add_argument("--sources", type=common.comma_list(str), default=None,
                      help=f"split sources, from {SOURCES} (default: discovery,random_network; "
                           "smoke: discovery)")
  parser.add_argument("--discovery_workdir", default="",
                      help="a finished discovery run of the same data config; default: run the "
                           "config as job='discover' in OUT/discover")
  args = parser.parse_args(argv)
  if args.seeds:
    return common.run_over_seeds(main, sys.argv[1:] if argv is None else argv, args.out,
                                 args.seeds, NAME, figure_fn=seed_figures)
  common.setup_logging()
  sources = args.sources or DEFAULT_SOURCES[args.scale]
  unknown = set(sources) - set(SOURCES)
  if unknown:
    raise ValueError(f"--sources: unknown {sorted(unknown)}; choose from {SOURCES}")
  config = common.load_config(args.config, args.scale)
  if args.scale == "smoke":
    common.apply_overrides(config, SMOKE)
  common.apply_overrides(config, args.overrides)

  discovery_workdir = ""
  if "discovery" in sources:
    if args.discovery_workdir:
      discovery_workdir = args.discovery_workdir
      common.check_same_data(config, discovery_workdir)
    else:
      discovery_workdir = os.path.join(args.out, "discover")
      common.run_job(common.copy_config(config, {"job": "discover"}), discovery_workdir)

  rows, runs, figures = [], {}, {}
  for source in sources:
    job = common.copy_config(config, {
        "job": "adversarial_split", "adversarial.source": source,
        "adversarial.discovery_workdir": (os.path.abspath(discovery_workdir)
                                          if source == "discovery" else "")})
    workdir = os.path.join(args.out, f"adversarial_{source}")
    section = common.run_job(job, workdir)["adversarial"]
    runs[source] = {"workdir": os.path.abspath(workdir), "summary": section["summary"],
                    "skipped": section.get("skipped", [])}
    rows += source_rows(source, section)
    figures[source] = common.collect(workdir_lib.Workdir(workdir).adversarial_plot,
                                     os.path.join(args.out, f"adversarial_accuracy_{source}.png"))

  from task_discovery.run import plots
  figure = os.path.join(args.out, NAME + ".png")
  series = {}
  for key in METRICS:
    values = [runs[s]["summary"].get(f"mean_{key}") for s in sources]
    if any(v is not None for v in values):
      series[key.removesuffix("_accuracy")] = [float("nan") if v is None else v for v in values]
  plots.grouped_bars(list(sources), series, figure, ylabel="mean test accuracy",
                     title=f"{config.data.name}: adversarial vs random splits")
  table = common.markdown_table(
      ["source", "target", "splits", "adversarial acc", "random acc", "gap", "K-way adversarial",
       "K-way random"], rows)
  summary = {"runs": runs, "discovery_workdir": os.path.abspath(discovery_workdir)
             if discovery_workdir else "",
             "rows": [dict(zip(("source", "target", "num_splits", "adversarial_accuracy",
                                "random_accuracy", "gap", "kway_adversarial_accuracy",
                                "kway_random_accuracy"), r)) for r in rows],
             "scale": args.scale, "config": args.config, "overrides": list(args.overrides),
             "outputs": {"figure": figure, "per_source_figures": figures}}
  return common.write_outputs(args.out, NAME, summary, table)


if __name__ == "__main__":
  main(sys.argv[1:])
