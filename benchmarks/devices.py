r"""Meta-steps per second against the number of devices of the mesh.

Usage (simulated CPU devices; they share this machine's cores, so on a 2-core CPU this measures
sharding overhead, not speed-up):
  python benchmarks/devices.py --devices=1,2,4,8 --meta_batch_size=8

On a multi-GPU machine run it without XLA_FLAGS: the real devices are used. Prints JSON.
"""

import os
import sys

if "--real_devices" not in sys.argv:
  os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from task_discovery import config as config_lib  # noqa: E402
from task_discovery import models  # noqa: E402
from task_discovery.jobs import discovery  # noqa: E402
from task_discovery.method import meta  # noqa: E402
from task_discovery.run import sharding  # noqa: E402

_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Mesh sizes to time.")
_META_BATCH = flags.DEFINE_integer("meta_batch_size", 8, "Tasks per meta-step.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed meta-steps per mesh size (after one warm-up).")
_REAL = flags.DEFINE_bool("real_devices", False, "Use the real devices (no simulated CPUs).")


def config():
  c = config_lib.base()
  c.learner = config_lib.model_config("mlp")
  c.learner.mlp_widths = (256, 128)
  c.task.encoder = config_lib.model_config("mlp")
  c.task.encoder.mlp_widths = (256, 128)
  c.task.num_tasks = 32
  c.inner.num_steps = 10
  c.inner.batch_size = 128
  c.inner.heldout_batch_size = 128
  c.meta.meta_batch_size = _META_BATCH.value
  return c


def main(_):
  c = config()
  shape = (32, 32, 3)
  rng = np.random.default_rng(0)
  data = {"images": rng.standard_normal((2048,) + shape).astype(np.float32),
          "train_idx": np.arange(1843, dtype=np.int32),
          "heldout_idx": np.arange(1843, 2048, dtype=np.int32)}
  encoder, learner = models.build_models(c, shape)
  records = []
  for n in map(int, _DEVICES.value):
    if n > jax.device_count() or c.meta.meta_batch_size % n:
      continue
    mesh = sharding.make_mesh(n)
    meta_step = discovery.make_meta_step(encoder, learner, c, mesh)
    state = sharding.put_replicated(meta_step.init(jax.random.key(0)), mesh)
    device_data = sharding.put_replicated(data, mesh)
    step = meta_step.update
    state, _ = step(state, device_data)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(_STEPS.value):
      state, metrics = step(state, device_data)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - t0) / _STEPS.value
    records.append({"num_devices": n, "seconds_per_meta_step": seconds,
                    "meta_steps_per_second": 1.0 / seconds})
  base = records[0]["meta_steps_per_second"]
  for r in records:
    r["relative_to_first"] = r["meta_steps_per_second"] / base
  print(json.dumps({"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind,
                    "simulated": not _REAL.value and jax.default_backend() == "cpu",
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
                    "meta_batch_size": c.meta.meta_batch_size, "records": records}, indent=2))


if __name__ == "__main__":
  app.run(main)
