"""Orbax checkpoints of a discovery run, and the one-call loader for notebooks.

A checkpoint holds the discovery state (a pytree of arrays) and, as JSON, the full config plus
what is needed to use the task network without the dataset (input shape, normalisation). So
`load(workdir)` rebuilds the trained task network from the checkpoint alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from task_discovery import meta
from task_discovery import models
from task_discovery import task_network

CHECKPOINT_DIR = "checkpoints"
# Config sections whose change makes a checkpoint mean something else (or not fit).
_STRUCTURAL = ("data", "learner", "task", "inner.num_learners", "meta.optimizer",
               "meta.meta_batch_size")


class CheckpointMismatchError(ValueError):
  """The workdir's checkpoint was written by an incompatible configuration."""


def manager(workdir: str, *, max_to_keep: int = 3) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR)),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
      item_names=("state", "meta"))


def save(mgr: ocp.CheckpointManager, step: int, state: Any, meta: dict) -> None:
  """Saves asynchronously; call `mgr.wait_until_finished()` before the process exits."""
  mgr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               meta=ocp.args.JsonSave(meta)))


def make_meta(config, dataset) -> dict:
  """The JSON payload stored beside the state."""
  return {"config": json.loads(config.to_json_best_effort()),
          "input_shape": list(dataset.input_shape), "mean": np.asarray(dataset.mean).tolist(),
          "std": np.asarray(dataset.std).tolist(), "dataset": dataset.name,
          "num_classes": int(dataset.num_classes)}


def _get(tree: dict, dotted: str):
  for part in dotted.split("."):
    tree = tree.get(part, {}) if isinstance(tree, dict) else None
  return tree


def _diff(a, b, prefix=""):
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
    return out
  norm = lambda v: list(v) if isinstance(v, tuple) else v
  return [] if norm(a) == norm(b) else [f"{prefix}: checkpoint {a!r}, config {b!r}"]


def check_compatible(saved_config: dict, config, workdir: str) -> None:
  """Raises CheckpointMismatchError naming every structural field that differs."""
  current = json.loads(config.to_json_best_effort())
  diffs = []
  for field in _STRUCTURAL:
    diffs += _diff(_get(saved_config, field), _get(current, field), field)
  if diffs:
    raise CheckpointMismatchError(
        f"{workdir} holds a checkpoint of a different configuration:\n  " + "\n  ".join(diffs)
        + "\nUse a new --workdir for this configuration, or resume with the saved one "
        f"(--config={os.path.join(workdir, 'config.json')} is written by every run; "
        "override only meta.num_steps, eval.* or checkpoint.*).")


def restore(mgr: ocp.CheckpointManager, step: int, abstract_state: Any) -> tuple[Any, dict]:
  """Restores `(state, meta)` at `step` onto the shardings of `abstract_state`."""
  try:
    restored = mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  except Exception as e:  # orbax raises many types for unreadable or mismatched files
    raise CheckpointMismatchError(
        f"checkpoint step {step} in {mgr.directory} could not be restored ({type(e).__name__}: "
        f"{e}). If it is corrupt, move that step's folder away to resume from an earlier step, "
        "or use a new --workdir. Nothing was deleted.") from e
  return restored["state"], restored["meta"]


def read_meta(mgr: ocp.CheckpointManager, step: int) -> dict:
  try:
    return mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  except Exception as e:
    raise CheckpointMismatchError(
        f"the config stored with checkpoint step {step} in {mgr.directory} could not be read "
        f"({type(e).__name__}: {e}); move that step's folder away or use a new --workdir.") from e


@dataclasses.dataclass
class TaskNetwork:
  """A trained task network, usable without flags, datasets or training code.

  Call it on images scaled to [0, 1] (as `Dataset.raw_images()`; uint8 is divided by 255)
  with shape `[N, H, W, C]` to get hard labels `[N, d]` of the d discovered tasks.
  """
  config: ml_collections.ConfigDict
  step: int
  params: Any
  batch_stats: Any
  directions: jax.Array
  mean: np.ndarray
  std: np.ndarray
  input_shape: tuple
  encoder: models.Model

  @property
  def num_tasks(self) -> int:
    return int(self.directions.shape[0])

  def _prepare(self, images, normalized: bool) -> jax.Array:
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[..., None]
    if images.shape[1:] != tuple(self.input_shape):
      raise ValueError(f"images of shape {images.shape[1:]} given, the task network takes "
                       f"{tuple(self.input_shape)}")
    if normalized:
      return jnp.asarray(images, jnp.float32)
    if images.dtype == np.uint8:
      images = images.astype(np.float32) / 255.0
    return jnp.asarray((images - self.mean) / self.std, jnp.float32)

  def embed(self, images, *, normalized: bool = False, batch_size: int = 1024) -> np.ndarray:
    """Embeddings `h(x)` `[N, d]` (encoder in eval mode)."""
    x = self._prepare(images, normalized)
    apply = jax.jit(lambda v, b: self.encoder.apply(v, b, False)[0])
    variables = {"params": self.params, "batch_stats": self.batch_stats}
    return np.concatenate([np.asarray(apply(variables, x[i:i + batch_size]))
                           for i in range(0, x.shape[0], batch_size)])

  def scores(self, images, **kwargs) -> np.ndarray:
    """Task scores `<w_i, h(x)>` `[N, d]`; label 1 iff positive."""
    return self.embed(images, **kwargs) @ np.asarray(self.directions).T

  def labels(self, images, **kwargs) -> np.ndarray:
    """Hard labels `[N, d]` int32."""
    return np.asarray(task_network.hard_labels(self.scores(images, **kwargs)))

  __call__ = labels


def load(workdir: str, step: int | None = None) -> TaskNetwork:
  """Loads the task network of a discovery workdir (latest checkpoint unless `step`)."""
  mgr = manager(workdir)
  step = mgr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, CHECKPOINT_DIR)}: run "
                            "`python -m task_discovery.main --config=... --workdir=...` first")
  payload = read_meta(mgr, step)
  config = ml_collections.ConfigDict(payload["config"])
  input_shape = tuple(payload["input_shape"])
  encoder = models.make_encoder(config.task.encoder, input_shape=input_shape,
                                embedding_dim=config.task.num_tasks)
  learner = models.make_model(config.learner, input_shape=input_shape, num_outputs=2)
  # The state's structure follows from the config; restore it onto the first local device.
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
      jax.eval_shape(lambda k: meta.init_state(encoder, learner, config, k),
                     jax.random.PRNGKey(0)))
  restored, _ = restore(mgr, step, abstract)
  mgr.close()
  return TaskNetwork(config=config, step=int(step), params=restored["params"],
                     batch_stats=restored.get("batch_stats", {}),
                     directions=jnp.asarray(restored["directions"]),
                     mean=np.asarray(payload["mean"], np.float32),
                     std=np.asarray(payload["std"], np.float32), input_shape=input_shape,
                     encoder=encoder)
