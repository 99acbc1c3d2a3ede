"""Tests for task_discovery.method.agreement and task_discovery.jobs.evaluation
(docs/method.md#the-agreement-score, docs/method.md#measuring-discovered-tasks).

Toy tests use a two-layer MLP (one BatchNorm, so running statistics are threaded through the
stack) on 2x2 Gaussian images; the real-data tests measure the paper's central ordering
human >> random on scikit-learn digits and on Fashion-MNIST.
"""
import importlib.util
import os
import time
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.data import tasks
from task_discovery.jobs import evaluation
from task_discovery.method import agreement
from task_discovery.method import optimizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_DIR = '/usr/share/datasets/fashion-mnist'

NUM_IMAGES = 600
NUM_TRAIN = 480
BATCH_SIZE = 32
# Compilation dominates the run time of the toy tests (every new [tasks, learners] shape compiles
# the learner initialisation again), so the tests share a few shapes and compiled functions.


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope='module')
def toy_model():
  mc = config_lib.model_config('mlp')
  mc.mlp_widths = (4, 4)  # BatchNorm after the first layer
  return models.make_model(mc, input_shape=(2, 2, 1), num_outputs=2)


@pytest.fixture(scope='module')
def toy_images():
  rng = np.random.default_rng(0)
  return rng.normal(size=(NUM_IMAGES, 2, 2, 1)).astype(np.float32)


@pytest.fixture(scope='module')
def toy_labels(toy_images):
  """[5, N]: task 0 is learnable (sign of one pixel), the others random."""
  learnable = (toy_images[:, 0, 0, 0] > 0).astype(np.int32)
  return np.concatenate([learnable[None], tasks.random_task_labels(NUM_IMAGES, 4, seed=1)])


@pytest.fixture(scope='module')
def toy_optimizer():
  return optimizers.make_optimizer('adam', learning_rate=1e-2)


@pytest.fixture(scope='module')
def toy_train_epoch(toy_model, toy_optimizer):
  return agreement.make_train_epoch(toy_model, toy_optimizer, batch_size=BATCH_SIZE)


@pytest.fixture(scope='module')
def shared_run(toy_model, toy_images, toy_labels):
  """evaluate_tasks on the 5 toy tasks with shared indices, 3 tasks per chunk."""
  return evaluate(toy_model, toy_images, toy_labels, eval_config(tasks_per_chunk=3))


def eval_config(**overrides):
  c = ml_collections.ConfigDict(dict(
      num_learners=2, optimizer='adam', learning_rate=3e-2, batch_size=BATCH_SIZE,
      num_epochs=3, tasks_per_chunk=3, predict_batch_size=64))
  c.update(overrides)
  return c


def train(model, optimizer, train_epoch, keys, images, labels, train_idx, num_epochs, data_key):
  """Trains a `[T, L]` stack of learners from `keys` like `evaluate_tasks` does."""
  state = agreement.init_learners(model, optimizer, keys)
  images, labels, train_idx = map(jnp.asarray, (images, labels, train_idx))
  for epoch in range(num_epochs):
    state, loss = train_epoch(state, images, labels, train_idx, jax.random.fold_in(data_key, epoch))
  return state, loss


def toy_task_keys(num_tasks):
  return jax.random.split(jax.random.key(7), num_tasks)


def evaluate(model, images, labels, config, **kwargs):
  kwargs.setdefault('train_idx', np.arange(NUM_TRAIN))
  kwargs.setdefault('heldout_idx', np.arange(NUM_TRAIN, NUM_IMAGES))
  kwargs.setdefault('key', jax.random.key(0))
  kwargs.setdefault('task_keys', toy_task_keys(len(labels)))
  return agreement.evaluate_tasks(model, images, labels, config=config, **kwargs)


def assert_results_close(a, b):
  assert set(a) == set(b) == {'agreement', 'accuracy', 'train_loss'}
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


# -------------------------------------------------------------------------- pairwise_agreement


def test_pairwise_agreement_hand_computed():
  predictions = np.array([[0, 1, 1, 0],
                          [0, 1, 0, 0],
                          [0, 1, 0, 1]])
  # Pairs: (0, 1) agree on 3/4, (0, 2) on 2/4, (1, 2) on 3/4 -> mean 2/3.
  np.testing.assert_allclose(agreement.pairwise_agreement(predictions), 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(agreement.pairwise_agreement(jnp.asarray(predictions)), 2 / 3,
                             rtol=1e-6)
  # Leading axes are kept: [2 tasks, 3 learners, 4 images] -> [2].
  stacked = np.stack([predictions, np.zeros_like(predictions)])
  np.testing.assert_allclose(agreement.pairwise_agreement(stacked), [2 / 3, 1.0], rtol=1e-6)


def test_pairwise_agreement_multiclass():
  predictions = np.array([[0, 1, 2, 2, 1],
                          [0, 2, 2, 1, 1]])  # agree on images 0, 2, 4
  np.testing.assert_allclose(agreement.pairwise_agreement(predictions), 3 / 5, rtol=1e-6)


def test_pairwise_agreement_extremes():
  rng = np.random.default_rng(0)
  p = rng.integers(0, 2, size=50)
  assert float(agreement.pairwise_agreement(np.stack([p, p, p]))) == 1.0
  assert float(agreement.pairwise_agreement(np.stack([p, 1 - p]))) == 0.0


def test_pairwise_agreement_needs_two_learners():
  with pytest.raises(ValueError, match='at least 2 learners'):
    agreement.pairwise_agreement(np.zeros((1, 10), np.int32))
  with pytest.raises(ValueError, match='at least 2 learners'):
    agreement.pairwise_agreement(np.zeros((3, 1, 10), np.int32))


# ------------------------------------------------------------------------------ learner stacks


def test_learner_agrees_with_itself_and_not_with_another(toy_model, toy_optimizer,
                                                         toy_train_epoch, toy_images):
  """AS of a learner with itself is exactly 1; two initialisations on random labels are < 1."""
  labels = tasks.random_task_labels(NUM_IMAGES, 2, seed=3)  # [2, N], one task per row
  k_same, k_a, k_b = jax.random.split(jax.random.key(11), 3)
  keys = jnp.stack([jnp.stack([k_same, k_same]),   # task 0: both learners from the same key
                    jnp.stack([k_a, k_b])])       # task 1: different keys
  state, _ = train(toy_model, toy_optimizer, toy_train_epoch, keys, toy_images, labels,
                   np.arange(NUM_TRAIN), 2, jax.random.key(5))
  predict = agreement.make_predict(toy_model, batch_size=64)
  preds = predict(state.params, state.batch_stats, jnp.asarray(toy_images[NUM_TRAIN:]))
  assert preds.shape == (2, 2, NUM_IMAGES - NUM_TRAIN) and preds.dtype == jnp.int32
  as_ = np.asarray(agreement.pairwise_agreement(preds))
  assert as_[0] == 1.0
  assert as_[1] < 1.0
  # The identical learners are identical after training, BatchNorm statistics included.
  for leaf in jax.tree_util.tree_leaves((state.params, state.batch_stats)):
    np.testing.assert_array_equal(leaf[0, 0], leaf[0, 1])
  assert jax.tree_util.tree_leaves(state.batch_stats), 'the toy model should have BatchNorm'


def test_vmapped_learners_equal_python_loop(toy_model, toy_optimizer, toy_train_epoch,
                                            toy_images, toy_labels):
  labels = toy_labels[:2]  # [T=2, N]
  keys = jax.random.split(jax.random.key(3), 4).reshape(2, 2)  # [T, L] typed keys
  data_key = jax.random.key(9)
  train_idx = np.arange(NUM_TRAIN)
  stacked, stacked_loss = train(toy_model, toy_optimizer, toy_train_epoch, keys, toy_images,
                                labels, train_idx, 2, data_key)
  assert stacked_loss.shape == (2, 2)
  for t in range(2):
    for l in range(2):
      alone, alone_loss = train(toy_model, toy_optimizer, toy_train_epoch,
                                keys[t:t + 1, l:l + 1], toy_images, labels[t:t + 1],
                                train_idx, 2, data_key)
      np.testing.assert_allclose(alone_loss[0, 0], stacked_loss[t, l], rtol=1e-5, atol=1e-6)
      jax.tree_util.tree_map(
          lambda a, s, t=t, l=l: np.testing.assert_allclose(
              a[0, 0], s[t, l], rtol=1e-5, atol=1e-6),
          (alone.params, alone.batch_stats, alone.opt_state),
          (stacked.params, stacked.batch_stats, stacked.opt_state))
  # The four learners really are different networks.
  kernel = max(jax.tree_util.tree_leaves(stacked.params), key=lambda x: x.size)  # [T, L, ...]
  assert not np.allclose(kernel[0, 0], kernel[0, 1]) and not np.allclose(kernel[0, 0], kernel[1, 0])


# ------------------------------------------------------------------------------ evaluate_tasks


def test_evaluate_tasks_independent_of_chunking(toy_model, toy_images, toy_labels, shared_run):
  results = {c: evaluate(toy_model, toy_images, toy_labels, eval_config(tasks_per_chunk=c))
             for c in (1, 8)}
  results[3] = shared_run
  r = results[1]
  assert r['agreement'].shape == (5,)
  assert r['accuracy'].shape == r['train_loss'].shape == (5, 2)
  assert np.all(np.isfinite(r['train_loss']))
  assert np.all((r['agreement'] >= 0) & (r['agreement'] <= 1))
  # `accuracy` is against the task's labels: the learnable task is learned, random ones are not.
  assert r['accuracy'][0].min() > 0.75
  assert np.abs(r['accuracy'][1:] - 0.5).max() < 0.15
  # Tasks differ from each other (padding repeats of the last task must not leak into others).
  assert len(np.unique(r['train_loss'][:, 0])) == 5
  assert_results_close(results[3], r)
  assert_results_close(results[8], r)


def test_evaluate_tasks_per_task_indices(toy_model, toy_images, toy_labels, shared_run):
  config = eval_config(tasks_per_chunk=3)
  train_idx = np.arange(NUM_TRAIN)
  heldout_idx = np.arange(NUM_TRAIN, NUM_IMAGES)
  num_tasks = len(toy_labels)
  # [T, n] training indices, every row the same: the shared-index result.
  per_task = evaluate(toy_model, toy_images, toy_labels, config,
                      train_idx=np.tile(train_idx, (num_tasks, 1)))
  assert_results_close(per_task, shared_run)

  # Rows are really used per task: changing the last task's training set changes that task
  # only. Per-task held-out indices ([T, m], every row the same) are exercised at the same time.
  other = np.sort(np.random.default_rng(0).permutation(NUM_IMAGES)[:NUM_TRAIN])
  mixed = evaluate(toy_model, toy_images, toy_labels, config,
                   train_idx=np.concatenate([np.tile(train_idx, (num_tasks - 1, 1)), other[None]]),
                   heldout_idx=np.tile(heldout_idx, (num_tasks, 1)))
  for name in ('agreement', 'accuracy', 'train_loss'):
    np.testing.assert_allclose(mixed[name][:-1], shared_run[name][:-1], rtol=1e-5, atol=1e-6,
                               err_msg=name)
  assert not np.allclose(mixed['train_loss'][-1], shared_run['train_loss'][-1])
  # ... and the last task trained exactly as it would alone with `other` as its training set.
  alone = evaluate(toy_model, toy_images, toy_labels[-1:], eval_config(tasks_per_chunk=1),
                   train_idx=other, task_keys=toy_task_keys(num_tasks)[-1:])
  for name in ('agreement', 'accuracy', 'train_loss'):
    np.testing.assert_allclose(mixed[name][-1:], alone[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_evaluate_tasks_without_reshuffle_replays_one_order(toy_model, toy_images, toy_labels,
                                                            shared_run):
  """eval.reshuffle=False (the original's train-2net.py, shuffle: False): every epoch takes the
  batches in epoch 0's order, so the result is a manual run that passes epoch 0's data key to
  every epoch; the default draws a new order every epoch, and 3 epochs then differ."""
  config = eval_config(tasks_per_chunk=3, reshuffle=False)
  fixed = evaluate(toy_model, toy_images, toy_labels, config)
  optimizer = optimizers.make_optimizer('adam', learning_rate=config.learning_rate)
  train_epoch = agreement.make_train_epoch(toy_model, optimizer, batch_size=BATCH_SIZE)
  keys = jax.vmap(lambda k: jax.random.split(k, 2))(toy_task_keys(len(toy_labels)))
  epoch0 = jax.random.fold_in(jax.random.key(0), 0)  # `evaluate`'s key, epoch 0
  state = agreement.init_learners(toy_model, optimizer, keys)
  images, labels = jnp.asarray(toy_images), jnp.asarray(toy_labels)
  for _ in range(config.num_epochs):
    state, loss = train_epoch(state, images, labels, jnp.arange(NUM_TRAIN), epoch0)
  np.testing.assert_allclose(fixed['train_loss'], loss, rtol=1e-5, atol=1e-6)
  assert not np.allclose(fixed['train_loss'], shared_run['train_loss'], rtol=1e-3)


def test_evaluate_tasks_batch_larger_than_training_set(toy_model, toy_images, toy_labels):
  with pytest.raises(ValueError, match='batch_size'):
    evaluate(toy_model, toy_images, toy_labels, eval_config(batch_size=NUM_TRAIN + 1))
  with pytest.raises(ValueError, match='batch_size'):
    evaluate(toy_model, toy_images, toy_labels, eval_config(batch_size=40),
             train_idx=np.tile(np.arange(39), (5, 1)))


def test_evaluate_tasks_accepts_typed_keys(toy_model, toy_images, toy_labels):
  typed = evaluate(toy_model, toy_images, toy_labels[:3], eval_config(num_epochs=1),
                   key=jax.random.key(0), task_keys=None)
  raw = evaluate(toy_model, toy_images, toy_labels[:3], eval_config(num_epochs=1),
                 key=jax.random.key(0), task_keys=None)
  assert typed['agreement'].shape == (3,)
  np.testing.assert_array_equal(typed['agreement'], raw['agreement'])


# ---------------------------------------------------------------------------------- real data


def _load_config_file(name):
  path = os.path.join(REPO, 'configs', name)
  spec = importlib.util.spec_from_file_location('config_' + name[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _small_eval(c, num_epochs):
  c.learner = config_lib.model_config('mlp')
  c.learner.mlp_widths = (64,)
  c.eval.update(dict(num_learners=2, optimizer='adam', learning_rate=1e-3, batch_size=128,
                     num_epochs=num_epochs, tasks_per_chunk=12, predict_batch_size=512,
                     num_human_tasks=6, num_random_tasks=6))
  c.job = 'agreement'
  config_lib.validate(c)
  return c


def _human_and_random(c):
  dataset = datasets.load_dataset(c.data)
  families = evaluation.family_tasks(c, dataset)
  human_idx, human_labels = families['human']
  random_idx, random_labels = families['random']
  np.testing.assert_array_equal(human_idx, tasks.evenly_spaced(126, 6))
  np.testing.assert_array_equal(
      human_labels, tasks.human_task_labels(dataset.labels, 10, human_idx))
  assert random_labels.shape == (6, dataset.num_images)
  sections = evaluation.evaluate_families(c, dataset, families)
  summary = sections['summary']
  assert summary['human']['num_tasks'] == summary['random']['num_tasks'] == 6
  entries = sections['tasks']
  assert [e['family'] for e in entries] == ['human'] * 6 + ['random'] * 6
  human_as = np.array([e['agreement'] for e in entries[:6]])
  np.testing.assert_allclose(summary['human']['mean_as'], human_as.mean(), rtol=1e-6)
  return summary


def test_digits_human_tasks_agree_more_than_random():
  c = _load_config_file('digits.py')
  c.data.heldout_fraction, c.data.split_seed = 0.2, 0
  summary = _human_and_random(_small_eval(c, num_epochs=10))
  human, random = summary['human'], summary['random']
  # Measured (this config, 10 epochs): human 0.979, random 0.845 with init='torch'; with
  # init='flax' 0.959 / 0.675: PyTorch's smaller initial weights memorise random labels less
  # in 10 epochs, so the two learners agree more on held-out images.
  assert human['mean_as'] >= random['mean_as'] + 0.1, summary
  assert human['mean_learner_accuracy'] > 0.85, summary   # the human tasks are learned
  assert abs(random['mean_learner_accuracy'] - 0.5) < 0.1, summary  # random ones are not


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR),
                    reason=f'Fashion-MNIST IDX files not installed in {FASHION_DIR} '
                    '(apt-get install dataset-fashion-mnist)')
def test_fashion_mnist_human_tasks_agree_more_than_random():
  c = config_lib.base()
  c.data.update(dict(name='fashion_mnist', source='idx', num_images=3000, heldout_fraction=0.2,
                     split_seed=0))
  summary = _human_and_random(_small_eval(c, num_epochs=3))
  human, random = summary['human'], summary['random']
  assert human['mean_as'] >= random['mean_as'] + 0.1, summary
  assert human['mean_learner_accuracy'] > 0.8, summary


def test_family_tasks_of_a_200_class_label_set_take_time_in_proportion():
  # 126 human tasks of 200 classes: the first 126 splits of the seeded sequence, at once (the
  # complete list of C(200, 100) / 2 splits is never built).
  c = config_lib.base()
  c.eval.num_human_tasks, c.eval.num_random_tasks = 126, 2
  labels = np.arange(4000) % 200
  dataset = types.SimpleNamespace(labels=labels, num_classes=200, num_images=4000,
                                  human_tasks=None)
  start = time.perf_counter()
  families = evaluation.family_tasks(c, dataset)
  assert time.perf_counter() - start < 2.0
  human_idx, human_labels = families['human']
  np.testing.assert_array_equal(human_idx, np.arange(126))
  np.testing.assert_array_equal(human_labels, tasks.human_task_labels(labels, 200, human_idx))
  np.testing.assert_array_equal(human_labels.sum(axis=1), np.full(126, 2000))
  assert families['random'][1].shape == (2, 4000)
