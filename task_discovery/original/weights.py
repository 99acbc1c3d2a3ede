"""The original PyTorch networks' weights as this library's Flax variables, and back; numpy only.

A PyTorch `state_dict` is taken as a flat dict `name -> numpy array` (what
`{k: v.numpy() for k, v in module.state_dict().items()}` gives); Flax variables are the
`{'params': ..., 'batch_stats': ...}` pytrees of `models.make_model` / `models.make_encoder`.
Neither framework is imported here, so the conversion is testable without torch.

Used by `import_original` (the original's checkpoints) and by the benchmarks that compare this
library with the original. Families (docs/method.md#network-families), learners and task
encoders:
  * 'mlp': the original's FCNet(batch_norm=True), fc1..fc4 with bn1..bn3, fc5 the head
    <-> `backbone/Dense_0..3`, `backbone/BatchNorm_0..2`, `head`.
  * 'resnet18': the original's CIFAR ResNet18 (conv1, bn1, layer1..4 of two BasicBlocks with
    conv1, bn1, conv2, bn2 and the shortcut's conv0, bn0; linear the head)
    <-> `backbone/Conv2D_0`, `backbone/BatchNorm_0`, `backbone/BasicBlock_{2 * stage + block}`
    with `Conv2D_0, BatchNorm_0, Conv2D_1, BatchNorm_1` and the shortcut's `Conv2D_2,
    BatchNorm_2`; `head`.
  * 'vit': the original's ViT4(batch_norm=True): `to_patch_embedding.1` <-> `backbone/Dense_0`,
    `cls_token`, `pos_embedding`; block i's `transformer.layers.i.0.norm` (BatchNorm over
    tokens), `.0.fn.to_qkv` (no bias), `.0.fn.to_out.0`, `.1.norm`, `.1.fn.net.0`, `.1.fn.net.3`
    <-> `BatchNorm_{2i}`, `Dense_{4i+1}`, `Dense_{4i+2}`, `BatchNorm_{2i+1}`, `Dense_{4i+3}`,
    `Dense_{4i+4}`; the head `mlp_head.0` (BatchNorm) and `mlp_head.1` <-> `head_norm`, `head`.
  * The task encoder (the original's TaskDiscoveryEncoder with proj='linear'): `backbone.*`
    as above without the head, `projector.0` (Linear, no bias) <-> `projection`,
    `projector.1` (BatchNorm1d, bias frozen at 0) <-> `embedding_norm` (scale only).

Layouts: Linear weights `(out, in)` <-> Dense kernels `(in, out)`; convolution weights OIHW <->
HWIO; BatchNorm weight, bias, running_mean, running_var <-> scale, bias, mean, var (values
copied: PyTorch keeps the unbiased running variance, this library the biased one, which only
matters in eval mode). Images are NCHW there and NHWC here, so the first Linear of an MLP, which
sees the flattened image, has its input features reordered from (C, H, W) to (H, W, C).

What the original has and this library does not (dropped on the way in; not produced on the
way out, so load the result with `strict=False`): `num_batches_tracked`, the encoder's unused
backbone heads (`backbone.fc5`, trainable but unused; `backbone.linear`, frozen;
`backbone.mlp_head`, the ViT's), the zero bias
of `projector.1` (checked to be zero; written as zeros on the way out) and `classifier.weight`
(the task head that `set_task` overwrites: the directions are separate, see
`directions_from_original`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FAMILIES = ("mlp", "resnet18", "vit")
VIT_DEPTH = 6  # the original's ViT4
ROLES = ("learner", "encoder")
IMAGE_SHAPE_CHW = (3, 32, 32)  # the original's CIFAR input


class Layer(NamedTuple):
  """One layer: its PyTorch module name, its Flax path and its kind.

  kind: 'dense' (Linear with bias), 'dense_nobias', 'dense_image' (the first Linear of an
  MLP: input features in the image's flattened order), 'conv' (no bias), 'bn', 'bn_nobias'
  (scale only; PyTorch's bias must be zero), 'tensor' (a bare parameter, e.g. the ViT's class
  token: the PyTorch name is the whole key, its leading axes of size 1 dropped here).
  """
  torch: str
  flax: tuple[str, ...]
  kind: str


def _backbone_layers(family: str) -> list[Layer]:
  if family == "mlp":
    layers = [Layer(f"fc{i + 1}", ("backbone", f"Dense_{i}"),
                    "dense_image" if i == 0 else "dense") for i in range(4)]
    layers += [Layer(f"bn{i + 1}", ("backbone", f"BatchNorm_{i}"), "bn") for i in range(3)]
    return layers
  if family == "resnet18":
    layers = [Layer("conv1", ("backbone", "Conv2D_0"), "conv"),
              Layer("bn1", ("backbone", "BatchNorm_0"), "bn")]
    for stage in range(4):
      for block in range(2):
        t = f"layer{stage + 1}.{block}"
        f = ("backbone", f"BasicBlock_{2 * stage + block}")
        layers += [Layer(f"{t}.conv1", f + ("Conv2D_0",), "conv"),
                   Layer(f"{t}.bn1", f + ("BatchNorm_0",), "bn"),
                   Layer(f"{t}.conv2", f + ("Conv2D_1",), "conv"),
                   Layer(f"{t}.bn2", f + ("BatchNorm_1",), "bn")]
        if stage > 0 and block == 0:  # stride 2 and twice the channels: 1x1 conv shortcut
          layers += [Layer(f"{t}.shortcut.conv0", f + ("Conv2D_2",), "conv"),
                     Layer(f"{t}.shortcut.bn0", f + ("BatchNorm_2",), "bn")]
    return layers
  if family == "vit":
    layers = [Layer("to_patch_embedding.1", ("backbone", "Dense_0"), "dense"),
              Layer("cls_token", ("backbone", "cls_token"), "tensor"),
              Layer("pos_embedding", ("backbone", "pos_embedding"), "tensor")]
    for i in range(VIT_DEPTH):
      t = f"transformer.layers.{i}"
      dense = lambda k: ("backbone", f"Dense_{4 * i + k}")
      layers += [Layer(f"{t}.0.norm", ("backbone", f"BatchNorm_{2 * i}"), "bn"),
                 Layer(f"{t}.0.fn.to_qkv", dense(1), "dense_nobias"),
                 Layer(f"{t}.0.fn.to_out.0", dense(2), "dense"),
                 Layer(f"{t}.1.norm", ("backbone", f"BatchNorm_{2 * i + 1}"), "bn"),
                 Layer(f"{t}.1.fn.net.0", dense(3), "dense"),
                 Layer(f"{t}.1.fn.net.3", dense(4), "dense")]
    return layers
  raise ValueError(f"family={family!r} is not one of {FAMILIES}")


def _head_layers(family: str) -> list[Layer]:
  if family == "vit":
    return [Layer("mlp_head.0", ("head_norm",), "bn"), Layer("mlp_head.1", ("head",), "dense")]
  return [Layer("fc5" if family == "mlp" else "linear", ("head",), "dense")]


def layers_of(family: str, role: str) -> list[Layer]:
  """The layers of a learner (backbone and head) or of a task encoder."""
  if role == "learner":
    return _backbone_layers(family) + _head_layers(family)
  if role == "encoder":
    return ([Layer("backbone." + l.torch, l.flax, l.kind) for l in _backbone_layers(family)]
            + [Layer("projector.0", ("projection",), "dense_nobias"),
               Layer("projector.1", ("embedding_norm",), "bn_nobias")])
  raise ValueError(f"role={role!r} is not one of {ROLES}")


def ignored_torch_keys(family: str, role: str) -> tuple[str, ...]:
  """Name prefixes and suffixes of state-dict entries without a counterpart here."""
  if role == "encoder":  # the backbone's own head: unused (penultimate features)
    head = {"mlp": "backbone.fc5.", "resnet18": "backbone.linear.", "vit": "backbone.mlp_head."}
    return (head[family], "classifier.", "num_batches_tracked")
  return ("num_batches_tracked",)


# PyTorch parameter / buffer names of each kind, with this library's name and collection.
_ENTRIES = {
    "dense": (("weight", "kernel", "params"), ("bias", "bias", "params")),
    "dense_nobias": (("weight", "kernel", "params"),),
    "dense_image": (("weight", "kernel", "params"), ("bias", "bias", "params")),
    "conv": (("weight", "kernel", "params"),),
    "bn": (("weight", "scale", "params"), ("bias", "bias", "params"),
           ("running_mean", "mean", "batch_stats"), ("running_var", "var", "batch_stats")),
    "bn_nobias": (("weight", "scale", "params"), ("running_mean", "mean", "batch_stats"),
                  ("running_var", "var", "batch_stats")),
    "tensor": ((None, None, "params"),),
}


def _torch_key(layer: Layer, name: str | None) -> str:
  return layer.torch if name is None else f"{layer.torch}.{name}"


def _flax_path(layer: Layer, flax_name: str | None) -> tuple[str, ...]:
  return layer.flax if flax_name is None else layer.flax + (flax_name,)


def _layout(kind: str, name: str, value: np.ndarray, image_chw, *, to_flax: bool
            ) -> np.ndarray:
  """One array in the other framework's layout (`to_flax`: PyTorch's -> this library's)."""
  if kind == "tensor":  # PyTorch keeps the ViT's tokens as [1, 1, dim] and [1, N, dim]
    if to_flax:
      while value.ndim > 1 and value.shape[0] == 1:
        value = value[0]
      return value
    return value.reshape((1,) * (3 - value.ndim) + value.shape)
  if name != "weight" or kind.startswith("bn"):
    return value
  if kind == "conv":  # OIHW <-> HWIO
    return value.transpose((2, 3, 1, 0) if to_flax else (3, 2, 0, 1))
  if kind == "dense_image":  # input features (C, H, W) <-> (H, W, C)
    c, h, w = image_chw
    if to_flax:
      return value.reshape(-1, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, -1)
    return value.reshape(h, w, c, -1).transpose(3, 2, 0, 1).reshape(-1, c * h * w)
  return value.T  # (out, in) <-> (in, out)


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  if path[-1] in tree:
    raise ValueError(f"two layers write {'/'.join(path)}")
  tree[path[-1]] = value


def _get(tree: dict, path: tuple[str, ...]):
  for key in path:
    tree = tree[key]
  return tree


def _flatten(tree: dict, prefix: tuple[str, ...] = ()) -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def torch_to_flax(state_dict: dict, family: str, role: str, *, params_only: bool = False,
                  image_chw=IMAGE_SHAPE_CHW) -> dict:
  """A PyTorch state dict (name -> array) as `{'params', 'batch_stats'}` of this library.

  `params_only`: the dict holds parameters only (e.g. `named_parameters()`), no BatchNorm
  buffers; the result then has `params` alone. Every entry of `state_dict` must be converted
  or listed by `ignored_torch_keys`, and every layer found: a missed layer is an error.
  """
  out = {"params": {}} if params_only else {"params": {}, "batch_stats": {}}
  used = set()
  for layer in layers_of(family, role):
    for name, flax_name, collection in _ENTRIES[layer.kind]:
      if params_only and collection != "params":
        continue
      key = _torch_key(layer, name)
      if key not in state_dict:
        raise KeyError(f"{key} missing from the state dict ({family} {role})")
      value = np.asarray(state_dict[key])
      _set(out[collection], _flax_path(layer, flax_name),
           _layout(layer.kind, name, value, image_chw, to_flax=True))
      used.add(key)
    if layer.kind == "bn_nobias" and f"{layer.torch}.bias" in state_dict:
      bias = np.asarray(state_dict[f"{layer.torch}.bias"])
      if np.any(bias != 0):
        raise ValueError(f"{layer.torch}.bias is not zero: this library's layer has no offset")
      used.add(f"{layer.torch}.bias")
  ignored = ignored_torch_keys(family, role)
  left = [k for k in state_dict if k not in used
          and not any(k.startswith(p) or k.endswith(p) for p in ignored)]
  if left:
    raise ValueError(f"state-dict entries without a counterpart ({family} {role}): {left}")
  return out


def flax_to_torch(variables: dict, family: str, role: str, *, image_chw=IMAGE_SHAPE_CHW
                  ) -> dict:
  """This project's variables as a PyTorch state dict (name -> array), `torch_to_flax`'s
  inverse. Every leaf of `variables` must belong to a layer (a missed one is an error);
  `batch_stats` may be absent (parameters only)."""
  out = {}
  used = set()
  collections = [c for c in ("params", "batch_stats") if variables.get(c)]
  for layer in layers_of(family, role):
    for name, flax_name, collection in _ENTRIES[layer.kind]:
      if collection not in collections:
        continue
      path = _flax_path(layer, flax_name)
      value = np.asarray(_get(variables[collection], path))
      out[_torch_key(layer, name)] = _layout(layer.kind, name, value, image_chw, to_flax=False)
      used.add((collection,) + path)
    if layer.kind == "bn_nobias":
      scale = np.asarray(_get(variables["params"], layer.flax + ("scale",)))
      out[f"{layer.torch}.bias"] = np.zeros_like(scale)
  left = [("/".join(k)) for c in collections for k in _flatten(variables[c], (c,))
          if k not in used]
  if left:
    raise ValueError(f"variables without a PyTorch counterpart ({family} {role}): {left}")
  return out


POLARITIES = ("training", "csv")


def directions_from_original(linear_tasks: np.ndarray, polarity: str = "training") -> np.ndarray:
  """The original's task directions `[n, d]` (its `linear_tasks`) as this library's.

  The original trains task j with logits `task_temp * [<w_j, h>, -<w_j, h>]` (`set_task`):
  class 0 iff `<w_j, h> > 0`. This library's task logits are `temperature * [-<w, h>, <w, h>]`
  (`task_network.task_logits`): class 1 iff `<w, h> > 0`. So
    * 'training': w = -w_j, the original's classes as it trained them (the learners see the
      same soft labels on the same outputs);
    * 'csv': w = +w_j, the labels of the original's released `discovered.csv` and notebooks,
      which write `<w_j, h> > 0` as class 1: the same task with its two classes swapped.
  """
  if polarity not in POLARITIES:
    raise ValueError(f"polarity={polarity!r} is not one of {POLARITIES}")
  w = np.asarray(linear_tasks)
  return -w if polarity == "training" else w.copy()
