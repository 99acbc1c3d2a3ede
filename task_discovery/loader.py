"""The one-call loader of a discovery run: `load(workdir)` -> `TaskNetwork`, usable in a notebook.

It rebuilds the task network from a checkpoint alone (its config, input shape and normalisation
are stored beside the state, see `checkpoints.make_payload`): no flags, dataset or training code.
It sits above `checkpoints` (reading and verifying files) and `meta` (the shapes of the state).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from task_discovery import keys
from task_discovery import models
from task_discovery.method import meta
from task_discovery.models import task_network
from task_discovery.run import checkpoints
from task_discovery.run import workdir as workdir_lib


def _default_batch_size(batch_norm: str) -> int:
  return task_network.ORIGINAL_BATCH_SIZE if batch_norm == "batch" else 1024


@dataclasses.dataclass
class TaskNetwork:
  """A trained task network, usable without flags, datasets or training code.

  Call it on images scaled to [0, 1] (as `Dataset.raw_images()`; uint8 is divided by 255)
  with shape `[N, H, W, C]` to get hard labels `[N, d]` of the d discovered tasks
  (`task_network.make_labeler`).

  `batch_norm` says how the encoder's BatchNorm normalises: "running" (eval mode, how a
  discovery run of this library exports its tasks) or "batch" (each batch of `batch_size`
  consecutive images with its own statistics, how the original labels images; an imported
  checkpoint's default). With "batch" a label depends on the images it is labelled with: the
  same images in the same order and batches give the same labels (docs/original.md).
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
  batch_norm: str = "running"
  # Compiled labellers per (mode, batch size): a job labels several groups of images, and a
  # new jit closure per call would compile the encoder again each time.
  _labelers: dict = dataclasses.field(default_factory=dict, init=False, repr=False,
                                      compare=False)

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

  @property
  def default_batch_size(self) -> int:
    """512 (the original's evaluation batches) with BatchNorm on batch statistics, else 1024."""
    return _default_batch_size(self.batch_norm)

  def _mode(self, batch_norm: str | None, batch_size: int | None) -> tuple[str, int]:
    mode = task_network.check_batch_norm(batch_norm or self.batch_norm)
    return mode, int(batch_size or _default_batch_size(mode))

  def embed(self, images, *, normalized: bool = False, batch_size: int | None = None,
            batch_norm: str | None = None) -> np.ndarray:
    """Embeddings `h(x)` `[N, d]`.

    Args:
      images: `[N, H, W, C]` in [0, 1] (uint8 is divided by 255), or already normalised.
      normalized: the images are already normalised as the network was trained.
      batch_size: images per chunk; with batch_norm "batch" each chunk is one BatchNorm batch
        (default 512, the original's evaluation batches), else 1024 (memory only).
      batch_norm: "running" or "batch"; default the network's own (`self.batch_norm`).

    Raises:
      ValueError: images of another shape; batch_norm "batch" on a single image.
    """
    mode, size = self._mode(batch_norm, batch_size)
    embed = task_network.make_embedder(self.encoder, batch_size=size, batch_norm=mode)
    return np.asarray(embed(self.params, self.batch_stats, self._prepare(images, normalized)))

  def scores(self, images, *, normalized: bool = False, batch_size: int | None = None,
             batch_norm: str | None = None) -> np.ndarray:
    """Task scores `<w_i, h(x)>` `[N, d]`; label 1 iff positive. Arguments as `embed`."""
    mode, size = self._mode(batch_norm, batch_size)
    if (mode, size) not in self._labelers:
      self._labelers[mode, size] = task_network.make_labeler(self.encoder, batch_size=size,
                                                             batch_norm=mode)
    return np.asarray(self._labelers[mode, size](self.params, self.batch_stats, self.directions,
                            self._prepare(images, normalized))).T

  def labels(self, images, **kwargs) -> np.ndarray:
    """Hard labels `[N, d]` int32. Arguments as `embed`."""
    return np.asarray(task_network.hard_labels(self.scores(images, **kwargs)))

  __call__ = labels


def load(workdir: str, step: int | None = None, *, batch_norm: str | None = None) -> TaskNetwork:
  """Loads the task network of a discovery workdir (latest checkpoint unless `step`), verified
  against the checksums saved with it. Creates nothing on disk.

  Args:
    workdir: a discovery run's workdir, or one written by `task_discovery.import_original`.
    step: the checkpoint step; default the latest.
    batch_norm: how the network labels (`TaskNetwork`): "running" or "batch"; default what the
      workdir records: the mode chosen at import for an imported checkpoint, else "running".

  Returns:
    the `TaskNetwork`.

  Raises:
    ValueError: an unknown `batch_norm`.
    FileNotFoundError: no workdir, no checkpoint, or no such step (the message lists the steps).
    checkpoints.CheckpointCorruptError: the step is damaged (the message names the other steps
      to load).
  """
  if batch_norm is not None:
    task_network.check_batch_norm(batch_norm)
  directory = workdir_lib.Workdir(workdir).checkpoints
  if not os.path.isdir(directory):
    why = "no such workdir" if not os.path.exists(workdir) else "no checkpoints folder"
    raise FileNotFoundError(f"no checkpoint in {directory} ({why}): run `python -m "
                            "task_discovery.main --config=... --workdir=...` first")
  mgr = checkpoints.manager(workdir, create=False)
  try:
    steps = sorted(mgr.all_steps())
    if step is None:
      if not steps:
        raise FileNotFoundError(f"no checkpoint in {directory}: run `python -m "
                                "task_discovery.main --config=... --workdir=...` first")
      step = steps[-1]
    elif step not in steps:
      raise FileNotFoundError(f"no checkpoint step {step} in {directory}; the steps there are "
                              f"{steps or 'none'}")
    others = [s for s in steps if s != step]
    try:
      payload = checkpoints.read_payload(mgr, step)
      config = ml_collections.ConfigDict(payload["config"])
      for section in (config.task.encoder, config.learner):  # saved before the fields existed
        for field in ("init", "vit_final_norm"):
          if field not in section:
            section[field] = workdir_lib.BEHAVIOUR_BEFORE_FIELD[field]
      input_shape = tuple(payload["input_shape"])
      encoder, learner = models.build_models(config, input_shape)
      # The state's structure follows from the config; restore it onto the first local device.
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      abstract = jax.tree.map(
          lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device),
          jax.eval_shape(meta.make_meta_step(encoder, learner, config).init, keys.root(0)))
      restored, _ = checkpoints.restore(mgr, step, abstract.to_checkpoint())
      restored = meta.MetaState.from_checkpoint(restored)
    except checkpoints.CheckpointCorruptError as e:
      hint = (f"load another step: task_discovery.load({workdir!r}, step=S) for S in {others}"
              if others else "no other step is there")
      raise checkpoints.CheckpointCorruptError(f"{e}; {hint}. Nothing was changed.", step) from e
  finally:
    mgr.close()
  return TaskNetwork(config=config, step=int(step), params=restored.params,
                     batch_stats=restored.batch_stats,
                     directions=jnp.asarray(restored.directions),
                     mean=np.asarray(payload["mean"], np.float32),
                     std=np.asarray(payload["std"], np.float32), input_shape=input_shape,
                     encoder=encoder, batch_norm=batch_norm or recorded_batch_norm(payload))


def recorded_batch_norm(payload: dict) -> str:
  """The labelling a checkpoint's payload records: an import's choice ("running" for workdirs
  imported before the choice existed, as they were labelled then), else "running"."""
  return payload.get("original", {}).get("batch_norm", "running")
