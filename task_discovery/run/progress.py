"""Console progress with an ETA for long loops (meta-training, evaluation)."""

from __future__ import annotations

import time

from absl import logging


def format_seconds(seconds: float) -> str:
  seconds = max(0, int(round(seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Progress:
  """Logs `done/total`, rate and ETA at most every `every_seconds` (and at the end).

  The first update is excluded from the rate because it usually includes compilation.
  """

  def __init__(self, total: int, name: str, every_seconds: float = 10.0, start: int = 0):
    self.total = total
    self.name = name
    self.every_seconds = every_seconds
    self._start_count = start
    self._t0 = time.perf_counter()
    self._t_first = None
    self._count_first = start
    self._last_log = -float("inf")

  def update(self, done: int, message: str = "") -> None:
    now = time.perf_counter()
    if self._t_first is None:
      self._t_first, self._count_first = now, done
    if now - self._last_log < self.every_seconds and done < self.total:
      return
    self._last_log = now
    rate_steps = done - self._count_first
    eta = ""
    if rate_steps > 0 and done < self.total:
      per_item = (now - self._t_first) / rate_steps
      eta = f", ETA {format_seconds(per_item * (self.total - done))}"
    elapsed = format_seconds(now - self._t0)
    logging.info("%s %d/%d (%s elapsed%s)%s", self.name, done, self.total, elapsed, eta,
                 f" {message}" if message else "")
