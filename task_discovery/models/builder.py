"""The one builder of a config's networks: a family's backbone with a classifier head
(`make_model`) or the task network's embedding head (`make_encoder`), as pure `Model`s, and
both networks of a discovery config (`build_models`).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from task_discovery.models import cnn
from task_discovery.models import conv
from task_discovery.models import initializers
from task_discovery.models import interface
from task_discovery.models import mlp
from task_discovery.models import norm
from task_discovery.models import resnet
from task_discovery.models import vit

# The network families by `config.model_config().name`: each module's `from_config(config,
# input_shape, conv_impl, dtype)` builds its backbone. A new family adds its module here.
_FAMILIES = {"mlp": mlp, "cnn": cnn, "resnet18": resnet, "vit": vit}
_NAMES = tuple(_FAMILIES)


class _Classifier(nn.Module):
  backbone: nn.Module
  num_outputs: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array | None, train: bool, **backbone_kwargs) -> jax.Array:
    x = None if x is None else x.astype(self.dtype)
    features = self.backbone(x, train, **backbone_kwargs)
    if isinstance(self.backbone, vit.ViT) and self.backbone.final_norm == "head":
      # The original's ViT head: BatchNorm1d (or LayerNorm) of the class token, then Linear.
      if self.backbone.norm == "batch":
        features = norm.batch_norm(self.dtype, name="head_norm")(
            features, use_running_average=not train)
      else:
        features = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, param_dtype=self.dtype,
                                name="head_norm")(features)
    return nn.Dense(self.num_outputs, dtype=self.dtype, param_dtype=self.dtype,
                    name="head")(features)


class _Encoder(nn.Module):
  backbone: nn.Module
  embedding_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = self.backbone(x.astype(self.dtype), train)
    h = nn.Dense(self.embedding_dim, use_bias=False, dtype=self.dtype, param_dtype=self.dtype,
                 name="projection")(features)
    # Offset fixed at 0: in training mode every embedding dimension is zero-centred per batch,
    # so each hyperplane through the origin splits the batch roughly in half
    # (docs/method.md#the-task-network).
    return norm.batch_norm(self.dtype, use_bias=False, use_scale=True, name="embedding_norm")(
        h, use_running_average=not train)


def _make_backbone(config: Any, input_shape: Sequence[int], dtype: Any, use: str = "meta"
                   ) -> nn.Module:
  """Builds the backbone named by ``config.name``; validates the config first. ``use`` picks
  the convolution for ``conv_impl='auto'`` (`conv.resolve_conv_impl`)."""
  if len(input_shape) != 3:
    raise ValueError(f"input_shape must be (H, W, C) without batch, got {tuple(input_shape)}.")
  name = getattr(config, "name", None)
  conv_impl = conv.resolve_conv_impl(getattr(config, "conv_impl", "auto"), use)
  if name not in _FAMILIES:
    raise ValueError(f"Unknown model name {name!r}; choose one of {_NAMES}.")
  return _FAMILIES[name].from_config(config, input_shape, conv_impl, dtype)


def _functional(module: nn.Module, input_shape: Sequence[int], dtype: Any,
                init_scheme: str = "flax") -> interface.Model:
  """Wraps a Linen module with ``__call__(x, train)`` into a pure `Model`; ``init_scheme``
  ``'torch'`` redraws the parameters with `initializers.torch_init`."""

  def init(key: jax.Array) -> dict:
    # Eval mode at init: running statistics are created but not updated.
    variables = module.init(key, jnp.zeros((1, *input_shape), dtype), train=False)
    params = variables["params"]
    if init_scheme == "torch":
      params = initializers.torch_init(params, jax.random.fold_in(key, 1))
    return {"params": params, "batch_stats": variables.get("batch_stats", {})}

  def run(variables: dict, x: jax.Array | None, train: bool, **kwargs
          ) -> tuple[jax.Array, dict]:
    batch_stats = variables.get("batch_stats", {})
    inputs = {"params": variables["params"]}
    if batch_stats:
      inputs["batch_stats"] = batch_stats
    if train and batch_stats:
      outputs, updates = module.apply(inputs, x, train=True, mutable=["batch_stats"], **kwargs)
      return outputs, updates["batch_stats"]
    return module.apply(inputs, x, train=train, **kwargs), batch_stats

  def apply(variables: dict, x: jax.Array, train: bool) -> tuple[jax.Array, dict]:
    return run(variables, x, train)

  input_layer = None
  if isinstance(getattr(module, "backbone", None), mlp.MLP):
    input_layer = interface.InputLayer(
        kernel_path=("backbone", "Dense_0", "kernel"),
        apply_rest=lambda variables, z, train: run(variables, None, train, z=z))
  return interface.Model(init=init, apply=apply, input_layer=input_layer)


def make_model(config: Any, *, input_shape: Sequence[int], num_outputs: int,
               dtype: Any = jnp.float32, use: str = "meta") -> interface.Model:
  """Learner / classifier network: backbone -> Dense(num_outputs) with bias.

  Args:
    config: Object with attribute ``name`` ('mlp', 'cnn', 'resnet18', 'vit') and optional
      ``mlp_widths``, ``cnn_widths``, ``resnet_width``, ``vit_*``, ``conv_impl`` and ``init``
      (``'torch'``, the default: `initializers.torch_init`; ``'flax'``: Flax's defaults) fields.
    input_shape: ``(H, W, C)`` of one example.
    num_outputs: Width of the output layer.
    dtype: Parameter and compute dtype.
    use: ``'meta'`` (a learner of the differentiable AS) or ``'train'`` (trained first-order,
      as the evaluation protocol does): picks the convolution for ``conv_impl='auto'``; the
      parameters and the function computed are the same either way.

  Returns:
    A `Model` whose ``apply`` returns ``[B, num_outputs]`` outputs.
  """
  backbone = _make_backbone(config, input_shape, dtype, use)
  return _functional(_Classifier(backbone, num_outputs, dtype=dtype), input_shape, dtype,
                     initializers.resolve_init(config))


def make_encoder(config: Any, *, input_shape: Sequence[int], embedding_dim: int,
                 dtype: Any = jnp.float32) -> interface.Model:
  """Task-network encoder: backbone -> Dense(d, no bias) -> BatchNorm(d, offset fixed at 0).

  Args:
    config: As in `make_model`.
    input_shape: ``(H, W, C)`` of one example.
    embedding_dim: Embedding size ``d`` (number of task directions).
    dtype: Parameter and compute dtype.

  Returns:
    A `Model` whose ``apply`` returns ``[B, embedding_dim]`` embeddings.
  """
  backbone = _make_backbone(config, input_shape, dtype)
  return _functional(_Encoder(backbone, embedding_dim, dtype=dtype), input_shape, dtype,
                     initializers.resolve_init(config))


def build_models(config: Any, input_shape: Sequence[int], *, num_outputs: int = 2,
                 learner_use: str = "meta") -> tuple[interface.Model, interface.Model]:
  """The networks of a discovery config: `(encoder, learner)`.

  The one place a config becomes models: the task network's encoder (`config.task.encoder`,
  `config.task.num_tasks` embedding dimensions) and the learner (`config.learner`, with
  `num_outputs` classes: 2 for binary tasks, K for K-way labels). Takes the input shape
  `(H, W, C)`, not a dataset, so `models` imports nothing of the library outside it.
  `learner_use` is `make_model`'s `use`: 'train' where the learner is trained by the
  evaluation protocol rather than unrolled.
  """
  encoder = make_encoder(config.task.encoder, input_shape=input_shape,
                         embedding_dim=config.task.num_tasks)
  learner = make_model(config.learner, input_shape=input_shape, num_outputs=num_outputs,
                       use=learner_use)
  return encoder, learner

