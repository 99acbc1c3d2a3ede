"""`job='discover'`: meta-train the task network, then export and evaluate its tasks.

`train_and_evaluate(config, workdir)` is the whole job; each stage is a function of its own so a
notebook can call them separately:
  1. `train`: meta-training with automatic resume, checkpoints, metrics and a NaN guard;
  2. `export_tasks`: hard labels of every discovered task over the whole dataset;
  3. `evaluate`: AS of discovered, human- and random-labelled tasks under one protocol, task
     similarity and figures, into `report.json`.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from task_discovery import keys
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.data import inputs
from task_discovery.data import tasks
from task_discovery.jobs import evaluation
from task_discovery.method import meta
from task_discovery.method import similarity
from task_discovery.models import task_network
from task_discovery.run import checkpoints
from task_discovery.run import metric_writers
from task_discovery.run import plots
from task_discovery.run import profiling
from task_discovery.run import progress as progress_lib
from task_discovery.run import report as report_lib
from task_discovery.run import sharding
from task_discovery.run import workdir as workdir_lib


class NonFiniteLossError(FloatingPointError):
  """The meta-loss or meta-gradient became NaN or infinite."""


def meta_heldout_idx(dataset: datasets.Dataset) -> np.ndarray:
  """The images of the differentiable AS's held-out batch: the meta-validation part, or the
  held-out part when `data.meta_val_fraction` is 0."""
  return dataset.meta_val_idx if len(dataset.meta_val_idx) else dataset.heldout_idx


def device_data(dataset: datasets.Dataset) -> meta.DiscoveryData:
  """The dataset as device arrays; minibatches are gathered inside the compiled step.
  `heldout_idx` is the meta-step's held-out part (`meta_heldout_idx`)."""
  return meta.DiscoveryData(images=jnp.asarray(dataset.images),
                            train_idx=jnp.asarray(dataset.train_idx, jnp.int32),
                            heldout_idx=jnp.asarray(meta_heldout_idx(dataset), jnp.int32))


def _check_finite(step: int, values: dict[str, float], workdir: str, last_saved,
                  restored_step=None) -> None:
  bad = {k: v for k, v in values.items() if not np.isfinite(v)}
  if not bad:
    return
  kept = (f"the last checkpoint (step {last_saved}) is kept in {workdir}"
          if last_saved is not None else "no checkpoint had been written yet")
  if restored_step is not None and step == restored_step:
    raise NonFiniteLossError(
        f"non-finite values at meta-step {step}, the first step after restoring checkpoint step "
        f"{restored_step}: {bad}; {kept}. The restored checkpoint may be corrupt (damaged before "
        "its checksums were written, or written by other code): resume from an earlier step by "
        f"moving that step's folder out of {workdir_lib.Workdir.of(workdir).checkpoints}, "
        "or use a new --workdir. If the checkpoint is sound, lower inner.learning_rate or "
        "meta.learning_rate in a new --workdir.")
  raise NonFiniteLossError(
      f"non-finite values at meta-step {step}: {bad}; {kept}. Lower inner.learning_rate or "
      "meta.learning_rate (for optimizer='adam' keep inner.eps_root > 0), then resume.")


def make_meta_step(encoder: models.Model, learner: models.Model, config, mesh, *,
                   unroll_scans: bool = False) -> meta.MetaStep:
  """`meta.make_meta_step` with the tasks of the meta-batch split over `mesh` and `update`
  compiled at `config.precision`: the rest replicated, the state donated (updated in place).
  `unroll_scans`: see `meta.make_meta_loss` (benchmarks count FLOPs on such a compile)."""
  replicated = sharding.replicated(mesh)
  step = meta.make_meta_step(encoder, learner, config,
                             shard_tasks=sharding.constrain_along_data(mesh),
                             unroll_scans=unroll_scans)

  def update(state, data):
    # Inside the traced function: the compiled step keeps the precision whoever calls it.
    with jax.default_matmul_precision(config.precision):
      return step.update(state, data)

  return step._replace(update=jax.jit(update, in_shardings=(replicated, replicated),
                                      out_shardings=(replicated, replicated), donate_argnums=0))


def _restore_or_init(mgr, config, workdir: str, meta_step: meta.MetaStep, key: jax.Array, mesh,
                     *, main_process: bool) -> tuple[meta.MetaState, int | None]:
  """`(state, restored step)`: the newest intact checkpoint's state (`restored step` None and
  a fresh `meta_step.init(key)` when there is none), replicated over `mesh`."""
  replicated = sharding.replicated(mesh)
  abstract = jax.eval_shape(meta_step.init, key)
  abstract = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract)
  state, latest = checkpoints.restore_newest_intact(mgr, abstract.to_checkpoint(), config,
                                                    workdir, main_process=main_process)
  if latest is not None:
    logging.info("resumed from checkpoint step %d in %s (checksums verified)", latest, workdir)
    return meta.MetaState.from_checkpoint(state), latest
  return sharding.put_replicated(meta_step.init(key), mesh), None


def _log_sizes(config, state: meta.MetaState, mesh) -> None:
  logging.info("task network: %d encoder params, learner: %d params, %d tasks, meta-batch %d "
               "over %d devices", models.num_params({"params": state.params}),
               models.num_params({"params": jax.tree.map(lambda a: a[0],
                                                         state.learner_init["params"])}),
               config.task.num_tasks, config.meta.meta_batch_size, mesh.size)


def run_meta_steps(meta_step: meta.MetaStep, state: meta.MetaState, data: meta.DiscoveryData,
                   steps: range, profiler=None) -> tuple[meta.MetaState, list[dict]]:
  """Runs the meta-steps `steps` and returns the last state and each step's metrics.

  Nothing is read back from the device: the host queues the steps while the device runs them,
  and the caller reads the metrics when it logs or checks them (`_read_and_check`).
  """
  window = []
  for step in steps:
    if profiler is not None:
      profiler.step(step, block=state)  # waits for the traced steps before it stops the trace
    state, metrics = meta_step.update(state, data)
    window.append(metrics)
  return state, window


def _next_stop(done: int, config) -> int:
  """The first step count after `done` at which metrics are logged or a checkpoint is saved."""
  log_every, save_every = config.meta.log_every, config.checkpoint.every_steps
  return min(config.meta.num_steps, (done // log_every + 1) * log_every,
             (done // save_every + 1) * save_every)


def _read_and_check(first_step: int, window: list[dict], workdir: str, last_saved,
                    restored_step) -> list[dict]:
  """The metrics of meta-steps `first_step, first_step + 1, ...` on the host; raises
  `NonFiniteLossError` naming the first of them whose loss or gradient norm is not finite."""
  window = jax.device_get(window)
  for step, metrics in enumerate(window, start=first_step):
    values = {"loss": float(metrics["loss"]), "grad_norm": float(metrics["grad_norm"])}
    _check_finite(step, values, workdir, last_saved, restored_step=restored_step)
  return window


def train(config, workdir: str, dataset: datasets.Dataset, mesh=None):
  """Meta-trains the task network; resumes from the workdir's latest checkpoint.

  The meta-batch of tasks is split over the devices of `mesh` (default: all devices); the
  task network, optimiser state and dataset are replicated. Between two logs or checkpoints the
  meta-steps run without a host synchronisation; their metrics are then read and checked, so a
  non-finite step is named exactly and never reaches a checkpoint.

  Returns:
    (final state (`meta.MetaState`), encoder model).
  """
  if mesh is None:
    mesh = sharding.make_mesh(config.mesh.num_devices, divides=config.meta.meta_batch_size)
  sharding.check_divisible(config.meta.meta_batch_size, mesh, "meta.meta_batch_size")
  encoder, learner = models.build_models(config, dataset.input_shape)
  key = keys.root(config.seed)
  inputs.check_batch_sizes(config, num_train=len(dataset.train_idx),
                           num_heldout=len(dataset.heldout_idx),
                           num_meta_val=len(dataset.meta_val_idx))
  main_process = workdir_lib.Workdir.of(workdir).writes
  mgr = checkpoints.manager(workdir, max_to_keep=config.checkpoint.max_to_keep)
  payload = checkpoints.make_payload(config, dataset)
  meta_step = make_meta_step(encoder, learner, config, mesh)
  state, latest = _restore_or_init(mgr, config, workdir, meta_step, key, mesh,
                                   main_process=main_process)
  start = done = int(state.step)
  num_steps = config.meta.num_steps
  _log_sizes(config, state, mesh)
  data = sharding.put_replicated(device_data(dataset), mesh)
  # Records after the restored step were made by the interrupted run: drop them.
  writer = metric_writers.MetricWriter(workdir, enabled=main_process, resume_step=start)
  # From the run's second meta-step on: its first one compiles.
  profiler = profiling.StepTrace(workdir, num_steps=config.profile_steps, first_step=start + 1,
                                 enabled=main_process)
  bar = progress_lib.Progress(num_steps, "meta-step", start=start)
  last_saved = latest
  pending = None  # step of a checkpoint save that may still be in flight
  window = []
  t_window = time.perf_counter()
  finished = False
  try:
    while done < num_steps:
      stop = _next_stop(done, config)
      state, part = run_meta_steps(meta_step, state, data, range(done, stop), profiler)
      # A save that failed in the background stops training at the next log or save.
      pending = checkpoints.check_pending_save(mgr, pending)
      window += _read_and_check(done, part, workdir, last_saved, latest)
      done = stop
      if done % config.meta.log_every == 0 or done == num_steps:
        stacked = jax.tree.map(lambda *a: np.stack(a), *window)
        averaged = {k: v.mean(axis=0) for k, v in stacked.items() if k != "task_ids"}
        averaged["steps_per_second"] = len(window) / (time.perf_counter() - t_window)
        scalars = writer.write(done, averaged)
        if main_process:
          bar.update(done, f"loss {scalars['loss']:.4f} meta_as {scalars['meta_as']:.3f} "
                           f"{config.task.diversity} {scalars['diversity']:.3f}")
        window, t_window = [], time.perf_counter()
      if done % config.checkpoint.every_steps == 0 or done == num_steps:
        checkpoints.save(mgr, done, state.to_checkpoint(), payload,
                         pending=pending)  # every process takes part
        pending, last_saved = done, done
    checkpoints.check_pending_save(mgr, pending, wait=True)
    finished = True
  finally:
    if not finished:  # an error is on its way: do not let a second one from orbax replace it
      try:
        mgr.wait_until_finished()
      except Exception as e:  # pylint: disable=broad-except
        logging.error("a checkpoint save failed as well: %s", e)
    mgr.close()
    writer.close()
    profiler.close(block=state)
  if start >= num_steps:
    logging.info("checkpoint already at step %d >= meta.num_steps=%d: no training", start,
                 num_steps)
  return state, encoder


def export_tasks(workdir: str, dataset: datasets.Dataset, encoder: models.Model,
                 state: meta.MetaState) -> tuple[np.ndarray, np.ndarray]:
  """Writes `tasks.npz` / `tasks.csv`: hard labels `[d, N]` of every discovered task over the
  whole dataset (encoder in eval mode), with the train/held-out indices. Returns (labels,
  scores)."""
  label = task_network.make_labeler(encoder)
  scores = np.asarray(label(state.params, state.batch_stats, state.directions,
                            jnp.asarray(dataset.images)))
  labels = np.asarray(task_network.hard_labels(scores))
  wd = workdir_lib.Workdir.of(workdir)
  if wd.writes:
    tasks.save_task_labels(wd.tasks_prefix, labels, scores=scores,
                           train_idx=dataset.train_idx, heldout_idx=dataset.heldout_idx,
                           meta_val_idx=dataset.meta_val_idx, class_labels=dataset.labels)
  return labels, scores


def evaluate(config, workdir: str, dataset: datasets.Dataset, labels: np.ndarray,
             scores: np.ndarray) -> dict:
  """AS per family, similarity of the discovered tasks, and figures."""
  families = {}
  if config.eval.evaluate_discovered:
    families["discovered"] = (np.arange(len(labels)), labels)
  families.update(evaluation.family_tasks(config, dataset))
  sections = evaluation.evaluate_families(config, dataset, families)
  report = evaluation.write_family_outputs(workdir, dataset, sections)
  wd = workdir_lib.Workdir.of(workdir)
  if not wd.writes:
    return report
  sim, folded, ami = similarity.summary(labels)
  sim["label_balance"] = [float(b) for b in labels.mean(axis=1)]
  report = report_lib.update(workdir, similarity=sim)
  plots.similarity_heatmap(folded, wd.similarity_folded, "discovered tasks: folded agreement")
  plots.similarity_heatmap(np.clip(ami, 0, 1) * 0.5 + 0.5, wd.similarity_ami,
                           "discovered tasks: 0.5 + AMI / 2")
  discovered_as = None
  if config.eval.evaluate_discovered:
    by_index = {e["index"]: e["agreement"] for e in report["tasks"]
                if e["family"] == "discovered"}
    discovered_as = np.asarray([by_index[i] for i in range(len(labels))])
  plots.task_image_sheet(dataset.raw_images(), scores, wd.task_images,
                         title=f"{dataset.name}: the {len(labels)} discovered tasks",
                         agreement=discovered_as)
  logging.info("similarity: mean folded agreement %.3f, mean AMI %.3f",
               sim["mean_folded_agreement"], sim["mean_adjusted_mutual_information"])
  return report


def train_and_evaluate(config, workdir: str) -> dict:
  """The whole `discover` job."""
  dataset = datasets.load_dataset(config.data)
  logging.info("dataset %s: %d images %s, %d train / %d meta-validation / %d held-out, %d "
               "classes", dataset.name, dataset.num_images, dataset.input_shape,
               len(dataset.train_idx), len(dataset.meta_val_idx), len(dataset.heldout_idx),
               dataset.num_classes)
  t0 = time.perf_counter()
  state, encoder = train(config, workdir, dataset)
  train_seconds = time.perf_counter() - t0
  labels, scores = export_tasks(workdir, dataset, encoder, state)
  report = evaluate(config, workdir, dataset, labels, scores)
  if not workdir_lib.Workdir.of(workdir).writes:
    return report
  report = report_lib.update(workdir, discovery={
      "meta_steps": int(state.step), "train_seconds_this_run": train_seconds,
      "num_tasks": int(config.task.num_tasks)})
  for family, s in report["summary"].items():
    logging.info("%-10s mean AS %.4f (n=%d)", family, s["mean_as"], s["num_tasks"])
  return report
