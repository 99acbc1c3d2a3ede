"""A `jax.profiler` trace of a few steady-state steps of a training loop, in the workdir.

The trace lands in `WORKDIR/profile/plugins/profile/<time>/`: `<host>.xplane.pb` (TensorBoard's
profile plugin / XProf: `tensorboard --logdir WORKDIR/profile`) and `perfetto_trace.json.gz`
(drop it on https://ui.perfetto.dev). See docs/workdir.md.
"""

from __future__ import annotations

from absl import logging
import jax

from task_discovery.run import workdir as workdir_lib

PROFILE_DIR = "profile"


class StepTrace:
  """Traces `num_steps` steps with `jax.profiler`, from step `first_step` on.

  Two calls in the training loop, `step` before each step and `close` when the loop ends:

      profiler = StepTrace(workdir, num_steps=n, first_step=start + 1, enabled=main_process)
      try:
        for step in range(start, total):
          profiler.step(step, block=state)
          state = train_step(state)
      finally:
        profiler.close(block=state)

  `first_step=start + 1` leaves out the run's first step, which compiles. `step(s)` starts the
  trace when `s` reaches `first_step` and stops it once `num_steps` steps ran since; `close`
  stops a trace still running (a loop that ended or raised first). JAX dispatches steps
  asynchronously, so before stopping both wait for `block` (the state the last traced step
  returned, any pytree of arrays): without it the trace could end before that step ran on the
  device. A trace is taken at most once; with `num_steps=0` or `enabled=False` (processes other
  than 0) nothing is traced or written.
  """

  def __init__(self, workdir, num_steps: int, first_step: int, enabled: bool = True):
    if num_steps < 0:
      raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    self.log_dir = workdir_lib.Workdir.of(workdir).file(PROFILE_DIR)
    self.num_steps = num_steps
    self.first_step = first_step
    self.enabled = enabled and num_steps > 0
    self.started_at = None  # the step the trace started before, once it has
    self.finished = False

  @property
  def tracing(self) -> bool:
    return self.started_at is not None and not self.finished

  def step(self, step: int, block=None):
    """Called before step `step` runs; `block`: the previous step's result."""
    if not self.enabled or self.finished:
      return
    if self.started_at is None:
      # `>=`, not `==`: a loop that begins past `first_step` (a resumed run) still traces.
      if step >= self.first_step:
        jax.profiler.start_trace(self.log_dir, create_perfetto_trace=True)
        self.started_at = step
    elif step >= self.started_at + self.num_steps:
      self._stop(block, last_step=step - 1)

  def close(self, block=None):
    """Stops a trace still running (`block`: the last step's result); otherwise nothing.

    Meant for a `finally` block: an error while waiting for `block` (e.g. the input of a step
    that raised, already donated to it) is logged, not raised, so it can not replace the error
    that ended the loop.
    """
    if self.tracing:
      self._stop(block, last_step=None, raise_wait_errors=False)

  def _stop(self, block, last_step, raise_wait_errors=True):
    self.finished = True
    try:
      if block is not None:
        try:
          jax.block_until_ready(block)
        except Exception as e:  # pylint: disable=broad-except
          if raise_wait_errors:
            raise
          logging.warning("jax.profiler trace stopped without waiting for the last step: %s", e)
    finally:  # stop even when waiting raised: a running trace would block the next one
      jax.profiler.stop_trace()
    steps = (f"steps {self.started_at}-{last_step}" if last_step is not None
             else f"steps from {self.started_at} to the end of the loop")
    logging.info("jax.profiler trace of %s written under %s", steps, self.log_dir)
