"""A workdir's `report.json` (per-task results and summaries, merged across jobs) and its
`config.json` (written once, compared with the config of every later run)."""

from __future__ import annotations

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
