"""Measuring helpers of the benchmarks: host memory, XLA's memory plan and FLOP counts, a matmul
reference for FLOP/s. Shared by `meta_step.py`, `peer_compare.py`, `eval_step.py` and `compile_cache.py`; jax is imported inside the
functions that need it, so a parent process that only plans runs never imports it.
"""

from __future__ import annotations

import math
import os
import platform
import re
import threading
import time


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def rss_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def max_rss_bytes() -> int:
  import resource  # ru_maxrss is KiB on Linux
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssSampler:
  """Samples the process RSS in a thread (JAX releases the GIL while a step executes)."""

  def __init__(self, interval_s: float = 0.002):
    self.interval_s, self.peak, self._stop = interval_s, 0, threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    while not self._stop.is_set():
      self.peak = max(self.peak, rss_bytes())
      time.sleep(self.interval_s)

  def __enter__(self):
    self.peak = rss_bytes()
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self.peak = max(self.peak, rss_bytes())


def available_memory_bytes() -> int | None:
  """Device memory limit on accelerators, MemAvailable on CPU (None when unknown)."""
  import jax
  try:
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # noqa: BLE001
    stats = {}
  if stats.get("bytes_limit"):
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def matmul_gflops(size: int, repeats: int = 8) -> float:
  """Best-of-`repeats` GFLOP/s of a float32 `[size, size] @ [size, size]`, default precision."""
  import jax
  import jax.numpy as jnp
  ka, kb = jax.random.split(jax.random.key(1))
  a = jax.random.normal(ka, (size, size), jnp.float32)
  b = jax.random.normal(kb, (size, size), jnp.float32)
  f = jax.jit(jnp.matmul)
  jax.block_until_ready(f(a, b))
  best = math.inf
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(f(a, b))
    best = min(best, time.perf_counter() - t)
  return 2.0 * size**3 / best / 1e9


def default_matmul_size() -> int:
  import jax
  return 2048 if jax.default_backend() == "cpu" else 4096


def xla_memory_plan(compiled) -> dict | None:
  """XLA's memory plan of a compiled step, in bytes: temp, arguments, outputs, aliased (donated)
  and `peak` = temp + arguments + outputs - aliased, what XLA plans to hold at once; None where
  the backend gives no plan."""
  m = compiled.memory_analysis()
  if m is None:
    return None
  plan = {"temp": int(m.temp_size_in_bytes), "argument": int(m.argument_size_in_bytes),
          "output": int(m.output_size_in_bytes), "alias": int(m.alias_size_in_bytes)}
  plan["peak"] = plan["temp"] + plan["argument"] + plan["output"] - plan["alias"]
  return plan


def cost_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returned one dict per program
    cost = cost[0]
  return float(cost.get("flops", float("nan")))


_COMPUTATION = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.*?)\s([a-z][\w\-]*)\((.*)$")
_ARRAY_TYPE = re.compile(r"^[a-z]\w*\[([\d,]*)\]")


def hlo_dot_flops(hlo_text: str) -> tuple[float, int]:
  """Dot + convolution FLOPs of an optimised HLO module, each computation weighted by how often
  it runs (`while` bodies by their `known_trip_count`). Returns (flops, number of while loops
  without a known trip count, counted once)."""
  comps, shapes, entry, current = {}, {}, None, None
  for line in hlo_text.splitlines():
    m = _COMPUTATION.match(line)
    if m:
      current = m.group(2)
      comps[current] = {"flops": 0.0, "calls": []}
      if m.group(1):
        entry = current
      continue
    m = _INSTRUCTION.match(line)
    if not m or current is None:
      continue
    name, typ, op, rest = m.groups()
    t = _ARRAY_TYPE.match(typ)
    if t:
      shapes[name] = [int(d) for d in t.group(1).split(",") if d]
    operands = re.findall(r"%([\w.\-]+)", rest.split(")")[0])
    if op == "dot":
      lhs = shapes[operands[0]]
      dims = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
      k = math.prod(lhs[int(i)] for i in dims.group(1).split(",") if i) if dims else 1
      comps[current]["flops"] += 2.0 * math.prod(shapes[name]) * k
    elif op == "convolution":
      rhs = shapes[operands[1]]
      kernel_labels = re.search(r"dim_labels=\w+_(\w+)->", rest).group(1)
      groups = re.search(r"feature_group_count=(\d+)", rest)
      macs = math.prod(d for d, label in zip(rhs, kernel_labels) if label != "o")
      comps[current]["flops"] += (2.0 * math.prod(shapes[name]) * macs
                                  / (int(groups.group(1)) if groups else 1))
    trip = 1
    if op == "while":
      n = re.search(r'"known_trip_count":\{"n":"(\d+)"', rest)
      trip = int(n.group(1)) if n else None
    for key, callee in re.findall(r"(calls|body|condition|to_apply)=%([\w.\-]+)", rest):
      comps[current]["calls"].append((callee, trip if key == "body" else 1))
    branches = re.search(r"branch_computations=\{([^}]*)\}", rest)
    if branches:
      comps[current]["calls"] += [(c, 1) for c in re.findall(r"%([\w.\-]+)", branches.group(1))]
  unknown, memo = [], {}

  def total(c):
    if c not in memo:
      f = comps[c]["flops"]
      for callee, trip in comps[c]["calls"]:
        if trip is None:
          unknown.append(callee)
        f += (trip or 1) * total(callee)
      memo[c] = f
    return memo[c]

  return total(entry), len(unknown)


def analytic_mlp_flops_per_inner_step(widths, in_dim, num_tasks, batch, meta_batch,
                                      num_learners) -> float:
  """Dense-layer FLOPs of one inner step and its reverse pass (no remat), MLP learner+encoder.

  Per layer with S = d_in * d_out and n examples, a matmul costs 2 n S. With S_all over all
  layers and S_hid over layers after the first (only those need an input gradient):
  encoder forward 2 B S_all + its reverse 2 B (S_all + S_hid); learners (E = M * B examples in
  total, data_mode 'meta') forward 2 E S_all, backward 2 E (S_all + S_hid), and the reverse of
  forward + backward (second order) 2 E (2 S_all + 4 S_hid).
  """
  def sums(out_dim):
    dims = [in_dim, *widths, out_dim]
    layers = [a * b for a, b in zip(dims[:-1], dims[1:])]
    return sum(layers), sum(layers[1:])
  enc_all, enc_hid = sums(num_tasks)
  lrn_all, lrn_hid = sums(2)
  e = meta_batch * batch  # each of the L learners sees batch / L examples per task
  del num_learners
  encoder = 2 * batch * enc_all + 2 * batch * (enc_all + enc_hid)
  learners = 2 * e * lrn_all + 2 * e * (lrn_all + lrn_hid) + 2 * e * (2 * lrn_all + 4 * lrn_hid)
  return float(encoder + learners)
