"""Command line: `python -m task_discovery.main --config=configs/digits.py --workdir=DIR`.

Override any field with `--config.section.field=value`, e.g. `--config.job=agreement`.
`--config_json=WORKDIR/config.json` starts from a saved config instead of a config file (read as
data, never executed; overrides apply on top). `--break_lock` removes a lock left in the workdir
by a run that no longer exists. `--seeds=0,1,2` runs the job once per seed (`config.seed`) in
`WORKDIR/seed_S/` and writes the spread over seeds to `WORKDIR/report.json` (see `seeds`). This module only parses flags; every job is an importable
function of (config, workdir). Before anything compiles, `main` opens JAX's persistent
compilation cache (`config.compilation_cache`), so a rerun loads its compiled steps from disk.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from task_discovery import config as config_lib
from task_discovery.data import inputs
from task_discovery.run import report
from task_discovery.run import sharding
from task_discovery.run import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/digits.py (optionally file.py:arg).",
    lock_config=True)
_CONFIG_JSON = flags.DEFINE_string(
    "config_json", None, "Path to a saved config.json (e.g. WORKDIR/config.json), read as data; "
    "instead of --config. Overrides --config.FIELD=VALUE apply on top.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and reports.")
_SEEDS = flags.DEFINE_string(
    "seeds", "", "Comma-separated seeds, e.g. 0,1,2: run the job once per seed (config.seed) in "
    "WORKDIR/seed_S/ and write per-seed values, mean, std and 95% t-interval to "
    "WORKDIR/report.json. Empty: one run with config.seed in WORKDIR.")
_BREAK_LOCK = flags.DEFINE_bool(
    "break_lock", False, "Remove the workdir's lock if its holder is a dead process of this host "
    "(or a process of another host) before starting.")

_JSON_CONFIG_MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "json_config.py")


def expand_config_json(argv: list[str]) -> list[str]:
  """Rewrites `--config_json=PATH` as `--config=<json_config.py>:PATH` (same position), so that
  `--config.FIELD=VALUE` overrides after it apply to the saved config."""
  out, found = [], False
  for i, arg in enumerate(argv):
    if arg.startswith("--config_json=") or arg == "--config_json":
      path = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
      if any(a == "--config" or a.startswith("--config=") for a in argv):
        raise app.UsageError("give either --config=FILE or --config_json=JSON, not both")
      out += [arg, f"--config={_JSON_CONFIG_MODULE}:{path}"]
      found = True
    else:
      out.append(arg)
  if found and ":" in _JSON_CONFIG_MODULE:
    raise app.UsageError(f"--config_json can not be used from {_JSON_CONFIG_MODULE} (a ':' in "
                         "the path); use --config=FILE")
  return out


def run_job(config, workdir: str, *, break_lock: bool = False):
  """Runs `config.job` in `workdir`, holding the workdir's lock.

  Before anything is written: the config is validated, options the job would ignore are
  reported, and the config is checked against the workdir's `config.json` if there is one (a
  resumed run must match it in every field that changes results). Only then is `config.json`
  written.

  Raises:
    workdir.WorkdirLockedError: another run holds the workdir.
    workdir.ConfigMismatchError: the workdir was made with another configuration.
  """
  config_lib.validate(config)
  inputs.check_options(config)
  workdir = workdir_lib.prepare(workdir)
  writes = workdir_lib.Workdir(workdir).writes
  with workdir_lib.locked(workdir, break_lock=break_lock, enabled=writes):
    if writes:
      report.check_config(workdir, config)
      report.write_config(workdir, config)
    return _run(config, workdir)


def run_seeds(config, workdir: str, seeds, *, break_lock: bool = False) -> dict:
  """`run_job` once per seed in `WORKDIR/seed_S/`, then the spread over seeds (`seeds.run_seeds`)
  in `WORKDIR/report.json`, printed as a summary. A rerun resumes or reuses each seed's run."""
  from task_discovery.run import seeds as seeds_lib
  config_lib.validate(config)
  agg = seeds_lib.run_seeds(config, workdir, seeds,
                            lambda c, w: run_job(c, w, break_lock=break_lock))
  if workdir_lib.Workdir(workdir).writes:
    print(seeds_lib.format_summary(agg), flush=True)
  return agg


def _run(config, workdir: str):
  if config.job == "agreement":
    from task_discovery.jobs import evaluation
    return evaluation.run(config, workdir)
  if config.job == "discover":
    from task_discovery.jobs import discovery
    return discovery.train_and_evaluate(config, workdir)
  if config.job == "adversarial_split":
    from task_discovery.jobs import adversarial
    return adversarial.run(config, workdir)
  raise ValueError(f"unknown job {config.job!r}")  # validate() already rejects it


def compilation_cache_dir(config) -> str | None:
  """Where `config.compilation_cache` keeps compiled programs: its `dir`, or by default
  `$XDG_CACHE_HOME/task_discovery/jax` (`~/.cache/task_discovery/jax`); None when it is off."""
  cache = config.compilation_cache
  if not cache.enabled:
    return None
  if cache.dir:
    return os.path.abspath(os.path.expanduser(cache.dir))
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "task_discovery", "jax")


def setup_compilation_cache(config) -> str | None:
  """Turns JAX's persistent compilation cache on in `compilation_cache_dir(config)`, or off.

  Call before the first compile: JAX opens its cache then. Returns the directory (None: off).
  """
  path = compilation_cache_dir(config)
  # Off also overrides a JAX_COMPILATION_CACHE_DIR of the environment.
  jax.config.update("jax_enable_compilation_cache", path is not None)
  if path is not None:
    jax.config.update("jax_compilation_cache_dir", path)
    # JAX only keeps programs that compiled for 1 s or more by default; a CPU run's steps
    # compile faster than that, and reading one back is cheaper than compiling it.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def _not_orbax_info(record) -> bool:
  return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def setup_logging() -> None:
  """INFO progress on the console; orbax logs every internal step at INFO, so those are dropped."""
  logging.set_verbosity(logging.INFO)
  absl_logger = logging.get_absl_logger()
  if _not_orbax_info not in absl_logger.filters:  # idempotent: scripts may call it repeatedly
    absl_logger.addFilter(_not_orbax_info)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError("--workdir=DIR and one of --config=configs/NAME.py or "
                         "--config_json=WORKDIR/config.json are required")
  setup_logging()
  config_lib.validate(_CONFIG.value)
  logging.info("compilation cache: %s", setup_compilation_cache(_CONFIG.value) or "off")
  # Before anything touches the devices: multi-host runs start the distributed runtime here.
  sharding.initialize_distributed(_CONFIG.value)
  workdir = os.path.abspath(_WORKDIR.value)
  logging.info("job=%s workdir=%s", _CONFIG.value.job, workdir)
  if _SEEDS.value:
    from task_discovery.run import seeds as seeds_lib
    seeds = seeds_lib.parse_seeds(_SEEDS.value)
    if _CONFIG.value.seed != config_lib.base().seed:
      logging.warning("--seeds=%s replaces config.seed=%d", _SEEDS.value, _CONFIG.value.seed)
    run_seeds(_CONFIG.value, workdir, seeds, break_lock=_BREAK_LOCK.value)
    logging.info("done: results in %s", workdir)
  else:
    result = run_job(_CONFIG.value, workdir, break_lock=_BREAK_LOCK.value)
    logging.info("done: results in %s", workdir)
    if _CONFIG.value.job == "discover" and workdir_lib.Workdir(workdir).writes:
      print("\n".join(closing_lines(result, _WORKDIR.value)), flush=True)


def closing_lines(report: dict, workdir: str) -> list[str]:
  """What a `discover` run found, where it is, and how to open it: the run's last three lines.

  `workdir` is shown as the user gave it (relative paths stay relative, ready to paste).
  """
  summary = report.get("summary", {})
  families = [f"{family} {summary[family]['mean_as']:.3f} ({summary[family]['num_tasks']} tasks)"
              for family in ("discovered", "human", "random") if family in summary]
  wd = workdir_lib.Workdir(workdir)
  if families:
    scores = "mean agreement score: " + " vs ".join(families)
    figures = f"figure: {wd.task_images} (and {wd.agreement_histogram})"
  else:
    scores = ("mean agreement score: no tasks were evaluated (eval.evaluate_discovered=False, "
              "eval.num_human_tasks=0 and eval.num_random_tasks=0)")
    figures = f"figure: {wd.task_images}"
  return [
      scores,
      f"{figures}; report: {wd.report}",
      f"in a notebook: import task_discovery; net = task_discovery.load({workdir!r}); or open "
      f"experiments/explore_tasks.ipynb with TD_WORKDIR={workdir}",
  ]


if __name__ == "__main__":
  sys.argv = expand_config_json(sys.argv)
  app.run(main)
