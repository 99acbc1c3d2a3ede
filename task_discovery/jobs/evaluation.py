"""Evaluates the AS of task families with the evaluation protocol, and the `agreement` job."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from task_discovery import keys
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.data import inputs
from task_discovery.data import tasks
from task_discovery.jobs import discovered
from task_discovery.method import agreement
from task_discovery.run import plots
from task_discovery.run import report as report_lib
from task_discovery.run import sharding
from task_discovery.run import workdir as workdir_lib


def family_tasks(config, dataset: datasets.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The human- and random-labelled tasks to evaluate: {family: (indices, labels [T, N])}."""
  human_idx = tasks.dataset_human_task_indices(dataset, config.eval.num_human_tasks)
  random_idx = np.arange(config.eval.num_random_tasks)
  return {
      "human": (human_idx, tasks.dataset_human_tasks(dataset, human_idx)[0]),
      "random": (random_idx, tasks.random_task_labels(
          dataset.num_images, len(random_idx),
          seed=keys.numpy_rng(config.seed, keys.Stream.RANDOM_TASKS))),
  }


def evaluate_families(config, dataset: datasets.Dataset,
                      families: dict[str, tuple[np.ndarray, np.ndarray]],
                      task_names: dict[str, list[str]] | None = None) -> dict:
  """AS of every task of every family, all with the same protocol, data order and seeds.

  All families are trained in one sequence of chunks, so the training step compiles once.
  `task_names`: per family, one name per task (kept in the report), e.g. a file's columns.

  Returns:
    report sections: `tasks` (per-task entries), `summary` (per family), `eval_seconds`.
  """
  families = {f: v for f, v in families.items() if len(v[0])}
  if not families:
    return {"tasks": [], "summary": {}, "eval_seconds": 0.0}
  _, model = models.build_models(config, dataset.input_shape, learner_use="train")
  root = keys.root(config.seed)
  # Learner initialisations depend on the task's family and index only (not on chunking).
  task_keys = jnp.concatenate([
      jax.vmap(lambda i, f=family: keys.stream(root, keys.Stream.EVAL_LEARNERS,
                                               tasks.FAMILIES.index(f), i))(jnp.asarray(indices))
      for family, (indices, _) in families.items()])
  labels = np.concatenate([labels for _, labels in families.values()])
  names = "+".join(f"{len(v[0])} {f}" for f, v in families.items())
  logging.info("evaluating %s tasks (%d learners each, %d epochs)", names,
               config.eval.num_learners, config.eval.num_epochs)
  t0 = time.perf_counter()
  with jax.default_matmul_precision(config.precision):  # traced and run under it
    results = agreement.evaluate_tasks(
        model, dataset.images, labels, train_idx=dataset.train_idx,
        heldout_idx=dataset.heldout_idx, config=config.eval,
        key=keys.stream(root, keys.Stream.EVAL_DATA), task_keys=task_keys,
        name=names, mesh=sharding.make_mesh(config.mesh.num_devices))
  entries, summary, start = [], {}, 0
  for family, (indices, _) in families.items():
    part = {k: v[start:start + len(indices)] for k, v in results.items()}
    start += len(indices)
    # Named tasks: a file's columns, an imported run's, a dataset's own human tasks (CelebA).
    names = (task_names or {}).get(family)
    if names is None and family == "human":
      names = tasks.dataset_human_task_names(dataset, indices)
    entries += report_lib.family_entries(family, indices, part, names=names)
    summary[family] = report_lib.summarize(part["agreement"])
    summary[family]["mean_learner_accuracy"] = float(part["accuracy"].mean())
    logging.info("%s: mean AS %.4f (min %.4f, max %.4f) over %d tasks", family,
                 summary[family]["mean_as"], summary[family]["min_as"],
                 summary[family]["max_as"], summary[family]["num_tasks"])
  return {"tasks": entries, "summary": summary, "eval_seconds": time.perf_counter() - t0}


def write_family_outputs(workdir: str, dataset: datasets.Dataset, sections: dict) -> dict:
  """Merges evaluated families into report.json (keeping other families) and redraws the figure.

  Only the main process writes; the others return the report they would have written.
  """
  wd = workdir_lib.Workdir.of(workdir)
  if not wd.writes:
    return sections
  old = report_lib.read(workdir)
  new_families = set(sections["summary"])
  kept = [e for e in old.get("tasks", []) if e["family"] not in new_families]
  report = report_lib.update(
      workdir, dataset={"name": dataset.name, "num_images": dataset.num_images,
                        "num_train": int(len(dataset.train_idx)),
                        "num_heldout": int(len(dataset.heldout_idx)),
                        "num_meta_val": int(len(dataset.meta_val_idx)),
                        "num_classes": dataset.num_classes},
      tasks=kept + sections["tasks"], summary=sections["summary"],
      **({"reference": sections["reference"]} if "reference" in sections else {}))
  per_family = {}
  for entry in report["tasks"]:
    per_family.setdefault(entry["family"], []).append(entry["agreement"])
  order = [f for f in ("random", "human", "discovered", "file") if f in per_family]
  plots.agreement_histogram({f: per_family[f] for f in order},
                            wd.agreement_histogram,
                            title=f"Agreement score per task family ({dataset.name})")
  return report


def loader_batches(config, dataset: datasets.Dataset) -> list[np.ndarray]:
  """The images in the order the evaluation serves them: the training part in epoch 0's batch
  order (every epoch's, with `eval.reshuffle=False`), then the held-out part. An imported task
  network that labels with BatchNorm on batch statistics labels them in these batches of
  `eval.batch_size`, as the original's train-2net.py labels each batch its loaders serve."""
  key = agreement.epoch_key(keys.stream(keys.root(config.seed), keys.Stream.EVAL_DATA), 0)
  positions = np.asarray(agreement.batch_positions(key, len(dataset.train_idx),
                                                   config.eval.batch_size)).ravel()
  return [np.asarray(dataset.train_idx)[positions], np.asarray(dataset.heldout_idx)]


def extra_families(config, dataset: datasets.Dataset):
  """The tasks `job='agreement'` evaluates besides human and random ones: a discovery (or
  imported) workdir's (`eval.discovery_workdir`) and a labels file's (`eval.labels_file`, the
  columns `eval.labels_columns`). Returns `(families, names)` as `evaluate_families` takes them."""
  families, names = {}, {}
  e = config.eval
  if e.discovery_workdir:
    labels = discovered.task_labels(e.discovery_workdir, dataset, field="eval.discovery_workdir",
                                    batches=loader_batches(config, dataset),
                                    batch_size=e.batch_size)
    families["discovered"] = (np.arange(len(labels)), labels)
    names["discovered"] = discovered.task_names(e.discovery_workdir, len(labels))
  if e.labels_file:
    file_names, labels = tasks.load_task_file(e.labels_file, dataset.num_images,
                                              source_index=dataset.source_index)
    ids, names["file"], labels = tasks.select_tasks(
        file_names, labels, e.labels_columns, field="eval.labels_columns",
        what=repr(e.labels_file))
    families["file"] = (ids, labels)
  return families, names


def run(config, workdir: str) -> dict:
  """`job='agreement'`: AS of human- and random-labelled tasks, and of a discovery workdir's
  and a labels file's tasks if given; with `eval.reference_file`, beside the original's AS."""
  dataset = datasets.load_dataset(config.data)
  inputs.check_batch_sizes(config, num_train=len(dataset.train_idx),
                           num_heldout=len(dataset.heldout_idx))
  reference = (report_lib.read_reference_table(config.eval.reference_file)
               if config.eval.reference_file else None)  # a bad file fails before training
  families = family_tasks(config, dataset)
  extra, names = extra_families(config, dataset)
  families.update(extra)
  sections = evaluate_families(config, dataset, families, names)
  if reference is not None:
    sections["reference"] = report_lib.compare_with_reference(sections["tasks"], reference,
                                                              config.eval.reference_file)
    for line in report_lib.format_reference(sections["reference"]):
      logging.info("%s", line)
  return write_family_outputs(workdir, dataset, sections)
