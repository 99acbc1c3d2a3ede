"""Several seeds of one job: per-seed workdirs, and the spread of their results over seeds.

A result of this library is a claim about tasks, and the meta-objective is chaotic: another seed,
or another CPU's rounding, gives other tasks. So a claim is made from several seeds: each runs in
its own `WORKDIR/seed_S/` (a complete workdir: config, checkpoints, report), and `WORKDIR/report.json`
holds, for every number that all the seeds' reports have, the per-seed values, their mean,
sample standard deviation and 95% Student-t interval of the mean:

    mean +- t_{0.975, n-1} * std / sqrt(n)      (std with n - 1 in the denominator)

Compare two settings by these intervals, never by one run's third decimal.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats

from task_discovery.run import report as report_lib
from task_discovery.run import workdir as workdir_lib

CONFIDENCE = 0.95


def parse_seeds(text: str) -> tuple[int, ...]:
  """`'0,1,2'` -> `(0, 1, 2)`.

  Raises:
    ValueError: for an empty list, a non-integer, a negative or a repeated seed.
  """
  parts = [p.strip() for p in str(text).split(",") if p.strip()]
  try:
    seeds = tuple(int(p) for p in parts)
  except ValueError as e:
    raise ValueError(f"--seeds={text!r}: expected comma-separated integers, e.g. 0,1,2") from e
  if not seeds:
    raise ValueError(f"--seeds={text!r}: no seed given; e.g. --seeds=0,1,2")
  if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
    raise ValueError(f"--seeds={text!r}: seeds must be distinct and >= 0")
  return seeds


def spread(values: Sequence[float], confidence: float = CONFIDENCE) -> dict:
  """Per-seed values, mean, sample std (ddof 1) and the t-interval of the mean.

  With one seed the std and the interval are None (not estimable), never 0.
  """
  x = np.asarray(values, dtype=np.float64)
  n = int(x.size)
  out = {"values": [float(v) for v in x], "num_seeds": n,
         "mean": float(x.mean()) if n else None, "std": None, "ci95": None}
  if n >= 2:
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    out.update(std=std, ci95=[float(x.mean()) - half, float(x.mean()) + half])
  return out


def numeric_leaves(tree: Any, prefix: str = "", skip: Sequence[str] = ("tasks",)
                   ) -> dict[str, float]:
  """`{'a.b.c': value}` for every finite int/float leaf of nested dicts and of lists of dicts
  (keyed by row index); not bools, not lists of numbers. Top-level keys in `skip` are left out
  (a report's per-task list is not a result over seeds)."""
  out = {}
  if isinstance(tree, Mapping):
    for k, v in tree.items():
      if not prefix and k in skip:
        continue
      out.update(numeric_leaves(v, f"{prefix}{k}.", skip))
  elif isinstance(tree, (list, tuple)) and any(isinstance(v, Mapping) for v in tree):
    for i, v in enumerate(tree):  # rows of a table: one key per row index
      out.update(numeric_leaves(v, f"{prefix}{i}.", skip))
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    if math.isfinite(tree):
      out[prefix[:-1]] = float(tree)
  return out


def aggregate(results: Mapping[int, Mapping], skip: Sequence[str] = ("tasks",)) -> dict:
  """The spread over seeds of every number that every seed's result holds.

  Args:
    results: `{seed: report or summary dict}`.
    skip: top-level keys not to aggregate.

  Returns:
    `{'seeds': [...], 'metrics': {dotted path: spread(...)}}`.
  """
  seeds = list(results)
  leaves = {s: numeric_leaves(results[s], skip=skip) for s in seeds}
  common = set.intersection(*(set(v) for v in leaves.values())) if leaves else set()
  return {"seeds": [int(s) for s in seeds], "confidence": CONFIDENCE,
          "metrics": {k: spread([leaves[s][k] for s in seeds]) for k in sorted(common)}}


def _fmt(value) -> str:
  return "-" if value is None else f"{value:.4f}"


def format_metric(name: str, s: dict) -> str:
  """One line: `name: mean 0.9850 (95% CI 0.9700-1.0000, std 0.0060; 0.983 / 0.992 / 0.981)`."""
  per_seed = " / ".join(f"{v:.4f}" for v in s["values"])
  ci = "-" if s["ci95"] is None else f"{s['ci95'][0]:.4f}-{s['ci95'][1]:.4f}"
  return (f"{name}: mean {_fmt(s['mean'])} (95% CI {ci}, std {_fmt(s['std'])}; "
          f"seeds {per_seed})")


def headline_metrics(metrics: Mapping[str, dict]) -> list[str]:
  """The metrics a summary prints first: each family's mean AS, the discovered tasks'
  similarity, adversarial accuracies; all of them if none of these is there."""
  keys = [k for k in metrics if (k.startswith("summary.") and k.endswith(".mean_as"))
          or k in ("similarity.mean_folded_agreement", "similarity.max_folded_agreement")
          or (k.startswith("adversarial.summary.") and "accuracy" in k)]
  return keys or list(metrics)


def format_summary(agg: dict, keys: Sequence[str] | None = None) -> str:
  """Text lines for the console: the chosen metrics (default `headline_metrics`)."""
  metrics = agg["metrics"]
  keys = headline_metrics(metrics) if keys is None else keys
  lines = [f"over seeds {', '.join(map(str, agg['seeds']))} "
           f"(mean, {int(agg['confidence'] * 100)}% t-interval of the mean, sample std):"]
  lines += ["  " + format_metric(k, metrics[k]) for k in keys if k in metrics]
  return "\n".join(lines)


def family_mean_as(results: Mapping[int, Mapping]) -> dict[str, list[float]]:
  """`{family: [mean AS of seed s, ...]}` for the families every seed's report summarises."""
  per = {}
  for report in results.values():
    for family, s in report.get("summary", {}).items():
      if isinstance(s, Mapping) and s.get("mean_as") is not None:
        per.setdefault(family, []).append(float(s["mean_as"]))
  return {f: v for f, v in per.items() if len(v) == len(results)}


def run_seeds(config, workdir: str, seeds: Sequence[int],
              run_one: Callable[[Any, str], dict]) -> dict:
  """Runs `run_one(config_with_seed, WORKDIR/seed_S)` for every seed, then writes the spread.

  `config.seed` is set to each seed (everything else unchanged). For `job='adversarial_split'`
  whose `adversarial.discovery_workdir` is itself a multi-seed workdir, seed S reads its
  `seed_S/`. Writes `WORKDIR/report.json` (`seeds`, `workdirs`, `metrics`, see `aggregate`) and,
  where the reports summarise task families, `WORKDIR/agreement_over_seeds.png`.

  Returns:
    the aggregate report.
  """
  from task_discovery.run import plots  # matplotlib only when seeds are run
  workdir_lib.prepare(workdir)
  wd = workdir_lib.Workdir(workdir)
  results, workdirs = {}, {}
  for seed in seeds:
    seed_config = config.copy_and_resolve_references()
    seed_config.seed = int(seed)
    discovery_dir = seed_config.adversarial.discovery_workdir
    seed_discovery_dir = workdir_lib.Workdir(discovery_dir).seed(seed).path
    if seed_config.job == "adversarial_split" and discovery_dir and os.path.isdir(
        seed_discovery_dir):
      seed_config.adversarial.discovery_workdir = seed_discovery_dir
    workdirs[int(seed)] = wd.seed(seed).path
    results[int(seed)] = run_one(seed_config, workdirs[int(seed)])
  agg = aggregate(results)
  agg["workdirs"] = {str(s): os.path.relpath(w, workdir) for s, w in workdirs.items()}
  if not wd.writes:  # only process 0 writes reports and figures
    return agg
  report_lib.write(wd, agg)
  families = family_mean_as(results)
  if families:
    plots.agreement_over_seeds(families, wd.agreement_over_seeds, seeds=list(results),
                               intervals={f: spread(v)["ci95"] for f, v in families.items()})
  return agg
