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


def task_labels(workdir: str, dataset: datasets.Dataset, *, field: str) -> np.ndarray:
  """Hard labels `[d, N]` of the workdir's discovered tasks on `dataset`'s images.

  A discovery run's exported `tasks.npz` is read when the run labelled these same images; a
  workdir without one (an imported checkpoint) labels them with its task network
  (`task_discovery.load`), on the images in [0, 1] normalised as the network was trained.

  Args:
    field: the config field that named the workdir, for the messages.
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
    return np.ascontiguousarray(net.labels(dataset.raw_images()).T.astype(np.int32))
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
