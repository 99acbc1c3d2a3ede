"""Faults injected into a workdir: damaged checkpoints, two runs at once, a config changed on
resume, bad inputs, failed writes. Each test asserts the message and that nothing saved is lost.

Tiny digits runs as in test_discovery.py; a trained workdir (checkpoints at steps 2 and 4) is
made once and copied into each test that damages it.
"""

import contextlib
import errno
import glob
import gzip
import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags
from ml_collections import config_flags

import task_discovery
from task_discovery import main as main_lib
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.data import inputs
from task_discovery.data import tasks
from task_discovery.jobs import discovery
from task_discovery.method import meta
from task_discovery.run import checkpoints
from task_discovery.run import metric_writers
from task_discovery.run import report as report_lib
from task_discovery.run import workdir as workdir_lib
from test_discovery import poison_meta_step
from test_discovery import tiny_config
from test_discovery import train_only


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A workdir trained to step 4 (checkpoints at 2 and 4), through run_job's config check."""
  workdir = str(tmp_path_factory.mktemp("trained") / "w")
  config = tiny_config(4)
  config.eval.evaluate_discovered = False
  workdir_lib.prepare(workdir)
  report_lib.write_config(workdir, config)
  train_only(config, workdir)
  return workdir


@pytest.fixture
def workdir(trained, tmp_path):
  copy = str(tmp_path / "w")
  shutil.copytree(trained, copy)
  return copy


def data_files(workdir, step):
  """The array data files of a step, smallest first.

  Orbax writes them under `state/ocdbt.process_N/d/` and may merge them into `state/d/` when
  it finalises a save, so both layouts are searched; an empty result fails the test at once
  (a fault that damages nothing would make the test pass or fail for the wrong reason).
  """
  files = sorted(glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**", "d",
                                        "*"), recursive=True), key=os.path.getsize)
  assert files, f"no array data files found under step {step} of {workdir}"
  return files


def state_files(workdir, step):
  return sorted((p for p in glob.glob(os.path.join(workdir, "checkpoints", str(step), "state",
                                                   "**"), recursive=True) if os.path.isfile(p)),
                key=os.path.getsize)


def flip_bytes(path, count=16, places=8):
  """Inverts `count` bytes at `places` evenly spread offsets of the file.

  One place is not enough: orbax's async writers lay chunks out in a data file in a varying
  order, so a single offset sometimes falls between the chunks that a restore reads.
  """
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    for place in range(places):
      start = len(data) * (2 * place + 1) // (2 * places)
      for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    f.seek(0)
    f.write(data)


def flip_step(workdir, step):
  """Damages every array data file of a checkpoint step; returns {path: damaged bytes}."""
  damaged = {}
  for path in data_files(workdir, step):
    flip_bytes(path)
    with open(path, "rb") as f:
      damaged[path] = f.read()
  return damaged


def abstract_state(config):
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
                      jax.eval_shape(meta.make_meta_step(encoder, learner, config).init,
                                     jax.random.key(0)).to_checkpoint())


def rewrite_step(workdir, step, change_state, payload_of):
  """Replaces checkpoint `step` by `change_state(state)` saved with `payload_of(new, old_meta)`."""
  mgr = checkpoints.manager(workdir)
  restored = mgr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state(tiny_config())),
      meta=ocp.args.JsonRestore()))
  state, payload = restored["state"], restored["meta"]
  mgr.delete(step)
  new = change_state(state)
  mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(new),
                                         meta=ocp.args.JsonSave(payload_of(new, payload))))
  mgr.wait_until_finished()
  mgr.close()


# ----------------------------------------------------------------------- checkpoint integrity


def test_flipped_bytes_in_latest_checkpoint_resume_from_newest_intact_step(workdir, caplog):
  damaged = flip_step(workdir, 4)
  with caplog.at_level(logging.WARNING):
    state, rows = train_only(tiny_config(6), workdir)
  assert int(state.step) == 6
  assert "resuming from checkpoint step 2, the newest intact one: step 4 is damaged" in caplog.text
  # Nothing deleted: the damaged step is kept, byte for byte, beside the workdir's checkpoints.
  for path, damaged_bytes in damaged.items():
    kept = os.path.join(workdir, workdir_lib.CORRUPT_DIR, "4", os.path.relpath(
        path, os.path.join(workdir, "checkpoints", "4")))
    with open(kept, "rb") as f:
      assert f.read() == damaged_bytes
  assert checkpoints.manager(workdir).all_steps() == [2, 4, 6]
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # steps 3-4 redone, logged once


def test_load_refuses_a_damaged_step_and_names_the_others(workdir):
  flip_step(workdir, 4)
  with pytest.raises(checkpoints.CheckpointCorruptError,
                     match=r"step 4 .*(corrupt|could not be restored).*step=S\) for S in \[2\]"):
    task_discovery.load(workdir)
  assert task_discovery.load(workdir, step=2).step == 2
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "4"))  # load() moves nothing


def test_changed_array_values_fail_their_checksum(workdir):
  def perturb(state):
    return {**state, "directions": state["directions"] + 1e-3}
  rewrite_step(workdir, 4, perturb, lambda new, old: old)  # old checksums, new values
  with pytest.raises(checkpoints.CheckpointCorruptError,
                     match=r"step 4 .*1 of \d+ arrays differ .*\['directions'\]"):
    task_discovery.load(workdir)


def test_restored_non_finite_values_are_refused(workdir):
  def poison(state):
    return {**state, "directions": state["directions"] * jnp.nan}
  # Valid checksums of the NaN state: only the finiteness check can catch it.
  rewrite_step(workdir, 4, poison,
               lambda new, old: checkpoints.with_checksums(
                   new, {k: v for k, v in old.items() if k != "integrity"}))
  with pytest.raises(checkpoints.CheckpointCorruptError, match=r"step 4 .*non-finite.*directions"):
    task_discovery.load(workdir)


def test_edited_config_in_checkpoint_fails_its_checksum(workdir):
  path = glob.glob(os.path.join(workdir, "checkpoints", "4", "meta", "*"))[0]
  with open(path) as f:
    payload = json.load(f)
  payload["config"]["inner"]["learning_rate"] = 0.5
  with open(path, "w") as f:
    json.dump(payload, f)
  with pytest.raises(checkpoints.CheckpointCorruptError,
                     match="step 4 .*JSON does not match the checksum"):
    task_discovery.load(workdir)


def test_every_step_damaged_is_an_error_and_nothing_moves(workdir):
  for step in (2, 4):
    for path in state_files(workdir, step):
      flip_bytes(path, count=64)
  with pytest.raises(checkpoints.CheckpointCorruptError,
                     match=r"every checkpoint .* damaged:\n.*step 4.*\n.*step 2.*\n"
                           r"Nothing was moved or deleted"):
    train_only(tiny_config(6), workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  assert not os.path.exists(os.path.join(workdir, workdir_lib.CORRUPT_DIR))


def test_nan_on_the_first_step_after_a_restore_names_corruption(workdir, monkeypatch):
  poison_meta_step(monkeypatch, from_step=4)
  with pytest.raises(discovery.NonFiniteLossError,
                     match=r"meta-step 4, the first step after restoring checkpoint step 4.*"
                           r"may be corrupt"):
    train_only(tiny_config(6), workdir)
  assert checkpoints.manager(workdir).all_steps() == [2, 4]


def test_load_of_a_missing_workdir_or_step_creates_nothing(tmp_path, workdir):
  missing = str(tmp_path / "missing")
  with pytest.raises(FileNotFoundError, match="no such workdir"):
    task_discovery.load(missing)
  assert not os.path.exists(missing)
  with pytest.raises(FileNotFoundError, match=r"no checkpoint step 123 .*\[2, 4\]"):
    task_discovery.load(workdir, step=123)


# ------------------------------------------------------------------------- one writer at a time


def hold_lock_in_child(workdir):
  child = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time\nfrom task_discovery.run import workdir as w\n"
       "w.acquire_lock(sys.argv[1]); print('held', flush=True); time.sleep(120)", workdir],
      stdout=subprocess.PIPE, text=True)
  assert child.stdout.readline().strip() == "held"
  return child


def test_second_run_on_a_held_workdir_fails_at_once_naming_the_holder(tmp_path):
  workdir = str(tmp_path / "w")
  os.makedirs(workdir)
  child = hold_lock_in_child(workdir)
  try:
    with pytest.raises(workdir_lib.WorkdirLockedError,
                       match=rf"in use by another run \(pid {child.pid} on host"):
      main_lib.run_job(tiny_config(2), workdir)
    assert sorted(os.listdir(workdir)) == ["LOCK"]  # the second run wrote nothing
  finally:
    child.kill()
    child.wait()
  # The holder died without releasing: reported as stale, broken only on request.
  with pytest.raises(workdir_lib.WorkdirLockedError,
                     match=rf"dead process of this host \(pid {child.pid}.*--break_lock"):
    workdir_lib.acquire_lock(workdir)
  workdir_lib.acquire_lock(workdir, break_lock=True)
  assert workdir_lib.read_lock(workdir)["pid"] == os.getpid()
  workdir_lib.release_lock(workdir)
  assert not os.path.exists(os.path.join(workdir, "LOCK"))


def test_break_lock_never_breaks_a_running_holder(tmp_path):
  workdir = str(tmp_path)
  child = hold_lock_in_child(workdir)
  try:
    with pytest.raises(workdir_lib.WorkdirLockedError, match="in use by another run"):
      workdir_lib.acquire_lock(workdir, break_lock=True)
  finally:
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_lock_is_released_when_a_job_fails(tmp_path):
  workdir = str(tmp_path)
  config = tiny_config(2)
  config.inner.batch_size = 4000  # fails after the lock is taken
  with pytest.raises(ValueError, match="inner.batch_size=4000 exceeds the 1258 images"):
    main_lib.run_job(config, workdir)
  assert workdir_lib.read_lock(workdir) is None


def test_workdir_that_is_a_file_is_a_clear_error(tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(NotADirectoryError, match="is a file, not a directory"):
    main_lib.run_job(tiny_config(2), str(path))


# -------------------------------------------------------------------------- resume and config


def test_changed_config_on_resume_is_refused_before_config_json_is_written(workdir):
  path = os.path.join(workdir, "config.json")
  with open(path, "rb") as f:
    saved = f.read()
  config = tiny_config(6)
  config.inner.learning_rate = 0.05
  config.seed = 3
  with pytest.raises(workdir_lib.ConfigMismatchError) as e:
    main_lib.run_job(config, workdir)
  message = str(e.value)
  assert "inner.learning_rate: saved 0.1, now 0.05" in message and "seed: saved 0, now 3" in message
  assert "new --workdir" in message and f"--config_json={path}" in message
  with open(path, "rb") as f:
    assert f.read() == saved  # untouched
  assert workdir_lib.read_lock(workdir) is None
  # Fields on the allow-list may change.
  allowed = tiny_config(8)
  allowed.eval.evaluate_discovered = False
  allowed.checkpoint.every_steps = 4
  allowed.meta.log_every = 2
  report_lib.check_config(workdir, allowed)


def test_checkpoint_of_another_config_is_refused_by_train(workdir):
  config = tiny_config(6)
  config.meta.learning_rate = 0.1
  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match=r"(?s)step 4.*meta.learning_rate: saved 0.001, now 0.1"):
    train_only(config, workdir)


def parse_command_line(argv):
  values = flags.FlagValues()
  argv = main_lib.expand_config_json(argv)
  holder = config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  flags.DEFINE_string("config_json", None, "", flag_values=values)
  values(argv)
  return holder.value


def test_config_json_flag_reads_the_saved_config_as_data(workdir, tmp_path):
  path = os.path.join(workdir, "config.json")
  config = parse_command_line(["main", f"--config_json={path}", "--config.meta.num_steps=6"])
  expected = tiny_config(6)
  expected.eval.evaluate_discovered = False
  assert config.meta.num_steps == 6 and config.learner.mlp_widths == (16, 16)
  assert config.to_dict() == expected.to_dict()
  report_lib.check_config(workdir, config)  # it resumes the workdir
  # Never executed: code in a JSON string stays a string.
  marker = tmp_path / "executed"
  hostile = tmp_path / "config.json"
  hostile.write_text(json.dumps({"job": f"__import__('os').system('touch {marker}')"}))
  loaded = parse_command_line(["main", f"--config_json={hostile}"])
  assert loaded.job.startswith("__import__") and not marker.exists()
  with pytest.raises(ValueError, match="config.job"):
    main_lib.run_job(loaded, str(tmp_path / "new"))


def test_metrics_after_a_resume_hold_each_step_once(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  with open(path, "a") as f:  # an interrupted run logged step 5, then died mid-line
    f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n" + '{"step": 6, "lo')
  _, rows = train_only(tiny_config(6), workdir)
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
  assert rows[4]["loss"] != 1.0


# --------------------------------------------------------------------------------------- inputs


def test_ten_class_labels_file_is_refused_naming_file_and_values(tmp_path):
  labels_file = str(tmp_path / "classes.npz")
  np.savez(labels_file, labels=datasets.load_dataset(tiny_config().data).labels[None])
  config = tiny_config()
  config.job = "agreement"
  config.eval.labels_file = labels_file
  workdir = str(tmp_path / "w")
  with pytest.raises(ValueError, match=r"classes\.npz.*\[0, 2\).*found \[2, 3, 4, 5, 6, 7, 8, 9\]"):
    main_lib.run_job(config, workdir)
  assert not os.path.exists(os.path.join(workdir, "report.json"))


def test_options_the_job_ignores(tmp_path, caplog):
  config = tiny_config()
  config.eval.labels_file = "tasks.npz"
  with pytest.raises(ValueError, match=r"eval.labels_file='tasks.npz' is read only by "
                                       r"job='agreement', not job='discover'"):
    main_lib.run_job(config, str(tmp_path))
  assert os.listdir(tmp_path) == []  # refused before anything is written
  config = tiny_config()
  config.adversarial.mirror = True
  with caplog.at_level(logging.WARNING):
    inputs.check_options(config)
  assert "adversarial.{mirror} changed from the defaults" in caplog.text
  config = tiny_config()
  config.lock()  # as the command line gives it: a locked ConfigDict is not 'changed'
  assert inputs.ignored_options(config) == ([], [])
  config.adversarial.random_network.name = "mlp"
  assert "adversarial.{random_network}" in inputs.ignored_options(config)[1][0]


@pytest.mark.parametrize("field,value,message", [
    ("inner.batch_size", 2000, "inner.batch_size=2000 exceeds the 1258 images of the training"),
    ("inner.heldout_batch_size", 400,
     "inner.heldout_batch_size=400 exceeds the 180 images of the meta-validation part"),
    ("eval.batch_size", 1500, "eval.batch_size=1500 exceeds the 1258 images"),
])
def test_batch_larger_than_its_part_is_an_error(tmp_path, field, value, message):
  config = tiny_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=message):
    train_only(config, str(tmp_path))
  assert not os.path.exists(os.path.join(tmp_path, "checkpoints"))


def test_truncated_gz_idx_file_is_named(tmp_path):
  path = str(tmp_path / "train-labels-idx1-ubyte.gz")
  with gzip.open(path, "wb") as f:
    f.write(bytes([0, 0, 8, 1]) + (1000).to_bytes(4, "big") + bytes(1000))
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])
  with pytest.raises(ValueError, match=rf"{path} can not be read .*truncated"):
    datasets.read_idx(path)


def test_bad_csv_is_named_with_its_line(tmp_path):
  path = str(tmp_path / "hand.csv")
  with open(path, "w") as f:
    f.write("image_index,a\n0,1\n1,x\n2,0\n")
  with pytest.raises(ValueError, match=r"hand\.csv' line 3, column 'a': 'x' is not an integer"):
    tasks.load_task_labels(path, 3)
  with open(path, "w") as f:
    f.write("image_index,a\n0,1\n1\n")
  with pytest.raises(ValueError, match=r"hand\.csv' line 3: 1 fields"):
    tasks.load_task_labels(path, 2)


def test_damaged_report_is_named(tmp_path):
  path = tmp_path / "report.json"
  path.write_text('{"summary": ')
  with pytest.raises(ValueError, match=r"report\.json is not valid JSON"):
    report_lib.update(str(tmp_path), summary={})
  assert path.read_text() == '{"summary": '


def test_damaged_npz_is_named(tmp_path):
  path = str(tmp_path / "tasks.npz")
  tasks.save_task_labels(str(tmp_path / "tasks"), np.zeros((2, 5), np.int32))
  with open(path, "r+b") as f:
    f.truncate(30)
  with pytest.raises(ValueError, match=r"tasks\.npz' can not be read"):
    tasks.load_task_labels(path, 5)


# ------------------------------------------------------------------------------- failed writes


def fail_fsync(monkeypatch):
  def no_space(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(workdir_lib.os, "fsync", no_space)


def test_full_disk_keeps_the_previous_outputs_and_names_the_path(tmp_path, monkeypatch):
  prefix = str(tmp_path / "tasks")
  old = np.ones((2, 5), np.int32)
  tasks.save_task_labels(prefix, old)
  report_lib.write(str(tmp_path), {"summary": {"human": 1}})
  with monkeypatch.context() as m:
    fail_fsync(m)
    with pytest.raises(OSError, match=r"No space left on device: '.*tasks\.npz'"):
      tasks.save_task_labels(prefix, np.zeros((2, 5), np.int32))
    with pytest.raises(OSError, match=r"No space left on device: '.*report\.json'"):
      report_lib.update(str(tmp_path), summary={"human": 2})
  np.testing.assert_array_equal(tasks.load_task_labels(prefix + ".npz", 5), old)
  assert report_lib.read(str(tmp_path)) == {"summary": {"human": 1}}
  assert sorted(os.listdir(tmp_path)) == ["report.json", "tasks.csv", "tasks.npz"]  # no temp


def test_failed_background_save_is_raised_at_the_next_step(tmp_path, monkeypatch):
  """Portable version (no tmpfs): orbax reports a failed background write after a save."""
  failing = {"armed": False}
  original = ocp.CheckpointManager.check_for_errors

  def check_for_errors(self):
    if failing["armed"]:
      failing["armed"] = False
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return original(self)

  save = checkpoints.save

  def save_then_fail(mgr, step, *args, **kwargs):
    save(mgr, step, *args, **kwargs)
    failing["armed"] = step == 4

  monkeypatch.setattr(ocp.CheckpointManager, "check_for_errors", check_for_errors)
  monkeypatch.setattr(checkpoints, "save", save_then_fail)
  workdir = str(tmp_path)
  with pytest.raises(checkpoints.CheckpointSaveError) as e:
    train_only(tiny_config(6), workdir)
  last_line = str(e.value).splitlines()[-1]
  assert last_line == (f"{os.path.join(workdir, 'checkpoints', '4')}: [Errno 28] No space left "
                       "on device")
  steps = [r["step"] for r in metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]
  assert steps == [1, 2, 3, 4]  # stopped by the first step after the failed save
  assert task_discovery.load(workdir, step=2).step == 2


def mount_tmpfs(path, size="2m"):
  """Mounts a small tmpfs at `path` (needs root); skips the test where that is not possible."""
  os.makedirs(path, exist_ok=True)
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                          capture_output=True, check=False)
  if result.returncode != 0:
    pytest.skip("a tmpfs can not be mounted here (needs root)")


def unmount(path):
  subprocess.run(["umount", "-l", path], check=False)


def fill(directory, leave_bytes=0):
  path = os.path.join(directory, "filler")
  with open(path, "wb", buffering=0) as f:
    try:
      while True:
        f.write(b"\0" * 4096)
    except OSError:
      pass
  with open(path, "r+b") as f:
    f.truncate(max(0, os.path.getsize(path) - leave_bytes))


@pytest.mark.skipif(os.environ.get("TASK_DISCOVERY_REAL_DISK_TESTS") != "1",
                    reason="opt-in (TASK_DISCOVERY_REAL_DISK_TESTS=1): where orbax's background "
                    "save meets the full tmpfs depends on thread timing, so in a long test "
                    "session it failed once in a few runs; the mocked failed save above covers "
                    "the same code path deterministically")
def test_full_disk_under_checkpoints_fails_with_path_and_earlier_steps_survive(tmp_path,
                                                                              monkeypatch):
  """A real full disk: a 2 MB tmpfs mounted as the workdir's checkpoints folder, filled up after
  the checkpoint of step 2."""
  workdir = str(tmp_path / "w")
  mount_point = os.path.join(workdir, "checkpoints")
  mount_tmpfs(mount_point)
  save = checkpoints.save

  def fill_before_step_4(mgr, step, *args, **kwargs):
    if step == 4:
      mgr.wait_until_finished()
      fill(mount_point)
    save(mgr, step, *args, **kwargs)

  try:
    monkeypatch.setattr(checkpoints, "save", fill_before_step_4)
    with pytest.raises(checkpoints.CheckpointSaveError) as e:
      train_only(tiny_config(8), workdir)
    assert str(e.value).splitlines()[-1] == (
        f"{os.path.join(mount_point, '4')}: [Errno 28] No space left on device")
    steps = [r["step"] for r in metric_writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]
    assert steps[-1] <= 5  # stopped at the failed save or the step after it
    assert task_discovery.load(workdir).step == 2  # the earlier checkpoint is intact
  finally:
    unmount(mount_point)


def test_full_disk_after_training_keeps_the_previous_tasks_npz(tmp_path):
  mount_point = str(tmp_path / "disk")
  mount_tmpfs(mount_point, size="1m")
  try:
    prefix = os.path.join(mount_point, "tasks")
    tasks.save_task_labels(prefix, np.ones((2, 5), np.int32))
    fill(mount_point)
    with pytest.raises(OSError, match=r"No space left on device: '.*tasks\.npz'"):
      tasks.save_task_labels(prefix, np.zeros((2, 300_000), np.int32))
    np.testing.assert_array_equal(tasks.load_task_labels(prefix + ".npz", 5), 1)
    assert sorted(os.listdir(mount_point)) == ["filler", "tasks.csv", "tasks.npz"]
    with pytest.raises(OSError, match=r"No space left on device: '.*metrics\.jsonl'"):
      writer = metric_writers.MetricWriter(mount_point)
      writer.write(1, {"loss": np.ones(4096)})
  finally:
    # Free the space first: tensorboardX flushes its open event file once more at exit.
    with contextlib.suppress(OSError):
      os.remove(os.path.join(mount_point, "filler"))
    unmount(mount_point)


def test_a_config_saved_before_a_behaviour_changed_is_not_resumed_with_the_new_one():
  saved = {"seed": 0, "data": {"name": "digits"}, "learner": {"name": "mlp"}}
  defaults = {"seed": 0, "data": {"name": "digits", "meta_val_fraction": 0.1,
                                  "split_seed": 0},
              "learner": {"name": "mlp", "init": "torch"}, "meta": {"task_order": "shuffled"}}
  diffs = workdir_lib.config_differences(saved, defaults, defaults=defaults)
  assert diffs == ["data.meta_val_fraction: not in the saved config, now 0.1",
                   "learner.init: not in the saved config, now 'torch'",
                   "meta.task_order: not in the saved config, now 'shuffled'"]
  previous = {"seed": 0, "data": {"name": "digits", "meta_val_fraction": 0.0, "split_seed": 0},
              "learner": {"name": "mlp", "init": "flax"}, "meta": {"task_order": "cyclic"}}
  assert workdir_lib.config_differences(saved, previous, defaults=defaults) == []


def test_workdir_names_its_files_and_who_writes_them(monkeypatch):
  wd = workdir_lib.Workdir("runs/x", writer=False)
  assert wd.report == os.path.join("runs/x", "report.json") and not wd.writes
  assert wd.tasks == os.path.join("runs/x", "tasks.npz")
  assert wd.tasks_csv == wd.tasks_prefix + ".csv"
  assert wd.checkpoints == os.path.abspath(os.path.join("runs/x", "checkpoints"))
  assert wd.seed(2).path == os.path.join("runs/x", "seed_2") and not wd.seed(2).writes
  assert workdir_lib.Workdir.of(wd) is wd and workdir_lib.Workdir.of("runs/x").path == "runs/x"
  monkeypatch.setattr(workdir_lib, "_is_process_zero", lambda: False)
  assert not workdir_lib.Workdir("runs/x").writes  # no writer given: JAX's process index says
