"""Command line: `python -m task_discovery.main --config=configs/digits.py --workdir=DIR`.

Override any field with `--config.section.field=value`, e.g. `--config.job=agreement`.
This module only parses flags; every job is an importable function of (config, workdir).
"""

from __future__ import annotations

import logging as std_logging
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from task_discovery import config as config_lib
from task_discovery import report
from task_discovery import sharding

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, e.g. configs/digits.py (optionally file.py:arg).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and reports.")


def run_job(config, workdir: str):
  """Validates the config, writes it to `workdir/config.json` and runs `config.job` there."""
  config_lib.validate(config)
  os.makedirs(workdir, exist_ok=True)
  if sharding.is_main_process():
    report.write_config(workdir, config)
  if config.job == "agreement":
    from task_discovery import evaluation
    return evaluation.run(config, workdir)
  if config.job == "discover":
    from task_discovery import discovery
    return discovery.train_and_evaluate(config, workdir)
  if config.job == "adversarial_split":
    from task_discovery import adversarial
    return adversarial.run(config, workdir)
  raise ValueError(f"unknown job {config.job!r}")  # validate() already rejects it


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
    raise app.UsageError("both --config=configs/NAME.py and --workdir=DIR are required")
  setup_logging()
  config_lib.validate(_CONFIG.value)
  # Before anything touches the devices: multi-host runs start the distributed runtime here.
  sharding.initialize_distributed(_CONFIG.value)
  workdir = os.path.abspath(_WORKDIR.value)
  logging.info("job=%s workdir=%s", _CONFIG.value.job, workdir)
  run_job(_CONFIG.value, workdir)
  logging.info("done: results in %s", workdir)


if __name__ == "__main__":
  app.run(main)
