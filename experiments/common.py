"""What every experiment script shares: flags, config loading and overrides, running a job in a
workdir (or reusing a finished one), and writing tables.

Every script is `python -m experiments.NAME --config=FILE[:ARG] --out=DIR --scale=SCALE
[--set key=value ...]`, run from the repository root, and exposes `main(argv) -> dict` so that a
test or a notebook can call it without a shell.

Scales:
  smoke: the config file's `:smoke` argument and `SMOKE_OVERRIDES` (seconds per run, for tests);
  cpu:   the config file as written, with grids sized for a 2-core laptop;
  gpu:   the config file as written, with the paper's grids.
Order of precedence, last wins: config file < scale < the script's presets < `--set`.

Seeds: `--seeds=0,1,2` runs the whole experiment once per seed (`config.seed`) in `OUT/seed_S/`
(a path flag that names a multi-seed directory, e.g. `--workdir=runs/x` holding `runs/x/seed_S/`,
is read per seed), then writes `OUT/NAME.json` (per-seed values, mean, std and 95% t-interval of
every number all the per-seed summaries hold; `task_discovery.run.seeds`) and `OUT/NAME.md`.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import time
from typing import Any, Callable, Iterable, Sequence

import ml_collections
from absl import logging

from task_discovery import config as config_lib
from task_discovery.run import report as report_lib
from task_discovery.run import workdir as workdir_lib

SCALES = ("smoke", "cpu", "gpu")

# On top of a config file's `:smoke`: a handful of seconds per job on 2 CPU cores.
SMOKE_OVERRIDES = {
    "meta.num_steps": 2,
    "meta.log_every": 1,
    "checkpoint.every_steps": 2,
    "eval.num_epochs": 1,
    "eval.num_human_tasks": 2,
    "eval.num_random_tasks": 2,
}


# ----------------------------------------------------------------------------------- flags


def make_parser(doc: str) -> argparse.ArgumentParser:
  """The flags shared by every script (argparse: no global flag registry, so several scripts
  can be imported into one process)."""
  parser = argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True,
                      help="config file, optionally with its argument: configs/digits.py[:smoke]")
  parser.add_argument("--out", required=True, help="output directory (created; reruns resume)")
  parser.add_argument("--scale", choices=SCALES, default="cpu",
                      help="smoke: seconds, for tests; cpu: a 2-core laptop; gpu: the paper's")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE",
                      help="config override, repeatable: --set task.diversity_coef=25")
  parser.add_argument("--seeds", default="",
                      help="comma-separated seeds, e.g. 0,1,2: the experiment once per seed in "
                           "OUT/seed_S/, and the spread over seeds in OUT/NAME.json / .md")
  return parser


def comma_list(cast: Callable[[str], Any]) -> Callable[[str], tuple]:
  """argparse type for `--flag=a,b,c`."""
  def parse(text: str) -> tuple:
    return tuple(cast(v) for v in text.split(",") if v.strip())
  return parse


# ---------------------------------------------------------------------------------- config


def load_config(spec: str, scale: str) -> ml_collections.ConfigDict:
  """Loads `get_config(arg)` from `path[:arg]`; at scale 'smoke' the argument defaults to
  'smoke' and `SMOKE_OVERRIDES` are applied. The result is locked: setting a field that does
  not exist raises."""
  if scale not in SCALES:
    raise ValueError(f"--scale={scale!r} is not one of {SCALES}")
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config file {path!r} does not exist (paths are relative to the "
                            f"current directory {os.getcwd()!r}; run from the repository root)")
  if scale == "smoke" and not arg:
    arg = "smoke"
  config = config_lib.load_config_file(path, arg)
  config.lock()
  if scale == "smoke":
    apply_overrides(config, SMOKE_OVERRIDES)
  return config


def _parse_value(text: str, current: Any, key: str) -> Any:
  if isinstance(current, bool):
    lowered = text.strip().lower()
    if lowered not in ("true", "false", "1", "0"):
      raise ValueError(f"--set {key}={text}: expected True or False")
    return lowered in ("true", "1")
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError) as e:
    raise ValueError(f"--set {key}={text}: not a Python literal of type "
                     f"{type(current).__name__}") from e
  if isinstance(current, (tuple, list)):
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  return value


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: dict[str, Any] | Iterable[str]) -> ml_collections.ConfigDict:
  """Sets dotted fields in place: `{'task.num_tasks': 8}` or `['task.num_tasks=8', ...]`.

  String values are parsed against the field's current type (`True`, `0.5`, `(0, 11)`, `cnn`).

  Raises:
    KeyError: naming a field that does not exist.
    ValueError / TypeError: for a value that does not fit the field.
  """
  if not isinstance(overrides, dict):
    pairs = []
    for item in overrides:
      key, sep, text = item.partition("=")
      if not sep:
        raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. task.num_tasks=8")
      pairs.append((key.strip(), text, True))
  else:
    pairs = [(k, v, False) for k, v in overrides.items()]
  for key, value, from_text in pairs:
    *parents, name = key.split(".")
    node = config
    for i, part in enumerate(parents):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise KeyError(f"config has no section {'.'.join(parents[:i + 1])!r} (in {key!r})")
      node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise KeyError(f"config has no field {key!r}")
    if from_text:
      value = _parse_value(value, node[name], key)
    elif isinstance(node[name], tuple) and isinstance(value, list):
      value = tuple(value)
    node[name] = value
  return config


def copy_config(config: ml_collections.ConfigDict,
                overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """An independent copy with `overrides` applied."""
  new = config.copy_and_resolve_references()
  new.lock()
  return apply_overrides(new, overrides or {})


def read_json(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def check_same_data(config, workdir: str) -> None:
  """Raises if `workdir/config.json` describes other images than `config.data`: labels of one
  run are only meaningful for the same images in the same order."""
  path = workdir_lib.Workdir(workdir).config
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: {workdir} is not a workdir of this library")
  diffs = report_lib.differences(read_json(path), config, ignore=("data.data_dir",),
                                 only="data.")
  if diffs:
    raise ValueError(f"{workdir} was run on other data than this config:\n  " + "\n  ".join(diffs)
                     + "\nUse the same data config (e.g. the same --config file and scale).")


# ------------------------------------------------------------------------------------ jobs


def setup_logging() -> None:
  """INFO progress of this library on the console, as `python -m task_discovery.main`."""
  from task_discovery import main as main_lib  # imported here: `--help` stays fast
  main_lib.setup_logging()


def finished(workdir: str, sections: Sequence[str] = ()) -> dict | None:
  """The workdir's report if it exists and holds every section in `sections`, else None."""
  path = workdir_lib.Workdir(workdir).report
  if not os.path.exists(path):
    return None
  report = read_json(path)
  return report if all(s in report for s in sections) else None


# report.json sections that a job writes last, i.e. that mark it finished.
FINAL_SECTIONS = {"discover": ("discovery",), "agreement": ("summary",),
                  "adversarial_split": ("adversarial",)}


def run_job(config, workdir: str, *, reuse: bool = True,
            done: Callable[[dict], bool] | None = None) -> dict:
  """Runs `config.job` in `workdir` as `python -m task_discovery.main` would, or returns the
  report of a finished run of the same config there.

  Args:
    config: the full config; `config.job` is run.
    workdir: the job's directory.
    reuse: return the report of a finished run in `workdir` instead of running again. A
      finished run of another config raises (use another --out); an interrupted `discover` run
      resumes from its checkpoints.
    done: `done(report) -> bool`, whether a report is finished; default: it holds the sections
      that `config.job` writes last (`FINAL_SECTIONS`).
  """
  from task_discovery import main as main_lib  # imported here: `--help` stays fast
  done = done or (lambda r: all(s in r for s in FINAL_SECTIONS[config.job]))
  report = finished(workdir)
  if reuse and report is not None and done(report):
    # Every field counts here, those a resumed run may change as well.
    diffs = report_lib.differences(read_json(workdir_lib.Workdir(workdir).config), config,
                                   ignore=())
    if diffs:
      raise ValueError(f"{workdir} holds a finished run of another config:\n  "
                       + "\n  ".join(diffs[:20])
                       + "\nUse another --out directory, or delete that workdir to rerun it.")
    logging.info("reusing the finished %s run in %s", config.job, workdir)
    return report
  logging.info("running job=%s in %s", config.job, workdir)
  t0 = time.perf_counter()
  main_lib.run_job(config, workdir)
  logging.info("job=%s done in %.0f s: %s", config.job, time.perf_counter() - t0, workdir)
  return read_json(workdir_lib.Workdir(workdir).report)


# ---------------------------------------------------------------------------------- output


def _cell(value: Any) -> str:
  if value is None:
    return "-"
  if isinstance(value, float):
    return "nan" if value != value else f"{value:.3f}"
  return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """A markdown table; floats with 3 decimals, None as '-'."""
  lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
  lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def write_outputs(out: str, name: str, summary: dict, table: str) -> dict:
  """Writes `out/NAME.json` (the summary) and `out/NAME.md` (the table), prints the table, and
  returns the summary with the paths added under `outputs`."""
  os.makedirs(out, exist_ok=True)
  md_path = os.path.join(out, name + ".md")
  json_path = os.path.join(out, name + ".json")
  summary = dict(summary, outputs=dict(summary.get("outputs", {}), table=md_path,
                                       summary=json_path))
  with open(md_path, "w") as f:
    f.write(table + "\n")
  tmp = json_path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  os.replace(tmp, json_path)
  print(table, flush=True)
  return summary


def collect(src: str, dst: str) -> str:
  """Copies a file a job wrote (e.g. a figure) into the experiment's output directory."""
  if not os.path.exists(src):
    raise FileNotFoundError(f"{src} was not written by its job")
  os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
  shutil.copyfile(src, dst)
  return dst


# ----------------------------------------------------------------------------------- seeds

def _is_result(key: str) -> bool:
  """Whether an aggregated number is a result (AS, accuracy, similarity), not a description of
  the setting (counts, grid values) or a wall time: only results go into the table."""
  last = key.split(".")[-1]
  return not (last.startswith("num_") or "seconds" in last or "steps" in last
              or last == "diversity_coef")


def _for_seed(argv: Sequence[str], out: str, seed: int) -> list[str]:
  """`argv` for one seed: `--seeds` dropped, `--out` set to `OUT/seed_S`, `--set seed=S`, and
  any flag value naming a directory that holds `seed_S/` replaced by that subdirectory."""
  new, skip = [], False
  for i, arg in enumerate(argv):
    if skip:
      skip = False
      continue
    if arg in ("--seeds", "--out"):
      skip = True
      continue
    if arg.startswith(("--seeds=", "--out=")):
      continue
    flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    label, sep, path = value.rpartition("=")
    path = path if sep else value
    if path and os.path.isdir(workdir_lib.Workdir(path).seed(seed).path):
      path = workdir_lib.Workdir(path).seed(seed).path
      value = f"{label}={path}" if sep else path
    new.append(f"{flag}={value}" if flag and eq else (arg if flag else value))
  return new + [f"--out={workdir_lib.Workdir(out).seed(seed).path}", "--set", f"seed={seed}"]


def run_over_seeds(main_fn: Callable[[Sequence[str]], dict], argv: Sequence[str], out: str,
                   seeds_text: str, name: str,
                   figure_fn: Callable[[dict, dict, str], dict] | None = None) -> dict:
  """Runs `main_fn` once per seed (see `_for_seed`) and writes the spread over seeds.

  Args:
    main_fn: the script's `main(argv) -> summary`.
    argv: the script's arguments (with `--seeds` and `--out`).
    out: the experiment's output directory.
    seeds_text: the `--seeds` value.
    name: the script's NAME (output file names).
    figure_fn: `figure_fn(per_seed_summaries, aggregate, out) -> {name: path}`: figures of the
      spread (e.g. a family's AS with its interval over seeds).

  Returns:
    `{'seeds', 'confidence', 'metrics', 'per_seed': {seed: summary path}, 'outputs'}`.
  """
  from task_discovery.run import seeds as seeds_lib
  seeds = seeds_lib.parse_seeds(seeds_text)
  per_seed = {s: main_fn(_for_seed(argv, out, s)) for s in seeds}
  agg = seeds_lib.aggregate({s: {k: v for k, v in summary.items() if k != "outputs"}
                             for s, summary in per_seed.items()})
  keys = [k for k in agg["metrics"] if _is_result(k)]
  rows = []
  for k in keys:
    m = agg["metrics"][k]
    ci = None if m["ci95"] is None else f"{m['ci95'][0]:.3f}-{m['ci95'][1]:.3f}"
    rows.append([k, " / ".join(f"{v:.3f}" for v in m["values"]), m["mean"], m["std"], ci])
  table = markdown_table(["metric", "per seed (" + ", ".join(map(str, seeds)) + ")", "mean",
                          "std", "95% interval"], rows)
  figures = figure_fn(per_seed, agg, out) if figure_fn else {}
  summary = dict(agg, per_seed={str(s): os.path.join(workdir_lib.Workdir(out).seed(s).path,
                                                     name + ".json") for s in seeds},
                 outputs={"figures": figures})
  return write_outputs(out, name, summary, table)


def spread_of(agg: dict, key: str) -> tuple[float, tuple[float, float] | None]:
  """(mean, 95% interval or None) of one aggregated metric; (nan, None) if absent."""
  m = agg["metrics"].get(key)
  if m is None:
    return float("nan"), None
  return m["mean"], (None if m["ci95"] is None else tuple(m["ci95"]))
