"""Sharding over (simulated) devices and processes gives the unsharded numbers."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import xla_flags

from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.jobs import discovery
from task_discovery.method import agreement
from task_discovery.run import sharding
from test_discovery import tiny_config


def run_meta_steps(config, mesh, num_steps=3):
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  meta_step = discovery.make_meta_step(encoder, learner, config, mesh)
  state = sharding.put_replicated(meta_step.init(jax.random.key(config.seed)), mesh)
  data = sharding.put_replicated(discovery.device_data(dataset), mesh)
  step = meta_step.update
  losses = []
  for _ in range(num_steps):
    state, metrics = step(state, data)
    losses.append(float(metrics["loss"]))
  return state, np.asarray(losses)


def test_eight_simulated_devices_are_visible():
  assert jax.device_count() == 8  # set in conftest.py before JAX is imported


def test_sharded_meta_step_equals_unsharded():
  config = tiny_config()
  config.meta.meta_batch_size = 8
  config.task.num_tasks = 8
  sharded, losses_sharded = run_meta_steps(config, sharding.make_mesh(8))
  single, losses_single = run_meta_steps(config, sharding.make_mesh(1))
  leaf = jax.tree.leaves(sharded.params)[0]
  assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8
  np.testing.assert_allclose(losses_sharded, losses_single, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_meta_batch_not_divisible_by_devices_is_a_clear_error(tmp_path):
  config = tiny_config()
  config.meta.meta_batch_size = 3
  dataset = datasets.load_dataset(config.data)
  with pytest.raises(ValueError, match="meta.meta_batch_size=3 must be a multiple of the 8"):
    discovery.train(config, str(tmp_path), dataset, mesh=sharding.make_mesh(8))


def test_sharded_evaluation_gives_the_same_agreement():
  dataset = datasets.load_dataset(tiny_config().data)
  cfg = config_lib.base().eval
  cfg.update(num_epochs=2, batch_size=128, tasks_per_chunk=4)
  mlp = config_lib.model_config("mlp")
  mlp.mlp_widths = (16, 16)
  model = models.make_model(mlp, input_shape=dataset.input_shape, num_outputs=2)
  labels = np.random.default_rng(0).integers(0, 2, size=(5, dataset.num_images))
  kwargs = dict(train_idx=dataset.train_idx, heldout_idx=dataset.heldout_idx, config=cfg,
                key=jax.random.key(0))
  single = agreement.evaluate_tasks(model, dataset.images, labels, **kwargs)
  sharded = agreement.evaluate_tasks(model, dataset.images, labels, mesh=sharding.make_mesh(8),
                                     **kwargs)
  # Integer predictions: equal up to images whose logits tie within float rounding.
  np.testing.assert_allclose(sharded["agreement"], single["agreement"], atol=3e-3)
  np.testing.assert_allclose(sharded["accuracy"], single["accuracy"], atol=3e-3)


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_match_a_single_process(tmp_path):
  out = str(tmp_path / "params.npz")
  port = str(_free_port())
  worker = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
  env = dict(os.environ)
  env["XLA_FLAGS"] = xla_flags.without_device_count(env.get("XLA_FLAGS", ""))  # worker sets 2
  procs = [subprocess.Popen([sys.executable, worker, str(i), port, out], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
           for i in range(2)]
  logs = []
  try:
    for p in procs:
      stdout, _ = p.communicate(timeout=300)
      logs.append(stdout.decode(errors="replace")[-3000:])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert all(p.returncode == 0 for p in procs), "\n---\n".join(logs)
  config = tiny_config()
  config.meta.meta_batch_size = 4
  single, losses = run_meta_steps(config, sharding.make_mesh(1))
  with np.load(out) as f:
    np.testing.assert_allclose(f["losses"], losses, rtol=1e-5)
    leaves = [f[f"arr_{i}"] for i in range(len(jax.tree.leaves(single.params)))]
  for a, b in zip(leaves, jax.tree.leaves(single.params)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
