"""Tests for task_discovery.datasets: splits, normalisation, IDX reading, TFDS (mocked), errors."""
import gzip
import os
import struct
import time

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from task_discovery.data import datasets

FASHION_DIR = '/usr/share/datasets/fashion-mnist'


def _config(**fields):
  base = dict(name='digits', source='auto', data_dir='', split='train', num_images=0,
              heldout_fraction=0.1, split_seed=0)
  base.update(fields)
  return ml_collections.ConfigDict(base)


def _write_idx(path, array, compress):
  """Writes `array` as an IDX file: magic 0x0000TTDD, big-endian uint32 dims, then the data."""
  codes = {np.dtype('uint8'): 0x08, np.dtype('>i4'): 0x0C}
  header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
      f'>{array.ndim}I', *array.shape)
  with (gzip.open if compress else open)(path, 'wb') as f:
    f.write(header + array.tobytes())


@pytest.fixture(scope='module')
def digits():
  return datasets.load_dataset(_config())


# --------------------------------------------------------------------------------------- digits


def test_digits_shapes_and_dtypes(digits):
  assert digits.images.shape == (1797, 8, 8, 1)
  assert digits.input_shape == (8, 8, 1) and digits.num_images == 1797
  assert digits.images.dtype == np.float32 and digits.labels.dtype == np.int32
  assert digits.mean.shape == digits.std.shape == (1,)
  assert digits.mean.dtype == digits.std.dtype == np.float32
  assert digits.num_classes == 10 and digits.class_names == tuple('0123456789')
  assert digits.labels.min() == 0 and digits.labels.max() == 9
  np.testing.assert_array_equal(digits.labels, load_digits().target)  # No subset: source order.


def test_digits_split_is_disjoint_complete_sorted(digits):
  train, heldout = digits.train_idx, digits.heldout_idx
  assert train.dtype == heldout.dtype == np.int32
  assert np.all(np.diff(train) > 0) and np.all(np.diff(heldout) > 0)
  assert len(np.intersect1d(train, heldout)) == 0
  np.testing.assert_array_equal(np.union1d(train, heldout), np.arange(1797))
  assert len(heldout) == 180  # round_half_up(0.1 * 1797 = 179.7)


def test_meta_validation_part_is_disjoint_and_leaves_the_heldout_part_unchanged(digits):
  ds = datasets.load_dataset(_config(meta_val_fraction=0.15))
  train, meta_val, heldout = ds.train_idx, ds.meta_val_idx, ds.heldout_idx
  assert meta_val.dtype == np.int32 and np.all(np.diff(meta_val) > 0)
  assert len(meta_val) == 270  # round_half_up(0.15 * 1797 = 269.55)
  assert len(np.intersect1d(meta_val, train)) == len(np.intersect1d(meta_val, heldout)) == 0
  assert len(np.intersect1d(train, heldout)) == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train, meta_val, heldout])),
                                np.arange(1797))
  np.testing.assert_array_equal(heldout, digits.heldout_idx)  # same images scored either way
  assert len(digits.meta_val_idx) == 0  # no field: no meta-validation part
  with pytest.raises(ValueError, match=r'data.meta_val_fraction must be in \[0, 1 - data'):
    datasets.load_dataset(_config(heldout_fraction=0.5, meta_val_fraction=0.5))


@pytest.mark.parametrize('fraction, n, expected', [(0.25, 1797, 449), (0.5, 1797, 899),
                                                   (0.1, 25, 3), (0.001, 100, 1), (0.999, 100, 99)])
def test_heldout_size_rounds_half_up_and_keeps_both_parts(fraction, n, expected):
  # 0.25 * 1797 = 449.25 -> 449; 0.5 * 1797 = 898.5 -> 899 (half up, where round() gives 898);
  # 2.5 -> 3; 0.1 -> clamped to 1; 99.9 -> clamped to n - 1.
  ds = datasets.load_dataset(_config(heldout_fraction=fraction, num_images=n))
  assert len(ds.heldout_idx) == expected and len(ds.train_idx) == n - expected


def test_digits_normalised_with_training_statistics(digits):
  train = digits.images[digits.train_idx].astype(np.float64)
  np.testing.assert_allclose(train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(train.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
  # Statistics come from the training part only: the held-out part is not exactly centred.
  assert abs(digits.images[digits.heldout_idx].mean()) > 1e-4
  raw = digits.raw_images()
  assert raw.dtype == np.float32 and raw.min() >= 0.0 and raw.max() <= 1.0
  np.testing.assert_allclose(raw[..., 0], load_digits().images / 16.0, atol=1e-6)
  np.testing.assert_allclose(datasets.normalize(raw, digits.mean, digits.std), digits.images,
                             atol=1e-5)


def test_dataset_arrays_are_read_only(digits):
  with pytest.raises(ValueError):
    digits.images[0, 0, 0, 0] = 1.0


def test_same_config_gives_identical_arrays():
  a = datasets.load_dataset(_config(num_images=700, split_seed=3))
  b = datasets.load_dataset(_config(num_images=700, split_seed=3))
  for field in ('images', 'labels', 'train_idx', 'heldout_idx', 'mean', 'std'):
    assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), field


def test_split_seed_changes_split(digits):
  other = datasets.load_dataset(_config(split_seed=1))
  assert not np.array_equal(digits.heldout_idx, other.heldout_idx)
  assert len(other.heldout_idx) == len(digits.heldout_idx)


def test_num_images_subset_of_real_images():
  ds = datasets.load_dataset(_config(num_images=500))
  assert ds.images.shape == (500, 8, 8, 1) and len(ds.heldout_idx) == 50
  full = load_digits()
  originals = {(img.astype(np.int8).tobytes(), t) for img, t in zip(full.images, full.target)}
  pixels = np.round(ds.raw_images()[..., 0] * 16).astype(np.int8)
  assert all((p.tobytes(), t) in originals for p, t in zip(pixels, ds.labels))
  other = datasets.load_dataset(_config(num_images=500, split_seed=1))
  assert not np.array_equal(ds.images, other.images)  # The subset depends on the seed too.


# ------------------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize('compress', [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
  images = np.random.default_rng(0).integers(0, 256, (7, 5, 4), dtype=np.uint8)
  _write_idx(tmp_path / 'x', images, compress)
  out = datasets.read_idx(tmp_path / 'x')
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, images)
  ints = np.arange(-3, 9, dtype='>i4').reshape(3, 4)
  _write_idx(tmp_path / 'y', ints, compress)
  out = datasets.read_idx(tmp_path / 'y')
  assert out.dtype == np.int32 and out.dtype.isnative
  np.testing.assert_array_equal(out, ints)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
  (tmp_path / 'bad').write_bytes(b'\x01\x02\x08\x01' + struct.pack('>I', 1) + b'\x00')
  with pytest.raises(ValueError, match='magic number'):
    datasets.read_idx(tmp_path / 'bad')
  (tmp_path / 'short').write_bytes(b'\x00\x00\x08\x01' + struct.pack('>I', 10) + b'\x00' * 9)
  with pytest.raises(ValueError, match='9 data bytes'):
    datasets.read_idx(tmp_path / 'short')


def test_idx_source_from_written_files(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 6, 6), dtype=np.uint8)
  labels = np.arange(40, dtype=np.uint8) % 10
  _write_idx(tmp_path / 't10k-images-idx3-ubyte.gz', images, compress=True)
  _write_idx(tmp_path / 't10k-labels-idx1-ubyte', labels, compress=False)  # Plain works too.
  ds = datasets.load_dataset(_config(name='mnist', source='idx', data_dir=str(tmp_path),
                                     split='test', heldout_fraction=0.25))
  assert ds.images.shape == (40, 6, 6, 1) and len(ds.heldout_idx) == 10
  np.testing.assert_array_equal(ds.labels, labels)
  np.testing.assert_allclose(ds.raw_images()[..., 0], images / 255.0, atol=1e-6)


def test_fashion_mnist_from_debian_idx_files():
  if not os.path.isfile(os.path.join(FASHION_DIR, 'train-images-idx3-ubyte.gz')):
    pytest.skip(f'{FASHION_DIR} absent: apt-get install dataset-fashion-mnist')
  ds = datasets.load_dataset(_config(name='fashion_mnist', num_images=2000))  # source auto -> idx
  assert ds.images.shape == (2000, 28, 28, 1) and ds.images.dtype == np.float32
  assert ds.num_classes == 10 and len(np.unique(ds.labels)) == 10
  assert ds.class_names[0] == 'T-shirt/top' and ds.class_names[9] == 'Ankle boot'
  assert len(ds.heldout_idx) == 200
  train = ds.images[ds.train_idx]
  assert abs(train.mean()) < 1e-4 and abs(train.std() - 1.0) < 1e-4


# ----------------------------------------------------------------------------------------- TFDS


@pytest.mark.parametrize('name, shape', [('cifar10', (32, 32, 3)), ('mnist', (28, 28, 1))])
def test_tfds_source_under_mock_data(monkeypatch, name, shape):
  # mock_data redirects data_dir to a non-existent directory, so is_prepared() is always False.
  monkeypatch.setattr(datasets, '_tfds_is_prepared', lambda builder: True)
  with tfds.testing.mock_data(num_examples=60):
    ds = datasets.load_dataset(_config(name=name, source='tfds', num_images=50))
  assert ds.images.shape == (50,) + shape and ds.images.dtype == np.float32
  assert ds.num_classes == 10 and len(ds.class_names) == 10
  assert ds.labels.min() >= 0 and ds.labels.max() < 10
  assert len(ds.heldout_idx) == 5
  np.testing.assert_allclose(ds.images[ds.train_idx].mean(axis=(0, 1, 2)), 0.0, atol=1e-5)


# --------------------------------------------------------------------------------------- errors


def test_unknown_name_lists_known_names():
  with pytest.raises(ValueError, match='Known names: digits, fashion_mnist'):
    datasets.load_dataset(_config(name='no_such_dataset_xyz'))


@pytest.mark.parametrize('fraction', [0.0, 1.0, -0.1, 1.5])
def test_heldout_fraction_out_of_range(fraction):
  with pytest.raises(ValueError, match=r'heldout_fraction must be in \(0, 1\)'):
    datasets.load_dataset(_config(heldout_fraction=fraction))


def test_bad_source_split_and_num_images():
  with pytest.raises(ValueError, match='data.source'):
    datasets.load_dataset(_config(source='web'))
  with pytest.raises(ValueError, match='single split'):
    datasets.load_dataset(_config(split='test'))
  with pytest.raises(ValueError, match='exceeds the 1797'):
    datasets.load_dataset(_config(num_images=5000))


@pytest.mark.parametrize('name', ['cifar10', 'fashion_mnist'])
def test_tfds_not_prepared_fails_fast_with_fix(tmp_path, name):
  start = time.perf_counter()
  with pytest.raises(datasets.DatasetNotFoundError) as info:
    datasets.load_dataset(_config(name=name, source='tfds', data_dir=str(tmp_path)))
  assert time.perf_counter() - start < 10
  message = str(info.value)
  assert 'tfds-prepare' in message and f"tfds.data_source('{name}'" in message
  assert 'array_record' in message and str(tmp_path) in message
  assert ('apt-get install dataset-fashion-mnist' in message) == (name == 'fashion_mnist')
  assert isinstance(info.value, FileNotFoundError)
  assert list(tmp_path.iterdir()) == []  # Nothing was written (no download started).


def test_idx_dir_without_files_names_the_package(tmp_path):
  with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
    datasets.load_dataset(_config(name='fashion_mnist', source='idx', data_dir=str(tmp_path)))
