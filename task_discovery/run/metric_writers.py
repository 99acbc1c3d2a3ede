"""Metrics to a JSON-lines file and TensorBoard event files (tensorboardX: no TensorFlow)."""

from __future__ import annotations

import contextlib
import json
import os
import time

import numpy as np

from task_discovery.run import workdir as workdir_lib


def scalars(metrics: dict) -> dict[str, float]:
  """Flattens metrics into scalars: an array `m` of size k becomes `m` (its mean) and, for
  k <= 64, `m/0` ... `m/{k-1}`."""
  out = {}
  for name, value in metrics.items():
    value = np.asarray(value)
    if value.size == 1:
      out[name] = float(value.reshape(()))
      continue
    out[name] = float(value.mean())
    if value.size <= 64:
      out.update({f"{name}/{i}": float(v) for i, v in enumerate(value.reshape(-1))})
  return out


class MetricWriter:
  """Appends `{"step": s, ...}` lines to `metrics.jsonl` and writes TensorBoard scalars.

  Resumed runs append to the same files, after dropping the records past the step they resume
  from (`resume_step`), so each step appears once; only process 0 of a multi-host run should
  write. A failed write of either file raises an `OSError` naming it; TensorBoard is never turned
  off silently: without tensorboardX (a dependency) the writer raises `ImportError` at once.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    wd = workdir_lib.Workdir.of(workdir)
    # TensorBoard first: a missing tensorboardX fails here, before metrics.jsonl is touched.
    # purge_step: TensorBoard hides the earlier run's events from this step on.
    self._tb = EventFile(wd.tensorboard, purge_step=resume_step + 1 if resume_step else None)
    path = wd.metrics
    if resume_step is not None:
      truncate_jsonl(path, resume_step)
    self._path = path
    self._jsonl = open(path, "a")

  def write(self, step: int, metrics: dict) -> dict[str, float]:
    values = scalars(metrics)
    if not self.enabled:
      return values
    try:
      self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
      self._jsonl.flush()
    except OSError as e:
      raise OSError(e.errno, e.strerror, self._path) from e
    self._tb.write(int(step), values)
    return values

  def close(self):
    """Closes both files; the first error of either is raised after both were closed."""
    errors = []
    if self._jsonl is not None:
      try:
        self._jsonl.close()
      except OSError as e:
        errors.append(OSError(e.errno, e.strerror, self._path))
        errors[-1].__cause__ = e
    if self._tb is not None:
      try:
        self._tb.close()
      except OSError as e:
        errors.append(e)
    if errors:
      raise errors[0]


def _import_tensorboardx(logdir: str):
  """tensorboardX's event writer and protos, or an error that says how to get them."""
  try:
    # pylint: disable=g-import-not-at-top  (here: a missing package fails with the fix, below)
    from tensorboardX import summary
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog
  except Exception as e:  # pylint: disable=broad-except  (a protobuf mismatch raises TypeError)
    raise ImportError(
        f"TensorBoard event files ({logdir}) are written with tensorboardX, a dependency of "
        f"task_discovery, which failed to import ({type(e).__name__}: {e}). Install it with "
        "`pip install tensorboardX` or reinstall this package (`pip install -e .`).") from e
  return summary, EventsWriter, Event, SessionLog


class EventFile:
  """TensorBoard scalars written by the calling thread into one event file of `logdir`.

  Why not tensorboardX's `SummaryWriter`: it hands events to a background thread which, on a
  failed write (a full disk), dies without a word; `add_scalar` then blocks for ever on its full
  queue. Here each event is written where it is added, so a failed write raises `OSError` (with
  `logdir`) in the caller. Flushes (tensorboardX's flush also fsyncs) happen on the first write,
  then at most every `flush_seconds`, and at `close()`.
  """

  def __init__(self, logdir: str, purge_step: int | None = None, flush_seconds: float = 10.0):
    self._summary, events_writer, self._event, session_log = _import_tensorboardx(logdir)
    self.logdir = logdir
    self._flush_seconds = flush_seconds
    self._last_flush = None
    self._failed = False
    with self._naming_errors():
      os.makedirs(logdir, exist_ok=True)
      # tensorboardX names the file by the second: a writer reopened within the same second (a
      # quick resume) would truncate the earlier file. The nanoseconds make the name unique.
      self._writer = events_writer(os.path.join(logdir, "events"),
                                   filename_suffix=f".{time.time_ns() % 10**9:09d}")
      if purge_step is not None:
        # TensorBoard drops the events at steps >= purge_step read before this one.
        self._writer.write_event(self._event(
            wall_time=time.time(), step=purge_step,
            session_log=session_log(status=session_log.START)))

  def write(self, step: int, values: dict[str, float]):
    """One event at `step` holding every scalar of `values`."""
    summary = self._summary.scalar  # cleans the tag as SummaryWriter.add_scalar does
    event = self._event(wall_time=time.time(), step=int(step))
    for name, value in values.items():
      event.summary.value.extend(summary(name, value).value)
    with self._naming_errors():
      self._writer.write_event(event)
      now = time.monotonic()
      if self._last_flush is None or now - self._last_flush >= self._flush_seconds:
        self._writer.flush()
        self._last_flush = now

  def close(self):
    """Flushes and closes the file. After a write that already raised, a second failure of the
    final flush is not raised again (the file is closed all the same)."""
    writer, self._writer = self._writer, None
    if writer is None:
      return
    try:
      with self._naming_errors():
        writer.close()
    except OSError:
      if not self._failed:
        raise

  @contextlib.contextmanager
  def _naming_errors(self):
    try:
      yield
    except OSError as e:
      self._failed = True
      raise OSError(e.errno, e.strerror, self.logdir) from e


def truncate_jsonl(path: str, last_step: int) -> int:
  """Rewrites `path` (atomically) without the records of steps after `last_step` and without a
  torn last line. Returns the number of records dropped."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    lines = f.read().splitlines()
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:  # a line cut by a kill: drop it
      continue
    if isinstance(record, dict) and record.get("step", 0) <= last_step:
      kept.append(line)
  dropped = len([l for l in lines if l.strip()]) - len(kept)
  if dropped:
    workdir_lib.write_text(path, "".join(l + "\n" for l in kept))
  return dropped


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
