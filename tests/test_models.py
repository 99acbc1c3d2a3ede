"""Tests for task_discovery.models: shapes, BatchNorm state, sizes, conv impls, transformations.

XLA:CPU compiles the PRNG slowly (seconds per model), so most tests use NumPy draws and
`jax.eval_shape`; `init` itself runs for the MLP, CNN and ViT.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import numerics
from task_discovery import models

# Small variants of every family, so that each test compiles in a second or two.
SMALL = {
    "mlp": dict(mlp_widths=(32, 16)),
    "cnn": dict(cnn_widths=(8, 16)),
    "resnet18": dict(resnet_width=4),
    "vit": dict(vit_dim=32, vit_depth=1, vit_num_heads=2, vit_head_dim=16, vit_mlp_dim=32),
}
PATCH = {(8, 8, 1): 4, (28, 28, 1): 7, (32, 32, 3): 4}


def _config(name, **overrides):
  return ml_collections.ConfigDict({"name": name, **SMALL[name], **overrides})


def _tree_allclose(a, b, **kw):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kw)


def _specs(tree):
  return jax.tree.map(lambda x: (x.shape, jnp.dtype(x.dtype)), tree)


def _normal(seed, shape, dtype=jnp.float32):
  # NumPy, not jax.random: XLA:CPU takes seconds to compile a sampler for a rank-4 shape.
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def _cheap_variables(init, seed=0):
  """Random variables shaped like ``init``'s, drawn with NumPy (no PRNG compile).

  Weights are N(0, 1/fan_in), BatchNorm running stats are the usual zeros (mean) and ones (var).
  """
  rng = np.random.default_rng(seed)

  def leaf(path, spec):
    name = path[-1].key
    if name in ("mean", "var"):
      return jnp.full(spec.shape, float(name == "var"), spec.dtype)
    fan_in = int(np.prod(spec.shape[:-1])) or 1
    return jnp.asarray(rng.normal(size=spec.shape) / np.sqrt(fan_in), spec.dtype)

  return jax.tree_util.tree_map_with_path(leaf, jax.eval_shape(init, jax.random.key(0)))


@functools.partial(jax.jit, static_argnums=0)
def _train_and_eval(model, variables, x):
  return model.apply(variables, x, True), model.apply(variables, x, False)


@pytest.mark.parametrize("input_shape", list(PATCH))
@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_and_dtypes(name, input_shape):
  config = _config(name, vit_patch_size=PATCH[input_shape], resnet_width=8)
  model = models.make_model(config, input_shape=input_shape, num_outputs=5)
  variables = jax.eval_shape(model.init, jax.random.key(0))
  assert set(variables) == {"params", "batch_stats"}
  assert {x.dtype for x in jax.tree_util.tree_leaves(variables)} == {jnp.dtype("float32")}
  x = jax.ShapeDtypeStruct((4, *input_shape), jnp.float32)
  for train in (True, False):
    out, stats = jax.eval_shape(functools.partial(model.apply, train=train), variables, x)
    assert (out.shape, out.dtype) == ((4, 5), jnp.float32)
    # Same structure, shapes and dtypes in both modes, so the stats can be a scan carry.
    assert _specs(stats) == _specs(variables["batch_stats"])


@pytest.mark.parametrize("name", list(SMALL))
def test_batch_stats_updated_in_train_mode_only(name):
  input_shape = (8, 8, 3)
  # 'xla' convs compile faster than 'im2col' (which the conv-impl tests cover).
  model = models.make_model(_config(name, conv_impl="xla"), input_shape=input_shape,
                            num_outputs=5)
  variables = _cheap_variables(model.init)
  x = 2.0 + _normal(1, (6, *input_shape))
  (out, new_stats), (out_eval, same_stats) = _train_and_eval(model, variables, x)
  assert np.isfinite(np.asarray(out)).all() and np.isfinite(np.asarray(out_eval)).all()
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new_stats, variables["batch_stats"])
  assert jax.tree_util.tree_leaves(changed) and all(jax.tree_util.tree_leaves(changed))
  _tree_allclose(same_stats, variables["batch_stats"], rtol=0, atol=0)
  # Eval mode normalises with the (initial) running stats, train mode with the batch's.
  assert not np.allclose(out_eval, out)


def test_running_stats_follow_pytorch_momentum():
  """New running stats = 0.9 * old + 0.1 * (batch mean, biased batch variance); eps 1e-5."""
  model = models.make_model(_config("mlp"), input_shape=(2, 2, 3), num_outputs=2)
  variables = _cheap_variables(model.init)
  x = 1.0 + _normal(1, (8, 2, 2, 3))
  _, stats = model.apply(variables, x, True)
  dense = variables["params"]["backbone"]["Dense_0"]
  h = np.maximum(np.asarray(x).reshape(8, 12) @ dense["kernel"] + dense["bias"], 0.0)
  np.testing.assert_allclose(stats["backbone"]["BatchNorm_0"]["mean"], 0.1 * h.mean(0),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(stats["backbone"]["BatchNorm_0"]["var"], 0.9 + 0.1 * h.var(0),
                             rtol=1e-5)
  assert models._batch_norm(jnp.float32).epsilon == 1e-5


@pytest.mark.parametrize("config", [
    ml_collections.ConfigDict(dict(name="mlp", mlp_widths=(16,))),  # no BN after the last hidden
    _config("vit", vit_norm="layer", vit_patch_size=4),
])
def test_models_without_batch_norm_return_empty_stats(config):
  model = models.make_model(config, input_shape=(8, 8, 1), num_outputs=3)
  variables = _cheap_variables(model.init)
  assert variables["batch_stats"] == {}
  (out, stats), (out_eval, stats_eval) = _train_and_eval(model, variables, jnp.ones((2, 8, 8, 1)))
  assert out.shape == (2, 3) and stats == {} and stats_eval == {}
  np.testing.assert_allclose(out, out_eval)  # nothing depends on the mode


def test_resnet18_original_param_count():
  model = models.make_model(ml_collections.ConfigDict(dict(name="resnet18")),
                            input_shape=(32, 32, 3), num_outputs=10)
  n = models.num_params(jax.eval_shape(model.init, jax.random.key(0)))
  assert abs(n - 11.2e6) / 11.2e6 < 0.02
  assert n == 11_173_962  # the PyTorch CIFAR ResNet-18 (convs without bias, BN scale + bias)


def test_mlp_original_param_count():
  model = models.make_model(ml_collections.ConfigDict(dict(name="mlp")),
                            input_shape=(32, 32, 3), num_outputs=10)
  variables = jax.eval_shape(model.init, jax.random.key(0))
  dense = lambda i, o: i * o + o
  bn = lambda f: 2 * f  # scale + bias (and, in batch_stats, mean + var)
  expected = (dense(3072, 1024) + bn(1024) + dense(1024, 512) + bn(512) + dense(512, 256)
              + bn(256) + dense(256, 64) + dense(64, 10))
  assert models.num_params(variables) == expected
  stats = jax.tree_util.tree_leaves(variables["batch_stats"])
  assert sum(x.size for x in stats) == bn(1024 + 512 + 256)


@pytest.mark.parametrize("kernel_size,strides,size,use_bias",
                         [(3, 1, 7, True), (3, 2, 8, False), (3, 2, 7, True), (1, 2, 8, False)])
def test_conv2d_impls_agree(kernel_size, strides, size, use_bias):
  x = _normal(0, (2, size, size, 3))
  make = lambda impl: models.Conv2D(4, kernel_size, strides, use_bias, impl)
  params = _cheap_variables(lambda key: make("xla").init(key, x))  # a non-zero bias, if any
  assert params["params"]["kernel"].shape == (kernel_size, kernel_size, 3, 4)
  expected_size = (size - 1) // strides + 1  # padding kernel_size // 2 on each side
  results = []
  for impl in ("xla", "im2col", "canonical"):
    f = lambda p, x, impl=impl: make(impl).apply(p, x)
    y = f(params, x)
    assert y.shape == (2, expected_size, expected_size, 4)
    loss = lambda p, x, f=f: jnp.sum(jnp.sin(f(p, x)))
    results.append((y, jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)))
  numerics.assert_close_to_scale(results[0], results[1], rtol=1e-5)


def _impl_grads(module_for_impl, x):
  """Outputs, new batch stats and parameter gradients of a train-mode module, per impl."""
  variables = _cheap_variables(lambda key: module_for_impl("xla").init(key, x, train=False))
  out = jax.eval_shape(functools.partial(module_for_impl("xla").apply, train=False), variables, x)
  weights = _normal(1, out.shape)
  results = []
  for impl in ("xla", "im2col", "canonical"):
    def loss(params, module=module_for_impl(impl)):
      out, updates = module.apply({**variables, "params": params}, x, train=True,
                                  mutable=["batch_stats"])
      return jnp.sum(out * weights), (out, updates)
    results.append(jax.jit(jax.grad(loss, has_aux=True))(variables["params"]))
  return results


@pytest.mark.parametrize("strides,features", [(1, 4), (2, 6)])
def test_resnet_block_conv_impls_agree(strides, features):
  x = _normal(2, (4, 6, 6, 4))
  xla, im2col, canonical = _impl_grads(lambda impl: models.BasicBlock(features, strides, impl), x)
  numerics.assert_close_to_scale(xla, im2col, rtol=1e-5)
  numerics.assert_close_to_scale(xla, canonical, rtol=1e-5)


def test_cnn_conv_impls_agree():
  x = _normal(2, (4, 9, 9, 2))
  xla, im2col, canonical = _impl_grads(lambda impl: models.CNN((4, 6, 8), impl), x)
  numerics.assert_close_to_scale(xla, im2col, rtol=1e-5)
  numerics.assert_close_to_scale(xla, canonical, rtol=1e-5)


@pytest.mark.parametrize("name,num_convs", [("cnn", 2), ("resnet18", 20)])
def test_conv_impl_reaches_every_conv(name, num_convs):
  # canonical: every 3x3 convolution (the 1x1 shortcuts of ResNet-18 are matmuls)
  for impl, expected in (("xla", num_convs), ("im2col", 0),
                         ("canonical", num_convs - 3 * (name == "resnet18"))):
    model = models.make_model(_config(name, conv_impl=impl), input_shape=(8, 8, 3), num_outputs=2)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    jaxpr = jax.make_jaxpr(functools.partial(model.apply, train=True))(
        variables, jnp.zeros((2, 8, 8, 3)))
    assert str(jaxpr).count("conv_general_dilated[") == expected


def test_vmapped_apply_equals_loop():
  model = models.make_model(_config("cnn"), input_shape=(8, 8, 1), num_outputs=3)
  stacked = jax.jit(jax.vmap(model.init))(jax.random.split(jax.random.key(0), 3))
  x = _normal(1, (5, 8, 8, 1))
  vmapped = jax.jit(jax.vmap(lambda v: _train_and_eval(model, v, x)))(stacked)
  for i in range(3):
    looped = _train_and_eval(model, jax.tree.map(lambda a: a[i], stacked), x)
    numerics.assert_close_to_scale(jax.tree.map(lambda a: a[i], vmapped), looped, rtol=1e-5)
  # Learners are independent: differently initialised ones give different outputs.
  assert not np.allclose(vmapped[0][0][0], vmapped[0][0][1])


@pytest.mark.parametrize("impl", ["xla", "im2col", "canonical"])
def test_meta_gradient_through_scanned_checkpointed_steps(impl):
  """Grad through 2 scanned, rematerialised inner SGD steps (second order) matches finite diffs."""
  with jax.enable_x64(True):
    model = models.make_model(
        ml_collections.ConfigDict(dict(name="cnn", cnn_widths=(3,), conv_impl=impl)),
        input_shape=(5, 5, 1), num_outputs=2, dtype=jnp.float64)
    variables = model.init(jax.random.key(0))
    xs = _normal(1, (3, 4, 5, 5, 1), jnp.float64)  # [2 inner steps + 1 outer batch, B, H, W, C]

    def loss(params, stats, x, targets):  # targets: [B, 2]
      out, new_stats = model.apply({"params": params, "batch_stats": stats}, x, True)
      return jnp.mean((out - targets) ** 2), new_stats

    @jax.checkpoint
    def step(carry, x):
      params, stats, targets = carry
      grads, new_stats = jax.grad(loss, has_aux=True)(params, stats, x, targets)
      params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
      return (params, new_stats, targets), None

    def outer(targets):  # meta-parameters: the inner targets; they reach the outer loss only
      # through the inner gradient steps, so its gradient is second order.
      carry = (variables["params"], variables["batch_stats"], targets)
      (params, stats, _), _ = jax.lax.scan(step, carry, xs[:2])
      return loss(params, stats, xs[2], jnp.ones((4, 2), jnp.float64))[0]

    value_and_grad = jax.jit(jax.value_and_grad(outer))  # one compile for both
    targets, direction, eps = _normal(2, (4, 2), jnp.float64), _normal(3, (4, 2), jnp.float64), 1e-5
    grad = value_and_grad(targets)[1]
    assert grad.dtype == jnp.float64
    finite_diff = (value_and_grad(targets + eps * direction)[0]
                   - value_and_grad(targets - eps * direction)[0]) / (2 * eps)
    assert abs(finite_diff) > 1e-3  # a non-trivial check
    np.testing.assert_allclose(jnp.sum(grad * direction), finite_diff, rtol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "vit"])
def test_encoder(name):
  encoder = models.make_encoder(_config(name, vit_patch_size=4), input_shape=(8, 8, 1),
                                embedding_dim=6)
  variables = jax.jit(encoder.init)(jax.random.key(0))
  assert set(variables["params"]["embedding_norm"]) == {"scale"}  # offset fixed at 0
  assert "bias" not in variables["params"]["projection"]
  x = _normal(1, (16, 8, 8, 1)) + 3.0
  (h, stats), (h_eval, _) = _train_and_eval(encoder, variables, x)
  assert h.shape == h_eval.shape == (16, 6) and h.dtype == jnp.float32
  np.testing.assert_allclose(h.mean(axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(h.std(axis=0), 1.0, rtol=1e-2)  # scale initialised at 1
  assert _specs(stats) == _specs(variables["batch_stats"])


@pytest.mark.parametrize("name,builder", [
    ("mlp", functools.partial(models.make_model, num_outputs=3)),
    ("cnn", functools.partial(models.make_model, num_outputs=3)),
    ("mlp", functools.partial(models.make_encoder, embedding_dim=4)),
])
def test_float64(name, builder):
  with jax.enable_x64(True):
    model = builder(_config(name), input_shape=(8, 8, 1), dtype=jnp.float64)
    variables = jax.jit(model.init)(jax.random.key(0))
    x = jnp.ones((4, 8, 8, 1), jnp.float32)  # inputs are cast to the model dtype
    outputs = _train_and_eval(model, variables, x)
    assert {x.dtype for x in jax.tree_util.tree_leaves((variables, outputs))} == {
        jnp.dtype("float64")}
    # float32 stays float32 with x64 enabled: no stray float64 constants.
    model = builder(_config(name), input_shape=(8, 8, 1))
    variables = jax.eval_shape(model.init, jax.random.key(0))
    outputs = jax.eval_shape(functools.partial(_train_and_eval, model), variables, x)
    assert {x.dtype for x in jax.tree_util.tree_leaves((variables, outputs))} == {
        jnp.dtype("float32")}


def test_bad_configs():
  make = functools.partial(models.make_model, input_shape=(28, 28, 1), num_outputs=2)
  with pytest.raises(ValueError, match=r"Unknown model name 'transformer'.*resnet18"):
    make(ml_collections.ConfigDict(dict(name="transformer")))
  with pytest.raises(ValueError, match=r"conv_impl='cudnn'.*im2col"):
    make(_config("cnn", conv_impl="cudnn"))
  divisors = r"\[2, 4, 7, 14, 28\]"
  with pytest.raises(ValueError, match=r"vit_patch_size=5 does not divide.*28x28.*" + divisors):
    make(_config("vit", vit_patch_size=5))
  with pytest.raises(ValueError, match=r"vit_norm='group'"):
    make(_config("vit", vit_patch_size=4, vit_norm="group"))
  with pytest.raises(ValueError, match=r"input_shape must be \(H, W, C\)"):
    models.make_model(_config("mlp"), input_shape=(28, 28), num_outputs=2)


def test_resolve_conv_impl():
  assert jax.default_backend() == "cpu"
  assert models.resolve_conv_impl("auto") == "canonical"
  assert models.resolve_conv_impl("xla") == "xla"
  assert models.resolve_conv_impl("im2col") == "im2col"
  assert models.resolve_conv_impl("canonical") == "canonical"
  with pytest.raises(ValueError, match=r"conv_impl='fft'.*'auto', 'xla', 'im2col', 'canonical'"):
    models.resolve_conv_impl("fft")
  # First-order training of many vmapped learners (the evaluation protocol) batches them
  # through im2col's matmul; an explicit choice is kept whatever the use.
  assert models.resolve_conv_impl("auto", "train") == "im2col"
  assert models.resolve_conv_impl("canonical", "train") == "canonical"
  with pytest.raises(ValueError, match=r"use='eval'.*'meta', 'train'"):
    models.resolve_conv_impl("auto", "eval")


def test_build_models_learner_use_changes_the_convolution_not_the_function():
  c = ml_collections.ConfigDict({"task": {"encoder": _config("mlp"), "num_tasks": 2},
                                 "learner": _config("cnn", cnn_widths=(4, 8))})
  shape = (8, 8, 1)
  _, meta_learner = models.build_models(c, shape)
  _, train_learner = models.build_models(c, shape, learner_use="train")
  variables = meta_learner.init(jax.random.key(0))
  assert (jax.tree.structure(variables)
          == jax.tree.structure(train_learner.init(jax.random.key(0))))
  x = jax.random.normal(jax.random.key(1), (3, *shape))
  np.testing.assert_allclose(train_learner.apply(variables, x, True)[0],
                             meta_learner.apply(variables, x, True)[0], rtol=1e-5, atol=1e-5)
  # canonical keeps XLA convolutions, im2col makes them matmuls
  convs = lambda m: str(jax.make_jaxpr(lambda v: m.apply(v, x, True))(variables)).count(
      "conv_general_dilated")
  assert convs(meta_learner) > 0 and convs(train_learner) == 0


@pytest.mark.parametrize("strides", [1, 2])
def test_im2col_conv_second_order_gradients_equal_xla(strides):
  """The im2col convolution's own backward pass (patches rebuilt under checkpoint) is
  differentiated again by the meta-gradient: compare one SGD step's meta-gradient, float64."""
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(0), 2)
    x = jax.random.normal(keys[0], (2, 7, 7, 3), jnp.float64)
    w = jax.random.normal(keys[1], (3, 3, 3, 4), jnp.float64)

    def conv(impl, x, w):
      return models.Conv2D(4, 3, strides, impl=impl, dtype=jnp.float64).apply(
          {"params": {"kernel": w}}, x)

    def meta_loss(impl, w, x):
      inner = lambda w: jnp.sum(jnp.sin(conv(impl, x, w)))
      w_new = w - 0.1 * jax.grad(inner)(w)
      return jnp.sum(jnp.cos(conv(impl, 1.3 * x, w_new)))

    grads = {impl: jax.jit(jax.grad(meta_loss, argnums=(1, 2)), static_argnums=0)(impl, w, x)
             for impl in ("xla", "im2col")}
    numerics.assert_close_to_scale(grads["im2col"], grads["xla"], rtol=1e-10)


def _init_statistics(variables):
  """Pooled statistics of the parameters against PyTorch's formulas.

  Returns (kernel values times sqrt(3 fan_in): variance 1 under PyTorch's kaiming_uniform(a=
  sqrt(5)); the largest |kernel| * sqrt(fan_in) and |bias| * sqrt(fan_in): at most 1; bias
  values times sqrt(fan_in): U(-1, 1); norm scales; norm offsets; ViT token values).
  """
  flat = jax.tree_util.tree_flatten_with_path(variables["params"])[0]
  kernels = {tuple(p[:-1]): np.asarray(v, np.float64) for p, v in flat if p[-1].key == "kernel"}
  scaled_kernels, scaled_biases, scales, offsets, tokens = [], [], [], [], []
  for path, value in flat:
    value, name = np.asarray(value, np.float64), path[-1].key
    kernel = kernels.get(tuple(path[:-1]))
    fan_in = None if kernel is None else int(np.prod(kernel.shape[:-1]))
    if name == "kernel":
      scaled_kernels.append(value.ravel() * np.sqrt(fan_in))
    elif name == "bias" and kernel is not None:
      scaled_biases.append(value.ravel() * np.sqrt(fan_in))
    elif name == "scale":
      scales.append(value.ravel())
    elif name == "bias":
      offsets.append(value.ravel())
    elif name in ("cls_token", "pos_embedding"):
      tokens.append(value.ravel())
  cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)
  return (cat(scaled_kernels), cat(scaled_biases), cat(scales), cat(offsets), cat(tokens))


@pytest.mark.parametrize("builder", ["model", "encoder"])
@pytest.mark.parametrize("name", list(SMALL))
def test_torch_init_matches_pytorch_formulas(name, builder):
  if builder == "model":
    make = functools.partial(models.make_model, num_outputs=2)
  else:
    make = functools.partial(models.make_encoder, embedding_dim=4)
  config = _config(name, vit_patch_size=4)
  kernels, biases, scales, offsets, tokens = _init_statistics(
      jax.jit(make(config, input_shape=(8, 8, 1)).init)(jax.random.key(0)))
  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in).
  assert np.max(np.abs(kernels)) <= 1.0 + 1e-6
  # The sample variance of n U(-1, 1) draws (times 3) has relative std sqrt(0.8 / n).
  tolerance = 5 * np.sqrt(0.8 / kernels.size)
  assert abs(3 * np.mean(kernels**2) - 1.0) < tolerance, (3 * np.mean(kernels**2), tolerance)
  if builder == "model" or name == "mlp":  # an encoder's projection has no bias
    assert biases.size > 0
    assert np.max(np.abs(biases)) <= 1.0 + 1e-6
    assert abs(3 * np.mean(biases**2) - 1.0) < 5 * np.sqrt(0.8 / biases.size) + 1e-9
  np.testing.assert_array_equal(scales, 1.0)  # BatchNorm / LayerNorm weight 1, bias 0
  np.testing.assert_array_equal(offsets, 0.0)
  if name == "vit":  # cls_token and pos_embedding: torch.randn
    assert abs(np.var(tokens) - 1.0) < 5 * np.sqrt(2.0 / tokens.size)
  # The Flax defaults are another distribution (this test can tell them apart): LeCun normal
  # has variance 1 / fan_in, three times PyTorch's, and zero biases.
  kernels, biases, *_ = _init_statistics(jax.jit(
      make(_config(name, vit_patch_size=4, init="flax"), input_shape=(8, 8, 1)).init)(
          jax.random.key(0)))
  assert abs(3 * np.mean(kernels**2) - 3.0) < 3 * 5 * np.sqrt(2.0 / kernels.size)
  np.testing.assert_array_equal(biases, 0.0)


def test_vit_final_norm_head_normalises_the_class_token_in_the_head():
  config = _config("vit", vit_patch_size=4)
  model = models.make_model(config, input_shape=(8, 8, 1), num_outputs=2)
  variables = jax.eval_shape(model.init, jax.random.key(0))
  # One BatchNorm per pre-norm (2 per block), one in the head on the class token: [dim].
  assert set(variables["batch_stats"]) == {"backbone", "head_norm"}
  assert variables["batch_stats"]["head_norm"]["mean"].shape == (32,)
  assert len(variables["batch_stats"]["backbone"]) == 2
  encoder = models.make_encoder(config, input_shape=(8, 8, 1), embedding_dim=4)
  enc_vars = jax.eval_shape(encoder.init, jax.random.key(0))
  assert len(enc_vars["batch_stats"]["backbone"]) == 2  # no final norm in the encoder
  legacy = models.make_model(_config("vit", vit_patch_size=4, vit_final_norm="tokens"),
                             input_shape=(8, 8, 1), num_outputs=2)
  legacy_vars = jax.eval_shape(legacy.init, jax.random.key(0))
  assert set(legacy_vars["batch_stats"]) == {"backbone"}
  assert len(legacy_vars["batch_stats"]["backbone"]) == 3
  with pytest.raises(ValueError, match=r"vit_final_norm='cls'"):
    models.make_model(_config("vit", vit_patch_size=4, vit_final_norm="cls"),
                      input_shape=(8, 8, 1), num_outputs=2)
  with pytest.raises(ValueError, match=r"init='jax'.*'torch'.*'flax'"):
    models.make_model(_config("mlp", init="jax"), input_shape=(8, 8, 1), num_outputs=2)
