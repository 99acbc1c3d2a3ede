"""Image-classification datasets as in-memory numpy arrays, split into train, meta-validation
and held-out parts.

Everything is loaded once into host memory (the experiments put the whole dataset on the device and
draw minibatch indices inside the jitted step), normalised per channel with the mean/std of the
training part, and split with a seeded permutation so that the same config gives byte-identical
arrays.

Sources:
  * ``sklearn``: scikit-learn's bundled ``load_digits`` (1,797 8x8 images, offline).
  * ``idx``: gzip or plain IDX files, e.g. Debian's ``dataset-fashion-mnist`` package.
  * ``tfds``: an already *prepared* TFDS dataset, read with ``tfds.data_source`` in the
    ``array_record`` format, which needs no TensorFlow. Nothing is ever downloaded here: an offline
    download retries for minutes, so a missing dataset fails at once with instructions. A dataset
    with an ``attributes`` feature of booleans and no ``label`` (CelebA) has one class and its
    attributes as human-labelled tasks (``Dataset.human_tasks``).
  * ``directory``: TinyImageNet's ``tiny-imagenet-200/`` directory (``data/tiny_imagenet.py``).

``data.image_size`` > 0 resizes every image while it is read (``data/resize.py``).

Example:
  >>> config = ml_collections.ConfigDict({'name': 'digits', 'heldout_fraction': 0.1})
  >>> ds = load_dataset(config)
  >>> ds.images.shape, len(ds.train_idx), len(ds.heldout_idx)
  ((1797, 8, 8, 1), 1617, 180)
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np

from task_discovery.data import resize
from task_discovery.data import tiny_imagenet
from task_discovery.data.errors import DatasetNotFoundError  # noqa: F401 (re-exported)
from task_discovery.data.idx import read_idx  # noqa: F401 (re-exported)

KNOWN_DATASETS = ('digits', 'fashion_mnist', 'mnist', 'cifar10', 'cifar100', 'svhn_cropped',
                  'celeb_a', 'tiny_imagenet')
# The one class of a dataset without class labels (CelebA; its attributes are its human tasks).
UNLABELLED_CLASS = 'all images'
DEFAULT_IDX_DIRS = {'fashion_mnist': '/usr/share/datasets/fashion-mnist'}
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                         'Sneaker', 'Bag', 'Ankle boot')
_IDX_CLASS_NAMES = {'fashion_mnist': FASHION_MNIST_CLASSES,
                    'mnist': tuple(str(i) for i in range(10))}
_IDX_PREFIX = {'train': 'train', 'test': 't10k'}
# IDX type codes (third magic byte); all multi-byte types are big-endian.




@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays make field-wise == ambiguous.
class Dataset:
  """A normalised image-classification dataset with a fixed train / meta-val / held-out split.

  Attributes:
    name: Dataset name from the config, e.g. 'cifar10'.
    images: [N, H, W, C] float32, ``(raw - mean) / std`` with raw pixels in [0, 1].
    labels: [N] int32 class labels in [0, num_classes).
    train_idx: [N_train] int32 sorted indices into ``images``.
    heldout_idx: [N_heldout] int32 sorted indices, disjoint from ``train_idx``: the images on
      which the evaluation scores the AS.
    num_classes: Number of classes.
    mean: [C] float32 per-channel mean of the raw [0, 1] training images.
    std: [C] float32 per-channel (population) standard deviation of the same.
    class_names: One name per class.
    meta_val_idx: [N_meta_val] int32 sorted indices disjoint from both (empty when
      ``meta_val_fraction`` is 0): the held-out images of the differentiable AS during
      discovery, so that the images which score a discovered task never steered its discovery
      (the original takes them from its data module's validation split and scores on the test
      split). The three parts together are all N images.
    human_tasks: [T, N] int32 0/1 labels of the dataset's own human-labelled binary tasks (CelebA:
      its 40 attributes), or None: the human tasks are then balanced splits of the classes
      (`tasks.human_class_subsets`).
    human_task_names: One name per row of ``human_tasks`` (empty when it is None).
  """
  name: str
  images: np.ndarray
  labels: np.ndarray
  train_idx: np.ndarray
  heldout_idx: np.ndarray
  num_classes: int
  mean: np.ndarray
  std: np.ndarray
  class_names: tuple[str, ...]
  meta_val_idx: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(0, np.int32))
  # [N] each image's index in its source split, in the source's own order (for TFDS datasets
  # with an `id` feature such as CIFAR-10's 'train_01234', that number: the order of the
  # original files and of torchvision). Task files of the whole split are matched by it
  # (`tasks.load_task_file`). None: 0..N-1.
  source_index: np.ndarray | None = None
  human_tasks: np.ndarray | None = None
  human_task_names: tuple[str, ...] = ()

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of one image."""
    return tuple(self.images.shape[1:])

  @property
  def num_images(self) -> int:
    """N, the number of images in both parts together."""
    return self.images.shape[0]

  def raw_images(self) -> np.ndarray:
    """Un-normalised [N, H, W, C] float32 images in [0, 1], for plotting."""
    return np.clip(self.images * self.std + self.mean, 0.0, 1.0).astype(np.float32)


def normalize(raw_images_0_1, mean, std) -> np.ndarray:
  """Normalises [..., C] images with pixel values in [0, 1] by a per-channel mean and std.

  Args:
    raw_images_0_1: Array [..., C] of pixel values scaled to [0, 1].
    mean: [C] per-channel mean (``Dataset.mean``).
    std: [C] per-channel standard deviation (``Dataset.std``).

  Returns:
    float32 array of the same shape, ``(raw - mean) / std``.
  """
  raw = np.asarray(raw_images_0_1, dtype=np.float32)
  mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
  if raw.shape[-1:] != mean.shape or mean.shape != std.shape:
    raise ValueError(f'Images with {raw.shape[-1:]} channels do not match mean {mean.shape} and '
                     f'std {std.shape}.')
  return (raw - mean) / std


def load_dataset(config) -> Dataset:
  """Loads, subsamples, splits and normalises the dataset described by ``config``.

  The subset and the split come from one ``np.random.default_rng(split_seed)``: first the
  ``num_images`` subset (sorted, so images keep their source order), then a permutation whose first
  ``round_half_up(heldout_fraction * N)`` entries (clamped to [1, N - 1]) form the held-out part,
  the next ``round_half_up(meta_val_fraction * N)`` the meta-validation part, the rest the
  training part. The held-out part does not depend on ``meta_val_fraction``.

  Args:
    config: The ``data`` section of the experiment config with fields ``name``, ``source``
      ('auto' | 'sklearn' | 'idx' | 'tfds' | 'directory'), ``data_dir`` ('' = default),
      ``split`` ('train'), ``num_images`` (0 = all), ``image_size`` (0 = as stored, when
      absent), ``heldout_fraction`` (0.1), ``meta_val_fraction`` (0 when absent) and
      ``split_seed`` (0).

  Returns:
    The ``Dataset``.

  Raises:
    ValueError: Unknown name or source, or a config value out of range.
    DatasetNotFoundError: The data is not on this machine (the message says how to get it).
  """
  name = getattr(config, 'name', None)
  if not name:
    raise ValueError(f'data.name must be set; known names: {", ".join(KNOWN_DATASETS)}.')
  source = getattr(config, 'source', 'auto')
  data_dir = getattr(config, 'data_dir', '') or ''
  split = getattr(config, 'split', 'train')
  num_images = int(getattr(config, 'num_images', 0))
  heldout_fraction = float(getattr(config, 'heldout_fraction', 0.1))
  meta_val_fraction = float(getattr(config, 'meta_val_fraction', 0.0))
  split_seed = int(getattr(config, 'split_seed', 0))
  image_size = int(getattr(config, 'image_size', 0))
  if not 0.0 < heldout_fraction < 1.0:
    raise ValueError(f'data.heldout_fraction must be in (0, 1), got {heldout_fraction}.')
  if not 0.0 <= meta_val_fraction < 1.0 - heldout_fraction:
    raise ValueError(f'data.meta_val_fraction must be in [0, 1 - data.heldout_fraction) = '
                     f'[0, {1.0 - heldout_fraction:g}), got {meta_val_fraction}: lower it or '
                     'data.heldout_fraction.')
  if num_images < 0:
    raise ValueError(f'data.num_images must be >= 0 (0 = all), got {num_images}.')
  if image_size < 0:
    raise ValueError(f'data.image_size must be >= 0 (0 = as stored), got {image_size}.')
  if source == 'auto':
    source = _auto_source(name, data_dir, split)
  rng = np.random.default_rng(split_seed)
  if image_size and source in ('sklearn', 'idx'):
    raise ValueError(f'data.image_size={image_size}: resizing is for the tfds and directory '
                     f'sources; {name} from {source!r} is read as stored (set it to 0).')

  raw, labels, class_names, own_tasks, source_index = _read_source(
      name, source, data_dir, split, rng, num_images, image_size)
  num_classes = len(class_names)
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError(f'{name}: labels span [{labels.min()}, {labels.max()}], expected '
                     f'[0, {num_classes}).')
  train_idx, heldout_idx, meta_val_idx = _split_parts(rng, len(labels), name, heldout_fraction,
                                                      meta_val_fraction)

  images = _to_unit_float(raw)
  mean, std = _channel_stats(images, train_idx)
  if np.any(std == 0):
    raise ValueError(f'{name}: a channel is constant over the training images (std {std}).')
  images -= mean  # In place: CIFAR-10 as float32 is already 600 MB.
  images /= std
  arrays = dict(images=images, labels=labels.astype(np.int32), train_idx=train_idx,
                heldout_idx=heldout_idx, meta_val_idx=meta_val_idx, mean=mean, std=std,
                source_index=np.asarray(source_index, np.int64))
  if own_tasks is not None:
    arrays['human_tasks'] = own_tasks[0]
  for array in arrays.values():
    array.flags.writeable = False  # The dataclass is frozen; so are its arrays.
  return Dataset(name=name, num_classes=num_classes, class_names=tuple(class_names),
                 human_task_names=tuple(own_tasks[1] if own_tasks else ()), **arrays)


def _read_source(name: str, source: str, data_dir: str, split: str, rng: np.random.Generator,
                 num_images: int, image_size: int):
  """`(raw images, labels, class_names, own_tasks, source_index)` of the selected subset from
  one source; own_tasks is None or `(labels [T, N], names)` (a dataset's own human tasks),
  source_index each image's index in the source (`Dataset.source_index`)."""
  own_tasks = None
  if source == 'sklearn':
    raw, labels, class_names = _load_digits(name, split)
    keep = subset_indices(rng, len(labels), num_images)
    raw, labels = raw[keep], labels[keep]
  elif source == 'idx':
    raw, labels, class_names = _load_idx(name, data_dir, split)
    keep = subset_indices(rng, len(labels), num_images)
    raw, labels = raw[keep], labels[keep]
  elif source == 'tfds':  # Reads only the selected records: decoding is the slow part.
    return _load_tfds(name, data_dir, split, rng, num_images, image_size)
  elif source == 'directory':
    if name != 'tiny_imagenet':
      raise ValueError(f"source='directory' reads 'tiny_imagenet', not {name!r}.")
    raw, labels, class_names, keep = tiny_imagenet.load(
        data_dir, split, lambda n: subset_indices(rng, n, num_images), image_size)
  else:
    raise ValueError("data.source must be 'auto', 'sklearn', 'idx', 'tfds' or 'directory', got "
                     f'{source!r}.')
  return raw, labels, class_names, own_tasks, keep


def _split_parts(rng: np.random.Generator, n: int, name: str, heldout_fraction: float,
                 meta_val_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`(train_idx, heldout_idx, meta_val_idx)` of n images, sorted int32, from one permutation
  (the order of draws is `load_dataset`'s docstring)."""
  if n < 2:
    raise ValueError(f'{name}: need at least 2 images to split, got {n}.')
  # Round half up (not Python's round-half-even), keeping both parts non-empty.
  num_heldout = min(max(int(math.floor(heldout_fraction * n + 0.5)), 1), n - 1)
  num_meta_val = int(math.floor(meta_val_fraction * n + 0.5)) if meta_val_fraction else 0
  if meta_val_fraction and not 1 <= num_meta_val <= n - num_heldout - 1:
    raise ValueError(f'{name}: data.meta_val_fraction={meta_val_fraction} gives {num_meta_val} '
                     f'meta-validation images of {n}, leaving no training part or none for '
                     'meta-validation; change data.meta_val_fraction or data.num_images.')
  perm = rng.permutation(n)
  heldout_idx = np.sort(perm[:num_heldout]).astype(np.int32)
  meta_val_idx = np.sort(perm[num_heldout:num_heldout + num_meta_val]).astype(np.int32)
  train_idx = np.sort(perm[num_heldout + num_meta_val:]).astype(np.int32)
  return train_idx, heldout_idx, meta_val_idx


def subset_indices(rng: np.random.Generator, n: int, num_images: int) -> np.ndarray:
  """Sorted indices of a random ``num_images`` subset of range(n) (all of them for 0)."""
  if num_images > n:
    raise ValueError(f'data.num_images={num_images} exceeds the {n} images available.')
  if num_images in (0, n):
    return np.arange(n)
  return np.sort(rng.permutation(n)[:num_images])


def _to_unit_float(raw: np.ndarray) -> np.ndarray:
  """[N, H, W] or [N, H, W, C] uint8 (or already [0, 1] float) -> [N, H, W, C] float32 in [0, 1]."""
  if raw.ndim == 3:
    raw = raw[..., None]
  if raw.dtype == np.uint8:
    return raw.astype(np.float32) / np.float32(255.0)
  return raw.astype(np.float32)


def _channel_stats(images: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and population std over images[idx], accumulated in float64."""
  stats = []
  for c in range(images.shape[-1]):  # One channel at a time bounds the float64 copy.
    x = images[idx, ..., c].astype(np.float64)
    stats.append((x.mean(), x.std()))
  mean, std = np.asarray(stats, dtype=np.float32).T
  return mean.copy(), std.copy()


def _auto_source(name: str, data_dir: str, split: str) -> str:
  if name == 'digits':
    return 'sklearn'
  if name == 'tiny_imagenet':
    return 'directory'
  if name == 'fashion_mnist' and _idx_paths(data_dir or DEFAULT_IDX_DIRS[name], split):
    return 'idx'
  return 'tfds'


def _load_digits(name: str, split: str):
  if name != 'digits':
    raise ValueError(f"source='sklearn' only provides 'digits', not {name!r}.")
  if split != 'train':  # Nothing to choose: fail rather than silently ignore the field.
    raise ValueError(f"digits has a single split; set data.split='train', got {split!r}.")
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  raw = (digits.images / 16.0).astype(np.float32)  # Pixel values are 0..16.
  return raw, digits.target.astype(np.int32), tuple(str(i) for i in range(10))


def _idx_paths(data_dir: str, split: str) -> tuple[str, str] | None:
  """(images, labels) IDX paths for the split in data_dir, '.gz' or plain; None if missing."""
  if split not in _IDX_PREFIX:
    return None
  paths = []
  for kind in ('images-idx3', 'labels-idx1'):
    base = os.path.join(data_dir, f'{_IDX_PREFIX[split]}-{kind}-ubyte')
    found = [p for p in (base + '.gz', base) if os.path.isfile(p)]
    if not found:
      return None
    paths.append(found[0])
  return tuple(paths)


def _load_idx(name: str, data_dir: str, split: str):
  if name not in _IDX_CLASS_NAMES:
    raise ValueError(f"source='idx' supports {sorted(_IDX_CLASS_NAMES)}, not {name!r}.")
  if split not in _IDX_PREFIX:
    raise ValueError(f"IDX data has splits 'train' and 'test' (t10k files), got {split!r}.")
  data_dir = data_dir or DEFAULT_IDX_DIRS.get(name, '')
  paths = _idx_paths(data_dir, split) if data_dir else None
  if paths is None:
    hint = ('Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files in '
            f'{DEFAULT_IDX_DIRS["fashion_mnist"]})' if name == 'fashion_mnist' else
            f'Download the {name} IDX files')
    raise DatasetNotFoundError(
        f'No {name} IDX files for split {split!r} ({_IDX_PREFIX[split]}-images-idx3-ubyte[.gz] and '
        f'{_IDX_PREFIX[split]}-labels-idx1-ubyte[.gz]) in data_dir={data_dir!r}. {hint}, or '
        f'point --config.data.data_dir at a directory holding them, or use '
        f"--config.data.source=tfds.")
  images, labels = read_idx(paths[0]), read_idx(paths[1])
  if images.ndim != 3 or labels.shape != images.shape[:1]:
    raise ValueError(f'{paths}: images {images.shape} and labels {labels.shape} do not match.')
  return images, labels.astype(np.int32), _IDX_CLASS_NAMES[name]


def _tfds_builder(name: str, data_dir: str):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.builder(name, data_dir=data_dir or None, file_format='array_record')
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f'Unknown dataset {name!r}. Known names: {", ".join(KNOWN_DATASETS)}, or any '
                     "TFDS image-classification dataset with 'image' and 'label' "
                     'features.') from e


def _tfds_is_prepared(builder) -> bool:
  """Whether the builder's data is on disk (separate so that tests under mock_data can patch it)."""
  return builder.is_prepared()


def _tfds_missing_message(name: str, data_dir: str, split: str, reason: str) -> str:
  dir_arg = f'data_dir={data_dir!r}, ' if data_dir else ''
  message = (
      f'TFDS dataset {name!r} (split {split!r}) {reason} in '
      f'{data_dir or "the default TFDS data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"}. '
      'Nothing is downloaded here (an offline download retries for minutes). On a machine with '
      "internet, in the repository's checkout, run\n  pip install -e '.[tfds-prepare]'\n"
      f'  python -c "import tensorflow_datasets as tfds; tfds.data_source({name!r}, {dir_arg}'
      "builder_kwargs={'file_format': 'array_record'})\"\n"
      'and copy the prepared directory here, or pass --config.data.data_dir=DIR pointing at it.')
  if name == 'fashion_mnist':
    message += ('\nOr, without TFDS: apt-get install dataset-fashion-mnist and '
                f'--config.data.source=idx (reads {DEFAULT_IDX_DIRS[name]}).')
  return message


def _load_tfds(name: str, data_dir: str, split: str, rng: np.random.Generator, num_images: int,
               image_size: int = 0):
  """As `_read_source`; own_tasks are the boolean attributes of a dataset without labels."""
  builder = _tfds_builder(name, data_dir)
  if not _tfds_is_prepared(builder):
    raise DatasetNotFoundError(_tfds_missing_message(name, data_dir, split, 'is not prepared'))
  features = builder.info.features
  attribute_names = _attribute_names(features) if 'label' not in features else None
  if 'image' not in features or ('label' not in features and not attribute_names):
    raise ValueError(f"{name!r} is not an image-classification dataset: features "
                     f"{list(features)} lack 'image' and 'label' (or boolean 'attributes').")
  try:
    # tfds.data_source(...) would build a second builder; this is the same call on ours.
    source = builder.as_data_source(split=split)
  except NotImplementedError as e:  # Prepared, but as TFRecord (no random access).
    raise DatasetNotFoundError(_tfds_missing_message(
        name, data_dir, split, 'is prepared but not in the array_record format')) from e
  keep = subset_indices(rng, len(source), num_images)
  images, labels, attributes, ids = [], [], [], []
  for i in keep:  # One record at a time: the mock's batched __getitems__ is broken.
    example = source[int(i)]
    image = np.asarray(example['image'])
    if image.dtype != np.uint8:
      raise ValueError(f'{name}: expected uint8 images, got {image.dtype}.')
    # Resized one at a time: CelebA's 162,770 training faces take 19 GB as stored.
    images.append(resize.square_resize(image, image_size) if image_size else image)
    ids.append(example.get('id'))
    if attribute_names:
      attributes.append([bool(example['attributes'][a]) for a in attribute_names])
    else:
      labels.append(int(example['label']))
  images = np.stack(images)
  source_index = _source_index(ids, keep)
  if attribute_names:  # No classes: one class, and the attributes are the human tasks.
    own_tasks = (np.asarray(attributes, dtype=np.int32).T.copy(), attribute_names)
    return images, np.zeros(len(keep), np.int32), (UNLABELLED_CLASS,), own_tasks, source_index
  labels = np.asarray(labels, dtype=np.int32)
  label_feature = features['label']
  num_classes = getattr(label_feature, 'num_classes', None)
  if num_classes:
    class_names = tuple(label_feature.names)
  else:  # Label is a plain integer feature: infer the classes from the data.
    class_names = tuple(str(c) for c in range(int(labels.max()) + 1))
  return images, labels, class_names, None, source_index


def _source_index(ids, records: np.ndarray) -> np.ndarray:
  """Each image's index in the source's own order: the number of TFDS ids like 'train_01234'
  (CIFAR-10/100: the position in the original files, which TFDS stores shuffled), when every
  image has one and they are distinct; else the record positions."""
  numbers = []
  for i in ids:
    i = i.decode() if isinstance(i, bytes) else i
    match = re.fullmatch(r'[A-Za-z]+_(\d+)', i) if isinstance(i, str) else None
    if match is None:
      return np.asarray(records, np.int64)
    numbers.append(int(match.group(1)))
  numbers = np.asarray(numbers, np.int64)
  return numbers if len(np.unique(numbers)) == len(numbers) else np.asarray(records, np.int64)


def _attribute_names(features) -> tuple[str, ...]:
  """Boolean sub-features of an `attributes` feature, in its order; () when there is none."""
  attributes = features['attributes'] if 'attributes' in features else {}
  return tuple(n for n in attributes.keys() if np.dtype(attributes[n].np_dtype) == np.bool_)
