"""Tests for task_discovery.tasks: human / random task families, index helpers, label files."""
import itertools
import math
import os
import time
import types

import numpy as np
import pytest

from task_discovery.data import tasks

# ------------------------------------------------------------------------------- human subsets


def test_human_subsets_ten_classes_match_original_order():
  subsets = tasks.human_class_subsets(10)
  assert subsets.shape == (126, 5) and subsets.dtype == np.int32
  expected = np.asarray(list(itertools.combinations(range(10), 5))[:126])
  np.testing.assert_array_equal(subsets, expected)


def test_human_subsets_ten_classes_are_every_split_once():
  subsets = tasks.human_class_subsets(10)
  assert all(0 in row for row in subsets.tolist())
  everything = frozenset(range(10))
  splits = {frozenset(row) for row in subsets.tolist()}
  assert len(splits) == 126  # no subset repeated
  with_complements = splits | {everything - s for s in splits}
  # No subset is the complement of another, and together with the complements they are all
  # C(10, 5) = 252 five-subsets.
  assert len(with_complements) == 252 == math.comb(10, 5)


@pytest.mark.parametrize('num_classes', [2, 3, 4, 5, 6, 7])
def test_human_subsets_other_class_counts(num_classes):
  subsets = tasks.human_class_subsets(num_classes)
  half = num_classes // 2
  all_subsets = list(itertools.combinations(range(num_classes), half))
  if num_classes % 2:  # odd: no complement has the same size, keep all of them
    expected = all_subsets
  else:
    expected = all_subsets[:math.comb(num_classes, half) // 2]
  assert subsets.shape == (len(expected), half)
  np.testing.assert_array_equal(subsets, np.asarray(expected))


def test_human_subsets_five_classes_has_ten_rows():
  subsets = tasks.human_class_subsets(5)
  assert subsets.shape == (10, 2)  # C(5, 2)
  assert len({frozenset(r) for r in subsets.tolist()}) == 10


@pytest.mark.parametrize('num_classes', [1, 0, -3])
def test_human_subsets_need_two_classes(num_classes):
  with pytest.raises(ValueError, match='at least 2 classes'):
    tasks.human_class_subsets(num_classes)


# ------------------------------------------------------- human subsets beyond ten classes


@pytest.mark.parametrize('num_classes', [11, 12, 100, 200])
def test_seeded_subsets_are_distinct_balanced_splits(num_classes):
  count = 300
  subsets = tasks.human_class_subsets(num_classes, np.arange(count))
  half = num_classes // 2
  assert subsets.shape == (count, half) and subsets.dtype == np.int32
  assert np.all(np.diff(subsets, axis=1) > 0)  # sorted rows of distinct classes
  assert subsets.min() >= 0 and subsets.max() < num_classes
  everything = frozenset(range(num_classes))
  splits = {frozenset(row) for row in subsets.tolist()}
  assert len(splits) == count
  if num_classes % 2 == 0:
    # Each split named once, by the side holding class 0: no row is another's complement.
    assert all(row[0] == 0 for row in subsets.tolist())
    assert not splits & {everything - s for s in splits}


def test_seeded_subsets_are_a_fixed_prefix_stable_sequence():
  first = tasks.seeded_class_subsets(200, 5)
  np.testing.assert_array_equal(tasks.seeded_class_subsets(200, 130)[:5], first)
  # Indices select entries of that sequence, in the order asked for.
  np.testing.assert_array_equal(tasks.human_class_subsets(200, [4, 0]), first[[4, 0]])
  # The sequence depends on K only: recomputed from its documented definition.
  rng = np.random.default_rng([tasks.HUMAN_TASKS_SEED, 200])
  draw = np.sort(np.argsort(rng.random(200))[:100])
  if draw[0] != 0:
    draw = np.setdiff1d(np.arange(200), draw)
  np.testing.assert_array_equal(first[0], draw)


def test_seeded_subsets_cover_every_split_of_twelve_classes():
  total = math.comb(12, 6) // 2
  assert tasks.num_human_class_subsets(12) == total == 462
  subsets = tasks.seeded_class_subsets(12, total)
  expected = {s for s in itertools.combinations(range(12), 6) if 0 in s}
  assert {tuple(r) for r in subsets.tolist()} == expected
  with pytest.raises(ValueError, match='only 462 balanced splits'):
    tasks.seeded_class_subsets(12, total + 1)


def test_seeded_subsets_odd_classes_take_the_smaller_side():
  subsets = tasks.human_class_subsets(101, np.arange(50))
  assert subsets.shape == (50, 50)  # floor(101 / 2) classes labelled 1, the other 51 labelled 0
  assert tasks.num_human_class_subsets(101) == math.comb(101, 50)


def test_few_tasks_of_many_classes_cost_little():
  start = time.perf_counter()
  indices = tasks.human_task_indices(200, 5)
  labels = tasks.human_task_labels(np.arange(10_000) % 200, 200, indices)
  assert time.perf_counter() - start < 0.5
  np.testing.assert_array_equal(indices, np.arange(5))
  assert labels.shape == (5, 10_000)
  np.testing.assert_array_equal(labels.sum(axis=1), np.full(5, 5_000))  # 100 of 200 classes


def test_human_task_indices_listed_and_seeded():
  np.testing.assert_array_equal(tasks.human_task_indices(10, 126), np.arange(126))
  np.testing.assert_array_equal(tasks.human_task_indices(10, 3), [0, 62, 125])
  np.testing.assert_array_equal(tasks.human_task_indices(2, 5), [0])  # the one split {0} | {1}
  np.testing.assert_array_equal(tasks.human_task_indices(100, 4), np.arange(4))
  np.testing.assert_array_equal(tasks.human_task_indices(12, 1000), np.arange(462))


def test_listing_all_splits_of_many_classes_is_refused():
  with pytest.raises(ValueError, match='too many to list'):
    tasks.human_class_subsets(200)
  with pytest.raises(ValueError, match=r'human task indices must lie in \[0, 462\)'):
    tasks.human_class_subsets(12, [462])


def test_dataset_own_human_tasks_come_with_names():
  own = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], np.int32)
  dataset = types.SimpleNamespace(labels=np.zeros(4, np.int32), num_classes=1, human_tasks=own,
                                  human_task_names=('Bangs', 'Smiling', 'Young'))
  np.testing.assert_array_equal(tasks.dataset_human_task_indices(dataset, 2), [0, 2])
  labels, names = tasks.dataset_human_tasks(dataset, [2, 0])
  np.testing.assert_array_equal(labels, own[[2, 0]])
  assert names == ('Young', 'Bangs')
  assert tasks.dataset_human_tasks(dataset)[1] == ('Bangs', 'Smiling', 'Young')
  with pytest.raises(ValueError, match="this dataset's human tasks"):
    tasks.dataset_human_tasks(dataset, [3])
  # A class-labelled dataset: class splits, known by index, without names.
  plain = types.SimpleNamespace(labels=np.arange(10), num_classes=10, human_tasks=None)
  labels, names = tasks.dataset_human_tasks(plain, [1])
  assert names is None and tasks.dataset_human_task_names(plain, [1]) is None
  np.testing.assert_array_equal(labels, tasks.human_task_labels(np.arange(10), 10, [1]))


# -------------------------------------------------------------------------------- human labels


def test_human_task_labels_on_hand_made_labels():
  class_labels = np.array([0, 3, 1, 2, 3, 0, 2])
  # 4 classes, half = 2: the subsets are (0, 1), (0, 2), (0, 3).
  labels = tasks.human_task_labels(class_labels, 4)
  expected = np.array([
      [1, 0, 1, 0, 0, 1, 0],  # {0, 1}
      [1, 0, 0, 1, 0, 1, 1],  # {0, 2}
      [1, 1, 0, 0, 1, 1, 0],  # {0, 3}
  ])
  np.testing.assert_array_equal(labels, expected)
  assert labels.dtype == np.int32
  # A selection of tasks returns those rows, in the order asked for.
  np.testing.assert_array_equal(tasks.human_task_labels(class_labels, 4, [2, 0]),
                                expected[[2, 0]])


def test_human_task_labels_follow_subset_membership_for_ten_classes():
  rng = np.random.default_rng(0)
  class_labels = rng.integers(0, 10, size=200)
  labels = tasks.human_task_labels(class_labels, 10)
  subsets = tasks.human_class_subsets(10)
  assert labels.shape == (126, 200)
  for t in (0, 17, 125):
    np.testing.assert_array_equal(labels[t], np.isin(class_labels, subsets[t]).astype(np.int32))


def test_human_tasks_on_balanced_classes_are_exactly_balanced():
  class_labels = np.repeat(np.arange(10), 7)  # 7 images per class
  labels = tasks.human_task_labels(class_labels, 10)
  np.testing.assert_array_equal(labels.sum(axis=1), np.full(126, 35))


@pytest.mark.parametrize('bad', [[126], [-1], [0, 200]])
def test_human_task_labels_bad_indices_raise(bad):
  with pytest.raises(ValueError, match='human task indices'):
    tasks.human_task_labels(np.arange(10), 10, bad)


def test_human_task_labels_empty_selection():
  labels = tasks.human_task_labels(np.arange(10), 10, [])
  assert labels.shape == (0, 10)


# ------------------------------------------------------------------------------- random labels


def test_random_task_labels_are_seeded():
  a = tasks.random_task_labels(500, 3, seed=7)
  b = tasks.random_task_labels(500, 3, seed=7)
  c = tasks.random_task_labels(500, 3, seed=8)
  assert a.shape == (3, 500) and a.dtype == np.int32
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert set(np.unique(a).tolist()) == {0, 1}
  # Different tasks of one draw are different labellings.
  assert not np.array_equal(a[0], a[1])


def test_random_task_labels_are_fair_coins():
  labels = tasks.random_task_labels(100_000, 2, seed=0)
  # Std of the mean is 0.5 / sqrt(1e5) ~ 0.0016.
  np.testing.assert_allclose(labels.mean(axis=1), 0.5, atol=0.01)
  # Independent across tasks: they agree on about half the images.
  assert abs((labels[0] == labels[1]).mean() - 0.5) < 0.01


# ------------------------------------------------------------------------------- evenly_spaced


@pytest.mark.parametrize('total, count, expected', [
    (126, 0, []),
    (126, -2, []),
    (126, 1, [0]),
    (126, 2, [0, 125]),
    (10, 4, [0, 3, 6, 9]),
    (5, 5, [0, 1, 2, 3, 4]),
    (5, 9, [0, 1, 2, 3, 4]),
    (0, 3, []),
])
def test_evenly_spaced(total, count, expected):
  got = tasks.evenly_spaced(total, count)
  np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.int64))
  assert np.issubdtype(got.dtype, np.integer)


@pytest.mark.parametrize('total, count', [(126, 6), (126, 125), (7, 6), (1000, 37)])
def test_evenly_spaced_returns_count_distinct_sorted_indices(total, count):
  got = tasks.evenly_spaced(total, count)
  assert len(got) == count
  assert np.all(np.diff(got) > 0)
  assert got[0] == 0 and got[-1] == total - 1


# ---------------------------------------------------------------------------------- label files


def test_save_and_load_round_trip_npz_and_csv(tmp_path):
  labels = tasks.random_task_labels(37, 4, seed=3)
  labels[2, :5] = 2  # a three-class task survives too
  prefix = str(tmp_path / 'discovered')
  tasks.save_task_labels(prefix, labels, scores=np.arange(4.0))
  for ext in ('.npz', '.csv'):
    loaded = tasks.load_task_labels(prefix + ext, 37, num_classes=3)
    assert loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, labels)
  with np.load(prefix + '.npz') as f:
    np.testing.assert_array_equal(f['scores'], np.arange(4.0))
  with open(prefix + '.csv') as f:
    header = f.readline().strip()
  assert header == 'image_index,task_0,task_1,task_2,task_3'


def test_load_npy_single_task_becomes_one_row(tmp_path):
  path = str(tmp_path / 'one.npy')
  np.save(path, np.array([0, 1, 1, 0, 1], dtype=np.int64))
  loaded = tasks.load_task_labels(path, 5)
  assert loaded.shape == (1, 5) and loaded.dtype == np.int32
  np.testing.assert_array_equal(loaded[0], [0, 1, 1, 0, 1])


def test_load_npy_stack(tmp_path):
  path = str(tmp_path / 'stack.npy')
  labels = tasks.random_task_labels(11, 3, seed=1)
  np.save(path, labels)
  np.testing.assert_array_equal(tasks.load_task_labels(path, 11), labels)


@pytest.mark.parametrize('ext', ['.npz', '.csv'])
def test_load_wrong_length_names_dataset_size(tmp_path, ext):
  prefix = str(tmp_path / 'labels')
  tasks.save_task_labels(prefix, np.zeros((2, 10), np.int32))
  with pytest.raises(ValueError, match=r'dataset has 12\b'):
    tasks.load_task_labels(prefix + ext, 12)


def test_load_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError):
    tasks.load_task_labels(str(tmp_path / 'nope.npz'), 10)


def test_load_negative_labels(tmp_path):
  path = str(tmp_path / 'neg.npy')
  np.save(path, np.array([[0, 1, -1, 1]]))
  with pytest.raises(ValueError, match=r'neg\.npy.*\[0, 2\).*found \[-1\]'):
    tasks.load_task_labels(path, 4)


def test_load_float_labels_rejected(tmp_path):
  path = str(tmp_path / 'float.npy')
  np.save(path, np.array([[0.0, 1.0, 0.5]]))
  with pytest.raises(ValueError, match='integer'):
    tasks.load_task_labels(path, 3)


def test_load_npz_without_labels_key(tmp_path):
  path = str(tmp_path / 'other.npz')
  np.savez(path, other=np.zeros((1, 3), np.int32))
  with pytest.raises(ValueError, match="'labels'"):
    tasks.load_task_labels(path, 3)


def test_load_unknown_format(tmp_path):
  path = tmp_path / 'labels.txt'
  path.write_text('0 1 0\n')
  with pytest.raises(ValueError, match='unknown task labels format'):
    tasks.load_task_labels(str(path), 3)


def test_load_csv_written_by_hand(tmp_path):
  path = os.path.join(tmp_path, 'hand.csv')
  with open(path, 'w') as f:
    f.write('image_index,a,b\n0,1,0\n1,0,0\n2,1,1\n')
  np.testing.assert_array_equal(tasks.load_task_labels(path, 3), [[1, 0, 1], [0, 0, 1]])
