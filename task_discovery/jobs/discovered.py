"""The discovered tasks of a workdir, on a dataset: what `job='agreement'` and
`job='adversarial_split'` read from a discovery run, or from an imported original checkpoint."""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from task_discovery import loader
from task_discovery.data import datasets
from task_discovery.run import report as report_lib
from task_discovery.run import workdir as workdir_lib


def task_names(workdir: str, num_tasks: int) -> list[str]:
  """Names of a workdir's discovered tasks: `{name}-{i}` for an imported original checkpoint
  (the original's names: `resnet18-3`, `resnet18_d8-0`), else `discovered-{i}`."""
  name = report_lib.read(workdir).get("imported", {}).get("name", "discovered")
  return [f"{name}-{i}" for i in range(num_tasks)]


def labels_in_batches(net: loader.TaskNetwork, images: np.ndarray, batches: list[np.ndarray],
                      *, batch_size: int, normalized: bool = False) -> np.ndarray:
  """Hard labels `[d, N]` of `images` labelled as the original's evaluation labels them.

  Each entry of `batches` is an ordered index array whose images are labelled together, in
  consecutive batches of `batch_size` (with `net.batch_norm == "batch"`, each one BatchNorm
  batch: the original labels every training and test batch as its loader serves it). Images
  that no entry holds are labelled last, in their order (a single one with the running
  statistics).

  Raises:
    ValueError: an image in two entries.
  """
  n = len(images)
  groups = [np.asarray(b, np.int64).ravel() for b in batches]
  order = np.concatenate(groups or [np.zeros(0, np.int64)])
  if len(np.unique(order)) != len(order):
    raise ValueError("an image is in two of the batches to label")
  labels = np.zeros((net.num_tasks, n), np.int32)
  for group in groups + [np.setdiff1d(np.arange(n), order)]:
    if len(group):
      # A lone image has no batch statistics; one left over (in no batch a loader serves, so
      # its label is never used) takes the running statistics' label.
      mode = "running" if len(group) == 1 else None
      labels[:, group] = net.labels(images[group], batch_size=batch_size,
                                    normalized=normalized, batch_norm=mode).T
  return labels


def task_labels(workdir: str, dataset: datasets.Dataset, *, field: str,
                batches: list[np.ndarray] | None = None, batch_size: int | None = None
                ) -> np.ndarray:
  """Hard labels `[d, N]` of the workdir's discovered tasks on `dataset`'s images.

  A discovery run's exported `tasks.npz` is read when the run labelled these same images; a
  workdir without one (an imported checkpoint) labels them with its task network
  (`task_discovery.load`), on the images in [0, 1] normalised as the network was trained, with
  the BatchNorm mode the workdir records.

  Args:
    field: the config field that named the workdir, for the messages.
    batches: the order in which a job's data loader serves the images (`labels_in_batches`):
      with BatchNorm on batch statistics the labels depend on it. Default: all images in the
      dataset's order.
    batch_size: images per labelled batch; default the workdir's (512, the original's).
  """
  if not workdir:
    raise ValueError(
        f"config.{field} is empty: set it to the workdir of a job='discover' run made with the "
        "same data config (or of an imported original checkpoint)")
  wd = workdir_lib.Workdir.of(workdir)
  path = wd.tasks
  if not os.path.exists(path):
    if not os.path.isdir(wd.checkpoints):
      raise FileNotFoundError(
          f"{path} does not exist and {workdir} has no checkpoint: run job='discover' first "
          f"(python -m task_discovery.main --config=configs/DATASET.py --workdir={workdir}) "
          "with the same data config, or import a checkpoint (python -m "
          f"task_discovery.import_original --checkpoint=FILE.ckpt --workdir={workdir})")
    net = loader.load(workdir)
    if tuple(net.input_shape) != tuple(dataset.input_shape):
      raise ValueError(f"the task network of {workdir} takes images of shape "
                       f"{tuple(net.input_shape)}, {dataset.name!r} has {dataset.input_shape}")
    logging.info("labelling %d images of %s with the %d tasks of %s (step %d)",
                 dataset.num_images, dataset.name, net.num_tasks, workdir, net.step)
    logging.info("BatchNorm on %s statistics%s", net.batch_norm,
                 " (batches of the evaluation's order)" if net.batch_norm == "batch" else "")
    return labels_in_batches(net, dataset.raw_images(), batches or [],
                             batch_size=batch_size or net.default_batch_size)
  try:
    with np.load(path) as f:
      labels = np.asarray(f["labels"])
      class_labels = np.asarray(f["class_labels"]) if "class_labels" in f else None
  except Exception as e:  # truncated or damaged file, no 'labels' array: name the file
    raise ValueError(f"{path} can not be read ({type(e).__name__}: {e}): rerun job='discover' "
                     f"in {workdir} to rewrite it") from e
  same_images = labels.shape[-1] == dataset.num_images and (
      class_labels is None or np.array_equal(class_labels, dataset.labels))
  if not same_images:
    raise ValueError(
        f"the discovery workdir {workdir} labels {labels.shape[-1]} images "
        f"({'same' if labels.shape[-1] == dataset.num_images else 'different'} count, different "
        f"classes) but the current data config gives {dataset.num_images} images of "
        f"{dataset.name!r}: use the same data config as the discovery run (data.name, "
        f"data.split, data.num_images, data.split_seed; see {wd.config})")
  return labels.astype(np.int32)
