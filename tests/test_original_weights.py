"""The conversion of the original PyTorch networks' weights (`original.weights`), without
torch: round trips on the real variable trees of this project's models, coverage of every leaf,
and the layouts checked against convolutions and matmuls computed in both layouts."""


import jax
import numpy as np
import pytest

from task_discovery import config as config_lib
from task_discovery import models

from task_discovery.original import weights

INPUT_SHAPE = (32, 32, 3)


def _variables(family, role, seed=0):
  """This project's variable tree of a network, every leaf filled with distinct random values
  (an initialised BatchNorm's ones and zeros would hide a scale and a bias swapped)."""
  cfg = config_lib.model_config(family)
  if role == "learner":
    model = models.make_model(cfg, input_shape=INPUT_SHAPE, num_outputs=2)
  else:
    model = models.make_encoder(cfg, input_shape=INPUT_SHAPE, embedding_dim=32)
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)


def _bn_names(prefix):
  return [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]


def _official_names(family, role):
  """The state-dict names of the original's networks (models/fcnet.py, models/resnet.py,
  models/td_encoder.py), without num_batches_tracked and the encoder's unused parts."""
  if family == "mlp":
    names = [f"fc{i}.{p}" for i in range(1, 5) for p in ("weight", "bias")]
    names += [n for i in range(1, 4) for n in _bn_names(f"bn{i}")]
    head = ["fc5.weight", "fc5.bias"]
  elif family == "vit":  # models/vit.py's ViT4(batch_norm=True)
    names = ["to_patch_embedding.1.weight", "to_patch_embedding.1.bias", "cls_token",
             "pos_embedding"]
    for i in range(6):
      t = f"transformer.layers.{i}"
      names += [*_bn_names(f"{t}.0.norm"), f"{t}.0.fn.to_qkv.weight", f"{t}.0.fn.to_out.0.weight",
                f"{t}.0.fn.to_out.0.bias", *_bn_names(f"{t}.1.norm")]
      names += [f"{t}.1.fn.net.{j}.{p}" for j in (0, 3) for p in ("weight", "bias")]
    head = [*_bn_names("mlp_head.0"), "mlp_head.1.weight", "mlp_head.1.bias"]
  else:
    names = ["conv1.weight"] + _bn_names("bn1")
    for stage in range(1, 5):
      for block in range(2):
        b = f"layer{stage}.{block}"
        names += [f"{b}.conv1.weight", *_bn_names(f"{b}.bn1"), f"{b}.conv2.weight",
                  *_bn_names(f"{b}.bn2")]
        if stage > 1 and block == 0:
          names += [f"{b}.shortcut.conv0.weight", *_bn_names(f"{b}.shortcut.bn0")]
    head = ["linear.weight", "linear.bias"]
  if role == "learner":
    return set(names + head)
  return {"backbone." + n for n in names} | {"projector.0.weight", *_bn_names("projector.1")}


CASES = [(f, r) for f in weights.FAMILIES for r in weights.ROLES]


@pytest.mark.parametrize("family,role", CASES)
def test_round_trip_is_identity_and_covers_every_leaf(family, role):
  variables = _variables(family, role)
  state = weights.flax_to_torch(variables, family, role)
  assert set(state) == _official_names(family, role)
  if role == "encoder":  # the offset this project does not have: written as zeros
    np.testing.assert_array_equal(state["projector.1.bias"], 0)
  back = weights.torch_to_flax(state, family, role)
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  flat_back = jax.tree_util.tree_flatten_with_path(back)[0]
  assert [p for p, _ in flat] == [p for p, _ in flat_back]
  for (path, a), (_, b) in zip(flat, flat_back):
    assert a.shape == b.shape and a.dtype == b.dtype, jax.tree_util.keystr(path)
    np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("family,role", CASES)
def test_params_only_round_trip(family, role):
  params = {"params": _variables(family, role)["params"]}
  state = weights.flax_to_torch(params, family, role)
  back = weights.torch_to_flax(state, family, role, params_only=True)
  assert set(back) == {"params"}
  jax.tree.map(np.testing.assert_array_equal, params, back)


@pytest.mark.parametrize("family,role", CASES)
def test_a_missed_leaf_is_an_error_both_ways(family, role):
  variables = _variables(family, role)
  state = weights.flax_to_torch(variables, family, role)
  with pytest.raises(ValueError, match="without a counterpart"):
    weights.torch_to_flax(dict(state, **{"extra.weight": np.zeros(3)}), family, role)
  key = sorted(state)[0]
  with pytest.raises(KeyError, match="missing"):
    weights.torch_to_flax({k: v for k, v in state.items() if k != key}, family, role)
  variables["params"]["extra"] = {"kernel": np.zeros((2, 2))}
  with pytest.raises(ValueError, match="without a PyTorch counterpart"):
    weights.flax_to_torch(variables, family, role)


def test_original_only_entries_are_dropped_and_a_nonzero_offset_refused():
  state = weights.flax_to_torch(_variables("mlp", "encoder"), "mlp", "encoder")
  extra = {"backbone.fc5.weight": np.zeros((2, 64)), "backbone.fc5.bias": np.zeros(2),
           "classifier.weight": np.zeros((2, 32)),
           "projector.1.num_batches_tracked": np.zeros((), np.int64)}
  weights.torch_to_flax(dict(state, **extra), "mlp", "encoder")
  state["projector.1.bias"] = np.ones_like(state["projector.1.bias"])
  with pytest.raises(ValueError, match="not zero"):
    weights.torch_to_flax(state, "mlp", "encoder")


def test_first_dense_layer_sees_the_nhwc_image_as_torch_sees_the_nchw_one():
  rng = np.random.default_rng(1)
  c, h, w = 3, 4, 5
  x_nchw = rng.standard_normal((2, c, h, w))
  weight = rng.standard_normal((7, c * h * w))  # torch Linear (out, in) on x.view(B, -1)
  kernel = weights._layout("dense_image", "weight", weight, (c, h, w), to_flax=True)
  x_nhwc = x_nchw.transpose(0, 2, 3, 1)
  np.testing.assert_allclose(x_nhwc.reshape(2, -1) @ kernel, x_nchw.reshape(2, -1) @ weight.T,
                             rtol=1e-12)


def test_conv_kernel_layout_matches_nchw_oihw_convolution():
  rng = np.random.default_rng(2)
  x_nchw = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
  weight = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)  # OIHW
  kernel = weights._layout("conv", "weight", weight, None, to_flax=True)
  conv = lambda x, k, dims: jax.lax.conv_general_dilated(
      x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=dims,
      precision=jax.lax.Precision.HIGHEST)
  ref = conv(x_nchw, weight, ("NCHW", "OIHW", "NCHW"))
  ours = conv(x_nchw.transpose(0, 2, 3, 1), kernel, ("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), ref, rtol=1e-5,
                             atol=1e-5)


def test_task_directions_give_the_original_task_logits():
  from task_discovery.models import task_network
  rng = np.random.default_rng(3)
  h, w = rng.standard_normal((6, 4)), rng.standard_normal((1, 4))
  ours = task_network.task_logits(h, weights.directions_from_original(w), 5.0)[0]
  original = h @ (5.0 * np.concatenate([w, -w])).T  # classifier.weight = task_temp [w; -w]
  np.testing.assert_allclose(ours, original, rtol=1e-6)
