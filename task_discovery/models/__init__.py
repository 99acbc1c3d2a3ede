"""Network families for learners and the task-network encoder (SPEC sections 4 and 5), and the
one builder of a config's networks (`build_models`).

This is the only module of the library that imports Flax. Everything else sees a `Model`:

    variables = model.init(key)                         # {'params': ..., 'batch_stats': ...}
    outputs, new_batch_stats = model.apply(variables, x, train)

`apply` is a pure function of arrays (``train`` is a static Python bool), so it composes with
`jax.vmap` over stacked variables, `jax.lax.scan`, `jax.grad` (also second order) and
`jax.checkpoint`. BatchNorm statistics are plain state: the caller threads them through its scan
carry. No BatchNorm has an ``axis_name``, so vmapped learners never share statistics.

Conventions other modules can rely on:
  * Inputs are NHWC, ``[B, H, W, C]``; they are cast to the model's ``dtype``.
  * Convolutions use PyTorch-style explicit symmetric padding ``kernel_size // 2`` (1 for 3x3, 0 for
    1x1), so a stride-2 3x3 conv maps 32 -> 16 exactly like the PyTorch original. This differs from
    ``nn.Conv(padding='SAME')`` at stride 2 on even inputs, which pads only on the far side.
  * BatchNorm uses momentum 0.9 and epsilon 1e-5 (PyTorch's momentum 0.1 / eps 1e-5: Flax's momentum
    is the weight of the old running average, PyTorch's the weight of the new batch). Running
    variances are the biased batch variance (PyTorch stores the unbiased one).
  * ``batch_stats`` is ``{}`` for a model without BatchNorm, in init and in apply alike.
  * Parameters start as PyTorch initialises the original's layers (``init='torch'``, the
    default, `torch_init`) or with Flax's defaults (``init='flax'``: LeCun-normal kernels, zero
    biases, N(0, 0.02) ViT tokens).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_NAMES = ("mlp", "cnn", "resnet18", "vit")
_CONV_IMPLS = ("auto", "xla", "im2col")
_VIT_NORMS = ("batch", "layer")
_VIT_FINAL_NORMS = ("head", "tokens")
INITS = ("torch", "flax")
# Weight of the old running average in every BatchNorm update: r <- m * r + (1 - m) * batch stat.
BATCH_NORM_MOMENTUM = 0.9


class InputLayer(NamedTuple):
  """A network whose input enters through one dense layer: `z = flatten(x) @ kernel`.

  Learners trained by SGD keep this layer's weights as `kernel_0 - lr * sum_s x_s^T delta_s`,
  so `meta` can train them in sample space (see `meta.py`) without touching the kernel.

  Attributes:
    kernel_path: keys of the `[in_features, out_features]` kernel in `variables['params']`.
    apply_rest: ``(variables, z, train) -> (outputs, new_batch_stats)``: the network given
      ``z = flatten(x) @ kernel`` (before the bias); `variables['params']` may lack the kernel.
  """
  kernel_path: tuple[str, ...]
  apply_rest: Callable[[dict, jax.Array, bool], tuple[jax.Array, dict]]


class Model(NamedTuple):
  """A network as two pure functions.

  Attributes:
    init: ``key -> variables``, a dict ``{'params': ..., 'batch_stats': ...}`` (``batch_stats`` is
      ``{}`` when the network has no BatchNorm).
    apply: ``(variables, x, train) -> (outputs, new_batch_stats)``. ``x`` is ``[B, H, W, C]``. With
      ``train=True`` BatchNorm normalises with batch statistics and ``new_batch_stats`` holds the
      updated running averages; with ``train=False`` it uses the running averages and returns
      ``variables['batch_stats']`` unchanged. ``train`` must be a Python bool.
    input_layer: for networks whose first layer is dense on the flattened input (the MLP), how
      to run the rest of the network from that layer's matmul; None otherwise.
  """
  init: Callable[[jax.Array], dict]
  apply: Callable[[dict, jax.Array, bool], tuple[jax.Array, dict]]
  input_layer: InputLayer | None = None


def resolve_conv_impl(conv_impl: str) -> str:
  """Maps ``'auto'`` to the convolution implementation suited to the default backend.

  XLA:CPU differentiates convolutions inside ``lax.scan`` 15-50x slower than in a Python loop
  (jax-ml/jax#12868); an im2col convolution is a plain matmul and has no such cliff. On GPU/TPU
  the native convolution is the better choice.

  Args:
    conv_impl: ``'auto'``, ``'xla'`` or ``'im2col'``.

  Returns:
    ``'xla'`` or ``'im2col'``.

  Raises:
    ValueError: for any other value.
  """
  if conv_impl not in _CONV_IMPLS:
    raise ValueError(f"conv_impl={conv_impl!r} is not one of {_CONV_IMPLS}.")
  if conv_impl == "auto":
    return "im2col" if jax.default_backend() == "cpu" else "xla"
  return conv_impl


def num_params(variables: dict) -> int:
  """Number of scalars in ``variables['params']`` (running statistics are not counted)."""
  return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(variables["params"]))


def _conv_kernel_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32
                      ) -> jax.Array:
  """LeCun-normal like ``nn.Conv``, drawn as a ``[k*k*cin, cout]`` matrix and reshaped.

  Same fan-in, hence the same distribution; but XLA:CPU compiles the partitionable threefry
  sampler for a rank-4 shape several times slower (~1.5 s vs 0.4 s a shape) than for a matrix.
  """
  flat = nn.initializers.lecun_normal()(key, (math.prod(shape[:-1]), shape[-1]), dtype)
  return flat.reshape(shape)


def _batch_norm(dtype: Any, **kwargs) -> nn.BatchNorm:
  # Statistics in ``dtype`` (float32 or float64) so running averages keep the parameters' dtype
  # and a scan carry never changes type; half precision still reduces in float32.
  return nn.BatchNorm(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-5, dtype=dtype, param_dtype=dtype,
                      use_fast_variance=False,
                      force_float32_reductions=jnp.dtype(dtype).itemsize < 4, **kwargs)


def _im2col_patches(x: jax.Array, k: int, s: int, pad: int) -> jax.Array:
  """`[B, Ho, Wo, k*k*C]` patches; static strided slices (their gradient is a pad, not a
  scatter) concatenated in the (i, j, cin) order of the HWIO kernel's row-major reshape."""
  batch, height, width, cin = x.shape
  out_h = (height + 2 * pad - k) // s + 1
  out_w = (width + 2 * pad - k) // s + 1
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  cols = [jax.lax.slice(xp, (0, i, j, 0), (batch, i + s * (out_h - 1) + 1,
                                           j + s * (out_w - 1) + 1, cin), (1, s, s, 1))
          for i in range(k) for j in range(k)]
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def _im2col_matmul(x: jax.Array, kernel: jax.Array, s: int, pad: int) -> jax.Array:
  k, cout = kernel.shape[0], kernel.shape[-1]
  return jnp.dot(_im2col_patches(x, k, s, pad), kernel.reshape(-1, cout))  # [B, Ho, Wo, cout]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _im2col_conv(x: jax.Array, kernel: jax.Array, s: int, pad: int) -> jax.Array:
  """Convolution as one matmul over im2col patches, whose patches are never kept.

  The patches are k*k times the input (9x for 3x3). The backward pass rebuilds them from `x`
  (slices: no FLOPs), and it runs under `jax.checkpoint`, so that differentiating the
  backward pass again (the meta-gradient through a learner's SGD step) keeps `x`, the kernel
  and the output gradient, not the patches. Plain autodiff of the matmul would keep the patches
  at both levels: 60% of the memory of a ResNet-18 meta-step (benchmarks/README.md).
  """
  return _im2col_matmul(x, kernel, s, pad)


def _im2col_conv_fwd(x, kernel, s, pad):
  return _im2col_matmul(x, kernel, s, pad), (x, kernel)


@functools.partial(jax.checkpoint, static_argnums=(3, 4))
def _im2col_conv_grads(x, kernel, dy, s, pad):
  _, vjp = jax.vjp(lambda x, kernel: _im2col_matmul(x, kernel, s, pad), x, kernel)
  return vjp(dy)


def _im2col_conv_bwd(s, pad, residuals, dy):
  x, kernel = residuals
  return _im2col_conv_grads(x, kernel, dy, s, pad)


_im2col_conv.defvjp(_im2col_conv_fwd, _im2col_conv_bwd)


class Conv2D(nn.Module):
  """Square 2-D convolution, NHWC, kernel ``[k, k, cin, cout]`` like ``nn.Conv``.

  Attributes:
    features: Output channels.
    kernel_size: Spatial size ``k`` of the square kernel.
    strides: Stride in both spatial dimensions.
    use_bias: Whether to add a bias.
    impl: ``'xla'`` (``lax.conv_general_dilated``) or ``'im2col'`` (shifted strided slices
      concatenated on channels, then one matmul). Both compute the same function.
    dtype: Parameter and compute dtype.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = False
  impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, pad = self.kernel_size, self.strides, self.kernel_size // 2
    cin = x.shape[-1]
    kernel = self.param("kernel", _conv_kernel_init, (k, k, cin, self.features), self.dtype)
    x = x.astype(self.dtype)
    if self.impl == "xla":
      y = jax.lax.conv_general_dilated(x, kernel, window_strides=(s, s),
                                       padding=((pad, pad), (pad, pad)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    elif self.impl == "im2col":
      y = _im2col_conv(x, kernel, s, pad)
    else:
      raise ValueError(f"Conv2D impl={self.impl!r} is not one of ('xla', 'im2col').")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), self.dtype)
    return y


class _InputDense(nn.Module):
  """``nn.Dense`` (same parameters and initialisation) that can take its matmul ``z`` as given."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array | None, z: jax.Array | None = None) -> jax.Array:
    if z is None:
      kernel = self.param("kernel", nn.initializers.lecun_normal(),
                          (x.shape[-1], self.features), self.dtype)
      z = jnp.dot(x.astype(self.dtype), kernel)
    return z + self.param("bias", nn.initializers.zeros, (self.features,), self.dtype)


class MLP(nn.Module):
  """Flatten -> [Dense -> ReLU (-> BatchNorm except after the last hidden layer)].

  ``z``, if given, replaces the first layer's matmul ``flatten(x) @ kernel`` (`InputLayer`).
  """
  widths: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array | None, train: bool, z: jax.Array | None = None) -> jax.Array:
    if x is not None:
      x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.widths):
      if i == 0:
        x = _InputDense(width, dtype=self.dtype, name="Dense_0")(x, z)
      else:
        x = nn.Dense(width, dtype=self.dtype, param_dtype=self.dtype, name=f"Dense_{i}")(x)
      x = nn.relu(x)
      if i < len(self.widths) - 1:
        x = _batch_norm(self.dtype)(x, use_running_average=not train)
    return x


class CNN(nn.Module):
  """[3x3 conv -> BatchNorm -> ReLU] per width (stride 1, then 2), global average pool."""
  widths: Sequence[int]
  conv_impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    for i, width in enumerate(self.widths):
      x = Conv2D(width, 3, 1 if i == 0 else 2, impl=self.conv_impl, dtype=self.dtype)(x)
      x = nn.relu(_batch_norm(self.dtype)(x, use_running_average=not train))
    return x.mean(axis=(1, 2))


class BasicBlock(nn.Module):
  """ResNet BasicBlock: two 3x3 conv-BN, with a 1x1 conv-BN shortcut when the shape changes."""
  features: int
  strides: int
  conv_impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda f, k, s: Conv2D(f, k, s, impl=self.conv_impl, dtype=self.dtype)
    bn = lambda: _batch_norm(self.dtype, use_running_average=not train)
    y = nn.relu(bn()(conv(self.features, 3, self.strides)(x)))
    y = bn()(conv(self.features, 3, 1)(y))
    if self.strides != 1 or x.shape[-1] != self.features:
      x = bn()(conv(self.features, 1, self.strides)(x))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """CIFAR ResNet-18: 3x3 stem (no max-pool), BasicBlocks [2, 2, 2, 2], global average pool."""
  width: int = 64
  conv_impl: str = "xla"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = Conv2D(self.width, 3, 1, impl=self.conv_impl, dtype=self.dtype)(x)
    x = nn.relu(_batch_norm(self.dtype)(x, use_running_average=not train))
    for stage, strides in enumerate((1, 2, 2, 2)):
      for block in range(2):
        x = BasicBlock(self.width * 2**stage, strides if block == 0 else 1,
                       conv_impl=self.conv_impl, dtype=self.dtype)(x, train)
    return x.mean(axis=(1, 2))


class ViT(nn.Module):
  """Vision Transformer with pre-norm blocks, CLS token and learned position embeddings.

  With ``norm='batch'`` (the original) every norm is a BatchNorm over the feature dimension,
  with statistics over batch and tokens; ``norm='layer'`` uses LayerNorm and has no batch_stats.
  ``final_norm='head'`` (the original) returns the class token as it leaves the last block: a
  classifier normalises it in its head (`_Classifier`), an encoder projects it as it is (the
  original's ``penultimate`` output). ``'tokens'`` normalises all tokens first, then takes the
  class token.
  """
  patch_size: int = 4
  dim: int = 256
  depth: int = 6
  num_heads: int = 6
  head_dim: int = 64
  mlp_dim: int = 256
  norm: str = "batch"
  final_norm: str = "head"
  dtype: Any = jnp.float32

  def _norm(self, x: jax.Array, train: bool) -> jax.Array:
    if self.norm == "batch":
      return _batch_norm(self.dtype)(x, use_running_average=not train)
    return nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, param_dtype=self.dtype)(x)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    dense = lambda f, **kw: nn.Dense(f, dtype=self.dtype, param_dtype=self.dtype, **kw)
    b, h, w, c = x.shape
    p = self.patch_size
    # Patch embedding as reshape + Dense: a stride-p conv without any convolution.
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    x = dense(self.dim)(x.reshape(b, (h // p) * (w // p), p * p * c))  # [B, N, dim]
    init = nn.initializers.normal(0.02)
    cls = self.param("cls_token", init, (self.dim,), self.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.dim)), x], axis=1)
    x = x + self.param("pos_embedding", init, (x.shape[1], self.dim), self.dtype)  # [N+1, dim]
    for _ in range(self.depth):
      y = dense(3 * self.num_heads * self.head_dim, use_bias=False)(self._norm(x, train))
      q, k, v = jnp.split(y.reshape(b, -1, 3 * self.num_heads, self.head_dim), 3, axis=2)
      logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.head_dim)
      y = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
      x = x + dense(self.dim)(y.reshape(b, -1, self.num_heads * self.head_dim))
      y = nn.gelu(dense(self.mlp_dim)(self._norm(x, train)), approximate=False)
      x = x + dense(self.dim)(y)
    if self.final_norm == "head":
      return x[:, 0]  # CLS pooling: [B, dim]
    return self._norm(x, train)[:, 0]  # CLS pooling: [B, dim]


class _Classifier(nn.Module):
  backbone: nn.Module
  num_outputs: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array | None, train: bool, **backbone_kwargs) -> jax.Array:
    x = None if x is None else x.astype(self.dtype)
    features = self.backbone(x, train, **backbone_kwargs)
    if isinstance(self.backbone, ViT) and self.backbone.final_norm == "head":
      # The original's ViT head: BatchNorm1d (or LayerNorm) of the class token, then Linear.
      if self.backbone.norm == "batch":
        features = _batch_norm(self.dtype, name="head_norm")(features,
                                                             use_running_average=not train)
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
    # so each hyperplane through the origin splits the batch roughly in half (SPEC section 4).
    return _batch_norm(self.dtype, use_bias=False, use_scale=True, name="embedding_norm")(
        h, use_running_average=not train)


def _make_backbone(config: Any, input_shape: Sequence[int], dtype: Any) -> nn.Module:
  """Builds the backbone named by ``config.name``; validates the config first."""
  if len(input_shape) != 3:
    raise ValueError(f"input_shape must be (H, W, C) without batch, got {tuple(input_shape)}.")
  name = getattr(config, "name", None)
  conv_impl = resolve_conv_impl(getattr(config, "conv_impl", "auto"))
  if name == "mlp":
    return MLP(tuple(getattr(config, "mlp_widths", (1024, 512, 256, 64))), dtype=dtype)
  if name == "cnn":
    return CNN(tuple(getattr(config, "cnn_widths", (32, 64, 128))), conv_impl, dtype=dtype)
  if name == "resnet18":
    return ResNet18(getattr(config, "resnet_width", 64), conv_impl, dtype=dtype)
  if name == "vit":
    height, width = input_shape[0], input_shape[1]
    patch = getattr(config, "vit_patch_size", 4)
    if height % patch or width % patch:
      divisors = [d for d in range(2, math.gcd(height, width) + 1) if height % d == width % d == 0]
      raise ValueError(f"vit_patch_size={patch} does not divide the input size {height}x{width}; "
                       f"use a common divisor such as one of {divisors or [1]}.")
    norm = getattr(config, "vit_norm", "batch")
    if norm not in _VIT_NORMS:
      raise ValueError(f"vit_norm={norm!r} is not one of {_VIT_NORMS}.")
    final_norm = getattr(config, "vit_final_norm", "head")
    if final_norm not in _VIT_FINAL_NORMS:
      raise ValueError(f"vit_final_norm={final_norm!r} is not one of {_VIT_FINAL_NORMS}.")
    return ViT(patch, getattr(config, "vit_dim", 256), getattr(config, "vit_depth", 6),
               getattr(config, "vit_num_heads", 6), getattr(config, "vit_head_dim", 64),
               getattr(config, "vit_mlp_dim", 256), norm, final_norm, dtype=dtype)
  raise ValueError(f"Unknown model name {name!r}; choose one of {_NAMES}.")


def resolve_init(config: Any) -> str:
  """``config.init`` (default ``'torch'``), checked.

  Raises:
    ValueError: for a value other than ``'torch'`` or ``'flax'``.
  """
  init = getattr(config, "init", "torch")
  if init not in INITS:
    raise ValueError(f"init={init!r} is not one of {INITS}: 'torch' draws parameters as PyTorch "
                     "does (the original), 'flax' keeps Flax's defaults.")
  return init


def _uniform_like_torch(key: jax.Array, shape: Sequence[int], fan_in: int, dtype: Any
                        ) -> jax.Array:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn as a matrix (or vector) and reshaped.

  As for `_conv_kernel_init`: XLA:CPU compiles the sampler for a rank-4 shape several times
  slower than for a matrix; the distribution does not depend on the layout.
  """
  bound = 1.0 / math.sqrt(fan_in)
  flat_shape = (math.prod(shape[:-1]), shape[-1]) if len(shape) > 1 else tuple(shape)
  return jax.random.uniform(key, flat_shape, dtype, -bound, bound).reshape(shape)


def torch_init(params: dict, key: jax.Array) -> dict:
  """Redraws ``params`` as PyTorch initialises the original's layers.

  * Dense and convolution kernels (``kernel``, ``[..., fan_out]``, fan_in = product of the other
    dimensions: ``in_features`` or ``k * k * cin``): ``kaiming_uniform_(a=sqrt(5))``, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in).
  * Their biases (a ``bias`` next to a ``kernel``): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  * BatchNorm and LayerNorm (``scale``, ``bias`` without a kernel): scale 1, bias 0, as Flax
    already draws them.
  * The ViT's ``cls_token`` and ``pos_embedding``: N(0, 1) (``torch.randn`` in the original).

  Args:
    params: a model's ``variables['params']`` (from Flax's ``init``: shapes and dtypes).
    key: PRNG key; each leaf gets ``fold_in(key, i)`` for its position i in path order.

  Returns:
    params of the same structure, shapes and dtypes.
  """
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  kernels = {tuple(p[:-1]): leaf for p, leaf in flat if p[-1].key == "kernel"}
  new = []
  for i, (path, leaf) in enumerate(flat):
    name, leaf_key = path[-1].key, jax.random.fold_in(key, i)
    kernel = kernels.get(tuple(path[:-1]))
    if name in ("kernel", "bias") and kernel is not None:
      fan_in = math.prod(kernel.shape[:-1])
      new.append(_uniform_like_torch(leaf_key, leaf.shape, fan_in, leaf.dtype))
    elif name in ("cls_token", "pos_embedding"):
      new.append(jax.random.normal(leaf_key, leaf.shape, leaf.dtype))
    else:
      new.append(leaf)
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), new)


def _functional(module: nn.Module, input_shape: Sequence[int], dtype: Any,
                init_scheme: str = "flax") -> Model:
  """Wraps a Linen module with ``__call__(x, train)`` into a pure `Model`; ``init_scheme``
  ``'torch'`` redraws the parameters with `torch_init`."""

  def init(key: jax.Array) -> dict:
    # Eval mode at init: running statistics are created but not updated.
    variables = module.init(key, jnp.zeros((1, *input_shape), dtype), train=False)
    params = variables["params"]
    if init_scheme == "torch":
      params = torch_init(params, jax.random.fold_in(key, 1))
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
  if isinstance(getattr(module, "backbone", None), MLP):
    input_layer = InputLayer(
        kernel_path=("backbone", "Dense_0", "kernel"),
        apply_rest=lambda variables, z, train: run(variables, None, train, z=z))
  return Model(init=init, apply=apply, input_layer=input_layer)


def make_model(config: Any, *, input_shape: Sequence[int], num_outputs: int,
               dtype: Any = jnp.float32) -> Model:
  """Learner / classifier network: backbone -> Dense(num_outputs) with bias.

  Args:
    config: Object with attribute ``name`` ('mlp', 'cnn', 'resnet18', 'vit') and optional
      ``mlp_widths``, ``cnn_widths``, ``resnet_width``, ``vit_*``, ``conv_impl`` and ``init``
      (``'torch'``, the default: `torch_init`; ``'flax'``: Flax's defaults) fields.
    input_shape: ``(H, W, C)`` of one example.
    num_outputs: Width of the output layer.
    dtype: Parameter and compute dtype.

  Returns:
    A `Model` whose ``apply`` returns ``[B, num_outputs]`` outputs.
  """
  backbone = _make_backbone(config, input_shape, dtype)
  return _functional(_Classifier(backbone, num_outputs, dtype=dtype), input_shape, dtype,
                     resolve_init(config))


def make_encoder(config: Any, *, input_shape: Sequence[int], embedding_dim: int,
                 dtype: Any = jnp.float32) -> Model:
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
                     resolve_init(config))


def build_models(config: Any, input_shape: Sequence[int], *, num_outputs: int = 2
                 ) -> tuple[Model, Model]:
  """The networks of a discovery config: `(encoder, learner)`.

  The one place a config becomes models: the task network's encoder (`config.task.encoder`,
  `config.task.num_tasks` embedding dimensions) and the learner (`config.learner`, with
  `num_outputs` classes: 2 for binary tasks, K for K-way labels). Takes the input shape
  `(H, W, C)`, not a dataset, so this module imports nothing of the library.
  """
  encoder = make_encoder(config.task.encoder, input_shape=input_shape,
                         embedding_dim=config.task.num_tasks)
  learner = make_model(config.learner, input_shape=input_shape, num_outputs=num_outputs)
  return encoder, learner


def apply_in_chunks(fn: Callable[[jax.Array], jax.Array], images, *, batch_size: int,
                    axis: int = 0) -> jax.Array:
  """`fn` over consecutive chunks of `batch_size` images (the leading axis of `images`), the
  outputs concatenated along their `axis`: inference over a whole image array in bounded memory.

  `fn` is typically a jitted forward pass; every chunk but the last has one shape, so it compiles
  at most twice.
  """
  return jnp.concatenate([fn(images[i:i + batch_size])
                          for i in range(0, images.shape[0], batch_size)], axis=axis)
