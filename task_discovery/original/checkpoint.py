"""The original's checkpoints of its task network, read without its code (docs/original.md).

The original's discovery (`ASUniformityTraining`, a PyTorch Lightning module) is saved by
Lightning's `Trainer.save_checkpoint`: a dict with `state_dict` (the module's parameters and
buffers: the encoder under `encoder.`, the task directions as `linear_tasks` `[n, h_dim]`, the
learners under `agreement_loss.`) and `hyper_parameters` (its command line). It is read with
`torch.load(weights_only=True)`, which unpickles tensors and plain containers only: no code of
the checkpoint runs, and neither Lightning nor the original's code is needed. torch itself is
an optional dependency (`pip install -e '.[original]'`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from task_discovery.original import weights

# The normalisation the original's data modules apply to images in [0, 1].
CIFAR10_MEAN = tuple(x / 255.0 for x in (125.3, 123.0, 113.9))  # pl_bolts' cifar10_normalization
CIFAR10_STD = tuple(x / 255.0 for x in (63.0, 62.1, 66.7))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # its tiny_imagenet.py
# The original's dataset names -> this library's data config and input shape.
DATASETS = {
    "cifar10": dict(name="cifar10", input_shape=(32, 32, 3), num_classes=10, data={}),
    "tiny_imagenet": dict(name="tiny_imagenet", input_shape=(32, 32, 3), num_classes=200,
                          data=dict(source="directory", image_size=32)),
    "tiny_imagenet_64": dict(name="tiny_imagenet", input_shape=(64, 64, 3), num_classes=200,
                             data=dict(source="directory", image_size=64)),
}


class OriginalCheckpointError(ValueError):
  """The file is not a checkpoint of the original's task network this library can import."""


@dataclasses.dataclass(frozen=True)
class OriginalTaskNetwork:
  """What an original checkpoint holds of its task network, in this library's layouts.

  Attributes:
    family: the encoder's family ('mlp', 'resnet18', 'vit').
    variables: `{'params', 'batch_stats'}` of `models.make_encoder` for that family.
    linear_tasks: `[n, h_dim]` the original's task directions w_j, as saved.
    hparams: the original's hyper-parameters.
    dataset: an entry of `DATASETS`.
    mean, std: the normalisation its data module applied to [0, 1] images.
    global_step, epoch: Lightning's counters at the save.
  """
  family: str
  variables: dict
  linear_tasks: np.ndarray
  hparams: dict
  dataset: dict
  mean: tuple
  std: tuple
  global_step: int
  epoch: int


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("reading the original's checkpoints needs PyTorch: pip install -e "
                      "'.[original]' (in a checkout of this library) or pip install torch") from e
  return torch


def load_file(path: str) -> dict:
  """`torch.load` of a checkpoint, tensors as numpy arrays; errors name the file and the cause."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no checkpoint file {path!r}")
  torch = _torch()
  try:
    raw = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # truncated zip, not a torch file, or a pickle with code in it
    text = str(e)
    if "Unsupported global" in text or "weights_only" in text.lower():
      why = ("it holds Python objects other than tensors and containers (not a checkpoint "
             "of the original's task discovery, or one made by other code)")
    else:
      why = "truncated, damaged or not a PyTorch file; download it again"
    raise OriginalCheckpointError(f"{path!r} can not be read: {why} ({type(e).__name__}: "
                                  f"{text.splitlines()[0][:300] if text else ''})") from e
  if not isinstance(raw, dict):
    raise OriginalCheckpointError(f"{path!r} holds a {type(raw).__name__}, not the dict of a "
                                  "PyTorch Lightning checkpoint")
  return raw


def _check_kind(path: str, raw: dict) -> tuple[dict, dict]:
  state = raw.get("state_dict")
  if state is None:
    what = ("a bare state_dict" if any(hasattr(v, "shape") for v in raw.values())
            else f"a dict with keys {sorted(raw)[:8]}")
    raise OriginalCheckpointError(
        f"{path!r} is {what}, not a PyTorch Lightning checkpoint (no 'state_dict'): give the "
        "checkpoint_*.ckpt that the original's train-as-uniformity.py saves")
  hparams = raw.get("hyper_parameters")
  if not isinstance(hparams, dict):
    raise OriginalCheckpointError(f"{path!r} has no 'hyper_parameters': the family and the "
                                  "task directions' dimension can not be known")
  if "linear_tasks" not in state:
    if any(k.startswith("models.") for k in state):
      raise OriginalCheckpointError(
          f"{path!r} is a checkpoint of the original's two-network training (train-2net.py, "
          "TwoSupervisedModels: two learners, no task network): import a checkpoint of its "
          "task discovery (train-as-uniformity.py, ASUniformityTraining)")
    raise OriginalCheckpointError(
        f"{path!r} has no 'linear_tasks' (the task directions): not a checkpoint of the "
        "original's ASUniformityTraining with linear tasks (n_linear_tasks != -1)")
  return state, hparams


def read(path: str) -> OriginalTaskNetwork:
  """Reads an original checkpoint of `ASUniformityTraining` into this library's layouts.

  Raises:
    FileNotFoundError: no such file.
    ImportError: torch is not installed (the message says how to install it).
    OriginalCheckpointError: unreadable file, another kind of checkpoint, or a setting this
      library has no counterpart for (family, projector, task directions); the message names it.
  """
  raw = load_file(path)
  state, hparams = _check_kind(path, raw)
  # Only the task network: the learners under `agreement_loss.` are not converted.
  state = {k: v.detach().cpu().numpy() for k, v in state.items()
           if k.startswith("encoder.") or k in ("linear_tasks", "linear_tasks_bias")}
  family = hparams.get("arch")
  if family not in weights.FAMILIES:
    raise OriginalCheckpointError(
        f"{path!r}: encoder family arch={family!r} is not one this library has; it imports "
        f"{', '.join(weights.FAMILIES)}")
  if hparams.get("proj", "linear") != "linear":
    raise OriginalCheckpointError(f"{path!r}: projector proj={hparams.get('proj')!r}; this "
                                  "library's task network has the original's 'linear' one")
  if hparams.get("freeze_backbone") or hparams.get("task_on_factors"):
    raise OriginalCheckpointError(f"{path!r}: freeze_backbone / task_on_factors runs are not "
                                  "supported")
  linear_tasks = np.asarray(state.pop("linear_tasks"), np.float32)
  bias = state.pop("linear_tasks_bias", None)
  if bias is not None and np.any(bias != 0):
    raise OriginalCheckpointError(f"{path!r}: its tasks have offsets (linear_tasks_bias, "
                                  "diversity_loss='mi'); this library's tasks are hyperplanes "
                                  "through the origin")
  h_dim = int(hparams.get("h_dim", linear_tasks.shape[-1]))
  if linear_tasks.shape != (h_dim, h_dim):
    raise OriginalCheckpointError(
        f"{path!r}: {linear_tasks.shape[0]} task directions in a {linear_tasks.shape[-1]}-"
        f"dimensional embedding (h_dim={h_dim}); this library has one task per embedding "
        "dimension (n_linear_tasks = h_dim)")
  name = hparams.get("dataset", "cifar10")
  if name not in DATASETS:
    raise OriginalCheckpointError(f"{path!r}: dataset={name!r}; known: {', '.join(DATASETS)}")
  dataset = DATASETS[name]
  if name == "cifar10":
    normalize = hparams.get("normalize", True)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if normalize else ((0.0,) * 3, (1.0,) * 3)
  else:
    mean, std = IMAGENET_MEAN, IMAGENET_STD
  encoder_state = {k[len("encoder."):]: v for k, v in state.items()}
  h, w, c = dataset["input_shape"]
  try:
    variables = weights.torch_to_flax(encoder_state, family, "encoder", image_chw=(c, h, w))
  except (KeyError, ValueError) as e:
    raise OriginalCheckpointError(f"{path!r}: its encoder does not have the layers of the "
                                  f"original's {family} ({e})") from e
  return OriginalTaskNetwork(
      family=family, variables=variables, linear_tasks=linear_tasks, hparams=dict(hparams),
      dataset=dataset, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
      global_step=int(raw.get("global_step", 0)), epoch=int(raw.get("epoch", 0)))
