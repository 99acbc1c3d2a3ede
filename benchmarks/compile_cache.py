"""What JAX's persistent compilation cache saves a rerun; prints JSON.

    python benchmarks/compile_cache.py                      # digits and cifar smoke, ~3 CPU-minutes
    python benchmarks/compile_cache.py --workloads=digits

For each workload, three runs of `python -m task_discovery.main` of one meta-step (no
evaluation), each in a fresh process and a fresh workdir: with the cache off, with an empty
cache (compiles and writes it), and again with the now filled cache (reads it). The wall time of
a process is its start-up, the data, the compile of the meta-step and one step, so the
difference between the cold and the warm run is what the cache saves the first step of a rerun.

Workloads: `digits` is the quickstart (`configs/digits.py`); `cifar_smoke` is
`configs/cifar.py:smoke` (ResNet-18s) on CIFAR-shaped mock TFDS data
(`tfds.testing.mock_data`), so it needs no prepared CIFAR-10. Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import measure  # the measuring helpers, beside this script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_STEP = ["--config.meta.num_steps=1", "--config.meta.log_every=1",
            "--config.eval.evaluate_discovered=False", "--config.eval.num_human_tasks=0",
            "--config.eval.num_random_tasks=0", "--config.mesh.num_devices=1"]
CONFIGS = {"digits": "configs/digits.py", "cifar_smoke": "configs/cifar.py:smoke"}

# The child of `cifar_smoke`: main under CIFAR-shaped mock data, which TFDS only offers in-process.
_MOCK_CHILD = """
import sys
import tensorflow_datasets as tfds
from absl import app
from task_discovery import main
from task_discovery.data import datasets
datasets._tfds_is_prepared = lambda builder: True  # mock_data's data_dir does not exist
with tfds.testing.mock_data(num_examples=256):
  app.run(main.main, argv=sys.argv)
"""


def run_once(workload: str, workdir: str, cache: list[str]) -> float:
  """Wall seconds of one process of `workload`, one meta-step, with the cache flags `cache`."""
  flags = [f"--config={CONFIGS[workload]}", f"--workdir={workdir}", *ONE_STEP, *cache]
  if workload == "cifar_smoke":
    cmd = [sys.executable, "-c", _MOCK_CHILD, *flags]
  else:
    cmd = [sys.executable, "-m", "task_discovery.main", *flags]
  start = time.perf_counter()
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if out.returncode != 0:
    raise RuntimeError(f"{workload} failed:\n{out.stderr[-3000:]}")
  return seconds


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workloads", default="digits,cifar_smoke",
                 help=f"comma-separated, from {sorted(CONFIGS)}")
  p.add_argument("--out", default="", help="also write the JSON here")
  args = p.parse_args()
  records = []
  with tempfile.TemporaryDirectory() as tmp:
    for workload in args.workloads.split(","):
      if workload not in CONFIGS:
        p.error(f"unknown workload {workload!r}; choose from {sorted(CONFIGS)}")
      cache_dir = os.path.join(tmp, workload, "cache")
      on = ["--config.compilation_cache.enabled=True", f"--config.compilation_cache.dir={cache_dir}"]
      record = {"workload": workload, "config": CONFIGS[workload]}
      for name, cache in (("off", ["--config.compilation_cache.enabled=False"]),
                          ("cold", on), ("warm", on)):
        record[f"{name}_s"] = round(run_once(workload, os.path.join(tmp, workload, name), cache),
                                    2)
      record["saved_s"] = round(record["cold_s"] - record["warm_s"], 2)
      record["cache_mb"] = round(sum(
          os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache_dir) for f in fs)
          / 1e6, 1)
      print(json.dumps(record), file=sys.stderr)
      records.append(record)
  result = {"machine": measure.cpu_model(), "cpus": os.cpu_count(),
            "records": records}
  text = json.dumps(result, indent=1)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)


if __name__ == "__main__":
  main()
