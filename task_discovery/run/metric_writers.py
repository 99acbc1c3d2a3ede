"""Metrics to a JSON-lines file and TensorBoard event files (tensorboardX: no TensorFlow)."""

from __future__ import annotations

import errno
import json
import os

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
  write.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    path = workdir_lib.Workdir.of(workdir).metrics
    if resume_step is not None:
      truncate_jsonl(path, resume_step)
    self._path = path
    self._tb_dir = workdir_lib.Workdir.of(workdir).tensorboard
    self._jsonl = open(path, "a")
    try:
      from tensorboardX import SummaryWriter
      # purge_step: TensorBoard hides the earlier run's events from this step on.
      purge = None if not resume_step else resume_step + 1
      self._tb = SummaryWriter(self._tb_dir, purge_step=purge)
    except ImportError:  # tensorboardX is a dependency; keep JSON-lines logging regardless
      self._tb = None

  def write(self, step: int, metrics: dict) -> dict[str, float]:
    values = scalars(metrics)
    if not self.enabled:
      return values
    try:
      self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
      self._jsonl.flush()
    except OSError as e:
      raise OSError(e.errno, e.strerror, self._path) from e
    if self._tb is not None:
      for name, value in values.items():
        self._check_tensorboard()  # a dead writer thread would block add_scalar for ever
        self._tb.add_scalar(name, value, int(step))
    return values

  def _tensorboard_alive(self) -> bool:
    worker = getattr(getattr(getattr(self._tb, "file_writer", None), "event_writer", None),
                     "_worker", None)
    return worker is None or worker.is_alive()

  def _check_tensorboard(self):
    if not self._tensorboard_alive():
      raise OSError(errno.EIO, "the TensorBoard event writer stopped after a failed write (a "
                    "full disk?)", self._tb_dir)

  def close(self):
    if self._jsonl is not None:
      try:
        self._jsonl.close()
      except OSError as e:
        raise OSError(e.errno, e.strerror, self._path) from e
    if self._tb is not None and self._tensorboard_alive():
      self._tb.close()


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
