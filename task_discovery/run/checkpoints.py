"""Orbax checkpoints of a discovery run: saving, restoring and their integrity checks.

A checkpoint holds the discovery state (a pytree of arrays) and a JSON payload: the full config
plus what is needed to use the task network without the dataset (input shape, normalisation), so
`loader.load(workdir)` rebuilds the trained task network from the checkpoint alone.

Integrity: the JSON also holds a sha256 of every array (of its dtype, shape and bytes) and of the
rest of the JSON. Every restore verifies them and refuses non-finite values, so a damaged file is
an error naming the step instead of a silently different network. A resumed run falls back to
the newest intact step; newer damaged steps are moved to `WORKDIR/corrupt_checkpoints/` (kept for
inspection, never deleted). A save that fails in the background is raised by the training loop at
the next step, naming the path and the OS error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from task_discovery import config as config_lib
from task_discovery.run import report as report_lib
from task_discovery.run import workdir as workdir_lib

INTEGRITY_KEY = "integrity"
# Orbax item names of a checkpoint step: the state pytree and the JSON payload. The payload's item
# is called "meta" on disk (the name checkpoints were written with), nothing else calls it so.
STATE_ITEM = "state"
PAYLOAD_ITEM = "meta"


class CheckpointMismatchError(workdir_lib.ConfigMismatchError):
  """The workdir's checkpoint was written by an incompatible configuration."""


class CheckpointCorruptError(ValueError):
  """A checkpoint step can not be read, or its content differs from what was written."""

  def __init__(self, message: str, step: int | None = None):
    super().__init__(message)
    self.step = step


class CheckpointSaveError(OSError):
  """A checkpoint could not be written (e.g. a full disk); the last line names path and cause."""


def manager(workdir: str, *, max_to_keep: int = 3, create: bool = True,
            read_only: bool = False) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      workdir_lib.Workdir.of(workdir).checkpoints,
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                           read_only=read_only),
      item_names=(STATE_ITEM, PAYLOAD_ITEM))


# ------------------------------------------------------------------------------- checksums


def _host_array(x) -> np.ndarray:
  """The full value of a replicated (possibly multi-process) array, from a local shard."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    x = x.addressable_shards[0].data
  return np.asarray(x)


def array_checksums(state: Any) -> dict[str, str]:
  """`{path: sha256 of dtype, shape and bytes}` of every array of a state pytree."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    a = np.ascontiguousarray(_host_array(leaf))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    out[jax.tree_util.keystr(path)] = h.hexdigest()
  return out


def payload_checksum(payload: dict) -> str:
  """sha256 of the JSON payload (config, input shape, normalisation) without its checksums."""
  body = {k: v for k, v in payload.items() if k != INTEGRITY_KEY}
  return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def with_checksums(state: Any, payload: dict) -> dict:
  """The payload to save beside `state`, with the checksums of both."""
  return {**payload, INTEGRITY_KEY: {"algorithm": "sha256", "arrays": array_checksums(state),
                                     "payload": payload_checksum(payload)}}


def _non_finite(state: Any) -> list[str]:
  bad = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    a = _host_array(leaf)
    if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
      bad.append(jax.tree_util.keystr(path))
  return bad


def _step_dir(mgr: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(mgr.directory), str(step))


def verify_payload(payload: dict, step: int, directory: str) -> None:
  """Raises CheckpointCorruptError if the payload's own checksum does not match."""
  integrity = payload.get(INTEGRITY_KEY)
  if integrity is None:
    return
  if integrity.get("payload") != payload_checksum(payload):
    raise CheckpointCorruptError(
        f"checkpoint step {step} in {directory} is corrupt: its config/metadata JSON does not "
        "match the checksum written with it", step)


def verify_state(state: Any, payload: dict, step: int, directory: str) -> None:
  """Raises CheckpointCorruptError if restored arrays differ from the checksums saved with them
  or hold non-finite values. Checkpoints written before checksums existed are only checked for
  non-finite values."""
  integrity = payload.get(INTEGRITY_KEY)
  if integrity is None:
    logging.warning("checkpoint step %d in %s has no checksums (written by an older version): "
                    "only checked for non-finite values", step, directory)
  else:
    saved, now = integrity.get("arrays", {}), array_checksums(state)
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if differ:
      raise CheckpointCorruptError(
          f"checkpoint step {step} in {directory} is corrupt: {len(differ)} of {len(saved)} "
          f"arrays differ from the checksums written with them ({', '.join(differ[:5])}"
          f"{', ...' if len(differ) > 5 else ''})", step)
  bad = _non_finite(state)
  if bad:
    raise CheckpointCorruptError(
        f"checkpoint step {step} in {directory} holds non-finite values in "
        f"{', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}: refused as corrupt", step)


# ------------------------------------------------------------------------------ save errors


def _find_os_error(e: BaseException | None) -> tuple[int, str] | None:
  """(errno, strerror) of the OSError behind `e` (its chain, or tensorstore's message)."""
  seen = set()
  stack = [e]
  while stack:
    x = stack.pop()
    if x is None or id(x) in seen:
      continue
    seen.add(id(x))
    if isinstance(x, OSError) and x.errno:
      return x.errno, x.strerror or os.strerror(x.errno)
    match = re.search(r"os_error_code='?(\d+)", str(x))
    if match:
      code = int(match.group(1))
      return code, os.strerror(code)
    stack += [x.__cause__, x.__context__] + list(getattr(x, "exceptions", ()))
  return None


def save_error(mgr: ocp.CheckpointManager, step: int,
               cause: BaseException | None) -> CheckpointSaveError:
  """The error for a checkpoint of `step` that was not written; its last line is
  `PATH: [Errno N] STRERROR`."""
  path = _step_dir(mgr, step)
  found = _find_os_error(cause)
  code, reason = found if found else (errno.EIO, (
      f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
      if cause is not None else "the save finished but the step is not on disk"))
  return CheckpointSaveError(
      code, f"checkpoint step {step} could not be written; training stopped here. Earlier "
      "checkpoints are kept; free space (or fix the cause) and rerun to resume.\n"
      f"{path}: [Errno {code}] {reason}")


def save(mgr: ocp.CheckpointManager, step: int, state: Any, payload: dict, *,
         pending: int | None = None) -> None:
  """Saves `state` and `payload` (with checksums) asynchronously.

  Args:
    pending: the step of an earlier save that may still be in flight: an error orbax raises
      now for that save is reported for that step.

  Raises:
    CheckpointSaveError: this save, or the pending one, failed.
  """
  payload = with_checksums(state, payload)
  try:
    mgr.save(int(step), args=ocp.args.Composite(**{
        STATE_ITEM: ocp.args.StandardSave(state), PAYLOAD_ITEM: ocp.args.JsonSave(payload)}))
  except Exception as e:  # orbax surfaces a failed background save at the next call
    raise save_error(mgr, pending if pending is not None else step, e) from e


def check_pending_save(mgr: ocp.CheckpointManager, step: int | None, *,
                       wait: bool = False) -> int | None:
  """Raises the error of the save of `step` if it failed in the background.

  Args:
    step: the step of the last save (None: nothing to check).
    wait: wait for the save to finish (at the end of training).

  Returns:
    `step` while its save is in flight, None once it is on disk.

  Raises:
    CheckpointSaveError: the save failed, or finished without the step on disk.
  """
  if step is None:
    return None
  try:
    if wait:
      mgr.wait_until_finished()
    mgr.check_for_errors()
  except Exception as e:
    raise save_error(mgr, step, e) from e
  if mgr.is_saving_in_progress():
    return step
  mgr.reload()
  if step not in mgr.all_steps():
    raise save_error(mgr, step, None)
  return None


# ------------------------------------------------------------------------------ restoring


def make_payload(config, dataset) -> dict:
  """The JSON payload stored beside the state."""
  return {"config": config_lib.as_json(config),
          "input_shape": list(dataset.input_shape), "mean": np.asarray(dataset.mean).tolist(),
          "std": np.asarray(dataset.std).tolist(), "dataset": dataset.name,
          "num_classes": int(dataset.num_classes)}


def check_compatible(saved_config: dict, config, workdir: str, step: int | None = None) -> None:
  """Raises CheckpointMismatchError naming every field that changes results and differs between
  the checkpoint's config and `config` (see `workdir.RESUMABLE_FIELDS`)."""
  diffs = report_lib.differences(saved_config, config)
  if diffs:
    what = "a checkpoint" if step is None else f"a checkpoint (step {step})"
    raise CheckpointMismatchError(workdir_lib.mismatch_message(workdir, what, diffs))


def restore(mgr: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, dict]:
  """Restores `(state, payload)` at `step` onto the shardings of `abstract_state`, verified.

  Raises:
    CheckpointCorruptError: unreadable files, checksums that do not match, non-finite values.
  """
  try:
    restored = mgr.restore(step, args=ocp.args.Composite(**{
        STATE_ITEM: ocp.args.StandardRestore(abstract_state),
        PAYLOAD_ITEM: ocp.args.JsonRestore()}))
  except Exception as e:  # orbax raises many types for unreadable or mismatched files
    raise CheckpointCorruptError(
        f"checkpoint step {step} in {mgr.directory} could not be restored ({type(e).__name__}: "
        f"{str(e)[:500]})", step) from e
  state, payload = restored[STATE_ITEM], restored[PAYLOAD_ITEM]
  verify_payload(payload, step, str(mgr.directory))
  verify_state(state, payload, step, str(mgr.directory))
  return state, payload


def read_payload(mgr: ocp.CheckpointManager, step: int) -> dict:
  """The JSON payload of `step`, its checksum verified."""
  try:
    payload = mgr.restore(step, args=ocp.args.Composite(
        **{PAYLOAD_ITEM: ocp.args.JsonRestore()}))[PAYLOAD_ITEM]
  except Exception as e:
    raise CheckpointCorruptError(
        f"the config stored with checkpoint step {step} in {mgr.directory} could not be read "
        f"({type(e).__name__}: {str(e)[:500]})", step) from e
  if not isinstance(payload, dict) or "config" not in payload:
    raise CheckpointCorruptError(
        f"checkpoint step {step} in {mgr.directory} holds no config in its JSON", step)
  verify_payload(payload, step, str(mgr.directory))
  return payload


def move_aside(workdir: str, mgr: ocp.CheckpointManager, step: int) -> str:
  """Moves step `step`'s folder to `workdir/corrupt_checkpoints/` (nothing is deleted), so a
  resumed run can write that step again. Returns the new path."""
  target_dir = workdir_lib.Workdir.of(workdir).corrupt_checkpoints
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, str(step))
  if os.path.exists(target):
    target += time.strftime("-%Y%m%d-%H%M%S")
  shutil.move(_step_dir(mgr, step), target)
  return target


def restore_newest_intact(mgr: ocp.CheckpointManager, abstract_state: Any, config,
                          workdir: str, *, main_process: bool = True) -> tuple[Any, int | None]:
  """Restores the newest step that passes every check, for resuming a run.

  Damaged steps newer than it are logged and moved to `workdir/corrupt_checkpoints/` by the main
  process (the others must not move files). With no checkpoint at all, returns `(None, None)`.

  Raises:
    CheckpointMismatchError: the newest readable step was made with another configuration.
    CheckpointCorruptError: every step is damaged (nothing is moved or deleted then).
  """
  problems = []
  for step in sorted(mgr.all_steps(), reverse=True):
    try:
      payload = read_payload(mgr, step)
      check_compatible(payload["config"], config, workdir, step)
      state, _ = restore(mgr, step, abstract_state)
    except CheckpointCorruptError as e:
      logging.warning("%s", e)
      problems.append((step, str(e)))
      continue
    for bad_step, reason in problems:
      target = move_aside(workdir, mgr, bad_step) if main_process else "(moved by process 0)"
      logging.warning("resuming from checkpoint step %d, the newest intact one: step %d is "
                      "damaged (%s) and was moved to %s, not deleted", step, bad_step, reason,
                      target)
    if problems:
      _sync_processes("moved damaged checkpoints")
      mgr.reload()
    return state, step
  if problems:
    raise CheckpointCorruptError(
        f"every checkpoint in {mgr.directory} is damaged:\n  "
        + "\n  ".join(reason for _, reason in problems)
        + f"\nNothing was moved or deleted. Use a new --workdir (or move {mgr.directory} away "
        "to start this one again).", problems[0][0])
  return None, None


def _sync_processes(name: str) -> None:
  """Barrier across processes of a multi-host run (no-op on one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
