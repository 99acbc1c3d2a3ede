"""The `discover` job end to end: determinism, resume, checkpoints, NaN guard, loader."""

import glob
import json
import os

import chex
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from task_discovery import config as config_lib
from task_discovery import loader
from task_discovery import main as main_lib
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.data import tasks
from task_discovery.jobs import discovery
from task_discovery.method import meta
from task_discovery.run import checkpoints
from task_discovery.run import metric_writers
from task_discovery.run import sharding


def tiny_config(num_steps=4):
  c = config_lib.base()
  c.data.name = "digits"
  c.data.heldout_fraction = 0.2
  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (16, 16)
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (16, 16)
  c.task.num_tasks = 4
  c.inner.num_steps = 3
  c.inner.batch_size = 64
  c.inner.heldout_batch_size = 64
  c.inner.learning_rate = 0.1
  c.meta.num_steps = num_steps
  c.meta.meta_batch_size = 2
  c.meta.log_every = 1
  c.checkpoint.every_steps = 2
  c.eval.num_epochs = 2
  c.eval.batch_size = 128
  c.eval.tasks_per_chunk = 8
  c.eval.num_human_tasks = 3
  c.eval.num_random_tasks = 2
  return c


def train_only(config, workdir):
  config.eval.evaluate_discovered = False
  dataset = datasets.load_dataset(config.data)
  state, _ = discovery.train(config, workdir, dataset)
  return state, metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """One complete tiny `discover` job through the command-line entry point's job runner."""
  workdir = str(tmp_path_factory.mktemp("discover"))
  config = tiny_config()
  report = main_lib.run_job(config, workdir)
  return config, workdir, report


def test_discover_job_writes_every_output(finished_run):
  config, workdir, report = finished_run
  for name in ("report.json", "tasks.npz", "tasks.csv", "metrics.jsonl",
               "agreement_histogram.png", "similarity_folded_agreement.png",
               "task_images.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))
  summary = report["summary"]
  assert summary["discovered"]["num_tasks"] == config.task.num_tasks
  assert summary["human"]["num_tasks"] == 3 and summary["random"]["num_tasks"] == 2
  for family in ("discovered", "human", "random"):
    assert 0.0 <= summary[family]["min_as"] <= summary[family]["mean_as"] <= 1.0
  assert 0.5 <= report["similarity"]["mean_folded_agreement"] <= 1.0
  with np.load(os.path.join(workdir, "tasks.npz")) as f:
    labels = f["labels"]
    assert labels.shape == (config.task.num_tasks, 1797)
    np.testing.assert_array_equal(labels, (f["scores"] > 0).astype(np.int32))
  assert set(np.unique(labels)) <= {0, 1}
  np.testing.assert_array_equal(tasks.load_task_labels(os.path.join(workdir, "tasks.csv"), 1797),
                                labels)
  steps = [r["step"] for r in metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]
  assert steps == [1, 2, 3, 4]


def test_closing_lines_say_what_was_found_where_it_is_and_how_to_open_it(finished_run):
  _, workdir, report = finished_run
  found, where, notebook = main_lib.closing_lines(report, workdir)
  for family in ("discovered", "human", "random"):
    s = report["summary"][family]
    assert f"{family} {s['mean_as']:.3f} ({s['num_tasks']} tasks)" in found
  paths = [w.rstrip(";)") for w in where.split() if w.startswith(workdir)]
  assert len(paths) == 3 and all(os.path.getsize(p) > 0 for p in paths), where
  assert f"task_discovery.load({workdir!r})" in notebook


def test_loader_rebuilds_the_task_network_from_the_checkpoint_alone(finished_run):
  config, workdir, _ = finished_run
  network = loader.load(workdir)
  assert network.step == config.meta.num_steps and network.num_tasks == config.task.num_tasks
  dataset = datasets.load_dataset(config.data)
  with np.load(os.path.join(workdir, "tasks.npz")) as f:
    exported = f["labels"]
  # Raw [0, 1] images are normalised with the statistics stored in the checkpoint.
  np.testing.assert_array_equal(network(dataset.raw_images()).T, exported)
  np.testing.assert_array_equal(network.labels(dataset.images, normalized=True).T, exported)
  with pytest.raises(ValueError, match="shape"):
    network(np.zeros((2, 28, 28, 1), np.float32))


def test_same_config_and_seed_give_identical_metrics(tmp_path):
  _, first = train_only(tiny_config(3), str(tmp_path / "a"))
  _, second = train_only(tiny_config(3), str(tmp_path / "b"))
  strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_second"} for r in rows]
  assert strip(first) == strip(second)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
  k = 2
  straight, _ = train_only(tiny_config(2 * k), str(tmp_path / "straight"))
  interrupted = str(tmp_path / "resumed")
  train_only(tiny_config(k), interrupted)
  resumed, rows = train_only(tiny_config(2 * k), interrupted)
  assert int(resumed.step) == 2 * k
  assert [r["step"] for r in rows] == [1, 2, 3, 4]  # the log continues where it stopped
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_meta_step_compiles_once(tmp_path):
  config = tiny_config()
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  meta_step = meta.make_meta_step(encoder, learner, config)
  step = jax.jit(chex.assert_max_traces(meta_step.update, n=1))
  state = meta_step.init(jax.random.key(0))
  data = discovery.device_data(dataset)
  for _ in range(3):
    state, metrics = step(state, data)
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))


def test_meta_step_draws_its_heldout_batch_from_the_meta_validation_part():
  config = tiny_config()
  dataset = datasets.load_dataset(config.data)
  data = discovery.device_data(dataset)
  np.testing.assert_array_equal(data.heldout_idx, dataset.meta_val_idx)
  assert len(np.intersect1d(dataset.meta_val_idx, dataset.heldout_idx)) == 0
  assert len(np.intersect1d(dataset.meta_val_idx, dataset.train_idx)) == 0
  config.data.meta_val_fraction = 0.0  # the previous behaviour: the evaluation's held-out part
  dataset = datasets.load_dataset(config.data)
  np.testing.assert_array_equal(discovery.device_data(dataset).heldout_idx,
                                dataset.heldout_idx)


def poison_meta_step(monkeypatch, from_step):
  """Makes the meta-loss NaN from meta-step `from_step` on (0-based), as a diverging run would."""
  make = discovery.make_meta_step

  def poisoned(*args, **kwargs):
    meta_step = make(*args, **kwargs)

    def update(state, data):
      new_state, metrics = meta_step.update(state, data)
      if int(new_state.step) > from_step:
        metrics = {**metrics, "loss": jax.numpy.nan}
      return new_state, metrics
    return meta_step._replace(update=update)

  monkeypatch.setattr(discovery, "make_meta_step", poisoned)


def test_non_finite_loss_stops_with_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  poison_meta_step(monkeypatch, from_step=2)
  with pytest.raises(discovery.NonFiniteLossError,
                     match=r"meta-step 2: .*last checkpoint \(step 2\).*learning_rate"):
    train_only(tiny_config(4), workdir)
  assert checkpoints.manager(workdir).latest_step() == 2


def test_non_finite_step_inside_a_log_window_is_named_and_never_saved(tmp_path, monkeypatch):
  # Logs after steps 4 and 8, checkpoints after 3, 6 and 8: steps 4 and 5 run between the log
  # at 4 and the save at 6 without a host read; the loss is NaN from step 5 (0-based) on.
  config = tiny_config(8)
  config.meta.log_every, config.checkpoint.every_steps = 4, 3
  workdir = str(tmp_path)
  poison_meta_step(monkeypatch, from_step=5)
  with pytest.raises(discovery.NonFiniteLossError,
                     match=r"meta-step 5: .*last checkpoint \(step 3\)"):
    train_only(config, workdir)
  assert checkpoints.manager(workdir).all_steps() == [3]  # step 6 would hold the NaN run
  rows = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows] == [4] and np.isfinite(rows[0]["loss"])


def test_meta_steps_between_two_logs_read_nothing_from_the_device(monkeypatch):
  """A host read of any step's result (`float(loss)`) would wait for that step to finish and
  stall the device's queue. JAX's transfer guard catches such reads on accelerators; a CPU
  array is host memory, which the guard lets through, so every read of an array's value
  (`ArrayImpl._value`, under `float`, `np.asarray`, `jax.device_get`) fails here as well."""
  config = tiny_config()
  dataset = datasets.load_dataset(config.data)
  mesh = sharding.make_mesh(2)
  meta_step = discovery.make_meta_step(*models.build_models(config, dataset.input_shape),
                                       config, mesh)
  data = sharding.put_replicated(discovery.device_data(dataset), mesh)
  state = sharding.put_replicated(meta_step.init(jax.random.key(0)), mesh)
  state, _ = meta_step.update(state, data)  # compiles outside the guard

  def read(array):
    raise AssertionError(f"a {array.dtype}{list(array.shape)} array was read on the host")

  with monkeypatch.context() as patch:
    patch.setattr(type(state.step), "_value", property(read))
    with jax.transfer_guard_device_to_host("disallow"):
      state, window = discovery.run_meta_steps(meta_step, state, data, range(1, 4))
  assert int(state.step) == 4 and len(window) == 3
  assert all(np.isfinite(float(m["loss"])) and float(m["grad_norm"]) > 0 for m in window)


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
  workdir = str(tmp_path)
  train_only(tiny_config(2), workdir)
  config = tiny_config(4)
  config.task.num_tasks = 8
  with pytest.raises(checkpoints.CheckpointMismatchError, match="task.num_tasks"):
    train_only(config, workdir)


def test_corrupt_checkpoint_is_a_clear_error_and_nothing_is_deleted(tmp_path):
  workdir = str(tmp_path)
  train_only(tiny_config(2), workdir)
  step_dir = os.path.join(workdir, "checkpoints", "2")
  files = sorted(p for p in glob.glob(os.path.join(step_dir, "state", "**"), recursive=True)
                 if os.path.isfile(p))
  for path in files:
    with open(path, "wb") as f:
      f.write(b"not a checkpoint")
  with pytest.raises(checkpoints.CheckpointCorruptError,
                     match=r"every checkpoint .* damaged:\n.*step 2.*could not be restored"):
    train_only(tiny_config(4), workdir)
  assert os.path.isdir(step_dir)


def test_discover_job_on_mock_tfds_data(tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, "_tfds_is_prepared", lambda builder: True)
  config = tiny_config(2)
  config.data.name = "mnist"
  config.data.source = "tfds"
  config.eval.num_human_tasks = 2
  config.inner.heldout_batch_size = 16  # the meta-validation part holds 26 of the 256 images
  with tfds.testing.mock_data(num_examples=256):
    report = main_lib.run_job(config, str(tmp_path))
  assert report["dataset"]["name"] == "mnist"
  assert report["summary"]["discovered"]["num_tasks"] == config.task.num_tasks
  with open(os.path.join(tmp_path, "report.json")) as f:
    assert json.load(f)["dataset"]["num_images"] == 256


def test_fashion_mnist_cnn_smoke_config_runs_end_to_end(tmp_path):
  """configs/fashion_mnist_cnn.py:smoke: CNN learners and encoder on the real images, the whole
  `discover` job (discovery, evaluation of every family, report)."""
  if not os.path.isfile("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
  config = config_lib.load_config_file("configs/fashion_mnist_cnn.py", "smoke")
  config.mesh.num_devices = 1
  assert config.learner.name == config.task.encoder.name == "cnn"
  report = main_lib.run_job(config, str(tmp_path))
  summary = report["summary"]
  assert summary["discovered"]["num_tasks"] == config.task.num_tasks
  for family in ("discovered", "human", "random"):
    assert 0.0 <= summary[family]["min_as"] <= summary[family]["mean_as"] <= 1.0
  with np.load(tmp_path / "tasks.npz") as f:
    labels = f["labels"]
  assert labels.shape == (config.task.num_tasks, config.data.num_images)
  # configs/fashion_mnist_cnn_adversarial.py:smoke on this run's tasks (one run serves both).
  # After 2 meta-steps some tasks may still put every image in one class: those can not split.
  adv = config_lib.load_config_file("configs/fashion_mnist_cnn_adversarial.py", "smoke")
  adv.mesh.num_devices = 1
  adv.adversarial.discovery_workdir = str(tmp_path)
  two_classes = tuple(i for i, row in enumerate(labels) if 0 < row.mean() < 1)
  if two_classes:
    adv.adversarial.discovered_tasks = two_classes[:2]
  else:
    adv.adversarial.source = "random_network"
  assert adv.learner.name == "cnn" and adv.data.to_dict() == config.data.to_dict()
  section = main_lib.run_job(adv, str(tmp_path / "adversarial"))["adversarial"]["summary"]
  for name in ("mean_adversarial_accuracy", "mean_random_accuracy"):
    assert 0.0 <= section[name] <= 1.0
