"""Stack single-channel outputs (normalised image, stretched image, rms channel…) as channels."""
from __future__ import annotations

import numpy as np

from ._sampling import check_2d, is_dask


def composite(*channels):
    """Stack 2-D arrays of one shape into a float32 ``(C, ny, nx)`` array.

    All numpy → numpy; any dask → a lazy dask array (numpy inputs are wrapped with matching chunks).
    """
    if len(channels) == 1 and isinstance(channels[0], (list, tuple)):
        channels = tuple(channels[0])
    if not channels:
        raise ValueError("composite needs at least one channel")
    for i, ch in enumerate(channels):
        check_2d(ch, f"channel {i}")
    shapes = {tuple(ch.shape) for ch in channels}
    if len(shapes) > 1:
        raise ValueError(f"all channels must have the same shape to be stacked, got {sorted(shapes)}")
    if any(is_dask(ch) for ch in channels):
        import dask.array as da

        chunks = next(ch.chunks for ch in channels if is_dask(ch))
        lazy = [ch if is_dask(ch) else da.from_array(ch, chunks=chunks) for ch in channels]
        return da.stack([ch.astype(np.float32).rechunk(chunks) for ch in lazy], axis=0)
    return np.stack([np.asarray(ch, dtype=np.float32) for ch in channels], axis=0)
