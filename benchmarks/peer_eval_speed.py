"""Evaluation speed at the paper's scale: seconds per task of `job=agreement` over 126 human and 8
random tasks against the original's `train-2net.py`, one task after another, on the same machine.

    PEER_REPO=<TaskDiscovery checkout> PEER_PY=<python with torch> \\
        python benchmarks/peer_eval_speed.py [--epochs=15] [--original_tasks=8] [--out=FILE]

The protocol, images and learners are `peer_eval_parity.py`'s (Fashion-MNIST as the original's
32x32x3 input, 3072 training and 1024 held-out images, the original's MLP, Adam 1e-3, batches of
512, one batch order, `--epochs` epochs). This library's side is one call of
`jobs.evaluation.evaluate_families` over all `--human` + `--random` tasks (`eval.tasks_per_chunk`
at a time: one compilation for all chunks, included in its time). The original trains every task
on its own and its time per task does not depend on which task it is, so it is timed on
`--original_tasks` of them (evenly spaced over the same list; building its module, `fit` and
`test`, its process start and imports excluded). The original's side runs first, then this
library's, never both at once.

Last line: `seconds_per_task_original=<x> seconds_per_task_ours=<y> speedup=<x / y>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from task_discovery.data import datasets
from task_discovery.jobs import evaluation

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import measure  # noqa: E402  (beside this script)
import peer_eval_parity as parity  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--epochs", type=int, default=15)
  p.add_argument("--human", type=int, default=126)
  p.add_argument("--random", type=int, default=8)
  p.add_argument("--original_tasks", type=int, default=8,
                 help="tasks the original trains to time it (its time per task is the same "
                 "for every task)")
  p.add_argument("--tasks_per_chunk", type=int, default=4)
  p.add_argument("--threads", type=int, default=2, help="the original's torch threads")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  config_args = parity.parse_args([f"--epochs={args.epochs}", f"--human={args.human}",
                                   f"--random={args.random}",
                                   f"--tasks_per_chunk={args.tasks_per_chunk}"])
  config = parity.make_config(config_args, seed=0)
  dataset = parity.to_peer_shape(datasets.load_dataset(config.data))
  families = evaluation.family_tasks(config, dataset)
  labels = np.concatenate([lab for _, lab in families.values()]).astype(np.int32)
  sample = np.unique(np.linspace(0, len(labels) - 1, args.original_tasks).round().astype(int))
  print(f"[eval-speed] {len(labels)} tasks, {args.epochs} epochs; the original on tasks "
        f"{sample.tolist()}", file=sys.stderr, flush=True)
  with tempfile.TemporaryDirectory() as workdir:
    settings = dict(max_epochs=args.epochs, arch="mlp", threads=args.threads, seeds=[0])
    peer = parity.run_original(settings, dataset, labels[sample], workdir)
  original = float(peer["seconds"].mean())
  t0 = time.perf_counter()
  sections = evaluation.evaluate_families(config, dataset, families)
  wall = time.perf_counter() - t0
  ours = wall / len(labels)
  summary = {f: round(s["mean_as"], 4) for f, s in sections["summary"].items()}
  print(f"original: {original:.2f} s per task (mean of {len(sample)}, one after another); "
        f"this library: {wall:.0f} s for {len(labels)} tasks ({args.tasks_per_chunk} at a time, "
        f"compilation included), {ours:.2f} s per task; mean AS {summary}")
  print(f"machine: {measure.cpu_model()}, {os.cpu_count()} cores")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(dict(original_seconds=peer["seconds"].tolist(), ours_wall=wall,
                     num_tasks=len(labels), summary=summary, args=vars(args)), f, indent=1)
  print(f"seconds_per_task_original={original:.2f} seconds_per_task_ours={ours:.2f} "
        f"speedup={original / ours:.2f}")


if __name__ == "__main__":
  main()
