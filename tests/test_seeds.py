"""Tests for task_discovery.seeds: the spread over seeds by hand, and a multi-seed command."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from task_discovery.run import seeds
from task_discovery.run import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Student-t quantiles t_{0.975, k} from a table (k degrees of freedom).
T975 = {1: 12.706204736174707, 2: 4.302652729911275}


def test_spread_of_three_seeds_by_hand():
  values = [0.983, 0.992, 0.981]  # the discovered mean AS of seeds 0, 1, 2
  s = seeds.spread(values)
  mean = (0.983 + 0.992 + 0.981) / 3
  std = math.sqrt(((0.983 - mean)**2 + (0.992 - mean)**2 + (0.981 - mean)**2) / 2)
  half = T975[2] * std / math.sqrt(3)
  assert s["values"] == values and s["num_seeds"] == 3
  np.testing.assert_allclose(s["mean"], mean, rtol=1e-12)
  np.testing.assert_allclose(s["std"], std, rtol=1e-12)
  np.testing.assert_allclose(s["ci95"], [mean - half, mean + half], rtol=1e-12)
  np.testing.assert_allclose(s["mean"], 0.985333333, rtol=1e-8)
  np.testing.assert_allclose(half, 0.014556, rtol=1e-4)  # 4.3027 * 0.0058595 / 1.7321


def test_spread_of_two_seeds_and_of_one():
  s = seeds.spread([1.0, 3.0])  # mean 2, std sqrt(2), half-width t * sqrt(2) / sqrt(2) = t
  np.testing.assert_allclose(s["std"], math.sqrt(2), rtol=1e-12)
  np.testing.assert_allclose(s["ci95"], [2 - T975[1], 2 + T975[1]], rtol=1e-12)
  one = seeds.spread([0.5])
  assert one["mean"] == 0.5 and one["std"] is None and one["ci95"] is None  # not estimable


def test_aggregate_keeps_numbers_every_seed_has():
  reports = {
      0: {"summary": {"human": {"mean_as": 0.9, "num_tasks": 4}}, "tasks": [{"agreement": 1.0}],
          "similarity": {"mean_folded_agreement": 0.6, "max_folded_agreement": float("nan")},
          "flag": True, "only_here": 1.0},
      1: {"summary": {"human": {"mean_as": 0.8, "num_tasks": 4}}, "tasks": [],
          "similarity": {"mean_folded_agreement": 0.7, "max_folded_agreement": 0.9},
          "flag": False},
  }
  agg = seeds.aggregate(reports)
  assert agg["seeds"] == [0, 1]
  assert set(agg["metrics"]) == {"summary.human.mean_as", "summary.human.num_tasks",
                                 "similarity.mean_folded_agreement"}
  np.testing.assert_allclose(agg["metrics"]["summary.human.mean_as"]["mean"], 0.85)
  assert agg["metrics"]["summary.human.mean_as"]["values"] == [0.9, 0.8]
  assert agg["metrics"]["summary.human.num_tasks"]["std"] == 0.0
  text = seeds.format_summary(agg)
  assert "over seeds 0, 1" in text and "summary.human.mean_as: mean 0.8500" in text
  assert "seeds 0.9000 / 0.8000" in text


@pytest.mark.parametrize("text,message", [("", "no seed"), ("0,x", "comma-separated integers"),
                                          ("1,1", "distinct"), ("-1", "distinct and >= 0")])
def test_parse_seeds_errors(text, message):
  with pytest.raises(ValueError, match=message):
    seeds.parse_seeds(text)


def test_parse_seeds():
  assert seeds.parse_seeds("0,1, 2") == (0, 1, 2)
  assert workdir_lib.Workdir("runs/x").seed(2).path == os.path.join("runs/x", "seed_2")


def test_agreement_job_over_two_seeds_from_the_command_line(tmp_path):
  workdir = str(tmp_path / "run")
  cmd = [sys.executable, "-m", "task_discovery.main", "--config=configs/digits.py:smoke",
         f"--workdir={workdir}", "--seeds=0,1", "--config.job=agreement",
         "--config.eval.num_human_tasks=2", "--config.eval.num_random_tasks=2",
         "--config.eval.num_epochs=1",
         "--config.compilation_cache.enabled=False"]  # tests never write the user's cache
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "over seeds 0, 1" in out.stdout and "summary.random.mean_as: mean" in out.stdout
  with open(os.path.join(workdir, "report.json")) as f:
    agg = json.load(f)
  assert agg["seeds"] == [0, 1] and agg["workdirs"] == {"0": "seed_0", "1": "seed_1"}
  per_seed = []
  for seed in (0, 1):
    with open(os.path.join(workdir, f"seed_{seed}", "config.json")) as f:
      assert json.load(f)["seed"] == seed
    with open(os.path.join(workdir, f"seed_{seed}", "report.json")) as f:
      per_seed.append(json.load(f)["summary"]["random"]["mean_as"])
  random_as = agg["metrics"]["summary.random.mean_as"]
  assert random_as["values"] == per_seed
  assert per_seed[0] != per_seed[1]  # the seed reaches the random tasks and the learners
  np.testing.assert_allclose(random_as["mean"], np.mean(per_seed), rtol=1e-12)
  np.testing.assert_allclose(random_as["std"], np.std(per_seed, ddof=1), rtol=1e-12)
  assert os.path.getsize(os.path.join(workdir, "agreement_over_seeds.png")) > 0
