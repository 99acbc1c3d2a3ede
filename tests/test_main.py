"""The command line's closing lines of a `discover` run whose evaluation is switched off."""

import os

from task_discovery import config as config_lib
from task_discovery import main as main_lib


def no_eval_config():
  """A `discover` job of two tiny meta-steps that evaluates no task family."""
  c = config_lib.base()
  c.data.name = "digits"
  c.data.heldout_fraction = 0.2
  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (16,)
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (16,)
  c.task.num_tasks = 2
  c.inner.num_steps = 2
  c.inner.batch_size = 64
  c.inner.heldout_batch_size = 64
  c.meta.num_steps = 2
  c.meta.log_every = 1
  c.checkpoint.every_steps = 2
  c.eval.evaluate_discovered = False
  c.eval.num_human_tasks = 0
  c.eval.num_random_tasks = 0
  return c


def test_closing_lines_say_that_no_task_was_evaluated(tmp_path):
  workdir = str(tmp_path / "no_eval")
  report = main_lib.run_job(no_eval_config(), workdir)
  assert not report.get("summary")
  scores, where, notebook = main_lib.closing_lines(report, workdir)
  assert scores.startswith("mean agreement score: no tasks were evaluated")
  for field in ("eval.evaluate_discovered", "eval.num_human_tasks", "eval.num_random_tasks"):
    assert field in scores
  # Only files the run wrote are named.
  paths = [w.rstrip(";)") for w in where.split() if w.startswith(workdir)]
  assert len(paths) == 2 and all(os.path.getsize(p) > 0 for p in paths), where
  assert f"task_discovery.load({workdir!r})" in notebook
