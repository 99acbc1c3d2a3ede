"""Writes a small directory laid out as `tiny-imagenet-200.zip` unzipped, for the tests."""
import os

import numpy as np
from PIL import Image


def write(parent: str, num_classes: int = 12, per_class: int = 22, val_per_class: int = 2,
          size: int = 64, seed: int = 0) -> str:
  """`parent/tiny-imagenet-200/` with `num_classes` wnids (listed unsorted, as the release
  does), `per_class` training JPEGs each, `val_per_class` validation JPEGs each, words.txt.
  Class c's images are noise around a grey level that rises with c, so classes differ.

  Returns:
    the `tiny-imagenet-200` directory.
  """
  rng = np.random.default_rng(seed)
  root = os.path.join(parent, "tiny-imagenet-200")
  wnids = [f"n{9000000 - 17 * c:08d}" for c in range(num_classes)]  # descending: not sorted
  os.makedirs(os.path.join(root, "val", "images"))
  with open(os.path.join(root, "wnids.txt"), "w") as f:
    f.write("\n".join(wnids) + "\n")
  with open(os.path.join(root, "words.txt"), "w") as f:
    f.writelines(f"{w}\tthing {c}, other name\n" for c, w in enumerate(wnids))

  def jpeg(path, c):
    level = 40 + 170 * c / max(num_classes - 1, 1)
    pixels = np.clip(rng.normal(level, 30, (size, size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)

  annotations = []
  for c, wnid in enumerate(wnids):
    folder = os.path.join(root, "train", wnid, "images")
    os.makedirs(folder)
    for i in range(per_class):
      jpeg(os.path.join(folder, f"{wnid}_{i}.JPEG"), c)
    for i in range(val_per_class):
      name = f"val_{c * val_per_class + i}.JPEG"
      jpeg(os.path.join(root, "val", "images", name), c)
      annotations.append(f"{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n")
  with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
    f.writelines(annotations)
  return root
