"""An original checkpoint as a workdir of this library (`python -m task_discovery.import_original`
is its command line; docs/original.md)."""

from __future__ import annotations

import hashlib
import os
import types

import jax
import jax.numpy as jnp
import ml_collections

from task_discovery import config as config_lib
from task_discovery import keys
from task_discovery import models
from task_discovery.method import meta
from task_discovery.models import task_network
from task_discovery.original import checkpoint as original
from task_discovery.original import weights
from task_discovery.run import checkpoints
from task_discovery.run import report
from task_discovery.run import workdir as workdir_lib


def config_from_hparams(hparams: dict, family: str, dataset: dict) -> ml_collections.ConfigDict:
  """This library's config for the original's hyper-parameters: the fields with a counterpart
  take its values (networks, d, temperature, uniformity, inner loop, outer optimiser), the rest
  stay `config.base()`'s (the original's defaults). Used to rebuild the state's shapes and to
  resume or evaluate with the original's settings."""
  c = config_lib.base()
  c.data.name = dataset["name"]
  c.data.update(dataset["data"])
  c.task.encoder = config_lib.model_config(family)
  learner = hparams.get("as_arch", "resnet18")
  if learner in weights.FAMILIES:
    c.learner = config_lib.model_config(learner)
  c.task.num_tasks = int(hparams["h_dim"])
  c.task.temperature = float(hparams.get("task_temp", c.task.temperature))
  c.task.uniformity_t = float(hparams.get("temperature", c.task.uniformity_t))
  c.task.diversity_coef = float(hparams.get("uniformity_coef", c.task.diversity_coef))
  c.inner.num_steps = int(hparams.get("nsteps", c.inner.num_steps))
  batch = int(hparams.get("batch_size", c.inner.batch_size))
  c.inner.batch_size = c.inner.heldout_batch_size = batch
  # The original minimises the mean of the learners' losses: each steps with half its rate.
  c.inner.learning_rate = float(hparams.get("as_learning_rate", 0.01)) / 2
  if hparams.get("data_mode") in ("meta", "full"):
    c.inner.data_mode = hparams["data_mode"]
  c.inner.random_init = bool(hparams.get("random_init", False))
  c.meta.learning_rate = float(hparams.get("encoder_learning_rate", c.meta.learning_rate))
  c.meta.num_steps = int(hparams.get("meta_steps", c.meta.num_steps))
  c.seed = int(hparams.get("seed", 0))
  return c


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _state(net: original.OriginalTaskNetwork, config, polarity: str) -> meta.MetaState:
  """The workdir's state: the checkpoint's encoder and directions in a state of this library's
  layout (outer optimiser and learners as a new run of the same config starts them)."""
  encoder, learner = models.build_models(config, net.dataset["input_shape"])
  init = meta.make_meta_step(encoder, learner, config).init
  root = keys.root(config.seed)
  abstract = jax.eval_shape(init, root)
  imported = {"params": net.variables["params"], "batch_stats": net.variables["batch_stats"]}
  for part in ("params", "batch_stats"):
    if jax.tree_util.tree_structure(imported[part]) != jax.tree_util.tree_structure(
        getattr(abstract, part)):
      raise original.OriginalCheckpointError(
          f"the checkpoint's {net.family} encoder (d = {net.linear_tasks.shape[0]}) does not "
          "have this library's layers")
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(imported[part])[0],
                            jax.tree.leaves(getattr(abstract, part))):
      if a.shape != b.shape:
        raise original.OriginalCheckpointError(
            f"{part}{jax.tree_util.keystr(path)}: shape {a.shape} in the checkpoint, "
            f"{b.shape} in this library's {net.family} at input {net.dataset['input_shape']}")

  def imported_state(root, params, batch_stats, directions):
    # One compiled program (op by op, the initialisers would compile a hundred small ones); the
    # encoder's random initialisation it replaces is dead code there, and XLA drops it.
    return init(root)._replace(params=params, batch_stats=batch_stats, directions=directions)

  as_jax = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
  directions = weights.directions_from_original(net.linear_tasks, polarity)
  state = jax.jit(imported_state)(root, as_jax(imported["params"]),
                                  as_jax(imported["batch_stats"]),
                                  jnp.asarray(directions, jnp.float32))
  return state._replace(step=jnp.asarray(net.global_step, jnp.int32))


def default_name(family: str, num_tasks: int) -> str:
  """The original's name of a checkpoint's task set: its family, `_d<d>` unless d = 32."""
  return family if num_tasks == 32 else f"{family}_d{num_tasks}"


def import_checkpoint(path: str, workdir: str, *, polarity: str = "training",
                      name: str | None = None, batch_norm: str = "batch") -> dict:
  """Writes `workdir` from the original's checkpoint `path`: `config.json`, one checkpoint at
  the original's global step (with the original's input normalisation, so that
  `task_discovery.load` labels images in [0, 1]) and `report.json` with where it came from.

  `batch_norm` is the labelling the workdir records (`task_discovery.load` and the jobs use it):
  "batch" (default), BatchNorm on each batch's statistics as the original labels every image
  (its encoder's `train()` ignores `mode`); "running", true eval mode (docs/original.md).

  Returns:
    the `imported` section of report.json.

  Raises:
    FileExistsError: `workdir` already holds checkpoints (nothing is changed).
    OriginalCheckpointError, ImportError, FileNotFoundError: see `original.checkpoint.read`.
  """
  net = original.read(path)
  config = config_from_hparams(net.hparams, net.family, net.dataset)
  directory = workdir_lib.Workdir(workdir).checkpoints
  if os.path.isdir(directory) and os.listdir(directory):
    raise FileExistsError(f"{workdir} already holds checkpoints ({directory}): import into a "
                          "new workdir")
  state = _state(net, config, polarity)
  workdir = workdir_lib.prepare(workdir)
  num_tasks = int(net.linear_tasks.shape[0])
  info = {"checkpoint": os.path.abspath(path), "sha256": _sha256(path),
          "name": name or default_name(net.family, num_tasks),
          "family": net.family, "num_tasks": num_tasks,
          "polarity": polarity, "batch_norm": batch_norm,
          "batch_size": task_network.ORIGINAL_BATCH_SIZE, "global_step": net.global_step, "epoch": net.epoch,
          "dataset": net.hparams.get("dataset", "cifar10"), "mean": list(net.mean), "std": list(net.std),
          "hyper_parameters": {k: v for k, v in net.hparams.items()
                               if isinstance(v, (str, int, float, bool, type(None)))}}
  with workdir_lib.locked(workdir):
    report.write_config(workdir, config)
    dataset = types.SimpleNamespace(input_shape=net.dataset["input_shape"], mean=net.mean,
                                    std=net.std, name=net.dataset["name"],
                                    num_classes=net.dataset["num_classes"])
    mgr = checkpoints.manager(workdir, max_to_keep=config.checkpoint.max_to_keep)
    try:
      checkpoints.save(mgr, net.global_step, state.to_checkpoint(),
                       dict(checkpoints.make_payload(config, dataset), original=info))
      checkpoints.check_pending_save(mgr, net.global_step, wait=True)
    finally:
      mgr.close()
    report.update(workdir, imported=info)
  return info
