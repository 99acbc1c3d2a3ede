"""The AS of the same tasks from the original's two-network training and from `job=agreement`.

    PEER_REPO=<TaskDiscovery checkout> PEER_PY=<python with torch> \\
        python benchmarks/peer_eval_parity.py [--epochs=15] [--seeds=0,1,2] [--num_images=4096] \\
            [--also_reshuffled] [--out=FILE]

Runs from this project's environment. The original side runs in `PEER_PY` as a subprocess
(`peer_eval_oracle.py`, beside this file: its `train-2net.py` path, `TwoSupervisedModels`
trained by `pl.Trainer`, one task after another); the two exchange arrays through .npz files
(benchmarks/README.md, "Setting up the original", sets up the original's environment).

The same on both sides:
  * images: `--num_images` Fashion-MNIST training images (`data.datasets.load_dataset`,
    `split_seed` 0), cut into a held-out part (`--heldout_fraction`) and a training part,
    brought to the original's input: 28x28 zero-padded to 32x32, repeated to 3 channels,
    normalised with the training part's mean and std; the same float32 arrays go to both;
  * tasks: `--human` human 5-vs-5 tasks (evenly spaced over this library's list) and
    `--random` random ones, from `jobs.evaluation.family_tasks` with `config.seed` 0, labels
    computed once and given to both;
  * protocol: two MLP learners (the original's FCNet with BatchNorm, 3072-1024-512-256-64-2;
    this library's `mlp` family, PyTorch's initialisation), Adam 1e-3, batches of 512, both
    learners of a task on the same batches, `--epochs` epochs, batches in one fixed order
    (the original's evaluation YAML has `shuffle: False`; here `eval.reshuffle=False`), the
    last partial batch dropped, AS = argmax agreement in eval mode on the held-out part;
  * seeds `--seeds`: the original's `utils.set_seeds(seed)` (its initialisations), this
    library's `config.seed` (initialisations and the batch order).

This library's side is `jobs.evaluation.evaluate_families`, what `job=agreement` runs: all
tasks of a seed vmapped, `--tasks_per_chunk` at a time. Seconds per task: this library's
`evaluate_families` wall time (compilation included: every call compiles its step) over the
tasks; the original's time per task (building its module, `fit`, `test`; process start and
imports excluded). The seeds alternate between the sides (original seed s, then this library's
seed s), so that load from other processes falls on both alike; `other_cpu` is the share of
the machine's CPU time that other processes took during the run (0 = alone).

`--also_reshuffled` adds this library's default protocol (`eval.reshuffle=True`, a new batch
order every epoch, as the original's `check_as.py`) as extra columns, not used in the last line.

Printed: per task, both sides' mean AS over the seeds and each side's seed spread (max - min
of its values), the gap |mean_ours - mean_original| and gap / larger spread. The last line:
`max_gap_over_spread=<largest gap / larger spread over the tasks>
speedup=<original's seconds per task / this library's>`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from task_discovery import config as config_lib
from task_discovery.data import datasets
from task_discovery.jobs import evaluation

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import measure  # noqa: E402  (beside this script)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--num_images", type=int, default=4096)
  p.add_argument("--heldout_fraction", type=float, default=0.25,
                 help="4096 images: 1024 held out (2 batches), 3072 to train (6 batches)")
  p.add_argument("--epochs", type=int, default=15)
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--human", type=int, default=8)
  p.add_argument("--random", type=int, default=4)
  p.add_argument("--tasks_per_chunk", type=int, default=4)
  p.add_argument("--threads", type=int, default=2, help="the original's torch threads")
  p.add_argument("--also_reshuffled", action="store_true")
  p.add_argument("--out", default="", help="also write the results as JSON here")
  return p.parse_args(argv)


def make_config(args, seed: int, reshuffle: bool = False):
  c = config_lib.base()
  c.job = "agreement"
  c.seed = seed
  c.data.name = "fashion_mnist"
  c.data.num_images = args.num_images
  c.data.heldout_fraction = args.heldout_fraction
  c.data.meta_val_fraction = 0.0  # evaluation only: two parts, as the original's train / val
  c.learner = config_lib.model_config("mlp")
  c.eval.num_epochs = args.epochs
  c.eval.reshuffle = reshuffle
  c.eval.tasks_per_chunk = args.tasks_per_chunk
  c.eval.num_human_tasks = args.human
  c.eval.num_random_tasks = args.random
  config_lib.validate(c)
  return c


def to_peer_shape(dataset: datasets.Dataset) -> datasets.Dataset:
  """28x28x1 images as the original's 32x32x3 input: zero-padded (Fashion-MNIST's background),
  repeated to 3 channels, normalised per channel with the training part's statistics."""
  raw = np.pad(dataset.raw_images(), ((0, 0), (2, 2), (2, 2), (0, 0)))
  raw = np.repeat(raw, 3, axis=-1)
  train = raw[dataset.train_idx].astype(np.float64)
  mean = train.mean(axis=(0, 1, 2)).astype(np.float32)
  std = train.std(axis=(0, 1, 2)).astype(np.float32)
  images = datasets.normalize(raw, mean, std)
  images.flags.writeable = False
  return dataclasses.replace(dataset, images=images, mean=mean, std=std)


def cpu_jiffies() -> tuple[int, int]:
  """(busy, total) CPU time of the whole machine from /proc/stat, in clock ticks."""
  with open("/proc/stat") as f:
    fields = [int(v) for v in f.readline().split()[1:]]
  idle = fields[3] + fields[4]  # idle + iowait
  return sum(fields) - idle, sum(fields)


def own_cpu_seconds() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def run_original(settings: dict, dataset, labels, workdir: str) -> dict:
  peer_py, peer_repo = os.environ.get("PEER_PY"), os.environ.get("PEER_REPO")
  if not peer_py or not peer_repo:
    sys.exit("set PEER_PY (a Python with torch and pytorch-lightning 1.5) and PEER_REPO "
             "(a checkout of the original): benchmarks/README.md, \"Setting up the original\"")
  tag = "_".join(str(s) for s in settings["seeds"])
  inputs, outputs = (os.path.join(workdir, f"seed{tag}_{s}.npz") for s in ("in", "out"))
  np.savez(inputs, settings=json.dumps(settings),
           images=np.ascontiguousarray(dataset.images.transpose(0, 3, 1, 2)),
           labels=labels, train_idx=dataset.train_idx, heldout_idx=dataset.heldout_idx)
  env = dict(os.environ, PEER_REPO=peer_repo, OMP_NUM_THREADS=str(settings["threads"]))
  result = subprocess.run([peer_py, os.path.join(HERE, "peer_eval_oracle.py"), inputs, outputs],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  if result.returncode:
    sys.exit(f"the original's side failed:\n{result.stderr[-4000:]}")
  with np.load(outputs) as f:
    return {k: f[k] for k in f.files}


def run_ours(config, dataset, families) -> tuple[np.ndarray, np.ndarray, float]:
  """(agreement [T], accuracy [T, 2], seconds) of `evaluate_families` for one seed."""
  sections = evaluation.evaluate_families(config, dataset, families)
  by_task = {(e["family"], e["index"]): e for e in sections["tasks"]}
  order = [(f, int(i)) for f, (indices, _) in families.items() for i in indices]
  agreement = np.asarray([by_task[k]["agreement"] for k in order])
  accuracy = np.asarray([by_task[k]["learner_accuracy"] for k in order])
  return agreement, accuracy, sections["eval_seconds"]


def spread(values: np.ndarray) -> np.ndarray:
  return values.max(axis=0) - values.min(axis=0)


def table(names, ours, original, reshuffled=None) -> tuple[list[dict], str]:
  """Rows per task from `[S, T]` AS arrays, and the printed table."""
  rows, lines = [], []
  head = (f"{'task':<12} {'original':>9} {'spread':>7} {'ours':>9} {'spread':>7} {'gap':>7} "
          f"{'gap/spread':>10}")
  if reshuffled is not None:
    head += f" {'reshuffled':>10} {'spread':>7}"
  lines.append(head)
  for t, name in enumerate(names):
    row = dict(task=name, original_mean=float(original[:, t].mean()),
               original_spread=float(spread(original[:, t])), ours_mean=float(ours[:, t].mean()),
               ours_spread=float(spread(ours[:, t])), original=original[:, t].tolist(),
               ours=ours[:, t].tolist())
    row["gap"] = abs(row["ours_mean"] - row["original_mean"])
    larger = max(row["ours_spread"], row["original_spread"])
    row["gap_over_spread"] = row["gap"] / larger if larger > 0 else float("inf")
    line = (f"{name:<12} {row['original_mean']:>9.4f} {row['original_spread']:>7.4f} "
            f"{row['ours_mean']:>9.4f} {row['ours_spread']:>7.4f} {row['gap']:>7.4f} "
            f"{row['gap_over_spread']:>10.2f}")
    if reshuffled is not None:
      row.update(reshuffled_mean=float(reshuffled[:, t].mean()),
                 reshuffled_spread=float(spread(reshuffled[:, t])))
      line += f" {row['reshuffled_mean']:>10.4f} {row['reshuffled_spread']:>7.4f}"
    rows.append(row)
    lines.append(line)
  return rows, "\n".join(lines)


def main(argv=None):
  args = parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  base = make_config(args, seeds[0])
  dataset = to_peer_shape(datasets.load_dataset(base.data))
  families = evaluation.family_tasks(make_config(args, 0), dataset)  # labels fixed: seed 0
  labels = np.concatenate([lab for _, lab in families.values()]).astype(np.int32)
  names = [f"{f}-{int(i)}" for f, (indices, _) in families.items() for i in indices]
  print(f"[eval-parity] {len(dataset.train_idx)} train / {len(dataset.heldout_idx)} held-out "
        f"images {dataset.input_shape}, {len(names)} tasks, {args.epochs} epochs, seeds {seeds}",
        file=sys.stderr, flush=True)
  settings = dict(max_epochs=args.epochs, arch="mlp", threads=args.threads)
  ours, original, reshuffled = [], [], []
  secs = {"ours": 0.0, "original": 0.0, "reshuffled": 0.0}
  busy0, total0 = cpu_jiffies()
  own0, wall0 = own_cpu_seconds(), time.perf_counter()
  with tempfile.TemporaryDirectory() as workdir:
    for seed in seeds:
      peer = run_original(dict(settings, seeds=[seed]), dataset, labels, workdir)
      original.append(peer["agreement"][0])
      secs["original"] += float(peer["seconds"].sum())
      agreement, _, seconds = run_ours(make_config(args, seed), dataset, families)
      ours.append(agreement)
      secs["ours"] += seconds
      if args.also_reshuffled:
        agreement, _, seconds = run_ours(make_config(args, seed, True), dataset, families)
        reshuffled.append(agreement)
        secs["reshuffled"] += seconds
      print(f"[eval-parity] seed {seed}: original {peer['seconds'].sum():.0f} s "
            f"(AS {np.round(original[-1], 3).tolist()}), ours {secs['ours']:.0f} s so far "
            f"(AS {np.round(ours[-1], 3).tolist()})", file=sys.stderr, flush=True)
  busy1, total1 = cpu_jiffies()
  wall = time.perf_counter() - wall0
  ticks = os.sysconf("SC_CLK_TCK")
  other_cpu = max(0.0, ((busy1 - busy0) / ticks - (own_cpu_seconds() - own0))
                  / ((total1 - total0) / ticks))
  ours, original = np.asarray(ours), np.asarray(original)
  rows, text = table(names, ours, original, np.asarray(reshuffled) if reshuffled else None)
  runs = len(seeds) * len(names)
  per_task = {k: v / runs for k, v in secs.items()}
  speedup = per_task["original"] / per_task["ours"]
  max_ratio = max(r["gap_over_spread"] for r in rows)
  print(text)
  print(f"seconds per task: original {per_task['original']:.2f} (one after another), "
        f"ours {per_task['ours']:.2f} ({args.tasks_per_chunk} tasks vmapped, compilation "
        f"included)" + (f", ours reshuffled {per_task['reshuffled']:.2f}"
                        if args.also_reshuffled else ""))
  print(f"machine: {measure.cpu_model()}, {os.cpu_count()} cores; wall {wall:.0f} s; "
        f"other_cpu={other_cpu:.2f} (share of the machine's CPU time other processes took)")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(dict(rows=rows, seconds_per_task=per_task, speedup=speedup, wall_s=wall,
                     other_cpu=other_cpu, args=vars(args)), f, indent=1)
  print(f"max_gap_over_spread={max_ratio:.2f} speedup={speedup:.2f}")


if __name__ == "__main__":
  main()
