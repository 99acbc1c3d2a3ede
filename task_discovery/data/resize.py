"""Square resizing of uint8 images while a dataset is read (`data.image_size`).

The original resizes TinyImageNet to 32x32 with torchvision's `Resize` on PIL images, i.e. PIL's
bilinear filter, which widens its support when it shrinks an image (antialiased). This is the
same filter. A non-square image (CelebA's 218x178 faces) is first cropped to the centred square
of its shorter side, so that faces keep their proportions.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
  """`[H, W, C]` (or `[H, W]`) uint8 -> `[size, size, C]` (or `[size, size]`) uint8: the centred
  square of side min(H, W), resized with PIL's bilinear filter; unchanged when already
  `size` x `size`."""
  if image.dtype != np.uint8:
    raise ValueError(f"square_resize takes uint8 images, got {image.dtype}")
  h, w = image.shape[:2]
  if h == w == size:
    return image
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = image[top:top + side, left:left + side]
  squeeze = square.ndim == 3 and square.shape[-1] == 1  # PIL has no [H, W, 1] mode
  pil = Image.fromarray(square[..., 0] if squeeze else square)
  out = np.asarray(pil.resize((size, size), Image.BILINEAR))
  return out[..., None] if squeeze else out
