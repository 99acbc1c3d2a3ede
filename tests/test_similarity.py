"""Tests for task_discovery.similarity: folded agreement, AMI and the report summary."""
import math

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from task_discovery.data import tasks
from task_discovery.method import similarity


@pytest.fixture(scope='module')
def two_random():
  return tasks.random_task_labels(20_000, 2, seed=0)  # [2, N]


# ----------------------------------------------------------------------------- folded agreement


def test_folded_agreement_with_itself_and_complement_is_one(two_random):
  a = two_random[:1]
  np.testing.assert_array_equal(similarity.folded_agreement(a, a), [[1.0]])
  np.testing.assert_array_equal(similarity.folded_agreement(a, 1 - a), [[1.0]])
  # Default second argument: the matrix of the set with itself has a unit diagonal.
  matrix = similarity.folded_agreement(np.concatenate([two_random, 1 - two_random]))
  np.testing.assert_array_equal(np.diag(matrix), np.ones(4))
  assert matrix[0, 2] == matrix[1, 3] == 1.0


def test_folded_agreement_of_independent_tasks_is_one_half(two_random):
  value = similarity.folded_agreement(two_random[:1], two_random[1:])
  assert value.shape == (1, 1)
  assert 0.5 <= value[0, 0] < 0.52  # folding never goes below 0.5


def test_folded_agreement_hand_computed():
  a = np.array([[1, 1, 0, 0, 0],
                [1, 1, 1, 1, 1]])
  b = np.array([[1, 0, 1, 0, 0],   # vs a0: agree at 0, 3, 4 -> 3/5 ; vs a1: 2/5 -> folded 3/5
                [0, 1, 1, 1, 0],   # vs a0: agree at 1, 4 -> 2/5 -> 3/5 ; vs a1: 3/5
                [0, 0, 1, 1, 1]])  # vs a0: complement -> 1 ; vs a1: 3/5
  expected = np.array([[0.6, 0.6, 1.0],
                       [0.6, 0.6, 0.6]])
  got = similarity.folded_agreement(a, b)
  assert got.shape == (2, 3)
  np.testing.assert_allclose(got, expected, atol=1e-12)
  np.testing.assert_allclose(similarity.folded_agreement(b, a), expected.T, atol=1e-12)


def test_folded_agreement_unfolded_value_one_fifth():
  # 1 agreement out of 5 -> s = 0.2 -> folded 0.8.
  got = similarity.folded_agreement(np.array([[1, 0, 1, 0, 1]]), np.array([[1, 1, 0, 1, 0]]))
  np.testing.assert_allclose(got, [[0.8]], atol=1e-12)


# ------------------------------------------------------------------------------------------ AMI


def test_ami_of_identical_and_renamed_labellings_is_one(two_random):
  a = two_random[:1]
  np.testing.assert_allclose(similarity.adjusted_mutual_information(a, a), [[1.0]], atol=1e-9)
  np.testing.assert_allclose(similarity.adjusted_mutual_information(a, 1 - a), [[1.0]],
                             atol=1e-9)


def test_ami_of_independent_labellings_is_zero(two_random):
  ami = similarity.adjusted_mutual_information(two_random)
  assert ami.shape == (2, 2)
  np.testing.assert_allclose(np.diag(ami), 1.0, atol=1e-9)
  assert abs(ami[0, 1]) < 0.01 and abs(ami[1, 0]) < 0.01


def test_ami_matches_sklearn_on_a_partial_dependence():
  rng = np.random.default_rng(1)
  a = rng.integers(0, 2, size=300)
  b = np.where(rng.random(300) < 0.8, a, 1 - a)  # 80% the same
  got = similarity.adjusted_mutual_information(a[None], b[None])
  np.testing.assert_allclose(got, [[sk_metrics.adjusted_mutual_info_score(a, b)]])
  assert 0.1 < got[0, 0] < 0.9


# -------------------------------------------------------------------------------------- summary


def test_off_diagonal_mean():
  m = np.array([[9.0, 1.0, 2.0],
                [3.0, 9.0, 4.0],
                [5.0, 6.0, 9.0]])
  assert similarity.off_diagonal_mean(m) == pytest.approx(21.0 / 6)
  assert math.isnan(similarity.off_diagonal_mean(np.ones((1, 1))))


def test_summary_hand_example():
  labels = np.array([[1, 1, 1, 0, 0, 0],
                     [1, 1, 0, 1, 0, 0],    # vs t0: 4/6 = 2/3
                     [0, 0, 0, 1, 1, 1]])   # complement of t0; vs t1: 1/3 -> folded 2/3
  section, folded, ami = similarity.summary(labels)
  assert set(section) == {'mean_folded_agreement', 'max_folded_agreement',
                          'mean_adjusted_mutual_information', 'num_tasks'}
  assert section['num_tasks'] == 3
  expected_folded = np.array([[1, 2 / 3, 1],
                              [2 / 3, 1, 2 / 3],
                              [1, 2 / 3, 1]])
  np.testing.assert_allclose(folded, expected_folded, atol=1e-12)
  assert section['mean_folded_agreement'] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
  assert section['max_folded_agreement'] == pytest.approx(1.0)
  # t2 is t0 renamed, so AMI(t0, t2) = 1 and AMI(t1, t2) = AMI(t0, t1).
  a01 = sk_metrics.adjusted_mutual_info_score(labels[0], labels[1])
  assert ami.shape == (3, 3)
  np.testing.assert_allclose(ami[0, 2], 1.0, atol=1e-9)
  np.testing.assert_allclose(ami[1, 2], a01, atol=1e-9)
  assert section['mean_adjusted_mutual_information'] == pytest.approx((2 * a01 + 1) / 3)
  # Values are plain Python numbers (they go to report.json).
  assert all(type(v) in (float, int) for v in section.values())


def test_summary_single_task_gives_nan_means():
  section, folded, _ = similarity.summary(np.array([[0, 1, 1, 0]]))
  assert section['num_tasks'] == 1 and folded.shape == (1, 1)
  assert math.isnan(section['mean_folded_agreement'])
  assert math.isnan(section['max_folded_agreement'])
  assert math.isnan(section['mean_adjusted_mutual_information'])
