"""Tests for the TinyImageNet directory source, resizing, and CelebA / CIFAR-100 from TFDS
(mocked): what is read, in which order, and the errors for missing or broken data."""
import os
import shutil
import time

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import tiny_imagenet_files
from task_discovery.data import datasets
from task_discovery.data import resize
from task_discovery.data import tasks
from task_discovery.data import tiny_imagenet


def _config(**fields):
  base = dict(name='tiny_imagenet', source='auto', data_dir='', split='train', num_images=0,
              image_size=0, heldout_fraction=0.1, split_seed=0)
  base.update(fields)
  return ml_collections.ConfigDict(base)


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
  parent = str(tmp_path_factory.mktemp('tiny'))
  tiny_imagenet_files.write(parent, num_classes=12, per_class=6, val_per_class=2)
  return parent


# ------------------------------------------------------------------------------------ resizing


def test_square_resize_is_pils_bilinear_on_the_centred_square():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  expected = np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR))
  np.testing.assert_array_equal(resize.square_resize(image, 32), expected)
  assert resize.square_resize(image, 64) is image
  # 218x178 (CelebA): the centred 178x178 square; rows outside it do not reach the output.
  face = np.full((218, 178, 3), 100, np.uint8)
  face[:20] = 255
  face[-20:] = 0
  out = resize.square_resize(face, 32)
  assert out.shape == (32, 32, 3)
  np.testing.assert_array_equal(out, 100)
  # Antialiased: a one-pixel checkerboard shrinks to grey, not to one of its colours.
  board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None]
  small = resize.square_resize(board, 16)
  assert small.shape == (16, 16, 1) and np.all(np.abs(small.astype(int) - 128) <= 2)


# --------------------------------------------------------------------------------- TinyImageNet


def test_tiny_imagenet_train_split_classes_in_sorted_wnid_order(tiny_dir):
  ds = datasets.load_dataset(_config(data_dir=tiny_dir))  # the parent of tiny-imagenet-200/
  assert ds.name == 'tiny_imagenet' and ds.input_shape == (64, 64, 3)
  assert ds.num_classes == 12 and ds.num_images == 72
  np.testing.assert_array_equal(np.bincount(ds.labels), np.full(12, 6))
  root = os.path.join(tiny_dir, 'tiny-imagenet-200')
  wnids = sorted(open(os.path.join(root, 'wnids.txt')).read().split())
  # The writer lists wnids descending and makes class c (in its order) brighter with c: sorted,
  # class 0 is the writer's last, brightest class.
  assert ds.class_names[0] == 'thing 11' and ds.class_names[11] == 'thing 0'
  raw = ds.raw_images().mean(axis=(1, 2, 3))
  means = np.array([raw[ds.labels == c].mean() for c in range(12)])
  assert np.all(np.diff(means) < 0)
  # Images in (class, file name) order: the first is the first JPEG of the first sorted wnid.
  first = np.asarray(Image.open(os.path.join(root, 'train', wnids[0], 'images',
                                             f'{wnids[0]}_0.JPEG')).convert('RGB'))
  np.testing.assert_allclose(ds.raw_images()[0], first / 255.0, atol=1e-6)


def test_tiny_imagenet_resized_to_32_and_val_split(tiny_dir):
  root = os.path.join(tiny_dir, 'tiny-imagenet-200')
  ds = datasets.load_dataset(_config(data_dir=root, image_size=32, num_images=40))
  assert ds.images.shape == (40, 32, 32, 3)
  val = datasets.load_dataset(_config(data_dir=root, split='val'))
  assert val.num_images == 24
  np.testing.assert_array_equal(np.bincount(val.labels), np.full(12, 2))
  paths, labels, _ = tiny_imagenet.list_images(root, 'val')
  # val_c*2+i belongs to the writer's class c, i.e. to sorted class 11 - c.
  for path, label in zip(paths, labels):
    assert 11 - int(os.path.basename(path)[4:-5]) // 2 == label


def test_tiny_imagenet_human_tasks_beyond_ten_classes(tiny_dir):
  ds = datasets.load_dataset(_config(data_dir=tiny_dir))
  indices = tasks.dataset_human_task_indices(ds, 5)
  labels, names = tasks.dataset_human_tasks(ds, indices)
  assert names is None
  np.testing.assert_array_equal(indices, np.arange(5))  # 12 classes: the seeded sequence
  np.testing.assert_array_equal(labels.sum(axis=1), np.full(5, 36))  # 6 of 12 classes


def _expect_missing(config, *phrases):
  start = time.perf_counter()
  with pytest.raises(datasets.DatasetNotFoundError) as info:
    datasets.load_dataset(config)
  assert time.perf_counter() - start < 5
  for phrase in phrases:
    assert phrase in str(info.value), (phrase, str(info.value))


def test_tiny_imagenet_missing_data_says_how_to_get_it(tmp_path):
  _expect_missing(_config(), 'data.data_dir is empty', tiny_imagenet.URL)
  _expect_missing(_config(data_dir=str(tmp_path)), 'no wnids.txt', str(tmp_path),
                  tiny_imagenet.URL, '--config.data.data_dir')


def test_tiny_imagenet_partial_directory_names_what_is_missing(tmp_path):
  root = tiny_imagenet_files.write(str(tmp_path), num_classes=3, per_class=2, val_per_class=1)
  wnid = sorted(open(os.path.join(root, 'wnids.txt')).read().split())[1]
  shutil.rmtree(os.path.join(root, 'train', wnid))
  _expect_missing(_config(data_dir=root), os.path.join(root, 'train', wnid, 'images'),
                  'does not exist', 'incomplete', tiny_imagenet.URL)
  os.remove(os.path.join(root, 'val', 'images', 'val_0.JPEG'))
  _expect_missing(_config(data_dir=root, split='val'), 'val_0.JPEG', 'missing')
  os.remove(os.path.join(root, 'val', 'val_annotations.txt'))
  _expect_missing(_config(data_dir=root, split='val'), 'val_annotations.txt', tiny_imagenet.URL)


def test_tiny_imagenet_bad_split_and_broken_jpeg(tmp_path):
  root = tiny_imagenet_files.write(str(tmp_path), num_classes=2, per_class=2, val_per_class=1)
  with pytest.raises(ValueError, match="splits are .'train', 'val'."):
    datasets.load_dataset(_config(data_dir=root, split='test'))
  wnid = sorted(open(os.path.join(root, 'wnids.txt')).read().split())[0]
  broken = os.path.join(root, 'train', wnid, 'images', f'{wnid}_0.JPEG')
  with open(broken, 'wb') as f:
    f.write(b'not a jpeg')
  with pytest.raises(ValueError, match=f'{broken} can not be read as an image'):
    datasets.load_dataset(_config(data_dir=root))


# ------------------------------------------------------------------------ TFDS (mock_data)


def test_celeb_a_attributes_are_its_named_human_tasks(monkeypatch):
  monkeypatch.setattr(datasets, '_tfds_is_prepared', lambda builder: True)
  with tfds.testing.mock_data(num_examples=40):
    ds = datasets.load_dataset(_config(name='celeb_a', image_size=24, num_images=30))
    source = tfds.data_source('celeb_a', split='train')
    keep = datasets.subset_indices(np.random.default_rng(0), len(source), 30)
    expected = np.asarray([[int(source[int(i)]['attributes'][name]) for i in keep]
                           for name in ds.human_task_names])
  assert ds.images.shape == (30, 24, 24, 3)
  assert ds.num_classes == 1 and ds.class_names == (datasets.UNLABELLED_CLASS,)
  assert len(ds.human_task_names) == 40 and ds.human_task_names[9] == 'Blond_Hair'
  assert ds.human_tasks.shape == (40, 30) and ds.human_tasks.dtype == np.int32
  np.testing.assert_array_equal(ds.human_tasks, expected)
  labels, names = tasks.dataset_human_tasks(ds, tasks.dataset_human_task_indices(ds, 40))
  assert names == ds.human_task_names
  np.testing.assert_array_equal(labels, expected)


def test_cifar100_fine_labels_and_seeded_human_tasks(monkeypatch):
  monkeypatch.setattr(datasets, '_tfds_is_prepared', lambda builder: True)
  with tfds.testing.mock_data(num_examples=300):
    ds = datasets.load_dataset(_config(name='cifar100', num_images=250))
    source = tfds.data_source('cifar100', split='train')
    keep = datasets.subset_indices(np.random.default_rng(0), len(source), 250)
    fine = np.asarray([int(source[int(i)]['label']) for i in keep])
  assert ds.num_classes == 100 and len(ds.class_names) == 100 and ds.human_tasks is None
  np.testing.assert_array_equal(ds.labels, fine)
  labels, _ = tasks.dataset_human_tasks(ds, tasks.dataset_human_task_indices(ds, 126))
  subsets = tasks.seeded_class_subsets(100, 126)
  assert labels.shape == (126, 250)
  np.testing.assert_array_equal(labels[7], np.isin(fine, subsets[7]).astype(np.int32))


def test_image_size_is_refused_for_sources_read_as_stored():
  with pytest.raises(ValueError, match='data.image_size=16'):
    datasets.load_dataset(_config(name='digits', image_size=16))


@pytest.mark.parametrize('name', ['celeb_a', 'cifar100'])
def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path, name):
  _expect_missing(_config(name=name, data_dir=str(tmp_path), image_size=32), 'is not prepared',
                  f"tfds.data_source({name!r}", str(tmp_path))
