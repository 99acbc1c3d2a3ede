"""The command line: the closing lines of a `discover` run whose evaluation is switched off, and
JAX's persistent compilation cache."""

import os
import pathlib
import subprocess
import sys

from task_discovery import config as config_lib
from task_discovery import main as main_lib
from task_discovery.run import report

REPO = pathlib.Path(__file__).resolve().parent.parent


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


def test_compilation_cache_dir_is_the_users_cache_unless_given(tmp_path, monkeypatch):
  c = config_lib.base()
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert main_lib.compilation_cache_dir(c) == str(tmp_path / "xdg" / "task_discovery" / "jax")
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path))
  assert main_lib.compilation_cache_dir(c) == str(tmp_path / ".cache" / "task_discovery" / "jax")
  c.compilation_cache.dir = "~/elsewhere"
  assert main_lib.compilation_cache_dir(c) == str(tmp_path / "elsewhere")
  c.compilation_cache.enabled = False
  assert main_lib.compilation_cache_dir(c) is None


def run_command_line(home, *overrides, **env):
  """A one-epoch `agreement` job from the command line, with `home` as the user's cache
  directory (XDG_CACHE_HOME) and `env` added to the environment."""
  env = dict(os.environ, XDG_CACHE_HOME=str(home), **env)
  cmd = [sys.executable, "-m", "task_discovery.main", "--config=configs/digits.py:smoke",
         f"--workdir={home / 'run'}", "--config.job=agreement", "--config.eval.num_human_tasks=1",
         "--config.eval.num_random_tasks=0", "--config.eval.num_epochs=1", *overrides]
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert (home / "run" / "report.json").exists()


def test_command_line_keeps_compiled_programs_in_the_users_cache(tmp_path):
  run_command_line(tmp_path)
  entries = os.listdir(tmp_path / "task_discovery" / "jax")
  # The learners' training epoch compiles in well under JAX's default threshold of 1 s on a CPU.
  assert any(name.startswith("jit_train_epoch-") for name in entries), entries


def test_command_line_without_compilation_cache_writes_none(tmp_path):
  # Off also for a user whose environment turns JAX's own cache on.
  run_command_line(tmp_path, "--config.compilation_cache.enabled=False",
                   JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_env"),
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  assert not (tmp_path / "task_discovery").exists() and not (tmp_path / "jax_env").exists()


def test_a_resumed_run_may_change_the_cache_but_not_the_precision():
  saved = config_lib.as_json(config_lib.base())
  c = config_lib.base()
  c.compilation_cache.enabled, c.compilation_cache.dir = False, "/elsewhere"
  assert report.differences(saved, c) == []
  c.precision = "default"
  assert report.differences(saved, c) == ["precision: saved 'highest', now 'default'"]
  del saved["precision"]  # a config saved before the field: taken as 'highest'
  assert report.differences(saved, config_lib.base()) == []
