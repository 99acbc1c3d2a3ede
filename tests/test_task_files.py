"""Task files of the original (`discovered.csv`, `agreement_table.csv`) and named task selection:
rows matched to the dataset's images, columns picked by name, reference AS read and compared."""

import numpy as np
import pytest

from task_discovery import config as config_lib
from task_discovery.data import datasets
from task_discovery.data import tasks
from task_discovery.run import report


def _write_csv(path, header, rows):
  with open(path, "w") as f:
    f.write(",".join(header) + "\n")
    for row in rows:
      f.write(",".join(str(v) for v in row) + "\n")


def test_original_csv_rows_are_source_images_picked_by_source_index(tmp_path):
  path = str(tmp_path / "discovered.csv")
  labels = np.random.default_rng(0).integers(0, 2, (3, 10))
  _write_csv(path, ["", "mlp-0", "mlp-1", "vit-0"],
             [[i] + labels[:, i].tolist() for i in range(10)])
  source_index = np.asarray([7, 2, 9, 0])  # a 4-image dataset, in its own order
  names, got = tasks.load_task_file(path, 4, source_index=source_index)
  assert names == ["mlp-0", "mlp-1", "vit-0"]
  np.testing.assert_array_equal(got, labels[:, source_index])
  # The whole split in another order: same row count, still matched by source index.
  perm = np.random.default_rng(1).permutation(10)
  np.testing.assert_array_equal(tasks.load_task_file(path, 10, source_index=perm)[1],
                                labels[:, perm])
  with pytest.raises(ValueError, match="source split in the source's order"):
    tasks.load_task_file(path, 4)  # no source index to match the rows with


def test_this_librarys_csv_keeps_the_dataset_order(tmp_path):
  prefix = str(tmp_path / "tasks")
  labels = np.asarray([[0, 1, 1, 0], [1, 1, 0, 0]])
  tasks.save_task_labels(prefix, labels)
  names, got = tasks.load_task_file(prefix + ".csv", 4, source_index=np.asarray([3, 2, 1, 0]))
  assert names == ["task_0", "task_1"]
  np.testing.assert_array_equal(got, labels)  # an image_index column: the dataset's order


def test_select_tasks_by_index_name_and_pattern():
  names = ["resnet18-0", "resnet18-1", "mlp-0", "vit-3"]
  labels = np.arange(4)[:, None] * np.ones((1, 5), int)
  ids, picked, rows = tasks.select_tasks(names, labels, ("mlp-0", "resnet18-*", 3),
                                         field="eval.labels_columns", what="f")
  assert list(ids) == [2, 0, 1, 3] and picked == ["mlp-0", "resnet18-0", "resnet18-1", "vit-3"]
  np.testing.assert_array_equal(rows[:, 0], [2, 0, 1, 3])
  assert len(tasks.select_tasks(names, labels, (), field="x", what="f")[0]) == 4
  with pytest.raises(ValueError, match="'convnext-\\*' names no task of f"):
    tasks.select_tasks(names, labels, ("convnext-*",), field="x", what="f")
  with pytest.raises(ValueError, match="index 4 is out of range"):
    tasks.select_tasks(names, labels, (4,), field="x", what="f")


def test_task_names_in_the_config_are_validated():
  c = config_lib.base()
  c.adversarial.target_tasks = ("resnet18-*", 0)
  c.eval.labels_columns = ("mlp-1",)
  config_lib.validate(c)
  c.eval.labels_columns = (-1,)
  with pytest.raises(ValueError, match="eval.labels_columns"):
    config_lib.validate(c)


def test_source_index_reads_tfds_ids_and_falls_back_to_records():
  records = np.asarray([5, 6, 7])
  np.testing.assert_array_equal(
      datasets._source_index([b"train_00012", "train_00003", "train_49999"], records),
      [12, 3, 49999])
  np.testing.assert_array_equal(datasets._source_index(["x1", "train_1", "train_2"], records),
                                records)  # not every id is a number
  np.testing.assert_array_equal(datasets._source_index([None] * 3, records), records)
  np.testing.assert_array_equal(datasets._source_index(["a_1", "b_1", "c_2"], records),
                                records)  # not distinct


def test_reference_table_of_the_original_and_the_comparison(tmp_path):
  path = str(tmp_path / "agreement_table.csv")
  _write_csv(path, ["task_idx", "task", "as"], [[0, "resnet18", 0.9], [3, "mlp", 0.5]])
  table = report.read_reference_table(path)
  assert table == {"resnet18-0": 0.9, "mlp-3": 0.5}
  entries = [{"family": "file", "name": "mlp-3", "agreement": 0.6},
             {"family": "human", "agreement": 0.7},
             {"family": "file", "name": "vit-1", "agreement": 0.8}]
  section = report.compare_with_reference(entries, table, path)
  assert section["num_tasks"] == 1 and section["tasks"][0]["name"] == "mlp-3"
  assert section["mean_difference"] == pytest.approx(0.1)
  lines = report.format_reference(section)
  assert "mlp-3" in lines[2] and "+0.1000" in lines[2]
  bad = str(tmp_path / "bad.csv")
  _write_csv(bad, ["task", "score"], [["a", 1]])
  with pytest.raises(ValueError, match="expected task_idx,task,as"):
    report.read_reference_table(bad)
  with pytest.raises(FileNotFoundError, match="eval.reference_file"):
    report.read_reference_table(str(tmp_path / "none.csv"))
