"""The AS of the same tasks from the original's two-network training and from `job=agreement`.

    PEER_REPO=<TaskDiscovery checkout> PEER_PY=<python with torch> \\
        python benchmarks/peer_eval_parity.py [--epochs=15] [--seeds=0,...,7] [--num_images=4096] \\
            [--discovered=4] [--fixed_data_seed] [--also_reshuffled] [--out=FILE]

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
    computed once and given to both; and `--discovered` tasks of one task network: the
    original's `ASUniformityTraining` (MLP encoder, d = 32) trained a few meta-steps by its own
    `Trainer.fit` and saved by it (`peer_checkpoint.py`), imported here
    (`original.importer`, BatchNorm on batch statistics, polarity 'training'): its first
    linear tasks whose labels are not too one-sided (class 1 on 20-80% of the training part);
    each side labels them itself, the original in train-2net.py's
    `CIFAREmbeddingClassificationTask` on every batch its loaders serve, this library as
    `job=agreement` labels an imported workdir (`discovered.labels_in_batches` over
    `evaluation.loader_batches`: the training part in its epoch order, then the held-out part,
    in batches of 512, each on its own statistics), so the labels depend on the batch order;
  * protocol: two MLP learners (the original's FCNet with BatchNorm, 3072-1024-512-256-64-2;
    this library's `mlp` family, PyTorch's initialisation), Adam 1e-3, batches of 512, both
    learners of a task on the same batches, `--epochs` epochs, batches in one fixed order
    (the original's evaluation YAML has `shuffle: False`; here `eval.reshuffle=False`), the
    last partial batch dropped, AS = argmax agreement in eval mode on the held-out part;
  * seeds `--seeds` (8 by default): the original's `utils.set_seeds(seed)` (its
    initialisations) and its data seed (the order of its training batches, its `--data_seed`,
    set to the seed; `--fixed_data_seed` keeps its default 42 for every seed, so that its seeds
    share one order), this library's `config.seed` (initialisations and the batch order).
    Both sides' values thus vary over the same things.

This library's side is `jobs.evaluation.evaluate_families`, what `job=agreement` runs: all
tasks of a seed vmapped, `--tasks_per_chunk` at a time. Seconds per task: this library's
`evaluate_families` wall time (compilation included: the first seed compiles into an empty
compilation cache, as `main` keeps one, and the later seeds read the programs back) over the
tasks; the original's time per task (building its module, `fit`, `test`; process start and
imports excluded). The seeds alternate between the sides (original seed s, then this library's
seed s), so that load from other processes falls on both alike; `other_cpu` is the share of
the machine's CPU time that other processes took during the run (0 = alone).

`--also_reshuffled` adds this library's default protocol (`eval.reshuffle=True`, a new batch
order every epoch, as the original's `check_as.py`) as extra columns, not used in the last line.

Printed: per task, both sides' mean AS over the seeds and standard deviation, the gap
|mean_ours - mean_original| and gap / spread, where the spread is 2.5 x the pooled standard
error of the difference of the two means (`pooled_se`: s_p sqrt(1/n_1 + 1/n_2), s_p^2 the
pooled variance of the two sides' values over seeds); per family, the difference of the mean
AS (ours - original; each seed's mean over the family's tasks, one value per seed and side)
with its 95% t-interval from the pooled variance. The last line:
`max_gap_over_spread=<largest gap / spread over the tasks>
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

import task_discovery
from task_discovery import config as config_lib
from task_discovery import main as main_lib
from task_discovery.data import datasets
from task_discovery.jobs import discovered
from task_discovery.jobs import evaluation
from task_discovery.models import task_network
from task_discovery.original import importer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import measure  # noqa: E402  (beside this script)

DATA_SEED = 42  # the original's --data_seed default (datautils)


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--num_images", type=int, default=4096)
  p.add_argument("--heldout_fraction", type=float, default=0.25,
                 help="4096 images: 1024 held out (2 batches), 3072 to train (6 batches)")
  p.add_argument("--epochs", type=int, default=15)
  p.add_argument("--seeds", default="0,1,2,3,4,5,6,7")
  p.add_argument("--discovered", type=int, default=4,
                 help="tasks of an original task network trained a few meta-steps (0: none)")
  p.add_argument("--discovered_steps", type=int, default=3,
                 help="meta-steps the original trains that task network")
  p.add_argument("--fixed_data_seed", action="store_true",
                 help="the original's data seed 42 for every seed (one batch order)")
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
  peer_py, peer_repo = peer_environment()
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


SPREAD_SE = 2.5  # the spread: this many pooled standard errors of the difference of means


def pooled_se(a: np.ndarray, b: np.ndarray) -> float:
  """The pooled standard error of `mean(a) - mean(b)`: s_p sqrt(1/n_a + 1/n_b)."""
  na, nb = len(a), len(b)
  pooled_var = ((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2)
  return float(np.sqrt(pooled_var * (1 / na + 1 / nb)))


def difference_interval(ours: np.ndarray, original: np.ndarray, confidence: float = 0.95
                        ) -> tuple[float, float, float]:
  """`(mean(ours) - mean(original), low, high)`: the pooled two-sample t-interval."""
  from scipy import stats
  diff = float(np.mean(ours) - np.mean(original))
  half = float(stats.t.ppf(0.5 + confidence / 2, len(ours) + len(original) - 2)) * pooled_se(
      ours, original)
  return diff, diff - half, diff + half


def family_lines(names, ours, original) -> tuple[dict, list[str]]:
  """Per family (the part of a task's name before '-'): the mean difference of the per-seed
  family means with its 95% interval, and whether it contains 0 or lies within +-0.01."""
  families, lines = {}, []
  for family in dict.fromkeys(n.rsplit("-", 1)[0] for n in names):
    cols = [t for t, n in enumerate(names) if n.rsplit("-", 1)[0] == family]
    diff, low, high = difference_interval(ours[:, cols].mean(1), original[:, cols].mean(1))
    ok = low <= 0 <= high or (-0.01 <= low and high <= 0.01)
    families[family] = dict(tasks=len(cols), ours=float(ours[:, cols].mean()),
                            original=float(original[:, cols].mean()), difference=diff,
                            interval=[low, high], holds=ok)
    lines.append(f"family {family:<10} ({len(cols)} tasks): original "
                 f"{families[family]['original']:.4f} ours {families[family]['ours']:.4f} "
                 f"difference {diff:+.4f} (95% interval {low:+.4f} .. {high:+.4f}) "
                 f"{'contains 0 or within 0.01' if ok else 'EXCLUDES 0'}")
  return families, lines


def table(names, ours, original, reshuffled=None) -> tuple[list[dict], str]:
  """Rows per task from `[S, T]` AS arrays, and the printed table."""
  rows, lines = [], []
  head = (f"{'task':<14} {'original':>9} {'std':>7} {'ours':>9} {'std':>7} {'gap':>7} "
          f"{'spread':>7} {'gap/spread':>10}")
  if reshuffled is not None:
    head += f" {'reshuffled':>10} {'spread':>7}"
  lines.append(head)
  for t, name in enumerate(names):
    row = dict(task=name, original_mean=float(original[:, t].mean()),
               original_std=float(original[:, t].std(ddof=1)),
               ours_mean=float(ours[:, t].mean()), ours_std=float(ours[:, t].std(ddof=1)),
               original=original[:, t].tolist(), ours=ours[:, t].tolist())
    row["gap"] = abs(row["ours_mean"] - row["original_mean"])
    row["spread"] = SPREAD_SE * pooled_se(ours[:, t], original[:, t])
    row["gap_over_spread"] = (row["gap"] / row["spread"] if row["spread"] > 0 else
                              (0.0 if row["gap"] == 0 else float("inf")))
    line = (f"{name:<14} {row['original_mean']:>9.4f} {row['original_std']:>7.4f} "
            f"{row['ours_mean']:>9.4f} {row['ours_std']:>7.4f} {row['gap']:>7.4f} "
            f"{row['spread']:>7.4f} {row['gap_over_spread']:>10.2f}")
    if reshuffled is not None:
      row.update(reshuffled_mean=float(reshuffled[:, t].mean()),
                 reshuffled_spread=float(spread(reshuffled[:, t])))
      line += f" {row['reshuffled_mean']:>10.4f} {row['reshuffled_spread']:>7.4f}"
    rows.append(row)
    lines.append(line)
  return rows, "\n".join(lines)


def peer_environment() -> tuple[str, str]:
  peer_py, peer_repo = os.environ.get("PEER_PY"), os.environ.get("PEER_REPO")
  if not peer_py or not peer_repo:
    sys.exit("set PEER_PY (a Python with torch and pytorch-lightning 1.5) and PEER_REPO "
             "(a checkout of the original): benchmarks/README.md, \"Setting up the original\"")
  return peer_py, peer_repo


def original_task_network(args, dataset, workdir: str) -> tuple[str, str, list[int]]:
  """The original trains its task network a few meta-steps and saves it (`peer_checkpoint.py`);
  it is imported here. Returns (checkpoint, imported workdir, the chosen task indices)."""
  peer_py, peer_repo = peer_environment()
  rng = np.random.default_rng(1)
  settings = dict(families=["mlp"], h_dim=32, steps=args.discovered_steps, seed=0, nsteps=2,
                  batch=32, label_batch=task_network.ORIGINAL_BATCH_SIZE)
  inputs = os.path.join(workdir, "checkpoint_in.npz")
  np.savez(inputs, settings=json.dumps(settings), images=dataset.raw_images()[:2],
           train=rng.standard_normal((2, 32, 3, 32, 32)).astype(np.float32))
  result = subprocess.run([peer_py, os.path.join(HERE, "peer_checkpoint.py"), inputs, workdir],
                          env=dict(os.environ, PEER_REPO=peer_repo), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  if result.returncode:
    sys.exit(f"the original's training of a task network failed:\n{result.stderr[-4000:]}")
  checkpoint = os.path.join(workdir, "checkpoint_mlp.ckpt")
  imported = os.path.join(workdir, "imported")
  importer.import_checkpoint(checkpoint, imported, polarity="training", batch_norm="batch")
  net = task_discovery.load(imported)
  train = dataset.images[dataset.train_idx]
  share = net.labels(train, normalized=True).mean(axis=0)
  chosen = [int(i) for i in np.flatnonzero((share >= 0.2) & (share <= 0.8))[:args.discovered]]
  if len(chosen) < args.discovered:
    sys.exit(f"only {len(chosen)} of the task network's tasks have both classes on 20-80% of "
             f"the images (class-1 shares {np.round(share, 2).tolist()})")
  return checkpoint, imported, chosen


def discovered_labels(config, dataset, imported: str, chosen: list[int]) -> np.ndarray:
  """`[D, N]` labels of the chosen tasks as job=agreement labels an imported workdir for this
  seed's batch order (the images are already normalised as both sides see them)."""
  net = task_discovery.load(imported)
  labels = discovered.labels_in_batches(net, dataset.images,
                                        evaluation.loader_batches(config, dataset),
                                        batch_size=config.eval.batch_size, normalized=True)
  return labels[chosen]


def compare_labels(peer, config, dataset, imported, chosen, ours, num_table_tasks) -> dict:
  """How many of the original's discovered-task labels (one seed) this library's differ from:
  `same_batches`, labelled here in the original's very batches (the labelling itself);
  `own_batches`, this library's labels of its own batch order (what each side trains on)."""
  theirs = peer["labels"][0, num_table_tasks:]
  seen = theirs >= 0
  net = task_discovery.load(imported)
  same = discovered.labels_in_batches(
      net, dataset.images, [peer["train_order"][0], dataset.heldout_idx],
      batch_size=config.eval.batch_size, normalized=True)[chosen]
  return dict(labels=int(seen.sum()), same_batches=int((theirs != same)[seen].sum()),
              own_batches=int((theirs != ours)[seen].sum()))


def main(argv=None):
  args = parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  if len(seeds) < 2:
    sys.exit("--seeds: at least two seeds (the spread is a standard error over seeds)")
  base = make_config(args, seeds[0])
  dataset = to_peer_shape(datasets.load_dataset(base.data))
  families = evaluation.family_tasks(make_config(args, 0), dataset)  # labels fixed: seed 0
  labels = np.concatenate([lab for _, lab in families.values()]).astype(np.int32)
  names = [f"{f}-{int(i)}" for f, (indices, _) in families.items() for i in indices]
  settings = dict(max_epochs=args.epochs, arch="mlp", threads=args.threads)
  ours, original, reshuffled, label_checks = [], [], [], []
  secs = {"ours": 0.0, "original": 0.0, "reshuffled": 0.0}
  busy0, total0 = cpu_jiffies()
  own0, wall0 = own_cpu_seconds(), time.perf_counter()
  with tempfile.TemporaryDirectory() as workdir:
    # The library's compilation cache (on by default in `main`), new and empty: the first seed
    # compiles, the later ones read the programs back, as `--seeds=...` runs in one process do.
    base.compilation_cache.dir = os.path.join(workdir, "jax_cache")
    main_lib.setup_compilation_cache(base)
    if args.discovered:
      checkpoint, imported, chosen = original_task_network(args, dataset, workdir)
      settings["discovered"] = dict(checkpoint=checkpoint, tasks=chosen)
      names += [f"discovered-{i}" for i in chosen]
    print(f"[eval-parity] {len(dataset.train_idx)} train / {len(dataset.heldout_idx)} held-out "
          f"images {dataset.input_shape}, {len(names)} tasks, {args.epochs} epochs, seeds "
          f"{seeds}", file=sys.stderr, flush=True)
    for seed in seeds:
      data_seed = DATA_SEED if args.fixed_data_seed else seed
      peer = run_original(dict(settings, seeds=[seed], data_seeds=[data_seed]), dataset, labels,
                          workdir)
      original.append(peer["agreement"][0])
      secs["original"] += float(peer["seconds"].sum())
      for protocol in ([False, True] if args.also_reshuffled else [False]):
        config = make_config(args, seed, protocol)
        seed_families = dict(families)
        if args.discovered:
          seed_families["discovered"] = (np.asarray(chosen), discovered_labels(
              config, dataset, imported, chosen))
        if args.discovered and not protocol:  # the same labels on both sides?
          label_checks.append(compare_labels(peer, config, dataset, imported, chosen,
                                             seed_families["discovered"][1], len(labels)))
        agreement, _, seconds = run_ours(config, dataset, seed_families)
        (reshuffled if protocol else ours).append(agreement)
        secs["reshuffled" if protocol else "ours"] += seconds
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
  family_summary, family_text = family_lines(names, ours, original)
  runs = len(seeds) * len(names)
  per_task = {k: v / runs for k, v in secs.items()}
  speedup = per_task["original"] / per_task["ours"]
  max_ratio = max(r["gap_over_spread"] for r in rows)
  print(text)
  print("\n".join(family_text))
  if label_checks:
    total = {k: sum(c[k] for c in label_checks) for k in label_checks[0]}
    print(f"discovered tasks' labels (every image of the training batches and the held-out "
          f"part, every seed): {total['same_batches']} of {total['labels']} differ when this "
          f"library labels the original's batches, {total['own_batches']} when each side labels "
          "its own batch order")
  print(f"seconds per task: original {per_task['original']:.2f} (one after another), "
        f"ours {per_task['ours']:.2f} ({args.tasks_per_chunk} tasks vmapped, compilation "
        f"included)" + (f", ours reshuffled {per_task['reshuffled']:.2f}"
                        if args.also_reshuffled else ""))
  print(f"machine: {measure.cpu_model()}, {os.cpu_count()} cores; wall {wall:.0f} s; "
        f"other_cpu={other_cpu:.2f} (share of the machine's CPU time other processes took)")
  if args.out:
    with open(args.out, "w") as f:
      json.dump(dict(rows=rows, families=family_summary, seconds_per_task=per_task,
                     discovered_label_mismatches=label_checks,
                     speedup=speedup, wall_s=wall, other_cpu=other_cpu, args=vars(args)),
                f, indent=1)
  print(f"max_gap_over_spread={max_ratio:.2f} speedup={speedup:.2f}")


if __name__ == "__main__":
  main()
