"""Checks of what enters a job beyond single config values: options the job would ignore, and
batch sizes against the dataset parts they draw from.

`config.validate` checks each field on its own; these checks need the job or the dataset. Each
error names the field and the fix; nothing is clipped or dropped silently.
"""

from __future__ import annotations

from absl import logging

from task_discovery import config as config_lib


def ignored_options(config) -> tuple[list[str], list[str]]:
  """Options set in `config` that `config.job` would not read.

  Returns:
    `(errors, warnings)`: messages naming each option. Errors are options whose only purpose is
    an input the job would silently skip (a labels file); warnings are sections of other jobs
    changed from their defaults.
  """
  errors, warnings = [], []
  job, a = config.job, config.adversarial
  for field in ("labels_file", "discovery_workdir", "reference_file"):
    value = config.eval.get(field, "")
    if value and job != "agreement":
      errors.append(f"eval.{field}={value!r} is read only by job='agreement', not job={job!r}: "
                    "clear it, or run job='agreement' (in its own workdir) to evaluate those "
                    "tasks")
  if job != "adversarial_split":
    defaults = config_lib.base().adversarial
    # ConfigDict equality also compares the lock state: compare values only.
    plain = lambda v: v.to_dict() if hasattr(v, "to_dict") else v
    changed = sorted(k for k in a.keys() if plain(a[k]) != plain(defaults[k]))
    if changed:
      warnings.append(f"adversarial.{{{', '.join(changed)}}} changed from the defaults, but only "
                      f"job='adversarial_split' reads the adversarial section (job={job!r})")
    return errors, warnings
  if a.source != "file" and a.labels_file:
    warnings.append(f"adversarial.labels_file={a.labels_file!r} is ignored with "
                    f"adversarial.source={a.source!r} (it is read for source='file')")
  if a.source != "discovery" and a.discovery_workdir:
    warnings.append(f"adversarial.discovery_workdir={a.discovery_workdir!r} is ignored with "
                    f"adversarial.source={a.source!r} (it is read for source='discovery')")
  return errors, warnings


def check_options(config) -> None:
  """Raises ValueError for options the job would ignore silently; logs a warning for the rest."""
  errors, warnings = ignored_options(config)
  for message in warnings:
    logging.warning("%s", message)
  if errors:
    raise ValueError("options that this job would ignore:\n  " + "\n  ".join(errors))


def check_batch_sizes(config, *, num_train: int, num_heldout: int, num_meta_val: int = 0
                      ) -> None:
  """Batch sizes must fit the dataset part each draws from (no silent clipping or repeats).

  Checks, for `config.job`: 'discover': `inner.batch_size` <= training part, and
  `inner.heldout_batch_size` <= the meta-validation part (the held-out part when there is none,
  `num_meta_val` = 0); 'discover' and 'agreement': `eval.batch_size` <= training part (checked
  before meta-training, not after it).

  Raises:
    ValueError: naming every field too large, the part's size and the data fields that set it.
  """
  problems = []
  parts = "(data.num_images, data.heldout_fraction and data.meta_val_fraction set the parts)"
  if config.job == "discover":
    if config.inner.batch_size > num_train:
      problems.append(f"inner.batch_size={config.inner.batch_size} exceeds the {num_train} "
                      "images of the training part")
    part, size = (("meta-validation", num_meta_val) if num_meta_val
                  else ("held-out", num_heldout))
    if config.inner.heldout_batch_size > size:
      problems.append(f"inner.heldout_batch_size={config.inner.heldout_batch_size} exceeds the "
                      f"{size} images of the {part} part")
  if config.job in ("discover", "agreement") and config.eval.batch_size > num_train:
    problems.append(f"eval.batch_size={config.eval.batch_size} exceeds the {num_train} images of "
                    "the training part")
  if problems:
    raise ValueError("batch sizes larger than the data they draw from:\n  "
                     + "\n  ".join(problems) + f"\nLower them, or use more images {parts}.")
