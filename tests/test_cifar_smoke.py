"""configs/cifar.py:smoke and configs/cifar_adversarial.py:smoke from the command line, on
CIFAR-shaped mock TFDS data: ResNet-18 learners and encoder, discovery, evaluation, report,
figures, then the adversarial job reading the discovery run."""

import json
import os
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow_datasets as tfds

from task_discovery import main as main_lib
from task_discovery.data import datasets
from task_discovery.run import metric_writers

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
NUM_MOCK_IMAGES = 2048


def run_main(argv, monkeypatch):
  """`python -m task_discovery.main ARGV` in this process, so that it runs under mock_data.

  The flags are parsed as the command line parses them (the config file with its `:smoke`
  argument, then `--config.FIELD=VALUE` overrides, read from sys.argv), then reset.
  """
  argv = ["task_discovery.main"] + argv + ["--config.mesh.num_devices=1"]
  monkeypatch.setattr(sys, "argv", argv)
  # The tests keep their own compilation cache (conftest.py); the user's stays untouched.
  monkeypatch.setattr(main_lib, "setup_compilation_cache", lambda config: None)
  try:
    flags.FLAGS(argv)
    main_lib.main(argv[:1])
    return flags.FLAGS["config"].value
  finally:  # the overrides are flags defined while parsing: drop them for the next parse
    for name in [n for n in flags.FLAGS if n.startswith("config.")]:
      delattr(flags.FLAGS, name)
    flags.FLAGS.unparse_flags()
    flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
  """One `configs/cifar.py:smoke` discovery run on mock CIFAR-10, shared by both tests."""
  workdir = str(tmp_path_factory.mktemp("cifar_smoke"))
  with pytest.MonkeyPatch.context() as patch:
    # mock_data points data_dir at a directory that does not exist: is_prepared() is False.
    patch.setattr(datasets, "_tfds_is_prepared", lambda builder: True)
    with tfds.testing.mock_data(num_examples=NUM_MOCK_IMAGES):
      config = run_main([f"--config={REPO}/configs/cifar.py:smoke", f"--workdir={workdir}"],
                        patch)
  return config, workdir


def test_cifar_smoke_discovers_evaluates_and_reports(shared_run, capsys):
  config, workdir = shared_run
  assert config.data.name == "cifar10" and config.data.source == "auto"
  assert config.learner.name == config.task.encoder.name == "resnet18"
  for name in ("report.json", "tasks.npz", "tasks.csv", "metrics.jsonl", "config.json",
               "agreement_histogram.png", "similarity_folded_agreement.png", "task_images.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  with open(os.path.join(workdir, "report.json")) as f:
    report = json.load(f)
  dataset = report["dataset"]
  assert dataset["name"] == "cifar10" and dataset["num_images"] == config.data.num_images
  summary = report["summary"]
  assert summary["discovered"]["num_tasks"] == config.task.num_tasks
  assert summary["human"]["num_tasks"] == config.eval.num_human_tasks
  assert summary["random"]["num_tasks"] == config.eval.num_random_tasks
  for family in ("discovered", "human", "random"):
    assert 0.0 <= summary[family]["min_as"] <= summary[family]["mean_as"] <= 1.0, family
  assert 0.5 <= report["similarity"]["mean_folded_agreement"] <= 1.0
  with np.load(os.path.join(workdir, "tasks.npz")) as f:
    labels, scores = f["labels"], f["scores"]
  assert labels.shape == (config.task.num_tasks, config.data.num_images)
  assert np.all(np.isfinite(scores))
  np.testing.assert_array_equal(labels, (scores > 0).astype(np.int32))
  rows = metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows] == list(range(1, config.meta.num_steps + 1))
  assert all(np.isfinite(r["loss"]) and 0.0 <= r["meta_as"] <= 1.0 for r in rows)


def test_cifar_adversarial_smoke_reads_the_discovery_run(shared_run, tmp_path):
  _, discovery_workdir = shared_run
  # At 2 meta-steps the smoke's task network may still label every image alike in some of its
  # heads; a split needs both classes, so the job reads the tasks that have them.
  with np.load(os.path.join(discovery_workdir, "tasks.npz")) as f:
    both = [i for i, row in enumerate(f["labels"]) if 0 < row.mean() < 1]
  assert both, "no discovered task of the smoke run has both classes"
  workdir = str(tmp_path / "adversarial")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(datasets, "_tfds_is_prepared", lambda builder: True)
    with tfds.testing.mock_data(num_examples=NUM_MOCK_IMAGES):
      config = run_main([f"--config={REPO}/configs/cifar_adversarial.py:smoke",
                         f"--workdir={workdir}",
                         f"--config.adversarial.discovery_workdir={discovery_workdir}",
                         f"--config.adversarial.discovered_tasks={tuple(both)}"], patch)
  assert config.adversarial.source == "discovery"
  assert os.path.getsize(os.path.join(workdir, "adversarial_accuracy.png")) > 0
  with open(os.path.join(workdir, "report.json")) as f:
    section = json.load(f)["adversarial"]
  assert section["discovery_workdir"] == discovery_workdir
  splits = section["splits"]
  assert splits and section["summary"]["num_splits"] == len(splits)
  for split in splits:
    assert split["discovered"] in both
    assert split["train_size"] + split["test_size"] == config.data.num_images
    for name in ("adversarial_accuracy", "random_accuracy", "kway_adversarial_accuracy"):
      assert 0.0 <= split[name] <= 1.0, name
  np.testing.assert_allclose(section["summary"]["mean_adversarial_accuracy"],
                             np.mean([s["adversarial_accuracy"] for s in splits]), rtol=1e-6)
