"""The experiment scripts end to end at --scale=smoke on digits, through their `main(argv)`.

One smoke discovery run (from `as_families`) is shared as the source of the cross-architecture
and adversarial experiments, so the whole module runs four short discover jobs.
"""

import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # `experiments` is a directory of scripts, not an installed package

from experiments import adversarial_vs_random  # noqa: E402
from experiments import architecture_pairs  # noqa: E402
from experiments import as_families  # noqa: E402
from experiments import batch_norm_labels  # noqa: E402
from experiments import common  # noqa: E402
from experiments import cross_architecture  # noqa: E402
from experiments import sweep_tasks_and_diversity  # noqa: E402
from experiments import task_sheets  # noqa: E402

DIGITS = os.path.join(ROOT, "configs", "digits.py")
DIGITS_ADVERSARIAL = os.path.join(ROOT, "configs", "digits_adversarial.py")
# conftest.py simulates 8 CPU devices; one is faster for these tiny runs on 2 cores.
SMOKE = ["--scale=smoke", "--set", "mesh.num_devices=1"]
NUM_TASKS = common.load_config(DIGITS, "smoke").task.num_tasks  # d of the smoke discovery run
NUM_HUMAN = common.SMOKE_OVERRIDES["eval.num_human_tasks"]


def read(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def families(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("as_families"))
  summary = as_families.main(["--config", DIGITS, "--out", out] + SMOKE)
  return out, summary


# ------------------------------------------------------------------------------------ common


def test_overrides_parse_against_the_field_type():
  config = common.load_config(DIGITS, "smoke")
  assert config.meta.num_steps == common.SMOKE_OVERRIDES["meta.num_steps"]
  common.apply_overrides(config, ["task.diversity_coef=25", "learner.name=cnn",
                                  "inner.random_init=true", "adversarial.target_tasks=0,11",
                                  "adversarial.discovered_tasks=3", "eval.labels_file=1.npz"])
  assert config.task.diversity_coef == 25.0 and config.learner.name == "cnn"
  assert config.inner.random_init is True
  assert config.adversarial.target_tasks == (0, 11)
  assert config.adversarial.discovered_tasks == (3,)
  assert config.eval.labels_file == "1.npz"
  with pytest.raises(KeyError, match="task.num_task"):
    common.apply_overrides(config, ["task.num_task=3"])
  with pytest.raises(ValueError, match="KEY=VALUE"):
    common.apply_overrides(config, ["task.num_tasks"])
  with pytest.raises(ValueError, match="inner.remat"):
    common.apply_overrides(config, ["inner.remat=maybe"])


def test_config_spec_argument_and_missing_file(tmp_path):
  full = common.load_config(DIGITS, "cpu")
  assert common.load_config(DIGITS + ":smoke", "cpu").meta.num_steps < full.meta.num_steps
  for key, value in common.SMOKE_OVERRIDES.items():
    section, field = key.split(".")
    assert common.load_config(DIGITS, "smoke")[section][field] == value, key
  with pytest.raises(FileNotFoundError, match="repository root"):
    common.load_config(str(tmp_path / "nope.py"), "cpu")


def test_markdown_table():
  table = common.markdown_table(["a", "b"], [["x", 0.12345], ["y", None]])
  assert table.splitlines() == ["| a | b |", "| --- | --- |", "| x | 0.123 |", "| y | - |"]


# ------------------------------------------------------------------------------- experiments


def test_as_families(families):
  out, summary = families
  assert set(summary["families"]) == {"discovered", "human", "random"}
  assert summary["families"]["human"]["num_tasks"] == NUM_HUMAN
  assert summary["families"]["discovered"]["num_tasks"] == NUM_TASKS
  assert sorted(summary["ordering"].split(" > ")) == ["discovered", "human", "random"]
  assert read(os.path.join(out, "as_families.json"))["families"] == summary["families"]
  for name in ("as_families.md", "agreement_histogram.png"):
    assert os.path.getsize(os.path.join(out, name)) > 0, name


def test_as_families_reuses_a_finished_workdir(families, tmp_path):
  out, first = families
  summary = as_families.main(["--config", DIGITS, "--out", str(tmp_path),
                              "--workdir", first["workdir"]] + SMOKE)
  assert summary["families"] == first["families"]


def test_sweep_has_one_row_per_grid_point(tmp_path):
  out = str(tmp_path)
  summary = sweep_tasks_and_diversity.main(["--config", DIGITS, "--out", out] + SMOKE)
  grid_d, grid_coef = sweep_tasks_and_diversity.GRIDS["smoke"]
  assert len(summary["rows"]) == len(grid_d) * len(grid_coef) == 2
  assert [(r["num_tasks"], r["diversity_coef"]) for r in summary["rows"]] == [
      (d, c) for d in grid_d for c in grid_coef]
  for r in summary["rows"]:
    assert 0.0 <= r["mean_as"] <= 1.0 and 0.5 <= r["mean_folded_agreement"] <= 1.0
    assert r["meta_steps"] == common.SMOKE_OVERRIDES["meta.num_steps"]
    report = read(os.path.join(out, r["workdir"], "report.json"))
    assert report["summary"]["discovered"]["num_tasks"] == r["num_tasks"]
  table = open(os.path.join(out, "sweep_tasks_and_diversity.md")).read().splitlines()
  assert len(table) == 2 + len(summary["rows"])
  assert os.path.getsize(os.path.join(out, "sweep_tasks_and_diversity.png")) > 0
  # Resumable: a rerun reuses every finished point without training.
  mtime = os.path.getmtime(os.path.join(out, "d2_coef5", "report.json"))
  again = sweep_tasks_and_diversity.main(["--config", DIGITS, "--out", out] + SMOKE)
  assert again["rows"] == summary["rows"]
  assert os.path.getmtime(os.path.join(out, "d2_coef5", "report.json")) == mtime
  # ... but a finished point of another config is an error, not silently reused.
  with pytest.raises(ValueError, match="another config"):
    sweep_tasks_and_diversity.main(["--config", DIGITS, "--out", out, "--num_tasks=2",
                                    "--diversity_coefs=5", "--set", "inner.learning_rate=0.2"]
                                   + SMOKE)


def test_cross_architecture_table_is_source_by_eval_arch(families, tmp_path):
  _, first = families
  out = str(tmp_path)
  summary = cross_architecture.main(["--config", DIGITS, "--out", out,
                                     "--source", "mlp=" + first["workdir"]] + SMOKE)
  eval_archs = list(cross_architecture.SCALES["smoke"][1])
  assert summary["eval_archs"] == eval_archs == ["mlp", "cnn"]
  assert list(summary["mean_as"]) == ["mlp"]
  assert list(summary["mean_as"]["mlp"]) == eval_archs
  for family in ("human", "random"):
    assert list(summary["baselines"][family]) == eval_archs
  for arch in eval_archs:
    assert 0.0 <= summary["mean_as"]["mlp"][arch] <= 1.0
    report = read(os.path.join(summary["jobs"]["mlp"][arch], "report.json"))
    assert report["summary"]["file"]["num_tasks"] == NUM_TASKS
    assert report["summary"]["human"]["num_tasks"] == NUM_HUMAN
  table = open(os.path.join(out, "cross_architecture.md")).read().splitlines()
  assert table[0] == "| tasks \\ evaluated with | mlp | cnn |"
  assert len(table) == 2 + 1 + 2  # one source row, then the human and random baselines
  assert os.path.getsize(os.path.join(out, "cross_architecture.png")) > 0


def test_adversarial_vs_random(families, tmp_path):
  _, first = families
  out = str(tmp_path)
  summary = adversarial_vs_random.main(["--config", DIGITS_ADVERSARIAL, "--out", out,
                                        "--discovery_workdir", first["workdir"]] + SMOKE)
  run = summary["runs"]["discovery"]
  assert run["summary"]["num_splits"] >= 1
  for key in ("mean_adversarial_accuracy", "mean_random_accuracy",
              "mean_kway_adversarial_accuracy", "mean_kway_random_accuracy"):
    assert 0.0 <= run["summary"][key] <= 1.0, key
  assert {r["target"] for r in summary["rows"]} <= {"all", 0, 11}
  assert summary["rows"][0]["target"] == "all"
  for name in ("adversarial_vs_random.md", "adversarial_vs_random.json",
               "adversarial_vs_random.png", "adversarial_accuracy_discovery.png"):
    assert os.path.getsize(os.path.join(out, name)) > 0, name


def test_task_sheets_draw_one_panel_per_source(families, tmp_path):
  _, first = families
  out = str(tmp_path / "sheets.png")
  task_sheets.main(["--source", "A=" + first["workdir"], "--source", "B=" + first["workdir"],
                    "--out", out, "--per_side", "2"])
  from matplotlib import image  # pylint: disable=import-outside-toplevel
  one = str(tmp_path / "one.png")
  task_sheets.main(["--source", "A=" + first["workdir"], "--out", one, "--per_side", "2"])
  # Two panels of 2 + 1 + 2 columns and a gap column against one panel: about twice as wide.
  width_two, width_one = image.imread(out).shape[1], image.imread(one).shape[1]
  assert 1.8 < width_two / width_one < 2.6


def test_batch_norm_labels_compare_the_modes_and_the_batches(families, tmp_path):
  _, first = families
  out = str(tmp_path / "bn.json")
  (small,) = batch_norm_labels.main([first["workdir"], "--batch_size=64", "--out", out])
  (whole,) = batch_norm_labels.main([first["workdir"], "--batch_size=100000"])
  assert read(out)[0]["running_vs_batch"] == small["running_vs_batch"]
  assert len(small["running_vs_batch_per_task"]) == small["num_tasks"] == NUM_TASKS
  assert small["running_vs_batch"] == pytest.approx(np.mean(small["running_vs_batch_per_task"]))
  # One batch of all the images has the same statistics in any order: the orders agree (up to
  # a label on the boundary); batches of 64 are other statistics.
  assert whole["batch_orders_differ"] <= 0.002 < small["batch_orders_differ"]


def test_architecture_pairs_average_seeds_per_task_then_take_the_interval_over_tasks(tmp_path):
  # Two seeds, three discovered tasks and two human ones, scored by cnn and mlp learners.
  scores = {("cnn", 0): [0.90, 0.80, 0.70], ("mlp", 0): [0.85, 0.80, 0.60],
            ("cnn", 1): [0.92, 0.82, 0.72], ("mlp", 1): [0.85, 0.78, 0.64]}
  for (arch, seed), values in scores.items():
    path = tmp_path / f"seed_{seed}" / f"eval_{arch}" / "cnn"
    path.mkdir(parents=True)
    tasks = [{"family": "file", "index": i, "agreement": v} for i, v in enumerate(values)]
    tasks += [{"family": "human", "index": i, "agreement": 0.9} for i in (0, 11)]
    (path / "report.json").write_text(json.dumps({"tasks": tasks}))
  found, human, relative = architecture_pairs.main([str(tmp_path), "--source=cnn",
                                                    "--own=cnn", "--other=mlp"])
  per_task = np.asarray([0.06, 0.02, 0.09])  # each task's difference, mean over the seeds
  assert found["per_task"] == pytest.approx(per_task.tolist())
  mean, half = 0.17 / 3, 4.302653 * per_task.std(ddof=1) / np.sqrt(3)  # t(0.975, 2 df)
  assert found["interval"] == pytest.approx([mean - half, mean + half], abs=1e-6)
  assert mean - half < 0 and not found["decided"]  # 3 tasks this spread apart decide nothing
  assert found["seeds"] == 2 and found["tasks"] == 3
  assert human["mean_difference"] == 0 and human["decided"]  # width 0 < 0.01
  # Against the human tasks (no spread): Welch's interval is the discovered tasks' own.
  assert relative["interval"] == pytest.approx(found["interval"], abs=1e-6)
  assert read(tmp_path / "architecture_pairs.json")[0]["mean_difference"] == pytest.approx(mean)


# ------------------------------------------------------------------------------------- seeds


def test_argv_for_one_seed_reads_multi_seed_directories(tmp_path):
  multi = tmp_path / "discover"
  (multi / "seed_1").mkdir(parents=True)
  argv = ["--config", DIGITS, "--out", "o", "--seeds=0,1", f"--workdir={multi}",
          "--source", f"mlp={multi}", "--set", "task.num_tasks=2"]
  assert common._for_seed(argv, "o", 1) == [
      "--config", DIGITS, f"--workdir={multi}/seed_1", "--source", f"mlp={multi}/seed_1",
      "--set", "task.num_tasks=2", "--out=o/seed_1", "--set", "seed=1"]
  assert common._for_seed(argv, "o", 0)[2] == f"--workdir={multi}"  # no seed_0 there


def test_as_families_over_two_seeds(tmp_path):
  out = str(tmp_path)
  summary = as_families.main(["--config", DIGITS, "--out", out, "--seeds=0,1"] + SMOKE)
  per_seed = [read(os.path.join(out, f"seed_{s}", "as_families.json")) for s in (0, 1)]
  assert [read(os.path.join(p["workdir"], "config.json"))["seed"] for p in per_seed] == [0, 1]
  key = "families.random.mean_as"
  values = [p["families"]["random"]["mean_as"] for p in per_seed]
  assert summary["seeds"] == [0, 1] and summary["metrics"][key]["values"] == values
  assert read(os.path.join(out, "as_families.json"))["metrics"][key]["values"] == values
  table = open(os.path.join(out, "as_families.md")).read()
  assert f"| {key} |" in table and "95% interval" in table
  assert "families.human.num_tasks" not in table  # a count, not a result
  assert os.path.getsize(os.path.join(out, "agreement_over_seeds.png")) > 0
