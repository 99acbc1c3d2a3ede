"""`config.precision` reaches the matrix products and convolutions of every compiled step.

The lowered StableHLO names each op's operand precision (`precision = [HIGHEST, HIGHEST]` on a
`dot_general`, `#stablehlo<precision HIGHEST>` on a `convolution`); without a setting JAX
writes DEFAULT, which lets NVIDIA GPUs compute float32 products in TF32. Lowering is enough:
nothing here compiles.
"""
import re

import jax
import jax.numpy as jnp
import pytest

from task_discovery import config as config_lib
from task_discovery import models
from task_discovery.data import datasets
from task_discovery.jobs import adversarial
from task_discovery.jobs import discovery
from task_discovery.jobs import evaluation
from task_discovery.method import agreement
from task_discovery.method import optimizers
from task_discovery.run import sharding
import test_adversarial
import test_discovery

# The StableHLO spelling of each setting.
EXPECTED = {"highest": "HIGHEST", "high": "HIGH", "default": "DEFAULT"}
_OP = re.compile(r"stablehlo\.(dot_general|convolution)")
_PRECISION = re.compile(r"precision = \[(\w+), (\w+)\]|#stablehlo<precision (\w+)>")


def op_precisions(hlo: str) -> tuple[int, set[str]]:
  """`(number of dot_general and convolution ops, the operand precisions they name)`."""
  ops = [line for line in hlo.splitlines() if _OP.search(line)]
  names = {name for line in ops for match in _PRECISION.finditer(line)
           for name in match.groups() if name}
  return len(ops), names


def test_op_precisions_reads_dots_and_convolutions():
  x = jnp.ones((1, 4, 4, 2))
  conv = lambda x: jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 2, 2)), (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  with jax.default_matmul_precision("highest"):
    assert op_precisions(jax.jit(conv).lower(x).as_text()) == (1, {"HIGHEST"})
  assert op_precisions(jax.jit(lambda a: a @ a).lower(jnp.ones((2, 2))).as_text()) == (
      1, {"DEFAULT"})


def cnn_config(precision):
  c = test_discovery.tiny_config()
  c.learner = config_lib.model_config("cnn")
  c.task.encoder = config_lib.model_config("cnn")
  c.learner.cnn_widths = c.task.encoder.cnn_widths = (4, 8)
  c.precision = precision
  return c


@pytest.mark.parametrize("precision", sorted(EXPECTED))
def test_meta_step_is_compiled_at_the_configured_precision(precision):
  config = cnn_config(precision)
  dataset = datasets.load_dataset(config.data)
  encoder, learner = models.build_models(config, dataset.input_shape)
  mesh = sharding.make_mesh(1)
  meta_step = discovery.make_meta_step(encoder, learner, config, mesh)
  state = jax.eval_shape(meta_step.init, jax.random.key(0))
  # Lowered outside any precision context: the compiled step carries its own.
  hlo = meta_step.update.lower(state, discovery.device_data(dataset)).as_text()
  num_ops, names = op_precisions(hlo)
  assert "stablehlo.convolution" in hlo and "stablehlo.dot_general" in hlo
  assert num_ops > 10 and names == {EXPECTED[precision]}


class _Lowered(Exception):
  """Stops a job once its learners' training step was lowered."""


def lower_instead_of_training(monkeypatch):
  """Replaces `agreement.evaluate_tasks` by one that lowers the learners' training epoch under
  the caller's precision context, records its StableHLO and stops the job."""
  lowered = []

  def evaluate_tasks(model, images, labels, *, config, **unused):
    optimizer = optimizers.make_optimizer(config.optimizer, learning_rate=config.learning_rate)
    train_epoch = agreement.make_train_epoch(model, optimizer, batch_size=config.batch_size)
    learner_keys = jax.random.split(jax.random.key(0), (1, config.num_learners))
    state = jax.eval_shape(lambda k: agreement.init_learners(model, optimizer, k), learner_keys)
    lowered.append(train_epoch.lower(state, jnp.asarray(images), jnp.asarray(labels[:1]),
                                     jnp.arange(config.batch_size), jax.random.key(1)).as_text())
    raise _Lowered()

  monkeypatch.setattr(agreement, "evaluate_tasks", evaluate_tasks)
  return lowered


@pytest.mark.parametrize("precision", ["highest", "default"])
def test_evaluation_learners_train_at_the_configured_precision(precision, monkeypatch):
  config = test_discovery.tiny_config()
  config.precision = precision
  dataset = datasets.load_dataset(config.data)
  lowered = lower_instead_of_training(monkeypatch)
  with pytest.raises(_Lowered):
    evaluation.evaluate_families(config, dataset, evaluation.family_tasks(config, dataset))
  num_ops, names = op_precisions(lowered[0])
  assert num_ops > 0 and names == {EXPECTED[precision]}


@pytest.mark.parametrize("precision", ["highest", "default"])
def test_adversarial_learners_train_at_the_configured_precision(precision, monkeypatch,
                                                                 tmp_path):
  config = test_adversarial.tiny_config(source="random_network", include_kway=False)
  config.precision = precision
  lowered = lower_instead_of_training(monkeypatch)
  with pytest.raises(_Lowered):
    adversarial.run(config, str(tmp_path))
  num_ops, names = op_precisions(lowered[0])
  assert num_ops > 0 and names == {EXPECTED[precision]}


def test_precision_is_validated_naming_the_allowed_values():
  c = config_lib.base()
  assert c.precision == "highest"  # float32 products unless asked otherwise
  c.precision = "tensorfloat32"
  with pytest.raises(ValueError, match=r"config\.precision: 'tensorfloat32' is not one of "
                                       r"\('highest', 'high', 'default'\)"):
    config_lib.validate(c)
