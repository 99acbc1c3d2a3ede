"""Adversarial and random train/test splits of a set of images, built from task labels.

Pure functions of label arrays (no training, no files but `save_splits` / `load_splits`); the job
that trains learners on them is `adversarial`. For a binary target task tau and a discovered task
tau_d over the same images,

    train = {x : tau(x) != tau_d(x)},    test = {x : tau(x) == tau_d(x)}

(the mirror split swaps the two). On the train part tau = 1 - tau_d, so the two labellings are
perfectly anti-correlated (Pearson -1) there and perfectly correlated (+1) on the test part; the
mirror flips both signs. The baseline is a random split of the same images with the same part
sizes, which by construction never reads a label.

Policy for unequal sizes. Each split has its own part sizes, but `agreement.evaluate_tasks`
trains a stack of tasks whose index sets share one shape. Every split's train part (adversarial
and random alike) is therefore subsampled, seeded and without replacement, to the smallest train
part among the run's splits, and every test part to the smallest test part (`equal_size_parts`).
All learners thus see the same number of images, so accuracies are comparable across splits and
the random baseline has exactly the adversarial sizes. Subsets of a split keep its exact
(anti-)correlation. Pairs whose smaller part is below `min_part_fraction` of the images are
skipped (`build_splits`) so that one nearly identical pair does not shrink every split.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from absl import logging

from task_discovery import keys
from task_discovery.run import workdir as workdir_lib

def check_binary_task(labels: np.ndarray, name: str) -> np.ndarray:
  """Returns `labels` as int32 `[N]` after checking they are binary and use both classes.

  Raises:
    ValueError: naming `name`, for non-binary labels or a task with one class only.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"{name}: expected one label per image, got shape {labels.shape}")
  values = np.unique(labels)
  if not np.isin(values, (0, 1)).all():
    raise ValueError(f"{name}: labels must be binary (0/1), found values {values[:10].tolist()}")
  if len(values) < 2:
    raise ValueError(
        f"{name} has one class only (every one of its {labels.size} labels is {int(values[0])}):"
        " an adversarial split needs a task with both classes")
  return labels.astype(np.int32)


def adversarial_split(target: np.ndarray, discovered: np.ndarray, *,
                      mirror: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """The adversarial split of the images by a target and a discovered task.

  Args:
    target: `[N]` binary labels of the target task tau.
    discovered: `[N]` binary labels of the discovered task tau_d.
    mirror: False: train = {tau != tau_d}, test = {tau == tau_d}. True: the opposite.

  Returns:
    `(train_idx, test_idx)`: sorted int32 indices, disjoint, together all of `range(N)`. On
    `train_idx` tau and tau_d have correlation -1 (+1 when mirrored), on `test_idx` the opposite.
  """
  target, discovered = np.asarray(target), np.asarray(discovered)
  if target.shape != discovered.shape or target.ndim != 1:
    raise ValueError(f"target {target.shape} and discovered {discovered.shape} labels must both "
                     "be [num_images] over the same images")
  differ = target != discovered
  train = differ if not mirror else ~differ
  return np.flatnonzero(train).astype(np.int32), np.flatnonzero(~train).astype(np.int32)


def random_split(num_images: int, train_size: int,
                 seed: int | Sequence[int] | np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
  """A uniformly random split of `range(num_images)`; reads no labels, so it is uncorrelated with
  every task by construction.

  Args:
    num_images: N.
    train_size: size of the train part, in [0, N]; the test part is the rest.
    seed: seed (or sequence of seeds) of `np.random.default_rng`, or a generator.

  Returns:
    `(train_idx, test_idx)`: sorted int32 indices, disjoint, together all of `range(N)`.
  """
  if not 0 <= train_size <= num_images:
    raise ValueError(f"train_size={train_size} must lie in [0, {num_images}]")
  perm = np.random.default_rng(seed).permutation(num_images)
  return (np.sort(perm[:train_size]).astype(np.int32),
          np.sort(perm[train_size:]).astype(np.int32))


def subsample(idx: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
  """A sorted random subset of `size` entries of `idx`, without replacement."""
  if size > len(idx):
    raise ValueError(f"cannot subsample {size} of {len(idx)} indices")
  return np.sort(rng.choice(idx, size=size, replace=False)).astype(np.int32)


def median_split_labels(scores: np.ndarray, class_labels: np.ndarray) -> np.ndarray:
  """Binary labels that split every class at its median score.

  Label 1 iff the image is in the upper half of its class by score (ties broken by image index),
  i.e. `score > median of its class` when scores are distinct. Within every class of n images
  floor(n / 2) get label 1, so the task is balanced within each class and uncorrelated with any
  function of the class (e.g. every human-labelled task).

  Args:
    scores: `[N]` real scores.
    class_labels: `[N]` integer classes.

  Returns:
    int32 `[N]`.
  """
  scores, class_labels = np.asarray(scores), np.asarray(class_labels)
  labels = np.zeros(scores.shape, np.int32)
  for c in np.unique(class_labels):
    members = np.flatnonzero(class_labels == c)
    order = members[np.argsort(scores[members], kind="stable")]  # ascending, stable on ties
    labels[order[len(order) - len(order) // 2:]] = 1
  return labels


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays make field-wise == ambiguous.
class Split:
  """One adversarial split and its random baseline (full parts, before equal-size subsampling).

  Attributes:
    target: id of the target task (human task index, or row of the target labels file).
    discovered: id of the discovered task (row of the discovered set, or random network index).
    mirror: whether train = {tau == tau_d}.
    train_idx, test_idx: the adversarial parts, sorted int32.
    random_train_idx, random_test_idx: a random split of the same images, same sizes.
  """
  target: int
  discovered: int
  mirror: bool
  train_idx: np.ndarray
  test_idx: np.ndarray
  random_train_idx: np.ndarray
  random_test_idx: np.ndarray


# What a split's draws are for: the last index of its stream (`keys.Stream.SPLITS`).
_RANDOM_BASELINE, _SUBSAMPLE = 0, 1


def _split_rng(seed: int, use: int, target: int, discovered: int,
               mirror: bool) -> np.random.Generator:
  # A split's randomness depends on its identity only, not on the other splits of the run.
  return keys.numpy_rng(seed, keys.Stream.SPLITS, target, discovered, int(mirror), use)


def build_splits(target_labels: np.ndarray, discovered_labels: np.ndarray, *,
                 target_ids: Sequence[int], discovered_ids: Sequence[int], mirror: bool,
                 seed: int, min_part_fraction: float = 0.0) -> tuple[list[Split], list[dict]]:
  """Every target x discovered pair's adversarial split (and mirror), with random baselines.

  Args:
    target_labels: `[T, N]` binary targets.
    discovered_labels: `[D, N]` binary discovered tasks.
    target_ids, discovered_ids: ids of the rows, for reports and seeds.
    mirror: also build each pair's mirror split.
    seed: root seed of the random baselines.
    min_part_fraction: pairs whose smaller part holds fewer than this fraction of the N images
      are skipped.

  Returns:
    `(splits, skipped)`: the kept splits and `{target, discovered, smaller_part_size}` per
    skipped pair.
  """
  num_images = target_labels.shape[-1]
  splits, skipped = [], []
  for t, target in zip(target_ids, target_labels):
    for d, disc in zip(discovered_ids, discovered_labels):
      pair = []
      for m in ((False, True) if mirror else (False,)):
        train_idx, test_idx = adversarial_split(target, disc, mirror=m)
        rnd_train, rnd_test = random_split(num_images, len(train_idx),
                                           _split_rng(seed, _RANDOM_BASELINE, t, d, m))
        pair.append(Split(int(t), int(d), m, train_idx, test_idx, rnd_train, rnd_test))
      smaller = min(len(pair[0].train_idx), len(pair[0].test_idx))
      if smaller < max(min_part_fraction * num_images, 1):
        skipped.append({"target": int(t), "discovered": int(d), "smaller_part_size": smaller})
        logging.warning("skipping target %d x discovered %d: its smaller part holds %d of %d "
                        "images (adversarial.min_part_fraction=%g)", t, d, smaller, num_images,
                        min_part_fraction)
        continue
      splits += pair
  return splits, skipped


def equal_size_parts(splits: Sequence[Split], seed: int) -> dict[str, np.ndarray]:
  """Subsamples every split's parts to the smallest train and test part of `splits` (the policy
  in the module docstring).

  Returns:
    int32 arrays `adversarial_train_idx`, `random_train_idx` `[S, n]` and `adversarial_test_idx`,
    `random_test_idx` `[S, m]` with n, m the smallest train and test sizes.
  """
  n = min(len(s.train_idx) for s in splits)
  m = min(len(s.test_idx) for s in splits)
  out = {k: [] for k in ("adversarial_train_idx", "adversarial_test_idx", "random_train_idx",
                         "random_test_idx")}
  for s in splits:
    rng = _split_rng(seed, _SUBSAMPLE, s.target, s.discovered, s.mirror)
    out["adversarial_train_idx"].append(subsample(s.train_idx, n, rng))
    out["adversarial_test_idx"].append(subsample(s.test_idx, m, rng))
    out["random_train_idx"].append(subsample(s.random_train_idx, n, rng))
    out["random_test_idx"].append(subsample(s.random_test_idx, m, rng))
  return {k: np.stack(v) for k, v in out.items()}


def save_splits(path: str, splits: Sequence[Split], parts: dict[str, np.ndarray],
                num_images: int) -> None:
  """Writes the splits as `.npz`.

  Arrays: `target`, `discovered`, `mirror` `[S]`; `adversarial_is_train`, `random_is_train`
  `[S, N]` bool (the full parts: test = not train); and the equal-size subsets the learners used,
  `adversarial_train_idx`, `random_train_idx` `[S, n]`, `adversarial_test_idx`, `random_test_idx`
  `[S, m]`. `load_splits` turns the masks back into index sets.
  """
  def mask(idx):
    m = np.zeros(num_images, bool)
    m[idx] = True
    return m

  with workdir_lib.atomic_write(path, "wb") as f:  # a failed write keeps the previous file
    np.savez_compressed(
        f, target=np.asarray([s.target for s in splits], np.int32),
        discovered=np.asarray([s.discovered for s in splits], np.int32),
        mirror=np.asarray([s.mirror for s in splits], bool),
        adversarial_is_train=np.stack([mask(s.train_idx) for s in splits]),
        random_is_train=np.stack([mask(s.random_train_idx) for s in splits]), **parts)


def load_splits(path: str) -> list[Split]:
  """Reads `save_splits` output back into `Split`s (full parts)."""
  with np.load(path) as f:
    return [Split(int(t), int(d), bool(m), np.flatnonzero(a).astype(np.int32),
                  np.flatnonzero(~a).astype(np.int32), np.flatnonzero(r).astype(np.int32),
                  np.flatnonzero(~r).astype(np.int32))
            for t, d, m, a, r in zip(f["target"], f["discovered"], f["mirror"],
                                     f["adversarial_is_train"], f["random_is_train"])]
