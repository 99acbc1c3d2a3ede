"""Where one meta-step's time goes, per level of differentiation; prints a table and JSON.

    python benchmarks/profile_step.py --workload=e                    # the small CNN, 28x28x1
    python benchmarks/profile_step.py --workload=b --conv_impl=im2col  # ResNet-18, T = 5

Runs the workload of `peer_compare.py` (same config, same `discovery.make_meta_step(...).update`), times
one step after warm-up, then records one step under `jax.profiler` (a perfetto trace) and sums
the executed XLA ops' time by the level of the meta-gradient their HLO `op_name` names:
  forward           the unroll's learner and task-network forward passes (outer `jvp()`)
  backward-1        the learners' own gradients inside the unroll (an inner `transpose`)
  recompute         what `jax.checkpoint` recomputes in the reverse sweep
  backward-2        the reverse sweep of the meta-gradient (outer `transpose(jvp())`)
and, within each, convolutions (FLOPs from the compiled HLO, hence GFLOP/s), dots, and
everything else (copies, transposes, slices, elementwise work). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
import time

import peer_compare  # the workloads' configs and step builder, beside this script

_SHAPE = re.compile(r"^(?:\(|)f(?:32|64)\[([\d,]*)\]")


def _dims(text: str) -> list[int]:
  m = _SHAPE.match(text)
  return [int(v) for v in m.group(1).split(",") if v] if m else []


def hlo_ops(hlo: str) -> dict[str, dict]:
  """Per executed op (a fusion or a plain instruction of a computation that runs as a thunk):
  its `op_name`, its kind ('conv', 'dot' or 'other') and its convolution FLOPs."""
  shapes = dict(re.findall(r"%(\S+) = (\S+)", hlo))
  bodies = {m.group(1): m.group(2) for m in re.finditer(
      r"\n%?(\S+) \([^\n]*\) -> [^\n]* \{\n(.*?)\n\}", hlo, re.S)}
  ops = {}
  for m in re.finditer(r"%(\S+) = (\S+) (\w[\w-]*)\((.*?)\)(.*)", hlo):
    name, shape, opcode, operands, rest = m.groups()
    op_name = re.search(r'op_name="([^"]*)"', rest)
    called = re.search(r"calls=%([^\s,]+)", rest)
    lines = bodies.get(called.group(1), "") if called else m.group(0)
    kind, flops = "other", 0
    for line in lines.splitlines():
      conv = re.search(r"= (\S+) convolution\(%(\S+), %(\S+)\), window=\{size=(\d+)x(\d+)", line)
      if conv:
        rhs = _dims(shapes.get(conv.group(3), "")) or _dims(
            re.search(r"%" + re.escape(conv.group(3)) + r" = (\S+)", lines).group(1))
        kind = "conv"
        flops += 2 * _prod(_dims(conv.group(1))) * int(conv.group(4)) * int(conv.group(5)) * (
            rhs[2] if len(rhs) == 4 else 1)
      elif " dot(" in line and kind == "other":
        kind = "dot"
    ops[name] = {"op_name": op_name.group(1) if op_name else "", "kind": kind, "flops": flops}
  return ops


def _prod(values) -> int:
  out = 1
  for v in values:
    out *= v
  return out


def level(op_name: str) -> str:
  """The level of the meta-gradient an op belongs to, from its JAX `op_name`."""
  if "transpose(jvp())" in op_name.split("/while", 1)[0]:
    return "recompute" if "rematted_computation" in op_name else "backward-2"
  inner = op_name.split("/while", 1)[-1]
  return "backward-1" if "transpose(" in inner else "forward"


def profile(spec: dict) -> dict:
  import jax
  c = peer_compare._config(spec)
  step, state, data = peer_compare._build(c, spec.get("n_images", 2048), abstract=False,
                                          shape=spec.get("image_shape", (32, 32, 3)))
  compiled = step.lower(state, data).compile()
  for _ in range(2):
    t = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - t
  ops = hlo_ops(compiled.as_text())
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      state, metrics = compiled(state, data)
      jax.block_until_ready(metrics)
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/**/*.json.gz", recursive=True)[0]))
  seconds_by = collections.Counter()
  flops_by = collections.Counter()
  for e in events["traceEvents"]:
    op = e.get("args", {}).get("hlo_op") if e.get("ph") == "X" else None
    if op in ops:
      key = (level(ops[op]["op_name"]), ops[op]["kind"])
      seconds_by[key] += e["dur"] / 1e6
      flops_by[key] += ops[op]["flops"]
  rows = [{"level": lv, "kind": kind, "seconds": s, "conv_gflop": flops_by[(lv, kind)] / 1e9,
           "conv_gflops_per_s": flops_by[(lv, kind)] / s / 1e9 if kind == "conv" and s else None}
          for (lv, kind), s in sorted(seconds_by.items())]
  return {"spec": spec, "step_seconds": seconds, "traced_op_seconds": sum(seconds_by.values()),
          "rows": rows}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workload", default="e", choices=["b", "e"])
  p.add_argument("--conv_impl", default="auto", help="auto | xla | im2col | canonical")
  p.add_argument("--out", default="", help="also write the JSON here")
  args = p.parse_args(argv)
  spec = (peer_compare.plan([args.workload])[0] if args.workload == "e" else
          dict(peer_compare.WORKLOADS["b"][0], overrides={"inner.remat": True}))
  spec["overrides"] = dict(spec["overrides"], **{
      "learner.conv_impl": args.conv_impl, "task.encoder.conv_impl": args.conv_impl})
  result = profile(spec)
  print(f"step {result['step_seconds']:.2f} s; traced op time {result['traced_op_seconds']:.2f} s "
        "(both threads)", file=sys.stderr)
  for r in result["rows"]:
    rate = f"{r['conv_gflops_per_s']:7.1f} GFLOP/s" if r["conv_gflops_per_s"] else ""
    print(f"{r['level']:12s} {r['kind']:6s} {r['seconds']:7.3f} s {rate}", file=sys.stderr)
  peer_compare.emit(result, args.out)


if __name__ == "__main__":
  main()
