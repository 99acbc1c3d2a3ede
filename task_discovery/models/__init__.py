"""The networks: families for learners and the task-network encoder
(docs/method.md#network-families, docs/method.md#the-task-network), their layers and
initialisation, the one builder of a config's networks (`build_models`), and
the task network's heads and losses (`task_network`).

This subpackage is the only part of the library that imports Flax. Everything else sees a
`Model` (`interface`):

    variables = model.init(key)                         # {'params': ..., 'batch_stats': ...}
    outputs, new_batch_stats = model.apply(variables, x, train)

`apply` is a pure function of arrays (``train`` is a static Python bool), so it composes with
`jax.vmap` over stacked variables, `jax.lax.scan`, `jax.grad` (also second order) and
`jax.checkpoint`. BatchNorm statistics are plain state: the caller threads them through its scan
carry. No BatchNorm has an ``axis_name``, so vmapped learners never share statistics.

Conventions other modules can rely on:
  * Inputs are NHWC, ``[B, H, W, C]``; they are cast to the model's ``dtype``.
  * Convolutions use PyTorch-style explicit symmetric padding ``kernel_size // 2`` (`conv`).
  * BatchNorm uses momentum 0.9 and epsilon 1e-5, PyTorch's, and keeps the biased batch variance
    as its running variance (PyTorch stores the unbiased one); see `norm`.
  * ``batch_stats`` is ``{}`` for a model without BatchNorm, in init and in apply alike.
  * Parameters start as PyTorch initialises the original's layers (``init='torch'``, the
    default, `initializers.torch_init`) or with Flax's defaults (``init='flax'``).

Modules: one per family (`mlp`, `cnn`, `resnet`, `vit`), the layers they share (`norm`,
`conv`), the initialisation (`initializers`), the builder (`builder`), the task network
(`task_network`). The names imported below are the subpackage's interface: callers outside it
write `models.build_models(...)`, `models.Model`; modules inside it import each other directly.
"""
from task_discovery.models.builder import build_models
from task_discovery.models.builder import make_encoder
from task_discovery.models.builder import make_model
from task_discovery.models.cnn import CNN
from task_discovery.models.conv import Conv2D
from task_discovery.models.conv import resolve_conv_impl
from task_discovery.models.interface import apply_in_chunks
from task_discovery.models.interface import InputLayer
from task_discovery.models.interface import Model
from task_discovery.models.interface import num_params
from task_discovery.models.mlp import MLP
from task_discovery.models.norm import BATCH_NORM_MOMENTUM
# Not part of the interface (the families build theirs with `norm.batch_norm`); under this name
# because the model tests check the library's BatchNorm constants through it.
from task_discovery.models.norm import batch_norm as _batch_norm
from task_discovery.models.resnet import BasicBlock
from task_discovery.models.resnet import ResNet18
from task_discovery.models.vit import ViT
