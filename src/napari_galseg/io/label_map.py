"""Tell a segmentation map from an integer image by its pixels, from a few small windows.

Files do not always say what they hold: a prediction saved by another tool has no
``EXTNAME='LABELS'`` and may be called ``pred_unet.fits``. Opened as an image it covers everything
with an opaque grey layer. A label map has a recognisable texture, which integer images lack:

- no negative values, and a good share of exact zeros (sky);
- regions of one value: a labelled pixel's neighbour mostly carries the same label
  (sparse photon-count images fail here: their non-zero pixels are mostly isolated);
- few boundaries between two different non-zero values (touching objects only), where an
  8-bit rendering or a counts image changes value between most neighbours.

Raw CCD frames are stored as int16 with ``BZERO = 32768``; the caller keeps scaled integers
(BZERO/BSCALE) as images without asking, and their bias level fails the zero test anyway.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["label_map_texture", "looks_like_label_map"]

#: thresholds of :func:`looks_like_label_map` (see the module docstring for the reasons)
MIN_ZERO_FRACTION = 0.2
MIN_SAME_NEIGHBOUR = 0.5
MAX_MIXED_BOUNDARIES = 0.2


def _windows(array: Any, n_side: int, window: int) -> list[np.ndarray]:
    """``n_side``² windows of ``window``² pixels on a regular grid (the whole image when small)."""
    ny, nx = (int(n) for n in array.shape[-2:])
    if ny * nx <= (n_side * window) ** 2:
        return [np.asarray(array[:, :])]
    out = []
    for y in np.linspace(0, max(0, ny - window), n_side).astype(int):
        for x in np.linspace(0, max(0, nx - window), n_side).astype(int):
            out.append(np.asarray(array[y:y + window, x:x + window]))
    return out


def label_map_texture(array: Any, n_side: int = 4, window: int = 128) -> dict[str, float]:
    """Statistics of the label-map texture over a grid of windows (at most ~260k pixels read).

    ``min``, ``zero_fraction``, ``same_neighbour`` (share of non-zero pixels whose right / lower
    neighbour holds the same value; NaN without any) and ``mixed_boundaries`` (share of adjacent
    non-zero pairs that differ; NaN without any).
    """
    low, zeros, total = np.inf, 0, 0
    same = nonzero_pairs_from = nonzero_pairs = mixed = 0
    for block in _windows(array, n_side, window):
        if block.size == 0:
            continue
        block = block.astype(np.int64, copy=False)
        low = min(low, int(block.min()))
        zeros += int(np.count_nonzero(block == 0))
        total += block.size
        for a, b in ((block[:, :-1], block[:, 1:]), (block[:-1, :], block[1:, :])):
            labelled = a != 0
            equal = a == b
            same += int(np.count_nonzero(labelled & equal))
            nonzero_pairs_from += int(np.count_nonzero(labelled))
            both = labelled & (b != 0)
            nonzero_pairs += int(np.count_nonzero(both))
            mixed += int(np.count_nonzero(both & ~equal))
    return {
        "min": float(low) if total else float("nan"),
        "zero_fraction": zeros / total if total else float("nan"),
        "same_neighbour": same / nonzero_pairs_from if nonzero_pairs_from else float("nan"),
        "mixed_boundaries": mixed / nonzero_pairs if nonzero_pairs else float("nan"),
    }


def looks_like_label_map(array: Any) -> bool:
    """True when an integer image has the texture of a segmentation map (see the module docstring).

    An all-zero image counts as one (an empty prediction must not cover the image it belongs to).
    Only a few windows are read, so this is cheap on a 25000² memory-mapped file.
    """
    dtype = np.dtype(array.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
        return False
    t = label_map_texture(array)
    if not t["min"] >= 0 or not t["zero_fraction"] >= MIN_ZERO_FRACTION:
        return False
    if t["zero_fraction"] == 1.0:
        return True
    if not t["same_neighbour"] >= MIN_SAME_NEIGHBOUR:
        return False
    return not t["mixed_boundaries"] > MAX_MIXED_BOUNDARIES  # NaN (no touching objects) passes
