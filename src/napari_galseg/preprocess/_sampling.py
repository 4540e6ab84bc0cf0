"""Reproducible pixel samples and small array helpers shared by the preprocessing steps.

Intervals (min/max, percentiles, zscale) and histogram-equalisation levels are estimated from a
*sample* so that a 25000² image is never read in full: a regular grid of every ``step``-th row and
column (``step`` chosen so that at most ``max_pixels`` pixels are read). The grid is fixed by the
image shape alone, so the same image always gives the same sample, and from a memory-mapped FITS
file or a dask array only the sampled rows are read. Images with at most ``max_pixels`` pixels are
used whole, so on small arrays the results equal astropy's on the full array.
"""
from __future__ import annotations

import math

import numpy as np

from ..arrays import is_dask

#: default upper bound on the number of pixels read to fit an interval
DEFAULT_MAX_SAMPLE = 1_000_000


def sample_grid(shape: tuple[int, int], max_pixels: int = DEFAULT_MAX_SAMPLE) -> tuple[int, int]:
    """``(start, step)`` of the regular sampling grid used on both axes of an image of ``shape``."""
    ny, nx = shape
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    step = max(1, math.ceil(math.sqrt(ny * nx / max_pixels)))
    return (step - 1) // 2, step


def strided_sample(image, max_pixels: int = DEFAULT_MAX_SAMPLE) -> tuple[np.ndarray, int, int]:
    """A 2-D float64 sample ``image[start::step, start::step]`` and its ``(start, step)``.

    Works on numpy arrays, memmaps and dask arrays (only the sampled part is computed).
    """
    check_2d(image, "image")
    start, step = sample_grid(image.shape, max_pixels)
    sub = image[start::step, start::step]
    if is_dask(sub):
        sub = sub.compute()
    return np.asarray(sub, dtype=np.float64), start, step


def finite_values(sample: np.ndarray, what: str = "image") -> np.ndarray:
    """The finite values of ``sample`` as a 1-D array; a clear error when there are none."""
    values = np.asarray(sample, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"the {what} has no finite pixels in its sample: nothing to normalise "
                         "(check that the right file/HDU was opened)")
    return values


def check_2d(array, what: str) -> None:
    """A clear error for anything that is not a 2-D image."""
    ndim = getattr(array, "ndim", None)
    if ndim != 2:
        shape = getattr(array, "shape", None)
        raise ValueError(f"the {what} must be a 2-D array (ny, nx); got shape {shape}. "
                         "Pick one plane or channel first.")


def check_same_shape(image, other, what: str = "rms") -> None:
    """A clear error when the rms (or another companion) does not match the image pixel for pixel."""
    if tuple(image.shape) != tuple(other.shape):
        raise ValueError(f"the {what} map has shape {tuple(other.shape)} but the image has shape "
                         f"{tuple(image.shape)}; they must cover the same pixels (same size, same cut-out)")
