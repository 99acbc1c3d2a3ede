"""The new datasets' configs at `:smoke` from the command line, end to end: CIFAR-100 and CelebA
on mock TFDS data, TinyImageNet on a directory of JPEGs written here, each with
`job='agreement'` (data, human and random tasks, evaluation, report: what differs between
datasets; the discovery job itself is the CIFAR-10 smoke's, tests/test_cifar_smoke.py); then the
CelebA adversarial split on an attribute."""

import json
import os

import pytest
import tensorflow_datasets as tfds

import tiny_imagenet_files
from test_cifar_smoke import NUM_MOCK_IMAGES, REPO, run_main
from task_discovery.data import datasets
from task_discovery.data import tasks


# CelebA's mock faces are 218x178: fewer of them than CIFAR's.
NUM_MOCK_FACES = 300


def _run(config_arg, workdir, *overrides, num_mock=NUM_MOCK_IMAGES):
  """`python -m task_discovery.main` with `config_arg`, on mock TFDS data (num_mock > 0)."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(datasets, "_tfds_is_prepared", lambda builder: True)
    argv = [f"--config={REPO}/configs/{config_arg}", f"--workdir={workdir}", *overrides]
    if not num_mock:
      return run_main(argv, patch)
    with tfds.testing.mock_data(num_examples=num_mock):
      return run_main(argv, patch)


# What differs between datasets is the data; the smoke configs' ResNet learners are the CIFAR-10
# smoke's (tests/test_cifar_smoke.py). Small MLP learners keep these tests to seconds.
MLP_LEARNERS = ("--config.learner.name=mlp", "--config.learner.mlp_widths=(16,)")


def _agreement(config_arg, workdir, *overrides, num_mock=NUM_MOCK_IMAGES):
  return _run(config_arg, workdir, "--config.job=agreement", *MLP_LEARNERS, *overrides,
              num_mock=num_mock)


def _report(workdir):
  with open(os.path.join(workdir, "report.json")) as f:
    return json.load(f)


def _check_families(config, report):
  """The human-labelled entries, after checking both families' summaries."""
  summary = report["summary"]
  assert report["dataset"]["num_images"] == config.data.num_images == 256
  assert summary["human"]["num_tasks"] == config.eval.num_human_tasks
  assert summary["random"]["num_tasks"] == config.eval.num_random_tasks
  for family in ("human", "random"):
    assert 0.0 <= summary[family]["min_as"] <= summary[family]["max_as"] <= 1.0, family
  return [e for e in report["tasks"] if e["family"] == "human"]


def test_cifar100_smoke_evaluates_seeded_human_tasks(tmp_path):
  workdir = str(tmp_path / "cifar100")
  config = _agreement("cifar100.py:smoke", workdir)
  assert config.data.name == "cifar100"
  report = _report(workdir)
  assert report["dataset"]["num_classes"] == 100
  human = _check_families(config, report)
  # 100 classes: the first entries of the seeded sequence, known by index, without names.
  assert [e["index"] for e in human] == list(range(config.eval.num_human_tasks))
  assert all("name" not in e for e in human)


def test_tiny_imagenet_smoke_reads_the_directory(tmp_path):
  tiny_imagenet_files.write(str(tmp_path), num_classes=12, per_class=22, val_per_class=1)
  workdir = str(tmp_path / "run")
  config = _agreement("tiny_imagenet.py:smoke", workdir, f"--config.data.data_dir={tmp_path}",
                      num_mock=0)
  assert config.data.source == "directory" and config.data.image_size == 32
  report = _report(workdir)
  assert report["dataset"]["name"] == "tiny_imagenet" and report["dataset"]["num_classes"] == 12
  human = _check_families(config, report)
  assert [e["index"] for e in human] == [0, 1]  # 12 classes: the seeded sequence


def test_celeb_a_smoke_names_its_attribute_tasks(tmp_path):
  workdir = str(tmp_path / "celeb_a")
  config = _agreement("celeb_a.py:smoke", workdir, num_mock=NUM_MOCK_FACES)
  assert config.data.image_size == 32
  report = _report(workdir)
  assert report["dataset"]["num_classes"] == 1
  human = _check_families(config, report)
  # 2 of the 40 attributes, evenly spaced, with their names.
  assert [e["index"] for e in human] == tasks.evenly_spaced(40, 2).tolist() == [0, 39]
  assert [e["name"] for e in human] == ["5_o_Clock_Shadow", "Young"]


def test_celeb_a_adversarial_smoke_targets_blond_hair(tmp_path):
  # Random networks, thresholded at their median, stand in for a discovery run: tau_d with both
  # classes, whatever the mock faces.
  workdir = str(tmp_path / "adversarial")
  config = _run("celeb_a_adversarial.py:smoke", workdir,
                "--config.adversarial.source=random_network", *MLP_LEARNERS,
                "--config.adversarial.random_network.name=mlp",
                "--config.adversarial.random_network.mlp_widths=(8,)", num_mock=NUM_MOCK_FACES)
  assert config.adversarial.target_tasks == (9,) and not config.adversarial.include_kway
  section = _report(workdir)["adversarial"]
  assert section["splits"]
  for split in section["splits"]:
    assert split["target"] == 9 and split["target_name"] == "Blond_Hair"
    assert split["train_size"] + split["test_size"] == config.data.num_images
    assert 0.0 <= split["adversarial_accuracy"] <= 1.0
    assert split["kway_adversarial_accuracy"] is None
  assert os.path.getsize(os.path.join(workdir, "adversarial_accuracy.png")) > 0
