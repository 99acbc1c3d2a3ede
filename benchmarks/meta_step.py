"""Benchmark of the discovery meta-step: seconds, FLOP/s and peak memory; prints JSON.

    python benchmarks/meta_step.py        # --sweep=quick: ~9 CPU-minutes; 14-27 min on a busy 2-core box
    python benchmarks/meta_step.py --sweep=full --out=meta_step_full.json   # for GPUs

Every record times `discovery.make_meta_step(encoder, learner, config, mesh).update`, the
compiled step `discovery.train` runs (its shardings, the state donated), on synthetic random images
`[N, 32, 32, 3]` (no download), after one warm-up step; the median of a few steps is reported.
The measuring helpers (memory, FLOP counts, the matmul reference) are in `measure.py`.

FLOPs. XLA's `compiled.cost_analysis()` counts the body of a `lax.scan` (a `while` loop) ONCE,
not once per iteration, so the cost analysis of the compiled step is useless for FLOP/s (it is
still recorded, as `xla_cost_analysis_flops_as_compiled`, to show the under-count). Two counts
are used instead:
  * `flops_per_meta_step` (model FLOPs, used for `achieved_gflops` and
    `fraction_of_matmul_flops`): XLA's cost analysis of the same meta-step compiled with its
    scans fully unrolled (`make_meta_step(..., unroll_scans=True)`; cost-only compiles, never
    executed) and WITHOUT remat, at T = 1 and T = 2 inner steps; the count is affine in T (checked, see
    `--flop_check_unroll`), so F(T) = const + per_step * T. Remat recomputation is NOT included (on an
    unrolled program XLA removes it anyway), so remat on/off share one count and the slowdown of
    remat shows as a lower fraction: the convention of "model FLOPs utilisation".
  * `executed_dot_flops`: the dot and convolution FLOPs of the step as actually compiled (scan,
    remat and all), read from its optimised HLO with every `while` body weighted by its known
    trip count. Includes remat recomputation; excludes elementwise work.
For the MLP an analytic count of the dense-layer FLOPs per inner step is also recorded as a
cross-check (`analytic_flops_per_inner_step`).

Memory. `xla_peak_bytes` = XLA's `memory_analysis()` of the compiled step: temp + arguments +
outputs - aliased (donated) bytes; what XLA plans to hold at once. `rss_delta_bytes` = peak
resident set size of the process sampled every ~2 ms while the step executes, minus the RSS just
before the first execution (after compilation): host memory, on CPU the real footprint of a step.
On GPUs `device_peak_bytes` (the allocator's `peak_bytes_in_use`) is recorded as well.

Each record runs in a fresh subprocess (`--isolate`, default) so compile caches, the RSS
high-water mark and allocator state of one configuration do not leak into the next.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import measure  # the measuring helpers, beside this script

N_IMAGES = 2048
IMAGE_SHAPE = (32, 32, 3)
HELDOUT_FRACTION = 0.1

# ---------------------------------------------------------------------------------------------
# Sweep plans (pure Python: the parent process never imports jax when isolating).
# ---------------------------------------------------------------------------------------------


def _spec(model, unroll, remat, meta_batch_size, conv_impl="auto", **kw):
  return dict(model=model, unroll=unroll, remat=remat, meta_batch_size=meta_batch_size,
              conv_impl=conv_impl, **kw)


def sweep_plan(sweep: str, other_conv_impl: str | None) -> list[dict]:
  """The configurations of a sweep, in run order."""
  if sweep == "quick":
    plan = [_spec("mlp", 10, False, 1), _spec("mlp", 10, True, 1),
            _spec("mlp", 50, False, 1), _spec("mlp", 50, True, 1),
            _spec("mlp", 10, True, 4),
            _spec("cnn", 10, True, 1)]
    if other_conv_impl:
      plan.append(_spec("cnn", 10, True, 1, conv_impl=other_conv_impl, optional=True))
    return plan
  if sweep == "full":
    plan = []
    for model in ("mlp", "cnn"):
      for unroll in (10, 50, 100, 200):
        for remat in (True, False):
          plan.append(_spec(model, unroll, remat, 1))
      for m in (2, 4, 8):
        for remat in (True, False):
          plan.append(_spec(model, 10, remat, m))
    if other_conv_impl:
      plan.append(_spec("cnn", 10, True, 1, conv_impl=other_conv_impl, optional=True))
    return plan
  raise ValueError(f"--sweep={sweep!r} is not 'quick' or 'full'")


# ---------------------------------------------------------------------------------------------
# Everything below `_jax_imports` runs where jax is imported (the child, or the single process).
# ---------------------------------------------------------------------------------------------


def build_config(spec: dict):
  from task_discovery import config as config_lib
  c = config_lib.base()
  model = config_lib.model_config(spec["model"])
  model.conv_impl = spec["conv_impl"]
  if spec["model"] == "mlp":
    model.mlp_widths = tuple(spec.get("mlp_widths", (1024, 512, 256, 64)))
  elif spec["model"] == "cnn":
    model.cnn_widths = tuple(spec.get("cnn_widths", (32, 64, 128)))
  elif spec["model"] == "resnet18":
    model.resnet_width = spec.get("resnet_width", 16)
  c.learner = model
  c.task.encoder = model.copy_and_resolve_references()
  c.task.num_tasks = spec["num_tasks"]
  c.inner.num_steps = spec["unroll"]
  c.inner.batch_size = spec["batch_size"]
  c.inner.heldout_batch_size = spec["heldout_batch_size"]
  c.inner.remat = spec["remat"]
  c.meta.meta_batch_size = spec["meta_batch_size"]
  config_lib.validate(c)
  return c


def _setup(spec: dict, unroll: int | None = None, remat: bool | None = None,
           unroll_scans: bool = False):
  """(meta-step, config, encoder, learner) for a spec, optionally overriding T and remat and
  with every scan of the meta-step fully unrolled (for the cost-only compiles).

  The meta-step is `discovery.make_meta_step`, what `discovery.train` runs: `update` compiled
  with the same shardings (a mesh of the config's devices) and the state donated."""
  from task_discovery import models
  from task_discovery.jobs import discovery
  from task_discovery.run import sharding
  spec = dict(spec, **({} if unroll is None else {"unroll": unroll}),
              **({} if remat is None else {"remat": remat}))
  config = build_config(spec)
  encoder, learner = models.build_models(config, IMAGE_SHAPE)
  mesh = sharding.make_mesh(config.mesh.num_devices, divides=config.meta.meta_batch_size)
  step = discovery.make_meta_step(encoder, learner, config, mesh, unroll_scans=unroll_scans)
  return step, config, encoder, learner


def make_data(n_images: int):
  import jax
  import jax.numpy as jnp
  images = jax.random.normal(jax.random.key(0), (n_images, *IMAGE_SHAPE), jnp.float32)
  n_train = n_images - int(round(n_images * HELDOUT_FRACTION))
  from task_discovery.method import meta
  return meta.DiscoveryData(images=images,  # as discovery.device_data
                            train_idx=jnp.arange(n_train, dtype=jnp.int32),
                            heldout_idx=jnp.arange(n_train, n_images, dtype=jnp.int32))


def flop_fit(spec: dict, data, check_unroll: int = 0) -> dict:
  """F(T) = const + per_step * T from cost-only fully unrolled compiles, remat off."""
  import jax
  out, t0 = {}, time.perf_counter()
  costs = {}
  for t in (1, 2) + ((check_unroll,) if check_unroll else ()):
    step, config, encoder, learner = _setup(spec, unroll=t, remat=False, unroll_scans=True)
    state = jax.eval_shape(step.init, jax.random.key(0))
    costs[t] = measure.cost_flops(step.update.lower(state, data).compile())
  per_step = costs[2] - costs[1]
  out = {"const": costs[1] - per_step, "per_inner_step": per_step,
         "compile_seconds": time.perf_counter() - t0}
  if check_unroll:
    predicted = out["const"] + per_step * check_unroll
    out["check"] = {"unroll": check_unroll, "unrolled_cost_analysis": costs[check_unroll],
                    "affine_prediction": predicted,
                    "relative_error": abs(costs[check_unroll] - predicted) / costs[check_unroll]}
  return out


def run_one(spec: dict, fit: dict | None, n_images: int, repeats: int, matmul_size: int,
            flop_check_unroll: int = 0) -> dict:
  """Compiles, times and measures one configuration in this process."""
  import jax
  import numpy as np
  from task_discovery import models
  rec = dict(spec)
  rec.pop("optional", None)
  rec["loadavg_before"] = list(os.getloadavg())
  data = make_data(n_images)
  step, config, encoder, learner = _setup(spec)
  rec["conv_impl_resolved"] = models.resolve_conv_impl(spec["conv_impl"])
  state = step.init(jax.random.key(0))
  rec["encoder_params"] = models.num_params({"params": state.params})
  rec["learner_params"] = models.num_params(
      {"params": jax.tree.map(lambda a: a[0], state.learner_init["params"])})
  jax.block_until_ready((state, data))

  # Compile (peak host memory of compilation is an upper-bound measure, recorded separately).
  rss_before_compile = measure.rss_bytes()
  t = time.perf_counter()
  compiled = step.update.lower(state, data).compile()
  rec["compile_seconds"] = time.perf_counter() - t
  rec["compile_max_rss_delta_bytes"] = max(0, measure.max_rss_bytes() - rss_before_compile)
  plan = measure.xla_memory_plan(compiled)
  rec.update({f"xla_{k}_bytes": v for k, v in (plan or {"peak": None}).items()})
  available = measure.available_memory_bytes()
  if rec["xla_peak_bytes"] and available and rec["xla_peak_bytes"] > 0.9 * available:
    rec["status"] = "too_large"
    rec["note"] = (f"not executed: XLA plans {rec['xla_peak_bytes'] / 2**30:.1f} GiB, more than "
                   f"90% of the {available / 2**30:.1f} GiB available")
    return rec
  rec["xla_cost_analysis_flops_as_compiled"] = measure.cost_flops(compiled)
  executed, unknown_loops = measure.hlo_dot_flops(compiled.as_text())
  rec["executed_dot_flops"] = executed
  if unknown_loops:
    rec["executed_dot_flops_note"] = f"{unknown_loops} while loops without known trip count"

  # Time: one warm-up step, then `repeats` steps, each synchronised and each followed by a
  # matmul measurement (best of 3), so every step has a reference taken under the same load.
  times, matmuls = [], []
  rss_before_run = measure.rss_bytes()
  with measure.RssSampler() as sampler:
    state, metrics = compiled(state, data)
    jax.block_until_ready((state, metrics))
    for _ in range(repeats):
      t = time.perf_counter()
      state, metrics = compiled(state, data)
      jax.block_until_ready((state, metrics))
      times.append(time.perf_counter() - t)
      matmuls.append(measure.matmul_gflops(matmul_size, repeats=3))
  rec["rss_delta_bytes"] = max(0, sampler.peak - rss_before_run)
  rec["step_seconds"] = times
  rec["seconds_per_meta_step"] = statistics.median(times)
  rec["matmul_gflops_per_step"] = matmuls
  rec["loss_finite"] = bool(np.isfinite(float(metrics["loss"])))
  device = jax.devices()[0]
  try:
    stats = device.memory_stats() or {}
  except Exception:  # noqa: BLE001 - CPU has no memory stats in some versions
    stats = {}
  rec["device_peak_bytes"] = stats.get("peak_bytes_in_use")
  del state, compiled

  rec["matmul_gflops"] = statistics.median(matmuls)
  rec["loadavg_after"] = list(os.getloadavg())

  # FLOPs.
  if fit is None:
    fit = flop_fit(spec, data, check_unroll=flop_check_unroll)
  rec["flop_fit"] = fit
  flops = fit["const"] + fit["per_inner_step"] * spec["unroll"]
  rec["flops_per_meta_step"] = flops
  rec["flop_count_method"] = (
      "xla_cost_analysis_unrolled_affine_fit: XLA cost_analysis of the step compiled with the "
      "inner lax.scan fully unrolled, remat off, at T=1 and T=2; F(T) = const + per_step*T "
      "(model FLOPs, remat recomputation not counted)")
  if spec["model"] == "mlp":
    analytic = measure.analytic_mlp_flops_per_inner_step(
        spec.get("mlp_widths", (1024, 512, 256, 64)), math.prod(IMAGE_SHAPE),
        spec["num_tasks"], spec["batch_size"], spec["meta_batch_size"], 2)
    rec["analytic_flops_per_inner_step"] = analytic
    rec["fit_over_analytic_per_inner_step"] = fit["per_inner_step"] / analytic
  seconds = rec["seconds_per_meta_step"]
  rec["achieved_gflops"] = flops / seconds / 1e9
  # Median over steps of (this step's FLOP/s) / (the matmul FLOP/s measured right after it).
  rec["fraction_of_matmul_flops"] = statistics.median(
      flops / s / 1e9 / m for s, m in zip(times, matmuls))
  # Best step against best matmul: an estimate of what a quiet machine would give.
  rec["fraction_of_matmul_flops_best"] = flops / min(times) / 1e9 / max(matmuls)
  rec["executed_dot_gflops"] = executed / seconds / 1e9
  rec["executed_dot_fraction_of_matmul_flops"] = statistics.median(
      executed / s / 1e9 / m for s, m in zip(times, matmuls))
  rec["xla_cost_analysis_undercount_factor"] = flops / rec["xla_cost_analysis_flops_as_compiled"]
  rec["status"] = "ok"
  return rec


def header(matmul_size: int) -> dict:
  import flax
  import jax
  import jaxlib
  devices = jax.devices()
  return {
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "num_devices": len(devices),
      "jax_version": jax.__version__,
      "jaxlib_version": jaxlib.__version__,
      "flax_version": flax.__version__,
      "python_version": platform.python_version(),
      "cpu_count": os.cpu_count(),
      "machine": platform.machine(),
      "matmul_size": matmul_size,
      "matmul_gflops": measure.matmul_gflops(matmul_size),
      "matmul_note": (f"best of 8 float32 {matmul_size}x{matmul_size} jnp.matmul, default "
                      "precision; each record re-measures it in its own process "
                      "(matmul_gflops there) and divides by that"),
  }


# ---------------------------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------------------------


def _parse(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--sweep", default="quick", choices=("quick", "full"))
  p.add_argument("--out", default="", help="also write the JSON here")
  p.add_argument("--batch_size", type=int, default=128, help="inner batch (split over learners)")
  p.add_argument("--heldout_batch_size", type=int, default=128)
  p.add_argument("--num_tasks", type=int, default=32, help="d")
  p.add_argument("--n_images", type=int, default=N_IMAGES)
  p.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up")
  p.add_argument("--matmul_size", type=int, default=0, help="0: 2048 on CPU, 4096 otherwise")
  p.add_argument("--isolate", default=True, action=argparse.BooleanOptionalAction,
                 help="one subprocess per record (clean RSS and compile caches)")
  p.add_argument("--other_conv_timeout_s", type=float, default=None,
                 help="budget (s) of the CNN record with the other conv_impl ('xla' on CPU, "
                      "'im2col' elsewhere); 0 skips it. Default: skipped in a quick sweep on "
                      "CPU (it takes minutes there, see the README), 600 s otherwise. Only "
                      "enforced with --isolate.")
  p.add_argument("--record_timeout_s", type=float, default=3600.0)
  p.add_argument("--flop_check_unroll", type=int, default=4,
                 help="also compile the first MLP configuration fully unrolled at this T to "
                      "check the affine FLOP fit (0: no check)")
  p.add_argument("--only", default="", help="comma list of record indices to run (debugging)")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  return p.parse_args(argv)


def _run_child(payload: dict) -> None:
  """Child mode: one record (or the header), as one JSON line on stdout."""
  if payload["kind"] == "header":
    size = payload["matmul_size"] or measure.default_matmul_size()
    result = header(size)
  else:
    size = payload["matmul_size"] or measure.default_matmul_size()
    result = run_one(payload["spec"], payload["fit"], payload["n_images"], payload["repeats"],
                     size, payload.get("flop_check_unroll", 0))
  print("@@RESULT@@" + json.dumps(result), flush=True)


def _in_subprocess(payload: dict, timeout_s: float) -> dict:
  cmd = [sys.executable, os.path.abspath(__file__), "--child=" + json.dumps(payload)]
  t = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
  except subprocess.TimeoutExpired:
    return {"status": "timeout",
            "note": f"did not finish within {timeout_s:.0f} s (compile + warm-up + "
                    f"timed steps + FLOP count); process killed"}
  for line in proc.stdout.splitlines():
    if line.startswith("@@RESULT@@"):
      return json.loads(line[len("@@RESULT@@"):])
  return {"status": "error", "returncode": proc.returncode,
          "stderr_tail": proc.stderr[-2000:], "wall_seconds": time.perf_counter() - t}


def main(argv=None) -> None:
  args = _parse(argv)
  if args.child:
    _run_child(json.loads(args.child))
    return
  t_start = time.perf_counter()
  loadavg_start = list(os.getloadavg())

  def call(payload, timeout_s):
    if args.isolate:
      return _in_subprocess(payload, timeout_s)
    size = args.matmul_size or measure.default_matmul_size()
    if payload["kind"] == "header":
      return header(size)
    return run_one(payload["spec"], payload["fit"], args.n_images, args.repeats, size,
                   payload.get("flop_check_unroll", 0))

  head = call({"kind": "header", "matmul_size": args.matmul_size}, 600)
  if head.get("status") in ("error", "timeout"):
    raise RuntimeError(f"header failed: {head}")
  other = "xla" if head["backend"] == "cpu" else "im2col"
  other_timeout = args.other_conv_timeout_s
  if other_timeout is None:
    other_timeout = 0.0 if (head["backend"] == "cpu" and args.sweep == "quick") else 600.0
  plan = sweep_plan(args.sweep, other)
  if args.only:
    plan = [plan[int(i)] for i in args.only.split(",")]
  fits, records, flop_checked = {}, [], args.flop_check_unroll <= 0
  for i, spec in enumerate(plan):
    spec = dict(spec, batch_size=args.batch_size, heldout_batch_size=args.heldout_batch_size,
                num_tasks=args.num_tasks)
    optional = spec.get("optional", False)
    fit_key = json.dumps([spec["model"], spec["conv_impl"], spec["meta_batch_size"]])
    if optional and (other_timeout <= 0 or not args.isolate):
      records.append(dict(
          {k: v for k, v in spec.items() if k != "optional"}, status="skipped",
          note=(f"conv_impl={spec['conv_impl']!r} not run (--other_conv_timeout_s="
                f"{other_timeout:g}, isolate={args.isolate}). On XLA:CPU convolution "
                "gradients inside lax.scan are 15-50x slower (jax-ml/jax#12868); a T=10 step "
                "of this CNN takes minutes, which is why conv_impl='auto' resolves to im2col "
                "on CPU. Run with --other_conv_timeout_s=600 to measure it.")))
      continue
    check = 0
    if not flop_checked and spec["model"] == "mlp" and fit_key not in fits:
      check, flop_checked = args.flop_check_unroll, True
    payload = {"kind": "record", "spec": spec, "fit": fits.get(fit_key),
               "n_images": args.n_images, "repeats": args.repeats,
               "matmul_size": args.matmul_size, "flop_check_unroll": check}
    print(f"[{time.perf_counter() - t_start:7.1f} s] record {i + 1}/{len(plan)}: "
          f"{json.dumps({k: v for k, v in spec.items() if k != 'optional'})}",
          file=sys.stderr, flush=True)
    try:
      rec = call(payload, other_timeout if optional else args.record_timeout_s)
    except Exception as e:  # noqa: BLE001 - a failed record must not lose the others
      rec = {"status": "error", "error": repr(e)}
    if rec.get("status") != "ok":
      rec = dict({k: v for k, v in spec.items() if k != "optional"}, **rec)
      if optional:
        rec["note"] = (rec.get("note", "") + "; skipped: conv_impl='xla' on XLA:CPU "
                       "differentiates convolutions inside lax.scan 15-50x slower "
                       "(jax-ml/jax#12868), which is why conv_impl='auto' picks im2col there")
    elif "flop_fit" in rec:
      fits.setdefault(fit_key, {k: v for k, v in rec["flop_fit"].items() if k != "check"})
    records.append(rec)
    print(f"[{time.perf_counter() - t_start:7.1f} s]   -> "
          + (f"{rec['seconds_per_meta_step']:.3f} s/step, "
             f"{rec['fraction_of_matmul_flops']:.3f} of matmul FLOP/s"
             if rec.get("status") == "ok" else rec.get("status", "?")),
          file=sys.stderr, flush=True)
  head.update(
      sweep=args.sweep, isolate=args.isolate, n_images=args.n_images,
      image_shape=list(IMAGE_SHAPE), repeats=args.repeats,
      loadavg_start=loadavg_start, loadavg_end=list(os.getloadavg()),
      wall_seconds=time.perf_counter() - t_start,
      timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      flop_count_method=(
          "flops_per_meta_step: XLA cost_analysis of cost-only compiles with the inner scan "
          "fully unrolled, remat off, at T=1 and T=2, extrapolated affinely (cost_analysis of "
          "the scanned step counts a while-loop body once). executed_dot_flops: dot/conv FLOPs "
          "of the step as compiled, while bodies weighted by trip count (includes remat)."),
      memory_method=(
          "xla_peak_bytes: compiled.memory_analysis() temp + argument + output - alias. "
          "rss_delta_bytes: peak process RSS sampled during execution minus RSS before the "
          "first execution. device_peak_bytes: device.memory_stats() peak (GPU only)."))
  result = {"header": head, "records": records}
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
