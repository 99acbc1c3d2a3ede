"""A workdir's `report.json` (per-task results and summaries, merged across jobs) and its
`config.json` (written once, compared with the config of every later run)."""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import numpy as np

from task_discovery import config as config_lib
from task_discovery.run import workdir as workdir_lib


def family_entries(family: str, indices, results: dict, names=None) -> list[dict]:
  """Per-task entries of one family from `agreement.evaluate_tasks` results; with `names` (one
  per index) each entry also has a `name`."""
  entries = []
  for row, index in enumerate(indices):
    entry = {"family": family, "index": int(index)}
    if names is not None:
      entry["name"] = str(names[row])
    entry.update(agreement=float(results["agreement"][row]),
                 learner_accuracy=[float(a) for a in results["accuracy"][row]])
    entries.append(entry)
  return entries


def read_reference_table(path: str) -> dict[str, float]:
  """Reference AS per task name from a CSV with columns `task_idx,task,as` (the original's
  `agreement_table.csv`: task `{task}-{task_idx}`, e.g. `resnet18-3`) or `name,as`.

  Raises:
    FileNotFoundError, ValueError: naming the file and what is wrong in it.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"reference file {path!r} does not exist (eval.reference_file)")
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"reference file {path!r} has no rows")
  columns = set(rows[0])
  if {"task_idx", "task", "as"} <= columns:
    name = lambda r: f"{r['task']}-{int(r['task_idx'])}"
  elif {"name", "as"} <= columns:
    name = lambda r: r["name"]
  else:
    raise ValueError(f"reference file {path!r} has columns {sorted(columns)}: expected "
                     "task_idx,task,as (the original's agreement_table.csv) or name,as")
  table = {}
  for line, row in enumerate(rows, start=2):
    try:
      table[name(row)] = float(row["as"])
    except (TypeError, ValueError):
      raise ValueError(f"reference file {path!r} line {line}: {row} is not a task and an "
                       "agreement score") from None
  return table


def compare_with_reference(entries: list[dict], reference: dict[str, float], path: str) -> dict:
  """The evaluated tasks that `reference` names: per task this library's AS, the reference AS
  and their difference, with the mean difference over them."""
  rows = [{"name": e["name"], "family": e["family"], "agreement": e["agreement"],
           "reference": reference[e["name"]],
           "difference": e["agreement"] - reference[e["name"]]}
          for e in entries if e.get("name") in reference]
  diffs = np.asarray([r["difference"] for r in rows], float)
  return {"file": path, "tasks": rows, "num_tasks": len(rows),
          "mean_difference": float(diffs.mean()) if len(rows) else None,
          "mean_abs_difference": float(np.abs(diffs).mean()) if len(rows) else None}


def format_reference(section: dict) -> list[str]:
  """The comparison with the reference AS as printable lines."""
  if not section["num_tasks"]:
    return [f"reference {section['file']}: none of the evaluated tasks is named there (task "
            "names come from a labels file's columns or an imported checkpoint)"]
  lines = [f"AS beside the reference ({section['file']}):",
           f"  {'task':<20} {'this library':>12} {'reference':>10} {'difference':>10}"]
  lines += [f"  {r['name']:<20} {r['agreement']:>12.4f} {r['reference']:>10.4f} "
            f"{r['difference']:>+10.4f}" for r in section["tasks"]]
  lines.append(f"  mean difference {section['mean_difference']:+.4f} (mean |difference| "
               f"{section['mean_abs_difference']:.4f}) over {section['num_tasks']} tasks")
  return lines


def summarize(values) -> dict:
  values = np.asarray(values, dtype=float)
  if values.size == 0:
    return {"mean_as": None, "min_as": None, "max_as": None, "std_as": None, "num_tasks": 0}
  return {"mean_as": float(values.mean()), "min_as": float(values.min()),
          "max_as": float(values.max()), "std_as": float(values.std()),
          "num_tasks": int(values.size)}


def read(workdir: str | workdir_lib.Workdir) -> dict:
  path = workdir_lib.Workdir.of(workdir).report
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:  # written atomically, so only damage from outside gets here
    raise ValueError(f"{path} is not valid JSON ({e}): move it away (the next run starts a new "
                     "report) or restore it") from e


def write(workdir: str | workdir_lib.Workdir, report: dict[str, Any]) -> str:
  """Writes atomically (temporary file, fsync, rename): an interrupted run or a full disk never
  leaves half a file. The caller checks `Workdir.writes`."""
  return workdir_lib.write_text(workdir_lib.Workdir.of(workdir).report,
                                json.dumps(report, indent=2, sort_keys=True))


def update(workdir: str | workdir_lib.Workdir, **sections) -> dict:
  """Merges `sections` into the workdir's report (replacing sections of the same name)."""
  report = read(workdir)
  for name, value in sections.items():
    if isinstance(value, dict) and isinstance(report.get(name), dict):
      report[name].update(value)
    else:
      report[name] = value
  write(workdir, report)
  return report


def check_config(workdir: str, config) -> None:
  """Raises `workdir.ConfigMismatchError` if the workdir's config.json differs from `config` in a
  field that changes results (see `workdir.RESUMABLE_FIELDS`)."""
  workdir_lib.check_resume(workdir, config_lib.as_json(config),
                           defaults=config_lib.as_json(config_lib.base()))


def write_config(workdir: str, config) -> str:
  """Writes `config.json` atomically; call `check_config` first."""
  return workdir_lib.write_text(workdir_lib.Workdir.of(workdir).config,
                                config.to_json_best_effort(indent=2, sort_keys=True))


def differences(saved: dict, config, **kwargs) -> list[str]:
  """`workdir.config_differences` of a saved config (JSON dict) and `config`, with this
  library's defaults for the fields `saved` predates; `kwargs`: its `ignore` and `only`."""
  return workdir_lib.config_differences(saved, config_lib.as_json(config),
                                        defaults=config_lib.as_json(config_lib.base()), **kwargs)
