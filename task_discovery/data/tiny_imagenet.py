"""TinyImageNet read from its standard directory (`data.source='directory'`).

The layout of `tiny-imagenet-200.zip`, unzipped:

    tiny-imagenet-200/
      wnids.txt                      one WordNet id per line: the 200 classes
      words.txt                      optional: `wnid<TAB>name, name, ...` (class names)
      train/<wnid>/images/*.JPEG     500 64x64 images per class
      val/val_annotations.txt        `file<TAB>wnid<TAB>box...`, one line per image
      val/images/*.JPEG              10,000 images (50 per class)

`data.data_dir` is that directory or the one holding it. Class c is the c-th wnid in sorted
order, as torchvision's `ImageFolder` numbers the original's classes; images are in (class, file
name) order. `data.split` is 'train' or 'val' (the test images have no labels). Only the images
of the selected subset are decoded.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from PIL import Image

from task_discovery.data import resize
from task_discovery.data.errors import DatasetNotFoundError

DIRNAME = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SPLITS = ("train", "val")


def _how_to_get(data_dir: str) -> str:
  return (f"download {URL} and unzip it into {data_dir or 'a directory'} (giving "
          f"{os.path.join(data_dir or 'DIR', DIRNAME)}/ with wnids.txt, train/ and val/), then "
          "pass --config.data.data_dir=DIR")


def find_root(data_dir: str) -> str:
  """The `tiny-imagenet-200` directory: `data_dir` itself or its child of that name.

  Raises:
    DatasetNotFoundError: neither holds wnids.txt (the message says how to get the data).
  """
  if not data_dir:
    raise DatasetNotFoundError(
        "data.data_dir is empty: TinyImageNet is read from its directory; " + _how_to_get(""))
  for root in (data_dir, os.path.join(data_dir, DIRNAME)):
    if os.path.isfile(os.path.join(root, "wnids.txt")):
      return root
  raise DatasetNotFoundError(
      f"no wnids.txt in {data_dir} nor in {os.path.join(data_dir, DIRNAME)}: "
      + _how_to_get(data_dir))


def _read_lines(path: str) -> list[str]:
  with open(path) as f:
    return [line.rstrip("\n") for line in f if line.strip()]


def _class_names(root: str, wnids: list[str]) -> tuple[str, ...]:
  """The first name of each wnid in words.txt, or the wnid where it is missing."""
  path = os.path.join(root, "words.txt")
  words = {}
  if os.path.isfile(path):
    for line in _read_lines(path):
      wnid, _, names = line.partition("\t")
      words[wnid] = names.split(",")[0].strip()
  return tuple(words.get(w) or w for w in wnids)


def list_images(root: str, split: str) -> tuple[list[str], np.ndarray, list[str]]:
  """`(paths, labels [N] int32, wnids)` of a split, in (class, file name) order.

  Raises:
    ValueError: unknown split.
    DatasetNotFoundError: a missing or empty folder or annotation file, naming it (a partial
      unzip).
  """
  if split not in SPLITS:
    raise ValueError(f"TinyImageNet splits are {SPLITS} (its test images have no labels), got "
                     f"data.split={split!r}")
  wnids = sorted(_read_lines(os.path.join(root, "wnids.txt")))
  if not wnids:
    raise DatasetNotFoundError(f"{root}/wnids.txt lists no classes: "
                                        + _how_to_get(os.path.dirname(root)))
  index = {w: c for c, w in enumerate(wnids)}
  entries = []
  if split == "train":
    for wnid in wnids:
      folder = os.path.join(root, "train", wnid, "images")
      files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpeg", ".jpg"))) \
          if os.path.isdir(folder) else []
      if not files:
        raise DatasetNotFoundError(
            f"{folder} {'holds no JPEG' if os.path.isdir(folder) else 'does not exist'}, but "
            f"wnids.txt lists {wnid}: the directory is incomplete; "
            + _how_to_get(os.path.dirname(root)))
      entries += [(index[wnid], f, os.path.join(folder, f)) for f in files]
  else:
    annotations = os.path.join(root, "val", "val_annotations.txt")
    if not os.path.isfile(annotations):
      raise DatasetNotFoundError(
          f"{annotations} does not exist: the directory is incomplete; "
          + _how_to_get(os.path.dirname(root)))
    for number, line in enumerate(_read_lines(annotations), start=1):
      fields = line.split("\t")
      if len(fields) < 2 or fields[1] not in index:
        raise ValueError(f"{annotations} line {number}: {line!r} is not `file<TAB>wnid...` with "
                         "a wnid of wnids.txt")
      entries.append((index[fields[1]], fields[0],
                      os.path.join(root, "val", "images", fields[0])))
    entries.sort()
  labels = np.asarray([c for c, _, _ in entries], dtype=np.int32)
  return [p for _, _, p in entries], labels, wnids


def read_image(path: str, image_size: int) -> np.ndarray:
  """`[H, W, 3]` uint8 (grey JPEGs, a few of TinyImageNet's, as RGB), resized when
  `image_size` > 0."""
  try:
    with Image.open(path) as image:
      pixels = np.asarray(image.convert("RGB"))
  except FileNotFoundError:
    raise DatasetNotFoundError(
        f"{path} is listed but missing: the directory is incomplete; unzip "
        f"{DIRNAME}.zip again") from None
  except OSError as e:  # PIL's UnidentifiedImageError and truncated files
    raise ValueError(f"{path} can not be read as an image ({e}): unzip {DIRNAME}.zip "
                     "again") from e
  return resize.square_resize(pixels, image_size) if image_size else pixels


def load(data_dir: str, split: str, select: Callable[[int], np.ndarray],
         image_size: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
  """`(images [N, S, S, 3] uint8, labels [N] int32, class_names, picked)` of the images of a
  split that `select(number of images)` picks (sorted indices: `datasets.subset_indices`);
  `picked` are those indices, the images' positions in the split's (class, file) order."""
  root = find_root(data_dir)
  paths, labels, wnids = list_images(root, split)
  keep = select(len(paths))
  images = [read_image(paths[i], image_size) for i in keep]
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise ValueError(f"TinyImageNet images in {root} have different shapes {sorted(shapes)}: "
                     "set data.image_size (64 = as released)")
  return np.stack(images), labels[keep], _class_names(root, wnids), keep
