"""Metrics to a JSON-lines file and TensorBoard event files (tensorboardX: no TensorFlow)."""

from __future__ import annotations

import json
import os

import numpy as np


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

  Resumed runs append to the same files; only process 0 of a multi-host run should write.
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    try:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    except ImportError:  # tensorboardX is a dependency; keep JSON-lines logging regardless
      self._tb = None

  def write(self, step: int, metrics: dict) -> dict[str, float]:
    values = scalars(metrics)
    if not self.enabled:
      return values
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(name, value, int(step))
    return values

  def close(self):
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def read_jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
