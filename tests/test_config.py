"""Tests for task_discovery.config: the defaults, every config file, and field validation."""
import glob
import importlib.util
import inspect
import os

import ml_collections
import pytest

from task_discovery import config as config_lib

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')
CONFIG_FILES = sorted(glob.glob(os.path.join(CONFIG_DIR, '*.py')))


def load_config_module(path):
  spec = importlib.util.spec_from_file_location(
      'config_' + os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def accepts_argument(get_config):
  return len(inspect.signature(get_config).parameters) > 0


# ------------------------------------------------------------------------------------- defaults


def test_base_validates_and_has_original_defaults():
  c = config_lib.base()
  config_lib.validate(c)
  assert c.job in config_lib.JOBS
  assert c.inner.num_learners == 2 and c.eval.num_learners == 2  # the original's pair
  assert c.eval.optimizer == 'adam' and c.eval.learning_rate == 1e-3
  assert c.eval.batch_size == 512 and c.eval.num_epochs == 100
  assert c.task.num_tasks == 32


def test_eval_section_has_the_fields_evaluate_tasks_reads():
  e = config_lib.base().eval
  for field in ('num_learners', 'optimizer', 'learning_rate', 'batch_size', 'num_epochs',
                'tasks_per_chunk', 'predict_batch_size', 'reshuffle'):
    assert field in e, field


def test_model_config_names():
  for name in ('mlp', 'cnn', 'resnet18', 'vit'):
    assert config_lib.model_config(name).name == name


# --------------------------------------------------------------------------------- config files


def test_digits_config_exists():
  assert os.path.join(CONFIG_DIR, 'digits.py') in CONFIG_FILES


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_config_file_loads_and_validates(path):
  module = load_config_module(path)
  assert module.__doc__, f'{path} needs a docstring with its command and expected result'
  c = module.get_config()
  assert isinstance(c, ml_collections.ConfigDict)
  config_lib.validate(c)
  # Every field of the schema is present (files override base(), they do not drop fields).
  base = config_lib.base()
  for section in ('data', 'task', 'inner', 'meta', 'eval', 'checkpoint', 'learner'):
    missing = set(base[section].keys()) - set(c[section].keys())
    assert not missing, f'{path}: {section} lacks {sorted(missing)}'


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_config_file_smoke_argument_shrinks_the_run(path):
  module = load_config_module(path)
  if not accepts_argument(module.get_config):
    pytest.skip(f'{os.path.basename(path)}: get_config takes no argument')
  full = module.get_config()
  smoke = module.get_config('smoke')
  config_lib.validate(smoke)
  assert smoke.to_dict() != full.to_dict()  # it shrinks something ...
  for field in ('meta.num_steps', 'inner.num_steps', 'eval.num_epochs'):  # ... and grows nothing
    section, name = field.split('.')
    assert smoke[section][name] <= full[section][name], field
  assert smoke.data.name == full.data.name and smoke.job == full.job


@pytest.mark.parametrize('path', CONFIG_FILES, ids=os.path.basename)
def test_config_file_rejects_unknown_argument(path):
  module = load_config_module(path)
  if not accepts_argument(module.get_config):
    pytest.skip(f'{os.path.basename(path)}: get_config takes no argument')
  with pytest.raises(ValueError, match='no-such-arg'):
    module.get_config('no-such-arg')


# ----------------------------------------------------------------------------------- validation


def _set(c, dotted, value):
  *parents, leaf = dotted.split('.')
  for p in parents:
    c = c[p]
  c[leaf] = value


BAD_VALUES = [
    # (overrides applied in order, field the error must name)
    ([('job', 'nope')], 'job'),
    ([('data.heldout_fraction', 1.0)], 'data.heldout_fraction'),
    ([('data.heldout_fraction', 0.0)], 'data.heldout_fraction'),
    ([('data.num_images', -1)], 'data.num_images'),
    ([('task.num_tasks', 0)], 'task.num_tasks'),
    ([('task.temperature', 0.0)], 'task.temperature'),
    ([('task.diversity', 'entropy')], 'task.diversity'),
    ([('inner.num_learners', 1)], 'inner.num_learners'),
    ([('inner.data_mode', 'meta'), ('inner.batch_size', 511)], 'inner.batch_size'),
    ([('inner.data_mode', 'half')], 'inner.data_mode'),
    ([('inner.learning_rate', 0.0)], 'inner.learning_rate'),
    ([('inner.optimizer', 'adam'), ('inner.eps_root', 0.0)], 'inner.eps_root'),
    ([('task.num_tasks', 4), ('meta.meta_batch_size', 5)], 'meta.meta_batch_size'),
    ([('meta.meta_batch_size', 0)], 'meta.meta_batch_size'),
    ([('meta.estimator', 'reinforce')], 'meta.estimator'),
    ([('meta.estimator', 'pes'), ('inner.num_steps', 10), ('meta.truncation_length', 4)],
     'meta.truncation_length'),
    ([('meta.estimator', 'pes'), ('inner.learner_updates', 'samples')], 'inner.learner_updates'),
    ([('inner.microbatch_size', 100)], 'inner.microbatch_size'),  # 256 per learner
    ([('inner.microbatch_size', -1)], 'inner.microbatch_size'),
    ([('inner.learner_updates', 'samples'), ('inner.microbatch_size', 64)],
     'inner.microbatch_size'),
    ([('meta.es_sigma', 0.0)], 'meta.es_sigma'),
    ([('meta.es_num_pairs', 0)], 'meta.es_num_pairs'),
    ([('meta.estimator', 'truncated'), ('inner.num_steps', 10), ('meta.truncation_length', 11)],
     'meta.truncation_length'),
    ([('eval.num_learners', 1)], 'eval.num_learners'),
    ([('eval.num_epochs', 0)], 'eval.num_epochs'),
    ([('checkpoint.every_steps', 0)], 'checkpoint.every_steps'),
    ([('precision', 'float32')], 'precision'),
]


@pytest.mark.parametrize('overrides, field', BAD_VALUES,
                         ids=[f'{o[-1][0]}={o[-1][1]}' for o, _ in BAD_VALUES])
def test_bad_value_raises_naming_the_field(overrides, field):
  c = config_lib.base()
  for dotted, value in overrides:
    _set(c, dotted, value)
  with pytest.raises(ValueError) as excinfo:
    config_lib.validate(c)
  message = str(excinfo.value)
  assert f'config.{field}:' in message, message


@pytest.mark.parametrize('overrides', [
    [('inner.data_mode', 'full'), ('inner.batch_size', 511)],  # odd batch is fine in 'full'
    [('inner.optimizer', 'sgd'), ('inner.eps_root', 0.0)],     # eps_root only matters for adam
    [('meta.estimator', 'truncated'), ('inner.num_steps', 10), ('meta.truncation_length', 10)],
    [('meta.estimator', 'full'), ('inner.num_steps', 10), ('meta.truncation_length', 50)],
    [('meta.estimator', 'pes'), ('inner.num_steps', 10), ('meta.truncation_length', 5)],
    [('meta.estimator', 'es'), ('inner.learner_updates', 'samples')],
    [('task.num_tasks', 4), ('meta.meta_batch_size', 4)],
    [('inner.num_learners', 3), ('inner.batch_size', 513)],
])
def test_boundary_values_are_accepted(overrides):
  c = config_lib.base()
  for dotted, value in overrides:
    _set(c, dotted, value)
  config_lib.validate(c)
