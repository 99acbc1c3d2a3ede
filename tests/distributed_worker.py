"""One process of the two-process test in test_sharding.py (run as a script, not collected).

Usage: python distributed_worker.py PROCESS_ID PORT OUTPUT.npz
Each process has 2 simulated CPU devices; together they form a 4-device mesh.
"""
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +  # the test's compile flags
                           " --xla_force_host_platform_device_count=2")
sys.path.insert(0, os.path.dirname(__file__))
# The package of this checkout, as the pytest process that starts this script imports it (not
# whichever checkout is installed in the environment).
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from task_discovery import models  # noqa: E402
from task_discovery.data import datasets  # noqa: E402
from task_discovery.jobs import discovery  # noqa: E402
from task_discovery.run import sharding  # noqa: E402
import test_discovery  # noqa: E402


def main():
  process_id, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
  config = test_discovery.tiny_config()
  config.meta.meta_batch_size = 4
  config.distributed.initialize = True
  config.distributed.coordinator_address = f"localhost:{port}"
  config.distributed.num_processes = 2
  config.distributed.process_id = process_id
  sharding.initialize_distributed(config)
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  mesh = sharding.make_mesh(0)
  meta_step = discovery.make_meta_step(encoder, learner, config, mesh)
  state = sharding.put_replicated(meta_step.init(jax.random.key(config.seed)), mesh)
  data = sharding.put_replicated(discovery.device_data(dataset), mesh)
  step = meta_step.update
  losses = []
  for _ in range(3):
    state, metrics = step(state, data)
    losses.append(float(metrics["loss"]))
  if jax.process_index() == 0:  # only process 0 writes
    leaves = [np.asarray(x) for x in jax.tree.leaves(state.params)]
    np.savez(out, losses=np.asarray(losses), *leaves)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
