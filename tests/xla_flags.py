"""The XLA flags of the test processes, and the environment of the processes they start.

`conftest.py` sets them before JAX is imported; tests that start another Python (a notebook
kernel, distributed workers) pass on the compile flags but choose their own device count.
"""

DEVICE_COUNT = "--xla_force_host_platform_device_count"
SIMULATED_DEVICES = f"{DEVICE_COUNT}=8"
# The suite is dominated by XLA:CPU compiling hundreds of tiny programs, not by running them.
# LLVM at -O0 compiles them about 1.5x faster; it changes no semantics (no fast math), only
# which vectorised code the same HLO becomes, so every test compares numbers computed under
# the same flags. Runs outside the tests keep XLA's default optimisation.
COMPILE_FAST = "--xla_backend_optimization_level=0"


def with_defaults(flags: str, *defaults: str) -> str:
  """`flags` with each `--name=value` of `defaults` added unless `flags` already sets that name
  (the caller's choice wins, e.g. `XLA_FLAGS=--xla_backend_optimization_level=2 pytest`)."""
  for default in defaults:
    if default.split("=")[0] not in flags:
      flags = f"{flags} {default}".strip()
  return flags


def without_device_count(flags: str) -> str:
  """`flags` less the simulated device count, for a process that sets its own."""
  return " ".join(f for f in flags.split() if not f.startswith(DEVICE_COUNT))
