"""Tasks: labellings of a fixed image set (docs/method.md#tasks).

A task is an int32 array of labels over *all* images of a `datasets.Dataset`
(`[num_images]`, or `[num_tasks, num_images]` for a stack of tasks), so that the same labelling
can be split into training and held-out parts, or into adversarial splits, by index.

Families:
  * human-labelled: balanced splits of the classes (the original's order for up to 10 classes, a
    seeded sequence beyond), or the dataset's own binary tasks where it has them (CelebA's
    attributes, `datasets.Dataset.human_tasks`);
  * random-labelled: an i.i.d. fair coin per image, seeded;
  * discovered: produced by a task network (`models/task_network.py`);
  * loaded from a file (`.npz`, `.npy` or `.csv`).

Label convention for binary tasks everywhere in this library: label 1 means "in the subset"
for human tasks and "positive side of the task direction" for discovered tasks.
"""

from __future__ import annotations

import csv
import fnmatch
import itertools
import math
import os

import numpy as np

from task_discovery.run import workdir as workdir_lib

FAMILIES = ("human", "random", "discovered", "file")


# Up to this many classes the human tasks are the complete list of balanced splits in
# lexicographic order (at most C(10, 5) / 2 = 126 of them, the original's list for 10 classes).
# Beyond it the complete list is astronomically long (C(200, 100) / 2 > 10^58), so the tasks are
# a seeded sequence of distinct random splits instead.
MAX_LISTED_CLASSES = 10
# The seeded sequence for K classes is drawn from `np.random.default_rng([HUMAN_TASKS_SEED, K])`:
# a property of K alone, so human task i means the same split in every run, config and machine.
HUMAN_TASKS_SEED = 2022
# Splits drawn per batch of the sequence. Fixed, so that a prefix of the sequence does not
# depend on how many tasks were asked for.
_DRAW_BATCH = 64


def num_human_class_subsets(num_classes: int) -> int:
  """How many balanced class splits there are (a Python int: it exceeds int64 for K > 66).

  Balanced: one side holds K // 2 classes (for odd K the other side holds one more). For even K
  a subset and its complement are the same split and count once.
  """
  _check_num_classes(num_classes)
  half = num_classes // 2
  total = math.comb(num_classes, half)
  return total // 2 if num_classes % 2 == 0 else total


def human_class_subsets(num_classes: int, task_indices=None) -> np.ndarray:
  """Class subsets that define the human-labelled binary tasks.

  K <= `MAX_LISTED_CLASSES`: every balanced split, in the original's order. The original lists
  `itertools.combinations(range(10), 5)` truncated to its first C(10, 5) / 2 = 126 entries. In
  lexicographic order these are exactly the subsets that contain class 0, so every 5-vs-5 split
  of the classes appears once (the other half are complements). The same rule holds for every
  even K; for an odd K no subset is the complement of another of the same size, so all
  C(K, K // 2) subsets are kept.

  K > `MAX_LISTED_CLASSES`: task i is the i-th entry of a seeded sequence of distinct balanced
  splits (`seeded_class_subsets`), generated only as far as the largest index asked for.

  Args:
    num_classes: number of classes K of the dataset, at least 2.
    task_indices: which tasks; all of them when None (only for K <= `MAX_LISTED_CLASSES`).

  Returns:
    int32 array `[num_tasks, K // 2]` of sorted class indices; label 1 iff the class is in the row.
  """
  total = num_human_class_subsets(num_classes)
  if num_classes > MAX_LISTED_CLASSES and task_indices is None:
    raise ValueError(
        f"{num_classes} classes have {total:.3g} balanced splits, too many to list: ask for "
        "some of them (eval.num_human_tasks, or indices in adversarial.target_tasks)")
  indices = None if task_indices is None else _check_indices(task_indices, total, num_classes)
  if num_classes > MAX_LISTED_CLASSES:
    count = int(indices.max()) + 1 if indices.size else 0
    return seeded_class_subsets(num_classes, count)[indices]
  half = num_classes // 2
  subsets = np.asarray(list(itertools.islice(itertools.combinations(range(num_classes), half),
                                             total)), dtype=np.int32).reshape(total, half)
  return subsets if indices is None else subsets[indices]


def seeded_class_subsets(num_classes: int, count: int) -> np.ndarray:
  """The first `count` splits of the seeded sequence of balanced splits of K classes.

  The sequence: draws from `np.random.default_rng([HUMAN_TASKS_SEED, K])`, in batches of
  `_DRAW_BATCH`; each draw is the K // 2 classes of smallest key under K uniform keys
  (`Generator.random`), i.e. a uniformly random K // 2-subset. For even K a subset without
  class 0 is replaced by its complement (a split is named by the side holding class 0, as in the
  listed order), and a split drawn before is skipped. Every balanced split is equally likely at
  each position, and the first n entries do not depend on how many are asked for. Cost: about
  `count` draws while `count` is far below the number of splits.

  Returns:
    int32 `[count, K // 2]`, rows sorted, all distinct splits.
  """
  total = num_human_class_subsets(num_classes)
  if count > total:
    raise ValueError(f"{num_classes} classes have only {total} balanced splits, {count} asked")
  half = num_classes // 2
  rng = np.random.default_rng([HUMAN_TASKS_SEED, num_classes])
  everything = np.arange(num_classes)
  seen, rows = set(), []
  while len(rows) < count:
    # argsort of i.i.d. floats: a uniform permutation (ties have probability ~0 in float64).
    draws = np.sort(np.argsort(rng.random((_DRAW_BATCH, num_classes)), axis=1)[:, :half], axis=1)
    for row in draws:
      if num_classes % 2 == 0 and row[0] != 0:
        row = np.setdiff1d(everything, row)  # the complement, which holds class 0
      key = row.tobytes()
      if key not in seen:
        seen.add(key)
        rows.append(row)
        if len(rows) == count:
          break
  return np.asarray(rows, dtype=np.int32).reshape(count, half)


def human_task_indices(num_classes: int, count: int) -> np.ndarray:
  """The `count` class-split tasks to evaluate (`eval.num_human_tasks`).

  Listed splits (K <= `MAX_LISTED_CLASSES`): spread evenly over the list (`evenly_spaced`), all
  when count covers it. The seeded sequence (larger K) is already in random order: its first
  `count` entries, which cost time in proportion to `count`.
  """
  total = num_human_class_subsets(num_classes)
  if num_classes <= MAX_LISTED_CLASSES:
    return evenly_spaced(total, count)
  return np.arange(min(count, total), dtype=np.int64)


def human_task_labels(class_labels: np.ndarray, num_classes: int,
                      task_indices=None) -> np.ndarray:
  """Binary labels of human-labelled tasks.

  Args:
    class_labels: `[num_images]` integer class labels.
    num_classes: number of classes of the dataset.
    task_indices: which tasks of `human_class_subsets(num_classes)`; all when None.

  Returns:
    int32 `[num_tasks, num_images]`.
  """
  subsets = human_class_subsets(num_classes, task_indices)
  membership = np.zeros((len(subsets), num_classes), dtype=np.int32)
  for row, subset in enumerate(subsets):
    membership[row, subset] = 1
  return membership[:, np.asarray(class_labels)]


def dataset_human_task_indices(dataset, count: int) -> np.ndarray:
  """The `count` human tasks of `dataset` to evaluate (`eval.num_human_tasks`).

  A dataset that carries its own human tasks (`Dataset.human_tasks`, e.g. CelebA's attributes):
  spread evenly over them. Otherwise the class splits of `human_task_indices`.
  """
  if getattr(dataset, "human_tasks", None) is not None:
    return evenly_spaced(len(dataset.human_tasks), count)
  return human_task_indices(dataset.num_classes, count)


def dataset_human_tasks(dataset, task_indices=None) -> tuple[np.ndarray, tuple[str, ...] | None]:
  """Labels `[T, N]` and names of human tasks of `dataset`.

  The dataset's own tasks (`Dataset.human_tasks`, named by `Dataset.human_task_names`) where it
  carries them; otherwise the class splits of `human_task_labels`, which have indices and no
  names (None).

  Args:
    dataset: a `datasets.Dataset` (or anything with its `labels`, `num_classes`, `human_tasks`
      and `human_task_names`).
    task_indices: which tasks; all when None (class splits: only for K <= `MAX_LISTED_CLASSES`).
  """
  own = getattr(dataset, "human_tasks", None)
  if own is None:
    return human_task_labels(dataset.labels, dataset.num_classes, task_indices), None
  indices = (np.arange(len(own)) if task_indices is None
             else _check_indices(task_indices, len(own), None))
  return np.asarray(own[indices], dtype=np.int32), dataset_human_task_names(dataset, indices)


def dataset_human_task_names(dataset, task_indices) -> tuple[str, ...] | None:
  """Names of the dataset's own human tasks at `task_indices`; None for class splits (which are
  known by their index)."""
  if getattr(dataset, "human_tasks", None) is None:
    return None
  indices = _check_indices(task_indices, len(dataset.human_tasks), None)
  return tuple(dataset.human_task_names[i] for i in indices)


def _check_num_classes(num_classes: int) -> None:
  if num_classes < 2:
    raise ValueError(f"human tasks need at least 2 classes, got num_classes={num_classes}")


def _check_indices(task_indices, total: int, num_classes: int | None) -> np.ndarray:
  indices = np.asarray(task_indices, dtype=np.int64).reshape(-1)
  if indices.size and (indices.min() < 0 or indices.max() >= total):
    of = f"{num_classes} classes" if num_classes is not None else "this dataset's human tasks"
    raise ValueError(f"human task indices must lie in [0, {total}) for {of}, "
                     f"got {indices.tolist()}")
  return indices


def random_task_labels(num_images: int, num_tasks: int,
                       seed: int | np.random.Generator) -> np.ndarray:
  """Random-labelled tasks: an independent fair coin per image and task, from `seed` (a seed of
  `np.random.default_rng`, or a generator such as `keys.numpy_rng(...)`).

  Returns:
    int32 `[num_tasks, num_images]`.
  """
  rng = np.random.default_rng(seed)
  return rng.integers(0, 2, size=(num_tasks, num_images), dtype=np.int32)


def evenly_spaced(total: int, count: int) -> np.ndarray:
  """`count` indices spread evenly over `range(total)` (all of them when count >= total)."""
  if count <= 0:
    return np.zeros((0,), np.int64)
  if count >= total:
    return np.arange(total)
  return np.unique(np.linspace(0, total - 1, count).round().astype(np.int64))


# The first header cell of a CSV written by pandas with its index (the original's
# discovered.csv: `,resnet18-0,...`): the rows are the images of the source split, in its order.
_PANDAS_INDEX_HEADERS = ("", "Unnamed: 0")


def _read_csv_labels(path: str) -> tuple[list[str], np.ndarray, bool]:
  """`(names, labels [T, R], source_order)` of a CSV with one task per column. An
  `image_index` column (this library's files) or a pandas index column (the original's) is
  not a task; the latter marks rows in the source split's order."""
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  if not rows:
    raise ValueError(f"{path!r} is empty: expected a header `image_index,task_0,...` and one row "
                     "per image")
  header, body = rows[0], rows[1:]
  source_order = header[0] in _PANDAS_INDEX_HEADERS
  index_columns = {"image_index"} | ({header[0]} if source_order else set())
  columns = [i for i, name in enumerate(header) if name not in index_columns]
  labels = []
  for i in columns:
    column = []
    for line, row in enumerate(body, start=2):
      if len(row) != len(header):
        raise ValueError(f"{path!r} line {line}: {len(row)} fields, the header has "
                         f"{len(header)}")
      try:
        column.append(int(row[i]))
      except ValueError:
        raise ValueError(f"{path!r} line {line}, column {header[i]!r}: {row[i]!r} is not an "
                         "integer label") from None
    labels.append(column)
  labels = np.asarray(labels, dtype=np.int64).reshape(len(columns), len(body))
  return [header[i] for i in columns], labels, source_order


def _read_labels(path: str, ext: str) -> tuple[list[str] | None, np.ndarray, bool]:
  if ext == ".npz":
    with np.load(path) as f:
      if "labels" not in f:
        raise ValueError(f"{path!r} has no array named 'labels' (found {sorted(f.files)})")
      names = [str(n) for n in f["names"]] if "names" in f else None
      return names, f["labels"], False
  if ext == ".npy":
    return None, np.load(path), False
  return _read_csv_labels(path)


def load_task_file(path: str, num_images: int, num_classes: int = 2, *,
                   source_index=None) -> tuple[list[str], np.ndarray]:
  """Reads named tasks from `.npz` (key `labels`, optional `names`), `.npy` or `.csv` (one task
  per column, named by the header; the original's `discovered.csv` too).

  Rows are matched to the dataset's images in one of two ways:
    * the file has `num_images` rows and no pandas index column: the dataset's own order (the
      files this library writes: `tasks.csv`, `tasks.npz`);
    * otherwise the rows are the images of the source split in the source's order (the
      original's files: all 50,000 CIFAR-10 training images, in torchvision's order): the
      dataset's images are picked by `source_index` (`Dataset.source_index`).

  Args:
    path: the file.
    num_images: number of images of the dataset the labels must cover.
    num_classes: labels must lie in `[0, num_classes)`; 2 for the binary tasks of this library.
    source_index: `[num_images]` each image's index in its source split, or None.

  Returns:
    `(names, labels)`: one name per task (`task_i` where the file has none), int32
    `[num_tasks, num_images]`.

  Raises:
    FileNotFoundError: the file does not exist.
    ValueError: naming the file: unreadable content, labels of the wrong length, labels outside
      `[0, num_classes)` (with the bad values), or an unknown format.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"task labels file {path!r} does not exist")
  ext = os.path.splitext(path)[1].lower()
  if ext not in (".npz", ".npy", ".csv"):
    raise ValueError(f"unknown task labels format {ext!r} of {path!r}: use .npz (key 'labels'), "
                     ".npy or .csv")
  try:
    names, labels, source_order = _read_labels(path, ext)
  except Exception as e:  # zipfile, pickle-refused, truncated or OS errors: name the file
    if isinstance(e, ValueError) and repr(path) in str(e):
      raise
    raise ValueError(f"task labels file {path!r} can not be read ({type(e).__name__}: {e})") from e
  labels = np.atleast_2d(np.asarray(labels))
  if labels.ndim != 2:
    raise ValueError(f"{path!r} holds labels of shape {labels.shape}: expected [num_tasks, "
                     "num_images] (or [num_images] for one task)")
  if names is None or len(names) != len(labels):
    names = [f"task_{i}" for i in range(len(labels))]
  if source_order or labels.shape[-1] != num_images:
    index = None if source_index is None else np.asarray(source_index)
    if index is None or len(index) != num_images or (
        len(index) and index.max() >= labels.shape[-1]):
      raise ValueError(
          f"{path!r} labels {labels.shape[-1]} images but the dataset has {num_images}: "
          "labels must be given for every image of the dataset, in its order (same data.name, "
          "data.split, data.num_images and data.split_seed), or for every image of the source "
          "split in the source's order (the original's files: data.num_images=0, "
          "data.split='train')")
    labels = labels[:, index]
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{path!r} holds {labels.dtype} values: task labels must be integers in "
                     f"[0, {num_classes})")
  bad = (labels < 0) | (labels >= num_classes)
  if bad.any():
    values = np.unique(labels[bad])
    tasks_bad = np.flatnonzero(bad.any(axis=1))
    raise ValueError(
        f"{path!r}: labels must lie in [0, {num_classes}) ({num_classes} classes), found "
        f"{values[:10].tolist()}{' ...' if len(values) > 10 else ''} in {int(bad.sum())} labels "
        f"of task(s) {tasks_bad[:10].tolist()}{' ...' if len(tasks_bad) > 10 else ''}"
        + (": binary tasks need 0/1 labels (class labels? give one 0/1 task per row, or column "
           "in a CSV)" if num_classes == 2 else ""))
  return list(names), labels.astype(np.int32)


def load_task_labels(path: str, num_images: int, num_classes: int = 2, *,
                     source_index=None) -> np.ndarray:
  """The labels `[num_tasks, num_images]` of `load_task_file` (names dropped)."""
  return load_task_file(path, num_images, num_classes, source_index=source_index)[1]


def select_tasks(names, labels: np.ndarray, selectors, *, field: str, what: str
                 ) -> tuple[np.ndarray, list[str], np.ndarray]:
  """The tasks that `selectors` pick: row indices (ints) or names / shell patterns of names
  (`'resnet18-*'`), in the order given; () = all.

  Returns:
    `(ids [T], names [T], labels [T, N])`.

  Raises:
    ValueError: naming `field`, for an index out of range or a name that matches nothing.
  """
  if len(selectors) == 0:
    return np.arange(len(labels)), list(names), labels
  ids = []
  for s in selectors:
    if isinstance(s, str) and not s.lstrip("-").isdigit():
      hit = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, s)]
      if not hit:
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise ValueError(f"config.{field}: {s!r} names no task of {what} (its tasks: {shown})")
      ids += hit
    else:
      i = int(s)
      if not 0 <= i < len(labels):
        raise ValueError(f"config.{field}: index {i} is out of range: {what} has "
                         f"{len(labels)} tasks (valid indices 0..{len(labels) - 1})")
      ids.append(i)
  ids = np.asarray(ids, np.int64)
  return ids, [names[i] for i in ids], labels[ids]


def save_task_labels(path_prefix: str, labels: np.ndarray, **extra_arrays) -> None:
  """Writes `{prefix}.npz` (key `labels`, plus `extra_arrays`) and `{prefix}.csv`.

  The CSV has a header `image_index,task_0,task_1,...` and one row per image.
  """
  labels = np.asarray(labels, dtype=np.int32)
  # Atomic: a failed write (a full disk) keeps the previous files and leaves no partial one.
  with workdir_lib.atomic_write(path_prefix + ".npz", "wb") as f:
    np.savez(f, labels=labels, **extra_arrays)
  with workdir_lib.atomic_write(path_prefix + ".csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["image_index"] + [f"task_{i}" for i in range(labels.shape[0])])
    for i in range(labels.shape[1]):
      writer.writerow([i] + labels[:, i].tolist())
