"""Multiscale pyramids and contrast limits for images too big to read whole.

napari shows a huge image through a list of ever smaller levels and asks only for the level and
region on screen. Two ways to make a level:

* ``"stride"`` keeps every 2^k-th pixel. Over a :class:`~napari_galseg.io.fits.FitsArray` each
  level reads only its own pixels (level k of a memory-mapped image touches 1/2^k of the rows), so
  the zoomed-out view of a 25000² frame costs megabytes, not the whole file. Labels always use it:
  averaging label ids invents ids that do not exist.
* ``"mean"`` averages 2×2 blocks of the previous level: smoother, less noisy thumbnails, but the
  coarsest level needs every pixel of the image, i.e. one full read when it is first shown.

Contrast limits come from zscale on a reproducible sparse sample of small patches.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..arrays import is_dask

__all__ = ["build_pyramid", "contrast_limits_zscale", "sample_pixels", "StridedView"]


class StridedView:
    """Every ``step``-th pixel of a 2-D array-like, as an array-like that reads only those pixels."""

    def __init__(self, source: Any, step: int):
        self.source = source
        self.step = int(step)
        self.shape = tuple(-(-n // self.step) for n in source.shape)
        self.dtype = np.dtype(source.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        from .fits_array import _normalise_key

        key = _normalise_key(key, self.shape)
        src_key = []
        for k, n_src in zip(key, self.source.shape):
            if isinstance(k, slice):
                src_key.append(slice(k.start * self.step, min(k.stop * self.step, n_src), k.step * self.step))
            else:
                src_key.append(k * self.step)
        return np.asarray(self.source[tuple(src_key)])

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("StridedView", tokenize(self.source), self.step)

    def __repr__(self) -> str:
        return f"StridedView({self.source!r}, step={self.step})"


def _n_levels(shape: tuple[int, ...], min_size: int) -> int:
    """Levels until the largest side is at most ``min_size`` (at least one level)."""
    longest = max(shape)
    if longest <= min_size:
        return 1
    return 1 + math.ceil(math.log2(longest / min_size))


def build_pyramid(array: Any, min_size: int = 512, method: str | None = None, labels: bool = False,
                  chunks: Any = None) -> list:
    """A list of lazy dask levels, each half the size of the previous, down to ``min_size``.

    ``array`` is a dask array, a numpy array, or an array-like that reads only what is sliced
    (such as :class:`~napari_galseg.io.fits.FitsArray`); with the latter, ``"stride"`` levels read
    only their own pixels, whereas strided levels of a dask array read whole chunks of the level
    below. ``method`` is ``"stride"`` or ``"mean"``; the default is ``"mean"`` for float images and
    ``"stride"`` for integer images. ``labels=True`` forces ``"stride"`` and refuses ``"mean"``.
    """
    import dask.array as da

    if array.ndim != 2:
        raise ValueError(f"build_pyramid expects a 2-D image, got shape {tuple(array.shape)}")
    integer = not np.issubdtype(np.dtype(array.dtype), np.floating)
    if method is None:
        method = "stride" if (labels or integer) else "mean"
    if method not in ("stride", "mean"):
        raise ValueError(f"method must be 'stride' or 'mean', not {method!r}")
    if labels and method == "mean":
        raise ValueError("labels pyramids must use method='stride': averaging label ids invents labels")
    if chunks is None:
        chunks = array.chunksize if is_dask(array) else (2048, 2048)
    base = array if is_dask(array) else da.from_array(array, chunks=chunks, asarray=False, fancy=False)
    levels = [base]
    for level in range(1, _n_levels(tuple(array.shape), min_size)):
        step = 2 ** level
        if method == "stride":
            if is_dask(array) or isinstance(array, np.ndarray):
                levels.append(base[::step, ::step].rechunk(chunks))
            else:
                levels.append(da.from_array(StridedView(array, step), chunks=chunks,
                                            asarray=False, fancy=False))
        else:
            previous = levels[-1]
            level_data = da.coarsen(np.mean, previous.astype(np.float32) if integer else previous,
                                    {0: 2, 1: 2}, trim_excess=True)
            if min(level_data.shape) == 0:
                break
            levels.append(level_data.rechunk(chunks))
    return levels


def _patch_origins(shape: tuple[int, int], n_patches: int, patch: int, rng: np.random.Generator):
    """Patch corners on a jittered grid: spread over the whole image, reproducible by seed."""
    ny, nx = shape
    grid = max(1, math.ceil(math.sqrt(n_patches)))
    origins = []
    for gy in range(grid):
        for gx in range(grid):
            y_lo, y_hi = gy * ny // grid, max(gy * ny // grid, (gy + 1) * ny // grid - patch)
            x_lo, x_hi = gx * nx // grid, max(gx * nx // grid, (gx + 1) * nx // grid - patch)
            origins.append((int(rng.integers(y_lo, y_hi + 1)), int(rng.integers(x_lo, x_hi + 1))))
    return origins


def sample_pixels(array: Any, n_samples: int = 100_000, patch: int = 64, seed: int = 0,
                  max_dask_blocks: int = 6) -> np.ndarray:
    """A reproducible sparse sample of pixel values (1-D, NaNs kept), never a full read.

    Small images are returned whole. Otherwise about ``n_samples`` pixels are taken as
    ``patch``² squares on a jittered grid. For a dask array (which reads whole chunks even for a
    small slice) the patches are drawn inside at most ``max_dask_blocks`` chunks.
    """
    shape = tuple(array.shape)
    if len(shape) != 2:
        raise ValueError(f"sample_pixels expects a 2-D image, got shape {shape}")
    size = math.prod(shape)
    rng = np.random.default_rng(seed)
    if size <= 2 * n_samples:
        return np.asarray(array[:, :]).ravel() if not is_dask(array) else np.asarray(array.compute()).ravel()
    patch = max(1, min(patch, *shape))
    n_patches = max(1, math.ceil(n_samples / patch**2))
    if not is_dask(array):
        pieces = [np.asarray(array[y:y + patch, x:x + patch]).ravel()
                  for y, x in _patch_origins(shape, n_patches, patch, rng)]
        return np.concatenate(pieces)
    import dask

    starts = [np.cumsum((0,) + c) for c in array.chunks]
    n_blocks = len(array.chunks[0]) * len(array.chunks[1])
    chosen = rng.choice(n_blocks, size=min(max_dask_blocks, n_blocks), replace=False)
    per_block = max(1, math.ceil(n_patches / len(chosen)))
    lazy = []
    for flat in sorted(chosen):
        by, bx = divmod(int(flat), len(array.chunks[1]))
        y0, y1 = starts[0][by], starts[0][by + 1]
        x0, x1 = starts[1][bx], starts[1][bx + 1]
        block = array[y0:y1, x0:x1]
        p = min(patch, y1 - y0, x1 - x0)
        lazy.append(_dask_patches(block, _patch_origins((y1 - y0, x1 - x0), per_block, p, rng), p))
    return np.concatenate(dask.compute(*lazy))


def _dask_patches(block: Any, origins: list[tuple[int, int]], patch: int):
    """Lazy 1-D concatenation of patches of one dask block (the block is read once)."""
    import dask

    def take(values: np.ndarray) -> np.ndarray:
        return np.concatenate([values[y:y + patch, x:x + patch].ravel() for y, x in origins])

    return dask.delayed(take)(block)


def contrast_limits_zscale(array: Any, n_samples: int = 100_000, contrast: float = 0.25,
                           seed: int = 0, zscale_samples: int = 1000) -> tuple[float, float]:
    """zscale limits (as DS9) from :func:`sample_pixels`: cheap on any size of image.

    ``n_samples`` pixels are read (spread over the image); zscale itself fits ``zscale_samples``
    of them, its usual number (more samples reach further into the tails and widen the limits).
    Raises ValueError when the sample holds no finite pixel.
    """
    from astropy.visualization import ZScaleInterval

    sample = sample_pixels(array, n_samples=n_samples, seed=seed)
    sample = sample[np.isfinite(sample)].astype(np.float64, copy=False)
    if sample.size == 0:
        raise ValueError("no finite pixels in the sample: the image is empty or all NaN here")
    lo, hi = ZScaleInterval(n_samples=min(zscale_samples, sample.size), contrast=contrast).get_limits(sample)
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        lo, hi = float(sample.min()), float(sample.max())
        if not hi > lo:
            hi = lo + 1.0
    return lo, hi
