"""The IDX file format of MNIST and Fashion-MNIST (Debian's dataset-fashion-mnist ships it)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np

_IDX_DTYPES = {0x08: 'u1', 0x09: 'i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path) -> np.ndarray:
  """Reads an IDX file (the MNIST format), gzip-compressed or plain.

  Args:
    path: File path; gzip is detected from the content, not the name.

  Returns:
    Array with the shape and dtype (native byte order) stored in the file.

  Raises:
    ValueError: If the magic number is not an IDX one or the file is truncated.
  """
  with open(path, 'rb') as f:
    is_gzip = f.read(2) == b'\x1f\x8b'
  try:
    with (gzip.open if is_gzip else open)(path, 'rb') as f:
      data = f.read()
  except (EOFError, OSError, zlib.error) as e:  # truncated or damaged gzip
    raise ValueError(f'{path} can not be read ({type(e).__name__}: {e}): the file is truncated '
                     'or damaged; download or install it again.') from e
  if len(data) < 4 or data[:2] != b'\0\0' or data[2] not in _IDX_DTYPES:
    raise ValueError(f'{path} is not an IDX file: bad magic number 0x{data[:4].hex()} (expected '
                     f'0x0000TTDD, TT a type code in {sorted(_IDX_DTYPES)}, DD the rank).')
  ndim, dtype = data[3], np.dtype(_IDX_DTYPES[data[2]])
  shape = struct.unpack(f'>{ndim}I', data[4:4 + 4 * ndim])
  body = data[4 + 4 * ndim:]
  if len(body) != math.prod(shape) * dtype.itemsize:
    raise ValueError(f'{path}: header says shape {shape} ({dtype}), but the file holds '
                     f'{len(body)} data bytes.')
  return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder('='))
