"""Tests for task_discovery.jobs.adversarial (docs/method.md#adversarial-splits): split
construction, random baselines, random-network tasks, the `adversarial_split` job end to end,
and clear errors on bad inputs.

Sign convention checked below: train = {tau != tau_d}, so on the train part tau = 1 - tau_d and the
two labellings have Pearson correlation exactly -1; on the test part tau = tau_d, correlation +1.
The mirror split swaps the parts, hence the signs.
"""
import json
import os
import types

import jax
import numpy as np
import pytest

from task_discovery import config as config_lib
from task_discovery.data import datasets
from task_discovery.data import splits as splits_lib
from task_discovery.data import tasks
from task_discovery.jobs import adversarial
from task_discovery.run import workdir as workdir_lib


def _corr(a, b):
  return np.corrcoef(a.astype(float), b.astype(float))[0, 1]


@pytest.fixture(scope='module')
def toy():
  rng = np.random.default_rng(0)
  target = rng.integers(0, 2, 500).astype(np.int32)
  discovered = rng.integers(0, 2, 500).astype(np.int32)
  return target, discovered


# ---------------------------------------------------------------------------- split building


def test_adversarial_split_has_exact_opposite_correlations(toy):
  target, discovered = toy
  train, test = splits_lib.adversarial_split(target, discovered)
  assert _corr(target[train], discovered[train]) == pytest.approx(-1.0, abs=1e-12)
  assert _corr(target[test], discovered[test]) == pytest.approx(1.0, abs=1e-12)
  np.testing.assert_array_equal(target[train], 1 - discovered[train])
  np.testing.assert_array_equal(target[test], discovered[test])
  # Disjoint, complete, sorted.
  assert np.intersect1d(train, test).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(target)))
  assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
  assert train.dtype == test.dtype == np.int32


def test_mirror_swaps_the_parts(toy):
  target, discovered = toy
  train, test = splits_lib.adversarial_split(target, discovered)
  m_train, m_test = splits_lib.adversarial_split(target, discovered, mirror=True)
  np.testing.assert_array_equal(m_train, test)
  np.testing.assert_array_equal(m_test, train)
  assert _corr(target[m_train], discovered[m_train]) == pytest.approx(1.0, abs=1e-12)
  assert _corr(target[m_test], discovered[m_test]) == pytest.approx(-1.0, abs=1e-12)


def test_adversarial_split_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match='same images'):
    splits_lib.adversarial_split(np.zeros(5, int), np.zeros(6, int))


def test_random_split_sizes_disjoint_complete_seeded():
  train, test = splits_lib.random_split(100, 37, seed=3)
  assert len(train) == 37 and len(test) == 63
  assert np.intersect1d(train, test).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(100))
  assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
  again = splits_lib.random_split(100, 37, seed=3)
  np.testing.assert_array_equal(train, again[0])
  assert not np.array_equal(train, splits_lib.random_split(100, 37, seed=4)[0])
  with pytest.raises(ValueError, match='train_size'):
    splits_lib.random_split(10, 11, seed=0)


def test_random_baseline_does_not_read_the_labels(toy):
  """Two discovered tasks with the same number of disagreements with the target give different
  adversarial splits but the very same random splits: the baseline depends on sizes only."""
  target, _ = toy
  rng = np.random.default_rng(1)
  flips1, flips2 = np.zeros(len(target), bool), np.zeros(len(target), bool)
  flips1[rng.permutation(len(target))[:200]] = True
  flips2[rng.permutation(len(target))[:200]] = True
  d1, d2 = target ^ flips1, target ^ flips2
  kwargs = dict(target_ids=[0], discovered_ids=[5], mirror=True, seed=7)
  s1, _ = splits_lib.build_splits(target[None], d1[None].astype(np.int32), **kwargs)
  s2, _ = splits_lib.build_splits(target[None], d2[None].astype(np.int32), **kwargs)
  assert len(s1) == len(s2) == 2
  for a, b in zip(s1, s2):
    assert not np.array_equal(a.train_idx, b.train_idx)
    np.testing.assert_array_equal(a.random_train_idx, b.random_train_idx)
    np.testing.assert_array_equal(a.random_test_idx, b.random_test_idx)
    # Same sizes as the adversarial split, a partition of all images.
    assert len(a.random_train_idx) == len(a.train_idx)
    assert len(a.random_test_idx) == len(a.test_idx)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([a.random_train_idx, a.random_test_idx])), np.arange(len(target)))
  # Unlike the adversarial train part (all disagreements), the random one mixes them.
  disagree = target != d1
  assert disagree[s1[0].train_idx].all()
  assert 0.25 < disagree[s1[0].random_train_idx].mean() < 0.55


def test_build_splits_skips_nearly_identical_pairs(toy):
  target, discovered = toy
  near = target.copy()
  near[:10] = 1 - near[:10]  # disagrees with the target on 10 of 500 images only
  splits, skipped = splits_lib.build_splits(
      target[None], np.stack([discovered, near]), target_ids=[3], discovered_ids=[0, 1],
      mirror=False, seed=0, min_part_fraction=0.2)
  assert [(s.target, s.discovered) for s in splits] == [(3, 0)]
  assert skipped == [{'target': 3, 'discovered': 1, 'smaller_part_size': 10}]


def test_equal_size_parts_subsample_within_each_part(toy):
  target, discovered = toy
  other = np.roll(discovered, 1)
  splits, _ = splits_lib.build_splits(target[None], np.stack([discovered, other]),
                                       target_ids=[0], discovered_ids=[0, 1], mirror=True, seed=0)
  parts = splits_lib.equal_size_parts(splits, seed=0)
  n = min(len(s.train_idx) for s in splits)
  m = min(len(s.test_idx) for s in splits)
  assert parts['adversarial_train_idx'].shape == parts['random_train_idx'].shape == (4, n)
  assert parts['adversarial_test_idx'].shape == parts['random_test_idx'].shape == (4, m)
  for i, s in enumerate(splits):
    assert np.isin(parts['adversarial_train_idx'][i], s.train_idx).all()
    assert np.isin(parts['adversarial_test_idx'][i], s.test_idx).all()
    assert np.isin(parts['random_train_idx'][i], s.random_train_idx).all()
    assert np.isin(parts['random_test_idx'][i], s.random_test_idx).all()
    assert len(np.unique(parts['adversarial_train_idx'][i])) == n
  again = splits_lib.equal_size_parts(splits, seed=0)
  for k in parts:
    np.testing.assert_array_equal(parts[k], again[k])


def test_save_and_load_splits_round_trip(tmp_path, toy):
  target, discovered = toy
  splits, _ = splits_lib.build_splits(target[None], discovered[None], target_ids=[2],
                                       discovered_ids=[4], mirror=True, seed=0)
  parts = splits_lib.equal_size_parts(splits, seed=0)
  path = str(tmp_path / 'splits.npz')
  splits_lib.save_splits(path, splits, parts, len(target))
  loaded = splits_lib.load_splits(path)
  for a, b in zip(splits, loaded):
    assert (a.target, a.discovered, a.mirror) == (b.target, b.discovered, b.mirror)
    for field in ('train_idx', 'test_idx', 'random_train_idx', 'random_test_idx'):
      np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  with np.load(path) as f:
    np.testing.assert_array_equal(f['adversarial_train_idx'], parts['adversarial_train_idx'])


# ------------------------------------------------------------------------ random-network tasks


def test_median_split_is_balanced_within_every_class():
  rng = np.random.default_rng(0)
  classes = rng.integers(0, 4, 301)
  scores = rng.normal(size=301)
  labels = splits_lib.median_split_labels(scores, classes)
  for c in range(4):
    n = (classes == c).sum()
    assert labels[classes == c].sum() == n // 2
    # With distinct scores this is exactly "score > median of the class".
    members = classes == c
    np.testing.assert_array_equal(labels[members], scores[members] > np.median(scores[members]))
  # Ties (a constant score) are still split in half.
  tied = splits_lib.median_split_labels(np.zeros(11), np.zeros(11, int))
  assert tied.sum() == 5


def test_random_network_tasks_are_balanced_and_deterministic():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(120, 4, 4, 1)).astype(np.float32)
  classes = rng.integers(0, 3, 120)
  network = config_lib.model_config('mlp')
  network.mlp_widths = (8,)
  key = jax.random.key(0)
  labels = adversarial.random_network_tasks(network, images, classes, key=key, num_networks=2,
                                            batch_size=50)
  assert labels.shape == (2, 120) and labels.dtype == np.int32
  for c in range(3):
    assert (labels[:, classes == c].sum(axis=1) == (classes == c).sum() // 2).all()
  again = adversarial.random_network_tasks(network, images, classes, key=key, num_networks=2)
  np.testing.assert_array_equal(labels, again)
  assert not np.array_equal(labels[0], labels[1])  # different networks, different tasks


# ------------------------------------------------------------------------------- job end to end


def tiny_config(**adversarial_fields):
  c = config_lib.base()
  c.job = 'adversarial_split'
  c.data.name = 'digits'
  c.data.num_images = 300
  c.data.heldout_fraction = 0.2
  c.learner = config_lib.model_config('mlp')
  c.learner.mlp_widths = (16,)
  c.eval.num_epochs = 2
  c.eval.batch_size = 32
  c.eval.tasks_per_chunk = 16
  c.mesh.num_devices = 1
  c.adversarial.target_tasks = (0, 1)
  c.adversarial.mirror = True
  c.adversarial.random_network = config_lib.model_config('mlp')
  c.adversarial.random_network.mlp_widths = (8,)
  c.adversarial.num_random_networks = 2
  for k, v in adversarial_fields.items():
    c.adversarial[k] = v
  config_lib.validate(c)
  return c


def write_fake_discovery(workdir, dataset, num_tasks=2):
  """A discovery workdir's tasks.npz: task i thresholds one pixel at its median."""
  os.makedirs(workdir, exist_ok=True)
  flat = dataset.images.reshape(dataset.num_images, -1)
  pixels = flat[:, [27, 36, 20, 43][:num_tasks]].T  # central pixels: not constant
  labels = (pixels > np.median(pixels, axis=1, keepdims=True)).astype(np.int32)
  np.savez(os.path.join(workdir, 'tasks.npz'), labels=labels, class_labels=dataset.labels,
           train_idx=dataset.train_idx, heldout_idx=dataset.heldout_idx)
  return labels


def check_outputs(workdir, report, num_splits, kway):
  section = report['adversarial']
  assert section['summary']['num_splits'] == num_splits == len(section['splits'])
  for key in ('mean_adversarial_accuracy', 'mean_random_accuracy',
              'mean_kway_adversarial_accuracy', 'mean_kway_random_accuracy'):
    assert key in section['summary']
  assert 0 <= section['summary']['mean_adversarial_accuracy'] <= 1
  assert 0 <= section['summary']['mean_random_accuracy'] <= 1
  assert (section['summary']['mean_kway_random_accuracy'] is not None) == kway
  entry = section['splits'][0]
  for key in ('target', 'discovered', 'mirror', 'train_size', 'test_size', 'adversarial_accuracy',
              'random_accuracy', 'kway_adversarial_accuracy', 'kway_random_accuracy'):
    assert key in entry
  with open(os.path.join(workdir, 'report.json')) as f:
    assert json.load(f)['adversarial']['summary'] == section['summary']
  assert os.path.getsize(workdir_lib.Workdir(workdir).adversarial_plot) > 0
  loaded = splits_lib.load_splits(workdir_lib.Workdir(workdir).splits)
  assert len(loaded) == num_splits
  for s, e in zip(loaded, section['splits']):
    assert (s.target, s.discovered, s.mirror) == (e['target'], e['discovered'], e['mirror'])
    assert len(s.train_idx) == e['train_size'] and len(s.test_idx) == e['test_size']


def test_job_end_to_end_from_a_discovery_workdir(tmp_path):
  disc_dir, workdir = str(tmp_path / 'discover'), str(tmp_path / 'adv')
  os.makedirs(workdir)
  config = tiny_config(source='discovery', discovery_workdir=disc_dir, include_kway=True)
  dataset = datasets.load_dataset(config.data)
  discovered = write_fake_discovery(disc_dir, dataset)
  report = adversarial.run(config, workdir)
  check_outputs(workdir, report, num_splits=2 * 2 * 2, kway=True)
  # The saved split really is the adversarial split of the target and the discovered task.
  target = tasks.human_task_labels(dataset.labels, dataset.num_classes, [1])[0]
  split = splits_lib.load_splits(workdir_lib.Workdir(workdir).splits)[-1]
  assert (split.target, split.discovered, split.mirror) == (1, 1, True)
  np.testing.assert_array_equal(split.train_idx, np.flatnonzero(target == discovered[1]))


def test_job_end_to_end_with_random_networks(tmp_path):
  workdir = str(tmp_path)
  os.makedirs(tmp_path / 'again')
  config = tiny_config(source='random_network', include_kway=False, mirror=False)
  report = adversarial.run(config, workdir)
  check_outputs(workdir, report, num_splits=2 * 2, kway=False)
  # Same config, same numbers.
  again = adversarial.run(config, str(tmp_path / 'again'))
  assert again['adversarial']['splits'] == report['adversarial']['splits']
  # Median-split tasks are uncorrelated with every human task: parts are about half the images.
  for e in report['adversarial']['splits']:
    assert abs(e['train_size'] - 150) <= 10


def test_job_on_a_process_other_than_0_writes_nothing(tmp_path, monkeypatch):
  # Process 1 of a multi-host run computes the same section and leaves the workdir alone.
  monkeypatch.setattr(workdir_lib, '_is_process_zero', lambda: False)
  config = tiny_config(source='random_network', include_kway=False, mirror=False,
                       target_tasks=(0,))
  report = adversarial.run(config, str(tmp_path))
  assert report['adversarial']['summary']['num_splits'] == 2
  assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------- bad inputs


def test_labels_file_of_the_wrong_length(tmp_path):
  path = str(tmp_path / 'tasks.npy')
  np.save(path, np.zeros((2, 299), np.int32))
  with pytest.raises(ValueError, match='299 images but the dataset has 300'):
    adversarial.run(tiny_config(source='file', labels_file=path), str(tmp_path))


def test_constant_target_is_named(tmp_path):
  path = str(tmp_path / 'targets.npy')
  targets = np.zeros((2, 300), np.int32)
  targets[0, ::2] = 1  # row 0 is fine, row 1 is constant
  np.save(path, targets)
  config = tiny_config(source='random_network', target_labels_file=path, target_tasks=())
  with pytest.raises(ValueError, match=r'target 1 of .*targets.npy.* has one class only'):
    adversarial.run(config, str(tmp_path))


def test_human_target_with_one_class_on_this_data():
  """Human task 0 is {0, 1, 2, 3, 4} vs the rest: constant on data holding classes 0-4 only."""
  rng = np.random.default_rng(0)
  dataset = types.SimpleNamespace(labels=rng.integers(0, 5, 50).astype(np.int32), num_classes=10,
                                  num_images=50)
  with pytest.raises(ValueError, match='target human task 0 has one class only'):
    adversarial.load_targets(tiny_config(target_tasks=(0,)), dataset)


def test_discovery_workdir_without_tasks(tmp_path):
  config = tiny_config(source='discovery', discovery_workdir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="run job='discover' first"):
    adversarial.run(config, str(tmp_path))


def test_discovery_workdir_of_other_data(tmp_path):
  np.savez(str(tmp_path / 'tasks.npz'), labels=np.zeros((2, 1797), np.int32))
  config = tiny_config(source='discovery', discovery_workdir=str(tmp_path))
  with pytest.raises(ValueError, match='same data config'):
    adversarial.run(config, str(tmp_path))


def test_empty_discovery_workdir_says_what_to_set(tmp_path):
  with pytest.raises(ValueError, match='discovery_workdir is empty'):
    adversarial.run(tiny_config(source='discovery'), str(tmp_path))


@pytest.mark.parametrize('field, value', [('source', 'imagenet'), ('num_random_networks', 0),
                                          ('min_part_fraction', 0.5), ('target_tasks', (-1,))])
def test_bad_adversarial_config_values(field, value):
  c = config_lib.base()
  c.adversarial[field] = value
  with pytest.raises(ValueError, match=f'config.adversarial.{field}:'):
    config_lib.validate(c)


def test_train_part_smaller_than_a_batch_is_explained(tmp_path):
  disc_dir = str(tmp_path / 'discover')
  config = tiny_config(source='discovery', discovery_workdir=disc_dir, min_part_fraction=0.0)
  dataset = datasets.load_dataset(config.data)
  target = tasks.human_task_labels(dataset.labels, dataset.num_classes, [0])[0]
  nearly_target = target.copy()
  nearly_target[:5] = 1 - nearly_target[:5]  # a train part of 5 images < eval.batch_size=32
  os.makedirs(disc_dir)
  np.savez(os.path.join(disc_dir, 'tasks.npz'), labels=nearly_target[None],
           class_labels=dataset.labels)
  config.adversarial.target_tasks = (0,)
  with pytest.raises(ValueError, match=r'target 0 x discovered 0\) holds 5 images.*batch_size'):
    adversarial.run(config, str(tmp_path))
