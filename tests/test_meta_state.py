"""The typed discovery state: one layout for every config, and checkpoints written before it.

`tests/data/checkpoints_before_typed_state/{full,pes}` hold step 2 of two runs written while the
state was a dict (`configs/digits.py:smoke` with 4-unit MLPs, 2 meta-steps; `pes` with its
persistent learners and perturbations), with their `config.json`.
"""

import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import task_discovery
from task_discovery import config as config_lib
from task_discovery import keys
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.jobs import discovery
from task_discovery.method import meta
from task_discovery.run import checkpoints
from test_discovery import tiny_config

OLD = os.path.join(os.path.dirname(__file__), "data", "checkpoints_before_typed_state")


def _raw_restore(workdir: str, step: int) -> dict:
  """The checkpoint's arrays as orbax reads them without a target (numpy, the saved tree)."""
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                             item_names=(checkpoints.STATE_ITEM,)) as mgr:
    return mgr.restore(step, args=ocp.args.Composite(
        **{checkpoints.STATE_ITEM: ocp.args.PyTreeRestore()}))[checkpoints.STATE_ITEM]


@pytest.mark.parametrize("estimator", ["full", "pes"])
def test_every_config_has_the_same_state_fields(estimator):
  config = tiny_config()
  config.meta.estimator = estimator
  config.meta.truncation_length = 1
  config.meta.es_num_pairs = 1
  dataset = datasets.load_dataset(config.data)
  state = meta.make_meta_step(*models.build_models(config, dataset.input_shape),
                              config).init(keys.root(0))
  assert isinstance(state, meta.MetaState)
  assert state._fields == ("step", "params", "batch_stats", "opt_state", "learner_init",
                           "directions", "key", "estimator")
  tree = state.to_checkpoint()
  # The checkpoint layout of the estimators without state is the one they always had.
  assert ("estimator" in tree) == (estimator == "pes")
  assert meta.MetaState.from_checkpoint(tree)._fields == state._fields


@pytest.mark.parametrize("estimator", ["full", "pes"])
def test_checkpoints_written_before_the_typed_state_restore_and_resume(estimator, tmp_path):
  workdir = str(tmp_path / estimator)
  shutil.copytree(os.path.join(OLD, estimator), workdir)
  saved = _raw_restore(workdir, 2)
  assert ("estimator" in saved) == (estimator == "pes")

  net = task_discovery.load(workdir)
  assert net.step == 2
  for a, b in zip(jax.tree.leaves(net.params), jax.tree.leaves(saved["params"])):
    np.testing.assert_array_equal(np.asarray(a), b)

  config = config_lib.load_config_json(os.path.join(workdir, "config.json"))
  config.meta.num_steps = 3  # one more meta-step: a resume, not a new run
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  mesh = discovery.sharding.make_mesh(1)
  meta_step = discovery.make_meta_step(encoder, learner, config, mesh)
  mgr = checkpoints.manager(workdir)
  state, restored = discovery._restore_or_init(  # pylint: disable=protected-access
      mgr, config, workdir, meta_step, keys.root(config.seed), mesh, main_process=True)
  mgr.close()
  assert restored == 2 and isinstance(state, meta.MetaState)
  for a, b in zip(jax.tree.leaves(state.to_checkpoint()), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(np.asarray(a), b)
  if estimator == "pes":  # the persistent learners came back, not a fresh initialisation
    assert jax.tree.leaves(state.estimator) and any(
        float(np.abs(a).max()) > 0 for a in jax.tree.leaves(state.estimator["xi"]))

  final, _ = discovery.train(config, workdir, dataset, mesh=mesh)
  assert int(final.step) == 3
  assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(final.params))
