"""What kind of array a computation was handed, and how much of it may be held in memory."""
from __future__ import annotations

from typing import Any

#: results larger than this many pixels stay lazy (dask) or are streamed to disk instead of being
#: held as one numpy array (int32 labels of 8192² = 256 MiB)
IN_MEMORY_PIXELS = 8192 * 8192


def is_dask(array: Any) -> bool:
    """True for a dask array (checked without importing dask when it is not loaded)."""
    return type(array).__module__.startswith("dask.") and hasattr(array, "chunks")


def exceeds_tiles(shape, tile_size: int, n_tiles: int = 4) -> bool:
    """True when an image of ``shape`` is larger than ``n_tiles`` tiles (2 × 2 by default): such
    images are processed tile by tile instead of in one piece."""
    return int(shape[-2]) * int(shape[-1]) > n_tiles * int(tile_size) ** 2
