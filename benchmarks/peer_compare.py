"""The meta-step side by side with the original PyTorch code, on the same workloads; prints JSON.

    python benchmarks/peer_compare.py --workloads=a,b --peer_python=P --peer_repo=R --rounds=2
    python benchmarks/peer_compare.py --workloads=c               # XLA memory plans, compile only
    python benchmarks/peer_compare.py --workloads=meta_batch      # time per task, M = 1 vs 4
    python benchmarks/peer_compare.py --workloads=gpu             # configs/cifar.py on one GPU

Workloads (synthetic N(0, 1) images 32x32x3, d = 32 tasks, on both sides):
  a: MLP learners + MLP encoder (widths 1024-512-256-64), T = 10, batch 128 (64 per learner),
     held-out batch 128; this project with remat on (the default) and off.
  b: ResNet-18 learners + ResNet-18 encoder, T = 5, batch 64, held-out batch 64.
  c: `configs/cifar.py` (ResNet-18, T = 50, batch 512): XLA's memory plan of one meta-step
     (temp + arguments + outputs - aliased bytes, `compiled.memory_analysis()`), compile only,
     for each convolution implementation at T = 50; for the CPU default (canonical) also
     T = 51 (the memory of one more unrolled step) and `inner.microbatch_size=64`.
  e: the small CNN (widths 16-32-64) as learners and encoder on Fashion-MNIST-shaped images
     (28x28x1): `configs/fashion_mnist.py` with `learner.name = task.encoder.name = 'cnn'`,
     T = 20, batch 256, held-out batch 512, d = 8; with `--baseline_root=DIR` (a checkout of
     an earlier commit) the same record runs on that code too, alternating, round by round.
  meta_batch: workload a at meta-batch 1 and 4: seconds per task.
  gpu: configs/cifar.py at meta-batch 1, 2, 4, 8: seconds per meta-step, device memory,
     executed dot FLOP/s against a matmul timed in the same process.

The project is timed exactly as `discovery.train` runs it
(`discovery.make_meta_step(...).update` on a one-device mesh, state donated), each record in a fresh subprocess so its peak RSS
(`ru_maxrss`) and compile caches are its own. The original's own module is timed by
`peer_timing.py` (beside this script) in the original's Python (`--peer_python`, with the
checkout `--peer_repo`: benchmarks/README.md, "Setting up the original"), one process at a
time, alternating with the project's records round by round, so both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import measure  # the measuring helpers, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER_TIMING = os.path.join(HERE, "peer_timing.py")

# (project spec, flags of peer_timing.py) per timed workload: the same steps on both sides.
WORKLOADS = {
    "a": (dict(model="mlp", unroll=10, batch=128, timed=7, warmup=2),
          "--learner mlp --encoder mlp --nsteps 10 --batch 128 --h_dim 32 --warmup 2 --timed 7"),
    "b": (dict(model="resnet18", unroll=5, batch=64, timed=3, warmup=1),
          "--learner resnet18 --encoder resnet18 --nsteps 5 --batch 64 --h_dim 32 --warmup 1 "
          "--timed 3"),
}


def _config(spec: dict):
  from task_discovery import config as config_lib
  if spec.get("config"):  # a config file of the checkout the child runs in (its cwd)
    c = config_lib.load_config_file(os.path.join("configs", spec["config"]))
  elif spec.get("cifar"):
    c = config_lib.load_config_file(os.path.join(ROOT, "configs", "cifar.py"))
  else:
    c = config_lib.base()
    c.learner = config_lib.model_config(spec["model"])
    c.task.encoder = config_lib.model_config(spec["model"])
    c.task.num_tasks = 32
    c.inner.num_steps = spec["unroll"]
    c.inner.batch_size = spec["batch"]
    c.inner.heldout_batch_size = spec["batch"]
  for key, value in spec.get("overrides", {}).items():
    if key.startswith("model."):  # both networks: learner and encoder
      c.learner[key[6:]] = c.task.encoder[key[6:]] = value
    else:  # a dotted path, as on the command line
      *sections, field = key.split(".")
      node = c
      for section in sections:
        node = node[section]
      node[field] = value
  config_lib.validate(c)
  return c


def _build(c, n_images: int, abstract: bool, shape=(32, 32, 3)):
  import jax
  import jax.numpy as jnp
  from task_discovery import models
  from task_discovery.jobs import discovery
  from task_discovery.method import meta
  from task_discovery.run import sharding
  shape = tuple(shape)
  encoder, learner = models.build_models(c, shape)
  mesh = sharding.make_mesh(1)
  meta_step = discovery.make_meta_step(encoder, learner, c, mesh)
  n_train = n_images - n_images // 10
  if abstract:
    state = jax.eval_shape(meta_step.init, jax.random.key(0))
    data = meta.DiscoveryData(images=jax.ShapeDtypeStruct((n_images, *shape), jnp.float32),
                              train_idx=jax.ShapeDtypeStruct((n_train,), jnp.int32),
                              heldout_idx=jax.ShapeDtypeStruct((n_images - n_train,), jnp.int32))
    return meta_step.update, state, data
  state = sharding.put_replicated(meta_step.init(jax.random.key(0)), mesh)
  images = jax.random.normal(jax.random.key(1), (n_images, *shape), jnp.float32)
  data = sharding.put_replicated(meta.DiscoveryData(
      images=images, train_idx=jnp.arange(n_train, dtype=jnp.int32),
      heldout_idx=jnp.arange(n_train, n_images, dtype=jnp.int32)), mesh)
  return meta_step.update, state, data


def _plan_bytes(compiled) -> dict:
  plan = measure.xla_memory_plan(compiled)
  return {"xla_plan_gib": plan["peak"] / 2**30, "xla_temp_gib": plan["temp"] / 2**30}


def child(spec: dict) -> dict:
  """One record, in this process: a timed run or (spec['plan_only']) a memory plan."""
  import jax
  c = _config(spec)
  import task_discovery
  record = {"spec": spec, "backend": jax.default_backend(),
            "library": os.path.dirname(os.path.dirname(task_discovery.__file__))}
  if spec.get("plan_only"):
    step, state, data = _build(c, 50000 if spec.get("cifar") else 2048, abstract=True)
    t = time.perf_counter()
    compiled = step.lower(state, data).compile()
    record.update(_plan_bytes(compiled), compile_s=time.perf_counter() - t)
    return record
  step, state, data = _build(c, spec.get("n_images", 2048), abstract=False,
                             shape=spec.get("image_shape", (32, 32, 3)))
  times = []
  t0 = time.perf_counter()
  step = step.lower(state, data).compile()  # compiled once; its HLO serves the FLOP count
  state, metrics = step(state, data)
  jax.block_until_ready(metrics)
  record["first_step_s"] = time.perf_counter() - t0  # compile + one step
  for _ in range(spec["warmup"] - 1):
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
  cpu = []
  for _ in range(spec["timed"]):
    t, c0 = time.perf_counter(), time.process_time()
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c0)
  # CPU seconds of this process (all threads) per step: less sensitive than wall time to other
  # processes on a shared machine (peer_timing.py measures the original's the same way).
  record.update(median_s=statistics.median(times), times_s=times, loss=float(metrics["loss"]),
                median_cpu_s=statistics.median(cpu),
                peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
  m = max(1, c.meta.meta_batch_size)
  record["seconds_per_task"] = record["median_s"] / m
  if spec.get("flops"):  # executed dot FLOPs of the compiled step (scan trip counts included)
    flops, _ = measure.hlo_dot_flops(step.as_text())
    record["executed_dot_tflop"] = flops / 1e12
    record["achieved_gflops"] = flops / record["median_s"] / 1e9
    record["matmul_gflops"] = measure.matmul_gflops(measure.default_matmul_size(), repeats=5)
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
      record["device_peak_gib"] = stats["peak_bytes_in_use"] / 2**30
  return record


def _run_json(cmd: list[str], timeout_s: float, tag: dict, **kwargs) -> dict:
  """Runs `cmd`, returns the JSON of its last stdout line, or `tag` with a status on failure."""
  try:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, **kwargs)
  except subprocess.TimeoutExpired:
    return dict(tag, status=f"timeout after {timeout_s:.0f} s")
  if out.returncode:
    return dict(tag, status=f"failed (exit {out.returncode})", stderr_tail=out.stderr[-2000:])
  return json.loads(out.stdout.strip().splitlines()[-1])


def _run_child(spec: dict, timeout_s: float, root: str = ROOT) -> dict:
  """One record in a fresh process, importing the library of the checkout `root`."""
  cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
  env = dict(os.environ, PYTHONPATH=os.path.abspath(root))
  return _run_json(cmd, timeout_s, {"spec": spec}, cwd=root, env=env)


def _run_peer(flags: str, python: str, repo: str, timeout_s: float) -> dict:
  """One record of the original: `peer_timing.py` in its Python, importing its checkout."""
  r = _run_json([python, PEER_TIMING, "--peer_repo", os.path.abspath(repo), *flags.split()],
                timeout_s, {"peer": flags})
  if "status" in r:
    return r
  # peak_rss_gb and median_cpu_s (CPU seconds of its process per step) are measured as in
  # `child`: ru_maxrss / 1e6, time.process_time() around each step.
  return {"peer": flags, "median_s": r["median_s"], "peak_rss_gb": r["peak_rss_gb"],
          "median_clean_s": r["median_clean_s"], "contended": r["contended"],
          "cpu_contention": r["cpu_contention"], "median_cpu_s": r["median_cpu_s"],
          "first_step_s": r["first_step_s"]}


def _commit(root: str) -> str:
  out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
  return out.stdout.strip()


def plan(workloads: list[str]) -> list[dict]:
  """Project records per workload (peer records are added by `main`)."""
  specs = []
  for w in workloads:
    if w in WORKLOADS:
      base = WORKLOADS[w][0]
      specs.append(dict(base, workload=w, overrides={"inner.remat": True}))
      if w == "a":
        specs.append(dict(base, workload=w, overrides={"inner.remat": False}))
    elif w == "c":
      # T = 51 - T = 50: memory per extra unrolled step; T = 200 with blocks of 14 steps
      # (about sqrt(T)): the nested-checkpointing option.
      # inner.microbatch_size: each learner's 256 images in microbatches of 64 and 32.
      for conv in ("canonical", "im2col", "xla"):
        variants = ((50, 0, 0), (51, 0, 0), (50, 0, 64))
        for unroll, block, micro in (variants if conv == "canonical" else variants[:1]):
          specs.append(dict(workload="c", cifar=True, plan_only=True, overrides={
              "model.conv_impl": conv, "inner.num_steps": unroll, "inner.remat_block": block,
              "inner.microbatch_size": micro}))
    elif w == "e":
      specs.append(dict(workload="e", config="fashion_mnist.py", image_shape=(28, 28, 1),
                        n_images=4096, timed=3, warmup=1, flops=True, overrides={
                            "learner.name": "cnn", "task.encoder.name": "cnn",
                            "learner.cnn_widths": (16, 32, 64),
                            "task.encoder.cnn_widths": (16, 32, 64)}))
    elif w == "meta_batch":
      for m in (1, 4):
        specs.append(dict(WORKLOADS["a"][0], workload=w, overrides={
            "inner.remat": True, "meta.meta_batch_size": m}))
    elif w == "gpu":
      for m in (1, 2, 4, 8):
        specs.append(dict(workload="gpu", cifar=True, timed=3, warmup=1, flops=True,
                          n_images=8192, overrides={"meta.meta_batch_size": m}))
    else:
      raise ValueError(f"unknown workload {w!r}; choose from a, b, c, meta_batch, gpu")
  return specs


def emit(result: dict, out: str, indent=None) -> None:
  """Prints the result as JSON on stdout and, if `out` is given, writes it there too."""
  text = json.dumps(result, indent=indent)
  print(text)
  if out:
    with open(out, "w") as f:
      f.write(text)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workloads", default="a", help="comma-separated: a, b, c, meta_batch, gpu")
  p.add_argument("--rounds", type=int, default=1, help="alternating rounds (peer, project)")
  p.add_argument("--peer_python", default="", help="python of the original's venv ('' = skip)")
  p.add_argument("--peer_repo", default=os.environ.get("PEER_REPO", ""),
                 help="checkout of the original code (default: $PEER_REPO)")
  p.add_argument("--baseline_root", default="",
                 help="checkout of an earlier commit: its records run beside this one's")
  p.add_argument("--timeout_s", type=float, default=3600)
  p.add_argument("--out", default="", help="also write the JSON here")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child:
    print(json.dumps(child(json.loads(args.child))))
    return
  workloads = [w for w in args.workloads.split(",") if w]
  records = []
  for r in range(args.rounds):
    for w in workloads:
      if args.peer_python and w in WORKLOADS:
        rec = dict(_run_peer(WORKLOADS[w][1], args.peer_python, args.peer_repo, args.timeout_s),
                   workload=w, round=r, who="peer")
        records.append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)
      for spec in plan([w]):
        roots = [("project", ROOT)] + ([("baseline", args.baseline_root)]
                                       if args.baseline_root else [])
        for who, root in (roots if r % 2 == 0 else roots[::-1]):  # alternate who goes first
          rec = dict(_run_child(spec, args.timeout_s, root), workload=w, round=r, who=who,
                     root=os.path.abspath(root), commit=_commit(root))
          records.append(rec)
          print(json.dumps(rec), file=sys.stderr, flush=True)
  result = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "loadavg_end": os.getloadavg(), "records": records}
  emit(result, args.out, indent=1)


if __name__ == "__main__":
  main()
