"""Devices and hosts: one mesh with a `data` axis over which tasks are sharded.

The meta-batch of tasks (learner pairs and their unrolled training) and the task axis of the
agreement evaluation are split along `data`; task-network parameters, optimiser state and the
dataset are replicated. Everything is `jax.jit` with `NamedSharding` (GSPMD), no `pmap`, so the
same code runs on one CPU, one GPU, a multi-GPU machine, a TPU slice and several hosts.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(config) -> None:
  """Starts the multi-process runtime when `config.distributed.initialize` is set.

  Empty/zero fields are auto-detected by `jax.distributed.initialize` (SLURM, Open MPI, TPU
  pods, ...). Must run before any other JAX call touches the devices.
  """
  d = config.distributed
  if not d.initialize:
    return
  kwargs = {}
  if d.coordinator_address:
    kwargs["coordinator_address"] = d.coordinator_address
  if d.num_processes > 0:
    kwargs["num_processes"] = d.num_processes
  if d.process_id >= 0:
    kwargs["process_id"] = d.process_id
  try:  # CPU-only hosts (and tests on localhost) need cross-process collectives on the CPU.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except (AttributeError, ValueError):  # older/newer JAX: the default already works or differs
    pass
  jax.distributed.initialize(**kwargs)
  logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def make_mesh(num_devices: int = 0, *, divides: int = 0) -> jax.sharding.Mesh:
  """A 1-D mesh with axis `data` over the first `num_devices` devices.

  Args:
    num_devices: devices on the mesh; 0 = all devices of every host, or with `divides` the
      largest number of devices that divides it.
    divides: with num_devices=0, the size that the mesh must divide (e.g. the meta-batch), so
      the original's meta-batch of 1 runs on one device of a multi-device machine.
  """
  total = jax.device_count()
  n = total if num_devices <= 0 else num_devices
  if num_devices <= 0 and divides > 0:
    n = max(k for k in range(1, total + 1) if divides % k == 0)
    if n < total:
      logging.warning("using %d of %d devices: the meta-batch of %d tasks is split over devices; "
                      "raise meta.meta_batch_size to a multiple of %d to use them all", n, total,
                      divides, total)
  if n > total:
    raise ValueError(f"config.mesh.num_devices={num_devices} but only {total} devices are "
                     "visible (set it to 0 to use all of them)")
  devices = np.asarray(jax.devices()[:n])
  # Auto axes: GSPMD propagates shardings from the inputs and the constraints below
  # (jax.make_mesh defaults to Explicit axes in recent releases).
  axis_types = getattr(jax.sharding, "AxisType", None)
  if axis_types is not None:
    return jax.sharding.Mesh(devices, (DATA_AXIS,), axis_types=(axis_types.Auto,))
  return jax.sharding.Mesh(devices, (DATA_AXIS,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def along_data(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def _put(tree: Any, sharding: NamedSharding) -> Any:
  # make_array_from_callback works when devices span several processes (each process supplies
  # its own shards from the same host value), unlike a plain device_put.
  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(put, tree)


def put_replicated(tree: Any, mesh) -> Any:
  """Host values (identical on every process) -> arrays replicated on every device."""
  return _put(tree, replicated(mesh))


def put_along_data(tree: Any, mesh) -> Any:
  """Host values -> arrays split along their leading axis over the `data` axis."""
  return _put(tree, along_data(mesh))


def constrain_along_data(mesh) -> Callable[[Any], Any]:
  """A function that pins the leading axis of every leaf of a pytree to the `data` axis."""
  sharding = along_data(mesh)
  return lambda tree: jax.tree.map(
      lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def to_host(x: jax.Array) -> np.ndarray:
  """The full value of a (possibly multi-process) array as numpy, on every process."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def check_divisible(size: int, mesh, field: str) -> None:
  if size % mesh.size:
    raise ValueError(f"config.{field}={size} must be a multiple of the {mesh.size} devices of "
                     "the mesh (or set config.mesh.num_devices to a divisor of it)")
