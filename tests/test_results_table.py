"""experiments/results_table.py: rows from the spread over seeds and from single runs."""

import json

import pytest

from experiments import results_table
from task_discovery.run import seeds


def _write(path, report):
  path.mkdir()
  (path / "report.json").write_text(json.dumps(report))


def test_a_seeds_report_gives_mean_and_interval(tmp_path):
  values = [0.98, 0.99, 0.97]
  spread = seeds.spread(values)
  _write(tmp_path / "runs", {"seeds": [0, 1, 2], "workdirs": [], "confidence": 0.95,
                              "metrics": {"summary.discovered.mean_as": spread}})
  row = results_table.row(str(tmp_path / "runs"))
  lo, hi = spread["ci95"]
  assert f"discovered AS 0.980 ({lo:.3f}-{hi:.3f})" in row
  assert "| 3 |" in row


def test_a_single_run_gives_its_value_and_an_adversarial_run_its_accuracies(tmp_path):
  _write(tmp_path / "one", {"summary": {"human": {"mean_as": 0.9876}}})
  assert "human AS 0.988" in results_table.row(str(tmp_path / "one"))
  _write(tmp_path / "adv", {"adversarial": {"summary": {"mean_adversarial_accuracy": 0.2,
                                                         "mean_random_accuracy": 0.97}}})
  row = results_table.row(str(tmp_path / "adv"))
  assert "adversarial split accuracy 0.200" in row and "random split accuracy 0.970" in row


def test_a_missing_report_names_the_file_and_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="report.json does not exist: run the job"):
    results_table.read_metrics(str(tmp_path / "nothing"))
