"""The workdir of a run: the names of its files, who writes them, one writer at a time (a lock
file), atomic output files, and the resume check of a new config against its `config.json`.

`Workdir(path)` is where every file name of a run is spelled (`Workdir(path).report`, `.tasks`,
`.splits`, ...) and whether this process writes them (`.writes`: only process 0 of a multi-host
run does; the others compute the same results and write nothing).

A run holds `WORKDIR/LOCK` (created atomically, holding the owner's host and pid) for as long as
it writes there; a second run on the same workdir fails at once and names the holder. Every output
file is written to a temporary name in the same directory, flushed to disk and renamed over the
old one, so an interrupted or failed write (a full disk) leaves the previous file intact and no
half-written one. A workdir holds one configuration: a run in a workdir that already has a
`config.json` must match it in every field that changes results (`RESUMABLE_FIELDS` lists those
that may change).

Only the standard library is imported here, so holding a lock costs no JAX import (JAX is asked
for the process index only when a `Workdir` is made without `writes`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import os
import socket
import sys
from typing import Any, Iterator

# The files of a workdir (see `Workdir`).
LOCK_NAME = "LOCK"
CONFIG_NAME = "config.json"
REPORT_NAME = "report.json"
TASKS_PREFIX = "tasks"  # tasks.npz and tasks.csv
SPLITS_NAME = "splits.npz"
METRICS_NAME = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "corrupt_checkpoints"
SEED_DIR_PREFIX = "seed_"
AGREEMENT_HISTOGRAM_NAME = "agreement_histogram.png"
AGREEMENT_OVER_SEEDS_NAME = "agreement_over_seeds.png"
SIMILARITY_FOLDED_NAME = "similarity_folded_agreement.png"
SIMILARITY_AMI_NAME = "similarity_ami.png"
TASK_IMAGES_NAME = "task_images.png"
ADVERSARIAL_PLOT_NAME = "adversarial_accuracy.png"

# Fields that may differ between a run and the config.json of the workdir it resumes: they change
# how long it trains, how it logs, checkpoints, compiles and spreads over devices, or only the
# rounding of the evaluation. A field ending in '.' is a whole section.
RESUMABLE_FIELDS = ("meta.num_steps", "meta.log_every", "checkpoint.", "mesh.", "distributed.",
                    "eval.tasks_per_chunk", "eval.predict_batch_size", "profile_steps",
                    "compilation_cache.")


class WorkdirLockedError(RuntimeError):
  """Another run holds the workdir's lock (or left a stale one)."""


class ConfigMismatchError(ValueError):
  """A run's config differs from the one its workdir (or checkpoint) was made with."""


# ------------------------------------------------------------------------------ the workdir


def _is_process_zero() -> bool:
  """Only process 0 writes logs, reports and exports; orbax coordinates checkpoints itself."""
  import jax  # pylint: disable=g-import-not-at-top  (only here: the rest is standard library)
  return jax.process_index() == 0


@dataclasses.dataclass(frozen=True)
class Workdir:
  """A run's directory: the path of each of its files, and whether this process writes them.

  Attributes:
    path: the directory.
    writer: whether this process writes the workdir's files; None (the default): JAX says, see
      `writes`.
  """
  path: str
  writer: bool | None = None

  @property
  def writes(self) -> bool:
    """Whether this process writes the workdir's files: process 0 of a multi-host run (or the
    only process). Every writer of a workdir file checks it."""
    return _is_process_zero() if self.writer is None else self.writer

  @classmethod
  def of(cls, workdir: "str | Workdir") -> "Workdir":
    """`workdir` itself if it is a `Workdir`, else the `Workdir` of that path."""
    return workdir if isinstance(workdir, Workdir) else cls(workdir)

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def __fspath__(self) -> str:
    return self.path

  lock = property(lambda self: self.file(LOCK_NAME))
  config = property(lambda self: self.file(CONFIG_NAME))
  report = property(lambda self: self.file(REPORT_NAME))
  tasks_prefix = property(lambda self: self.file(TASKS_PREFIX))
  tasks = property(lambda self: self.file(TASKS_PREFIX + ".npz"))
  tasks_csv = property(lambda self: self.file(TASKS_PREFIX + ".csv"))
  splits = property(lambda self: self.file(SPLITS_NAME))
  metrics = property(lambda self: self.file(METRICS_NAME))
  tensorboard = property(lambda self: self.file(TENSORBOARD_DIR))
  checkpoints = property(lambda self: os.path.abspath(self.file(CHECKPOINT_DIR)))
  corrupt_checkpoints = property(lambda self: self.file(CORRUPT_DIR))
  agreement_histogram = property(lambda self: self.file(AGREEMENT_HISTOGRAM_NAME))
  agreement_over_seeds = property(lambda self: self.file(AGREEMENT_OVER_SEEDS_NAME))
  similarity_folded = property(lambda self: self.file(SIMILARITY_FOLDED_NAME))
  similarity_ami = property(lambda self: self.file(SIMILARITY_AMI_NAME))
  task_images = property(lambda self: self.file(TASK_IMAGES_NAME))
  adversarial_plot = property(lambda self: self.file(ADVERSARIAL_PLOT_NAME))

  def seed(self, seed: int) -> "Workdir":
    """`WORKDIR/seed_S`: the complete workdir of one seed of a multi-seed run."""
    return Workdir(self.file(f"{SEED_DIR_PREFIX}{seed}"), self.writer)


def prepare(workdir: str) -> str:
  """Creates `workdir` (and its parents) if needed; returns its absolute path.

  Raises:
    NotADirectoryError: `workdir`, or one of its parents, is a regular file.
  """
  workdir = os.path.abspath(workdir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(f"--workdir={workdir} is a file, not a directory: choose another "
                             "path for the workdir (it holds checkpoints, reports and logs)")
  try:
    os.makedirs(workdir, exist_ok=True)
  except (FileExistsError, NotADirectoryError) as e:
    raise NotADirectoryError(f"--workdir={workdir} can not be created: a part of its path is a "
                             f"file ({e})") from e
  return workdir


# ----------------------------------------------------------------------------------- the lock


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # the process exists, under another user
    return True
  return True


def read_lock(workdir: str) -> dict | None:
  """The holder recorded in `workdir/LOCK` (`host`, `pid`, `started`, `command`), or None."""
  path = os.path.join(workdir, LOCK_NAME)
  try:
    with open(path) as f:
      text = f.read()
  except FileNotFoundError:
    return None
  try:
    holder = json.loads(text)
    return holder if isinstance(holder, dict) else {"unreadable": text[:200]}
  except json.JSONDecodeError:  # a writer killed between creating and writing the file
    return {"unreadable": text[:200]}


def _describe(holder: dict) -> str:
  if "unreadable" in holder:
    return f"an unreadable owner record ({holder['unreadable']!r})"
  return (f"pid {holder.get('pid')} on host {holder.get('host')!r}, started "
          f"{holder.get('started')}: {holder.get('command')}")


def is_stale(holder: dict) -> bool:
  """Whether the holder is a process of this host that no longer runs."""
  return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
          and not _pid_alive(holder["pid"]))


def acquire_lock(workdir: str, *, break_lock: bool = False) -> str:
  """Takes `workdir/LOCK` (O_CREAT | O_EXCL: exactly one process succeeds). Returns its path.

  Args:
    workdir: an existing directory.
    break_lock: remove a lock left by a dead process of this host, or by a process of another
      host (whose state can not be checked from here), before taking it. A lock of a running
      process of this host is never broken.

  Raises:
    WorkdirLockedError: the lock is held; the message names the holder and what to do.
  """
  path = os.path.join(workdir, LOCK_NAME)
  record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                       "started": datetime.datetime.now().isoformat(timespec="seconds"),
                       "command": " ".join(sys.argv)})
  for _ in range(2):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = read_lock(workdir)
      if holder is None:  # released between our open and our read: try again
        continue
      same_host_alive = (holder.get("host") == socket.gethostname()
                         and isinstance(holder.get("pid"), int) and _pid_alive(holder["pid"]))
      if break_lock and not same_host_alive:
        os.remove(path)
        print(f"broke the lock {path} of {_describe(holder)}", file=sys.stderr)
        continue
      if same_host_alive:
        raise WorkdirLockedError(
            f"{workdir} is in use by another run ({_describe(holder)}). Wait for it to finish, "
            "stop it, or use another --workdir.")
      stale = "a dead process of this host" if is_stale(holder) else "a process of another host"
      raise WorkdirLockedError(
          f"{workdir} is locked by {stale} ({_describe(holder)}), lock file {path}. If no run "
          "uses this workdir any more, rerun with --break_lock (run_job(..., break_lock=True)) "
          "to remove the lock; nothing else is touched.")
    with os.fdopen(fd, "w") as f:
      f.write(record)
      f.flush()
      os.fsync(f.fileno())
    return path
  raise WorkdirLockedError(f"{path} keeps changing hands: another run is starting in {workdir}")


def release_lock(workdir: str) -> None:
  """Removes `workdir/LOCK` if this process holds it (a broken and retaken lock is left alone)."""
  holder = read_lock(workdir)
  if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
    with contextlib.suppress(FileNotFoundError):
      os.remove(os.path.join(workdir, LOCK_NAME))


@contextlib.contextmanager
def locked(workdir: str, *, break_lock: bool = False, enabled: bool = True) -> Iterator[None]:
  """Holds the workdir's lock for the duration of the block (`enabled=False`: does nothing, for
  the processes other than 0 of a multi-host run)."""
  if not enabled:
    yield
    return
  acquire_lock(workdir, break_lock=break_lock)
  try:
    yield
  finally:
    release_lock(workdir)


# ------------------------------------------------------------------------------ atomic writes


def _fsync_dir(directory: str) -> None:
  with contextlib.suppress(OSError):  # some filesystems can not open or fsync a directory
    fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **open_kwargs) -> Iterator[Any]:
  """Opens a temporary file beside `path`; on success it is flushed, fsync-ed and renamed to
  `path`. On any error the temporary file is removed and `path` keeps its previous content.

  Raises:
    OSError: with `path` as its filename (so the message names the file), for a failed write.
  """
  directory = os.path.dirname(os.path.abspath(path))
  tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
  try:
    with open(tmp, mode, **open_kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if isinstance(e, OSError) and e.filename != path:
      code = e.errno or errno.EIO
      raise OSError(code, e.strerror or str(e), path) from e
    raise
  _fsync_dir(directory)


def write_text(path: str, text: str) -> str:
  """Writes `text` to `path` atomically; returns `path`."""
  with atomic_write(path) as f:
    f.write(text)
  return path


# -------------------------------------------------------------------------- the resume check


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
  """A nested config dict as `{'section.field': value}`, tuples as lists (as in JSON)."""
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(flatten_config(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def _matches(field: str, patterns) -> bool:
  """Whether `field` is one of `patterns` (a pattern ending in '.' is a whole section)."""
  return any(field == f or (f.endswith(".") and field.startswith(f)) for f in patterns)


# Fields added to the library whose absence from a saved config meant another behaviour than
# their default: such a config was made with the value here (matched by the full dotted name,
# else by its last part, e.g. every model section's `init`).
BEHAVIOUR_BEFORE_FIELD = {"data.meta_val_fraction": 0.0, "meta.task_order": "cyclic",
                          "init": "flax", "vit_final_norm": "tokens"}


def _before_field(field: str, defaults: dict):
  """The value a saved config without `field` was made with; `_MISSING` if unknown."""
  if field in BEHAVIOUR_BEFORE_FIELD:
    return BEHAVIOUR_BEFORE_FIELD[field]
  last = field.rsplit(".", 1)[-1]
  if last in BEHAVIOUR_BEFORE_FIELD:
    return BEHAVIOUR_BEFORE_FIELD[last]
  return defaults.get(field, _MISSING)


_MISSING = object()


def config_differences(saved: dict, current: dict, defaults: dict | None = None, *,
                       ignore=RESUMABLE_FIELDS, only: str = "") -> list[str]:
  """Fields (dotted) that differ between two configs given as JSON dicts: the one comparison of
  configs in this library (resuming a workdir, resuming a checkpoint, reusing a finished run).

  By default the fields that change results (all but `RESUMABLE_FIELDS`); `ignore` names other
  fields not to compare (`()`: every field) and `only` limits the comparison to one section
  (e.g. `'data.'`).

  A field only `current` has (added to the library after `saved` was written) counts as
  different unless it holds the value the saved run was made with: its default from
  `defaults`, or for a field whose absence meant another behaviour, that behaviour's value
  (`BEHAVIOUR_BEFORE_FIELD`). A field only `saved` has (since removed from the library) is not
  compared.

  Returns:
    one line per differing field: `field: saved X, now Y`.
  """
  a, b = flatten_config(saved), flatten_config(current)
  d = flatten_config(defaults or {})
  diffs = []
  for field in sorted(b):
    if _matches(field, ignore) or not field.startswith(only):
      continue
    if field in a:
      if a[field] != b[field]:
        diffs.append(f"{field}: saved {a[field]!r}, now {b[field]!r}")
    elif _before_field(field, d) is _MISSING or _before_field(field, d) != b[field]:
      diffs.append(f"{field}: not in the saved config, now {b[field]!r}")
  return diffs


def mismatch_message(workdir: str, what: str, diffs: list[str]) -> str:
  """The error text for a run whose config differs from the one `workdir` was made with."""
  return (f"{workdir} holds {what} made with another configuration; these fields differ:\n  "
          + "\n  ".join(diffs)
          + "\nA resumed run must match it in every field that changes results (only "
          + ", ".join(f + "*" if f.endswith(".") else f for f in RESUMABLE_FIELDS)
          + " may change). Either\n"
          "  1. use a new --workdir for this configuration, or\n"
          f"  2. rerun with the saved configuration: --config_json={os.path.join(workdir, CONFIG_NAME)}"
          " (read as data, never executed), adding --config.FIELD=VALUE only for the fields "
          "above that may change.\nNothing in the workdir was changed.")


def check_resume(workdir: str, current: dict, defaults: dict | None = None) -> None:
  """Raises ConfigMismatchError if `workdir/config.json` exists and differs from `current` (a
  config as a JSON dict) in a field that changes results."""
  path = os.path.join(workdir, CONFIG_NAME)
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigMismatchError(
        f"{path} can not be read ({type(e).__name__}: {e}), so this run can not be checked "
        "against the configuration the workdir was made with: use a new --workdir, or restore "
        "that file") from e
  diffs = config_differences(saved, current, defaults)
  if diffs:
    raise ConfigMismatchError(mismatch_message(workdir, "a run", diffs))
