"""Tests for task_discovery.run.profiling: which steps a StepTrace traces, and what it writes."""
import glob
import os

import jax
import jax.numpy as jnp
import pytest

from task_discovery import config as config_lib
from task_discovery.run import profiling


@pytest.fixture
def calls(monkeypatch):
  """The profiler's calls, in order, interleaved with the steps the loop runs (see `train`);
  the real `jax.profiler` still runs."""
  log = []
  start, stop, block = jax.profiler.start_trace, jax.profiler.stop_trace, jax.block_until_ready

  def logged(name, fn):
    def call(*args, **kwargs):
      log.append((name, args[0]) if name == "block" else (name,))
      return fn(*args, **kwargs)
    return call

  monkeypatch.setattr(jax.profiler, "start_trace", logged("start", start))
  monkeypatch.setattr(jax.profiler, "stop_trace", logged("stop", stop))
  monkeypatch.setattr(jax, "block_until_ready", logged("block", block))
  return log


def train(workdir, start, stop, num_traced, calls, fail_at=None):
  """The loop of a training job with a tiny jitted step; `calls` gets ("step", s) as step `s`
  runs. Returns the final state."""
  step_fn = jax.jit(lambda x: jnp.tanh(x @ x))
  state = jnp.eye(8)
  profiler = profiling.StepTrace(workdir, num_steps=num_traced, first_step=start + 1)
  try:
    for step in range(start, stop):
      profiler.step(step, block=state)
      if step == fail_at:
        raise RuntimeError(f"step {step} failed")
      calls.append(("step", step))
      state = step_fn(state)
  finally:
    profiler.close(block=state)
  return state


def trace_files(workdir, pattern):
  return glob.glob(os.path.join(workdir, "profile", "plugins", "profile", "*", pattern))


def test_traces_the_steps_after_the_first_and_blocks_on_the_last_before_stopping(tmp_path,
                                                                                  calls):
  workdir = str(tmp_path)
  train(workdir, start=3, stop=8, num_traced=2, calls=calls)  # a run resumed at step 3
  blocked = [c[1] for c in calls if c[0] == "block"]
  assert len(blocked) == 1
  assert [c if c[0] != "block" else ("block",) for c in calls] == [
      ("step", 3), ("start",), ("step", 4), ("step", 5), ("block",), ("stop",),
      ("step", 6), ("step", 7)]
  # What it waited for is the state step 5 returned: the last traced step's result.
  expected = jnp.eye(8)
  for _ in range(3):
    expected = jnp.tanh(expected @ expected)
  assert jnp.allclose(blocked[0], expected)
  assert len(trace_files(workdir, "*.xplane.pb")) == 1
  assert len(trace_files(workdir, "perfetto_trace.json.gz")) == 1


def test_zero_steps_or_another_process_traces_nothing(tmp_path, calls):
  train(str(tmp_path), start=0, stop=4, num_traced=0, calls=calls)
  profiler = profiling.StepTrace(str(tmp_path), num_steps=2, first_step=1, enabled=False)
  for step in range(4):
    profiler.step(step)
  profiler.close()
  assert [c[0] for c in calls] == ["step"] * 4
  assert list(tmp_path.iterdir()) == []


def test_a_loop_that_ends_or_raises_first_stops_the_trace_at_close(tmp_path, calls):
  train(str(tmp_path / "short"), start=0, stop=3, num_traced=5, calls=calls)
  assert [c[0] for c in calls] == ["step", "start", "step", "step", "block", "stop"]
  calls.clear()
  with pytest.raises(RuntimeError, match="step 2 failed"):
    train(str(tmp_path / "failed"), start=0, stop=10, num_traced=5, calls=calls, fail_at=2)
  assert [c[0] for c in calls] == ["step", "start", "step", "block", "stop"]
  assert trace_files(str(tmp_path / "failed"), "*.xplane.pb")
  # Nothing is left running: a new trace can start (it raises while one runs).
  jax.profiler.start_trace(str(tmp_path / "next"))
  jax.profiler.stop_trace()


def test_close_after_a_step_that_consumed_its_donated_input_stops_without_raising(tmp_path,
                                                                                   calls):
  profiler = profiling.StepTrace(str(tmp_path), num_steps=3, first_step=0)
  step_fn = jax.jit(lambda x: x * 2, donate_argnums=0)
  state = jnp.ones(4)
  profiler.step(0, block=state)
  step_fn(state)  # as a step that raised after taking `state`: its buffer is gone
  assert state.is_deleted()
  profiler.close(block=state)
  assert [c[0] for c in calls] == ["start", "block", "stop"]
  assert not profiler.tracing


def test_negative_steps_are_refused(tmp_path):
  with pytest.raises(ValueError, match="num_steps must be >= 0"):
    profiling.StepTrace(str(tmp_path), num_steps=-1, first_step=1)


@pytest.mark.parametrize("value, ok", [(0, True), (3, True), (-1, False), (True, False)])
def test_profile_steps_config_is_validated(value, ok):
  c = config_lib.base()
  assert c.profile_steps == 0  # off unless asked for
  with c.unlocked():
    c.profile_steps = value
  if ok:
    config_lib.validate(c)
  else:
    with pytest.raises(ValueError, match=r"config\.profile_steps: must be an integer >= 0"):
      config_lib.validate(c)
