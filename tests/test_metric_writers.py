"""Tests for task_discovery.metric_writers: scalar flattening, JSON lines, TensorBoard files."""
import errno
import json
import os
import struct
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from task_discovery.run import metric_writers
from tensorboardX.proto.event_pb2 import Event, SessionLog


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


def read_events(tb_dir):
  """Every event of the event files in `tb_dir`, file by file in name order (TensorBoard's)."""
  files = []
  for name in sorted(os.listdir(tb_dir)):
    with open(os.path.join(tb_dir, name), 'rb') as f:
      data = f.read()
    events, i = [], 0
    while i < len(data):  # TFRecord: length, its crc, the record, its crc
      (n,) = struct.unpack('<Q', data[i:i + 8])
      events.append(Event.FromString(data[i + 12:i + 12 + n]))
      i += 12 + n + 4
    files.append(events)
  return files


def scalar_events(events):
  return [(e.step, v.tag, v.simple_value) for e in events for v in e.summary.value]


def test_tensorboard_scalars_match_the_jsonl_and_a_resume_purges_later_steps(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path))
  for step in (1, 2, 3):
    writer.write(step, {'loss': float(step), 'pair': np.array([0.5, 1.5])})
  writer.close()
  # Resumed from the checkpoint of step 2 (at once: the two files must not share a name).
  writer = metric_writers.MetricWriter(str(tmp_path), resume_step=2)
  writer.write(3, {'loss': 30.0, 'pair': np.array([0.0, 1.0])})
  writer.close()

  first, second = read_events(tmp_path / 'tensorboard')
  assert scalar_events(first) == [
      (step, tag, value) for step in (1, 2, 3)
      for tag, value in (('loss', step), ('pair', 1.0), ('pair/0', 0.5), ('pair/1', 1.5))]
  starts = [e for e in second if e.HasField('session_log')]
  assert [(e.step, e.session_log.status) for e in starts] == [(3, SessionLog.START)]
  assert second.index(starts[0]) < min(i for i, e in enumerate(second) if e.summary.value)
  assert scalar_events(second) == [(3, 'loss', 30.0), (3, 'pair', 0.5), (3, 'pair/0', 0.0),
                                   (3, 'pair/1', 1.0)]
  assert [r['step'] for r in metric_writers.read_jsonl(tmp_path / 'metrics.jsonl')] == [1, 2, 3]


def test_missing_tensorboardx_is_an_error_naming_the_fix(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorboardX', None)  # as if it were not installed
  with pytest.raises(ImportError) as e:
    metric_writers.MetricWriter(str(tmp_path))
  message = str(e.value)
  assert 'tensorboardX' in message and 'pip install tensorboardX' in message
  assert str(tmp_path / 'tensorboard') in message
  assert list(tmp_path.iterdir()) == []  # failed before writing anything
  # A writer of another process writes nothing and needs no TensorBoard.
  metric_writers.MetricWriter(str(tmp_path), enabled=False).close()


def test_full_tensorboard_disk_raises_with_the_folder_instead_of_hanging(tmp_path):
  """tensorboardX's background writer thread died on a full disk and the next scalars then
  blocked for ever; the events are now written in the caller, which gets the error."""
  tb_dir = str(tmp_path / 'tensorboard')
  os.makedirs(tb_dir)
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', tb_dir],
                    capture_output=True, check=False).returncode != 0:
    pytest.skip('a tmpfs can not be mounted here (needs root)')
  try:
    with open(os.path.join(tb_dir, 'filler'), 'wb', buffering=0) as f:
      with pytest.raises(OSError):
        while True:
          f.write(b'\0' * 4096)
    writer = metric_writers.MetricWriter(str(tmp_path))
    with pytest.raises(OSError) as e:
      writer.write(1, {'loss': 1.0})
    assert e.value.errno == errno.ENOSPC and e.value.filename == tb_dir
    writer.close()  # the error was raised once: closing does not raise it again
    # metrics.jsonl, on another disk, has the record.
    assert metric_writers.read_jsonl(tmp_path / 'metrics.jsonl') == [{'step': 1, 'loss': 1.0}]
  finally:
    subprocess.run(['umount', '-l', tb_dir], check=False)


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
