"""Tests for task_discovery.metric_writers: scalar flattening, JSON lines, TensorBoard files."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from task_discovery.run import metric_writers


def test_scalars_flattens_as_documented():
  out = metric_writers.scalars({
      'loss': np.float32(0.25),
      'one': np.array([[3.0]]),
      'jax': jnp.asarray(2.0),
      'step_int': 7,
      'per_task': np.array([1.0, 2.0, 6.0]),
      'grid': np.array([[1.0, 2.0], [3.0, 4.0]]),
  })
  expected = {
      'loss': 0.25, 'one': 3.0, 'jax': 2.0, 'step_int': 7.0,
      'per_task': 3.0, 'per_task/0': 1.0, 'per_task/1': 2.0, 'per_task/2': 6.0,
      'grid': 2.5, 'grid/0': 1.0, 'grid/1': 2.0, 'grid/2': 3.0, 'grid/3': 4.0,  # row-major
  }
  assert out == pytest.approx(expected)
  assert set(out) == set(expected)
  assert all(type(v) is float for v in out.values())  # JSON-serialisable Python floats


def test_scalars_large_arrays_give_only_the_mean():
  out = metric_writers.scalars({'at_limit': np.arange(64.0), 'big': np.arange(65.0)})
  assert out['at_limit'] == pytest.approx(31.5)
  assert 'at_limit/63' in out and 'at_limit/64' not in out
  assert out['big'] == pytest.approx(32.0)
  assert not any(k.startswith('big/') for k in out)


def test_metric_writer_jsonl_round_trip_and_append(tmp_path):
  workdir = str(tmp_path)
  writer = metric_writers.MetricWriter(workdir)
  returned = writer.write(0, {'loss': 1.5, 'agreement': np.array([0.5, 0.75])})
  writer.write(np.int64(10), {'loss': jnp.asarray(0.5)})
  writer.close()
  assert returned == pytest.approx({'loss': 1.5, 'agreement': 0.625, 'agreement/0': 0.5,
                                    'agreement/1': 0.75})
  path = os.path.join(workdir, 'metrics.jsonl')
  records = metric_writers.read_jsonl(path)
  assert records == [
      {'step': 0, 'loss': 1.5, 'agreement': 0.625, 'agreement/0': 0.5, 'agreement/1': 0.75},
      {'step': 10, 'loss': 0.5},
  ]
  # One JSON object per line.
  with open(path) as f:
    lines = f.read().splitlines()
  assert len(lines) == 2 and json.loads(lines[1]) == {'step': 10, 'loss': 0.5}

  # A resumed run appends to the same file instead of truncating it.
  writer = metric_writers.MetricWriter(workdir)
  writer.write(20, {'loss': 0.25})
  writer.close()
  records = metric_writers.read_jsonl(path)
  assert [r['step'] for r in records] == [0, 10, 20]
  assert records[-1]['loss'] == 0.25


def test_metric_writer_creates_tensorboard_events(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path))
  writer.write(1, {'loss': 2.0})
  writer.close()
  tb_dir = tmp_path / 'tensorboard'
  assert tb_dir.is_dir()
  events = [p for p in tb_dir.iterdir() if p.name.startswith('events.out.tfevents')]
  assert events and events[0].stat().st_size > 0


def test_disabled_writer_writes_nothing(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path), enabled=False)
  assert writer.write(3, {'loss': np.array([1.0, 3.0])}) == pytest.approx(
      {'loss': 2.0, 'loss/0': 1.0, 'loss/1': 3.0})
  writer.close()
  assert list(tmp_path.iterdir()) == []


def test_read_jsonl_skips_blank_lines(tmp_path):
  path = tmp_path / 'm.jsonl'
  path.write_text('{"step": 1, "a": 2.0}\n\n{"step": 2, "a": 3.0}\n')
  assert metric_writers.read_jsonl(str(path)) == [{'step': 1, 'a': 2.0}, {'step': 2, 'a': 3.0}]
