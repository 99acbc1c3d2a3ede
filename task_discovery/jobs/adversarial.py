"""`job='adversarial_split'`: train learners on adversarial splits of discovered tasks
(docs/method.md#adversarial-splits).

The splits themselves (train = {tau != tau_d}, test = {tau == tau_d}, their mirrors, random
baselines of the same sizes, the equal-size policy) are built by `splits`; this module gathers
the tasks they are built from, trains learners on every split and writes the results. A learner
trained on a target tau that leans on an easier discovered tau_d fails on the test part although
no pixel or label changed.

tau_d comes from a discovery workdir (`tasks.npz`), a labels file, or a randomly initialised
network whose scalar output is thresholded at its per-class median (the original's ImageNet
variant), so splits can be built without any discovery run.

Outputs in the workdir: `splits.npz` (see `splits.save_splits` / `splits.load_splits`), the
`adversarial` section of `report.json` and `adversarial_accuracy.png`.
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from task_discovery import keys
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.data import splits as splits_lib
from task_discovery.data import tasks
from task_discovery.jobs import discovered
from task_discovery.method import agreement
from task_discovery.run import plots
from task_discovery.run import report as report_lib
from task_discovery.run import sharding
from task_discovery.run import workdir as workdir_lib


# ------------------------------------------------------------------------------- task sources


def random_network_tasks(network_config, images: np.ndarray, class_labels: np.ndarray, *,
                         key: jax.Array, num_networks: int,
                         batch_size: int = 1024) -> np.ndarray:
  """Discovered-task stand-ins from randomly initialised networks (the original's ImageNet
  variant): network r (initialised from `fold_in(key, r)`, eval mode) maps each image to a scalar,
  thresholded at its class's median (`splits.median_split_labels`).

  Args:
    network_config: model config (`models.make_model`) of the random network.
    images: `[N, H, W, C]` normalised images.
    class_labels: `[N]` classes.
    key: PRNG key; the same key gives the same tasks.
    num_networks: R.
    batch_size: images per forward pass.

  Returns:
    int32 `[R, N]` labels.
  """
  model = models.make_model(network_config, input_shape=images.shape[1:], num_outputs=1)
  score = jax.jit(lambda variables, x: model.apply(variables, x, False)[0][:, 0])
  labels = []
  for r in range(num_networks):
    variables = model.init(jax.random.fold_in(key, r))
    scores = np.asarray(models.apply_in_chunks(lambda x: score(variables, jnp.asarray(x)),
                                               images, batch_size=batch_size))
    labels.append(splits_lib.median_split_labels(scores, class_labels))
  return np.stack(labels)


def load_targets(config, dataset: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
  """Target tasks: human-labelled (`adversarial.target_tasks`) or rows of
  `adversarial.target_labels_file`. Returns `(ids [T], labels [T, N])`, each checked binary with
  both classes."""
  a = config.adversarial
  if a.target_labels_file:
    names, all_labels = tasks.load_task_file(a.target_labels_file, dataset.num_images,
                                             source_index=dataset.source_index)
    ids, names, labels = tasks.select_tasks(names, all_labels, a.target_tasks,
                                            field="adversarial.target_tasks",
                                            what=repr(a.target_labels_file))
    whats = [f"target {int(i)} of {a.target_labels_file!r} ({name})"
             for i, name in zip(ids, names)]
  else:
    # () = all human tasks: a dataset's own (CelebA's 40 attributes) or the listed class splits
    # (a seeded sequence of splits has no "all": `dataset_human_tasks` says so).
    labels, names = tasks.dataset_human_tasks(dataset, a.target_tasks or None)
    ids = np.asarray(a.target_tasks if len(a.target_tasks) else range(len(labels)), np.int64)
    whats = [f"target human task {int(i)}" + (f" ({names[k]})" if names else "")
             for k, i in enumerate(ids)]
  for row, what in zip(labels, whats):
    splits_lib.check_binary_task(row, what)
  return ids, labels


def load_discovered(config, dataset: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
  """Discovered tasks tau_d from `adversarial.source`. Returns `(ids [D], labels [D, N])`, each
  checked binary with both classes."""
  a = config.adversarial
  if a.source == "random_network":
    if len(a.discovered_tasks):
      logging.info("source='random_network': adversarial.discovered_tasks is ignored; using "
                   "networks 0..%d", a.num_random_networks - 1)
    key = keys.key(config.seed, keys.Stream.RANDOM_NETWORKS)
    labels = random_network_tasks(a.random_network, dataset.images, dataset.labels, key=key,
                                  num_networks=a.num_random_networks,
                                  batch_size=config.eval.predict_batch_size)
    return np.arange(a.num_random_networks), labels
  if a.source == "discovery":
    all_labels = discovered.task_labels(a.discovery_workdir, dataset,
                                        field="adversarial.discovery_workdir")
    what, names = a.discovery_workdir, discovered.task_names(a.discovery_workdir,
                                                             len(all_labels))
  elif a.source == "file":
    if not a.labels_file:
      raise ValueError("config.adversarial.labels_file is empty but adversarial.source='file'")
    names, all_labels = tasks.load_task_file(a.labels_file, dataset.num_images,
                                             source_index=dataset.source_index)
    what = a.labels_file
  else:
    raise ValueError(f"config.adversarial.source={a.source!r} is not one of "
                     "('discovery', 'file', 'random_network')")
  ids, _, labels = tasks.select_tasks(names, all_labels, a.discovered_tasks,
                                      field="adversarial.discovered_tasks", what=repr(what))
  for i, row in zip(ids, labels):
    splits_lib.check_binary_task(row, f"discovered task {int(i)} of {what!r}")
  return ids, labels


# --------------------------------------------------------------------------------- measuring


def evaluate_splits(config, dataset: datasets.Dataset, splits: Sequence[splits_lib.Split],
                    parts: dict[str, np.ndarray], target_rows: dict[int, np.ndarray],
                    *, kway: bool) -> dict[str, dict[str, np.ndarray]]:
  """Trains learners (the `eval` protocol) on every split's train part, adversarial and random.

  All 2S tasks of one label kind (binary target, K-way classes) train in one
  `agreement.evaluate_tasks` call, vmapped over tasks and learners. Split s's adversarial and
  random tasks share their learner initialisations (a paired comparison).

  Returns:
    `{'binary': results, 'kway': results}` (kway only if `kway`), where results has
    `adversarial` and `random`, each a dict of `accuracy` `[S, L]` (on the test part) and
    `agreement` `[S]` as returned by `agreement.evaluate_tasks`.
  """
  num_splits = len(splits)
  root = keys.root(config.seed)
  split_keys = jnp.stack([keys.stream(root, keys.Stream.ADVERSARIAL_LEARNERS, s.target,
                                      s.discovered, int(s.mirror)) for s in splits])
  train_idx = np.concatenate([parts["adversarial_train_idx"], parts["random_train_idx"]])
  test_idx = np.concatenate([parts["adversarial_test_idx"], parts["random_test_idx"]])
  kinds = {"binary": (2, np.stack([target_rows[s.target] for s in splits] * 2))}
  if kway:
    kinds["kway"] = (dataset.num_classes,
                     np.broadcast_to(dataset.labels, (2 * num_splits, dataset.num_images)))
  mesh = sharding.make_mesh(config.mesh.num_devices)
  out = {}
  for kind, (num_outputs, labels) in kinds.items():
    logging.info("training %s learners on %d adversarial + %d random splits (%d learners each, "
                 "%d epochs)", kind, num_splits, num_splits, config.eval.num_learners,
                 config.eval.num_epochs)
    with jax.default_matmul_precision(config.precision):  # traced and run under it
      results = agreement.evaluate_tasks(
          models.build_models(config, dataset.input_shape, num_outputs=num_outputs,
                              learner_use="train")[1], dataset.images, labels,
          train_idx=train_idx, heldout_idx=test_idx, config=config.eval,
          key=keys.stream(root, keys.Stream.ADVERSARIAL_DATA),
          task_keys=jnp.concatenate([split_keys, split_keys]), name=f"adversarial {kind}",
          mesh=mesh)
    out[kind] = {"adversarial": {k: v[:num_splits] for k, v in results.items()},
                 "random": {k: v[num_splits:] for k, v in results.items()}}
  return out


def _mean(values) -> float | None:
  return float(np.mean(values)) if len(values) else None


def make_section(splits: Sequence[splits_lib.Split], skipped: list[dict], results: dict,
                 parts: dict[str, np.ndarray], info: dict,
                 target_names: dict[int, str] | None = None) -> dict:
  """The `adversarial` section of `report.json`: per-split entries and a summary. With
  `target_names` (target id -> name: a dataset's named human tasks) entries have `target_name`."""
  entries = []
  for i, s in enumerate(splits):
    entry = {"target": s.target, "discovered": s.discovered, "mirror": s.mirror,
             "train_size": int(len(s.train_idx)), "test_size": int(len(s.test_idx))}
    if target_names:
      entry["target_name"] = target_names[s.target]
    for kind, prefix in (("binary", ""), ("kway", "kway_")):
      for side in ("adversarial", "random"):
        r = results.get(kind, {}).get(side)
        acc = None if r is None else r["accuracy"][i]
        entry[f"{prefix}{side}_accuracy"] = None if acc is None else float(acc.mean())
        entry[f"{prefix}{side}_learner_accuracy"] = (None if acc is None else
                                                    [float(a) for a in acc])
        entry[f"{prefix}{side}_agreement"] = None if r is None else float(r["agreement"][i])
    entries.append(entry)
  summary = {"num_splits": len(splits), "num_skipped_pairs": len(skipped),
             "used_train_size": int(parts["adversarial_train_idx"].shape[1]),
             "used_test_size": int(parts["adversarial_test_idx"].shape[1])}
  for prefix in ("", "kway_"):
    for side in ("adversarial", "random"):
      values = [e[f"{prefix}{side}_accuracy"] for e in entries
                if e[f"{prefix}{side}_accuracy"] is not None]
      summary[f"mean_{prefix}{side}_accuracy"] = _mean(values)
  return {"splits": entries, "skipped": skipped, "summary": summary, **info}


def plot_section(section: dict, path: str, title: str, max_groups: int = 24) -> None:
  """Bar chart of test accuracy, adversarial vs random (and K-way): one group per split, or per
  target (mean over its splits) when there are more than `max_groups` splits."""
  entries = section["splits"]
  keys = [k for k in ("adversarial_accuracy", "random_accuracy", "kway_adversarial_accuracy",
                      "kway_random_accuracy") if entries[0][k] is not None]
  if len(entries) <= max_groups:
    groups = [f"{_target_label(e)}/d{e['discovered']}" + ("m" if e["mirror"] else "")
              for e in entries]
    series = {k.removesuffix("_accuracy"): np.asarray([e[k] for e in entries]) for k in keys}
  else:
    targets = sorted({e["target"] for e in entries})
    names = {e["target"]: e.get("target_name") for e in entries}
    groups = [names[t] or f"target {t}" for t in targets]
    series = {k.removesuffix("_accuracy"): np.asarray(
        [np.mean([e[k] for e in entries if e["target"] == t]) for t in targets]) for k in keys}
  plots.grouped_bars(groups, series, path, ylabel="test accuracy", title=title)


def _target_label(entry: dict) -> str:
  """A target in the plot: its name (a dataset's named human task) or `t` and its id."""
  return entry.get("target_name") or f"t{entry['target']}"


def run(config, workdir: str) -> dict:
  """`job='adversarial_split'`: builds the splits, trains learners on them, writes the results.

  Returns:
    the updated report.
  """
  a = config.adversarial
  dataset = datasets.load_dataset(config.data)
  if a.include_kway and dataset.num_classes < 2:
    raise ValueError(f"{dataset.name} has no class labels (its human tasks are "
                     f"{len(dataset.human_task_names)} named attributes), so there are no K-way "
                     "learners to train: set adversarial.include_kway=False")
  target_ids, target_labels = load_targets(config, dataset)
  discovered_ids, discovered_labels = load_discovered(config, dataset)
  logging.info("adversarial splits: %d targets x %d discovered tasks (source=%s)%s",
               len(target_ids), len(discovered_ids), a.source, " x 2 (mirror)" if a.mirror else "")
  splits, skipped = splits_lib.build_splits(
      target_labels, discovered_labels, target_ids=target_ids, discovered_ids=discovered_ids,
      mirror=a.mirror, seed=config.seed, min_part_fraction=a.min_part_fraction)
  if not splits:
    raise ValueError(
        f"every target x discovered pair was skipped: their smaller parts {skipped} are below "
        f"adversarial.min_part_fraction={a.min_part_fraction} of {dataset.num_images} images; "
        "lower it or choose other tasks")
  parts = splits_lib.equal_size_parts(splits, config.seed)
  used_train = parts["adversarial_train_idx"].shape[1]
  if used_train < config.eval.batch_size:
    smallest = min(splits, key=lambda s: len(s.train_idx))
    raise ValueError(
        f"the smallest train part (target {smallest.target} x discovered {smallest.discovered}"
        f"{', mirror' if smallest.mirror else ''}) holds {used_train} images, fewer than "
        f"eval.batch_size={config.eval.batch_size}: raise adversarial.min_part_fraction to skip "
        "such pairs, choose other tasks, or lower eval.batch_size")
  logging.info("%d splits; every learner trains on %d images and is tested on %d (the smallest "
               "train / test part of the run)", len(splits), used_train,
               parts["adversarial_test_idx"].shape[1])
  wd = workdir_lib.Workdir.of(workdir)
  if wd.writes:
    splits_lib.save_splits(wd.splits, splits, parts, dataset.num_images)
  t0 = time.perf_counter()
  results = evaluate_splits(config, dataset, splits, parts,
                            dict(zip((int(i) for i in target_ids), target_labels)),
                            kway=a.include_kway)
  info = {"source": a.source, "discovery_workdir": a.discovery_workdir,
          "labels_file": a.labels_file, "target_labels_file": a.target_labels_file,
          "dataset": {"name": dataset.name, "num_images": dataset.num_images,
                      "num_classes": dataset.num_classes},
          "eval_seconds": time.perf_counter() - t0}
  names = None if a.target_labels_file else tasks.dataset_human_task_names(dataset, target_ids)
  section = make_section(splits, skipped, results, parts, info,
                         target_names=None if names is None else dict(
                             zip((int(i) for i in target_ids), names)))
  s = section["summary"]
  logging.info("adversarial splits: mean test accuracy %.4f adversarial vs %.4f random "
               "(%d splits)", s["mean_adversarial_accuracy"], s["mean_random_accuracy"],
               s["num_splits"])
  if a.include_kway:
    logging.info("K-way labels on the same splits: %.4f adversarial vs %.4f random",
                 s["mean_kway_adversarial_accuracy"], s["mean_kway_random_accuracy"])
  if not wd.writes:  # only process 0 writes; the others return the report they computed
    return {"adversarial": section}
  report = report_lib.update(wd, adversarial=section)
  plot_section(section, wd.adversarial_plot,
               f"{dataset.name}: test accuracy on adversarial vs random splits")
  return report
