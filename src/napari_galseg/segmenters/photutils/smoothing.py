"""The smoothing kernel (a Gaussian, or a given separable one) and its separable, tiling-exact correlation."""
from __future__ import annotations

import math

import numpy as np


def gaussian_kernel_1d(fwhm: float, size: int, oversampling: int = 10) -> np.ndarray:
    """1-D Gaussian averaged over each pixel on an oversampled grid, normalised to sum 1.

    Its outer product with itself is photutils' ``make_2dgaussian_kernel(fwhm, size)`` (the
    'oversample' discretisation of a circular Gaussian separates into x and y factors).
    """
    if fwhm <= 0:
        return np.ones(1)
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    half = size // 2
    sub = (np.arange(size * oversampling) + 0.5) / oversampling - 0.5 - half
    values = np.exp(-0.5 * (sub / sigma) ** 2).reshape(size, oversampling).mean(axis=1)
    return values / values.sum()


def smoothing_kernel_1d(params) -> np.ndarray:
    """The 1-D factor of the pipeline's smoothing kernel: ``params.kernel`` (normalised) when given,
    else the Gaussian of ``fwhm`` / ``kernel_size``."""
    if params.kernel is not None:
        k1 = np.asarray(params.kernel, dtype=np.float64)
        return k1 / k1.sum()
    return gaussian_kernel_1d(params.fwhm, int(params.kernel_size))


def smooth(data: np.ndarray, k1: np.ndarray) -> np.ndarray:
    """Separable correlation with ``k1`` along both axes, zero outside ``data``.

    Written as a sum of shifted slices (float32, a fixed order per pixel): several times faster
    than ``scipy.ndimage.correlate1d`` for these 5-tap kernels, and each output pixel is the same
    arithmetic whatever window it is computed in (tiled == untiled, bit for bit).
    """
    if len(k1) == 1:
        return data
    r = len(k1) // 2
    dtype = data.dtype if data.dtype in (np.float32, np.float64) else np.float32
    weights = k1.astype(dtype)
    ny, nx = data.shape
    padded = np.zeros((ny + 2 * r, nx), dtype)
    padded[r : r + ny] = data
    rows = padded[0:ny] * weights[0]
    for k in range(1, len(k1)):
        rows += padded[k : k + ny] * weights[k]
    padded = np.zeros((ny, nx + 2 * r), dtype)
    padded[:, r : r + nx] = rows
    out = padded[:, 0:nx] * weights[0]
    for k in range(1, len(k1)):
        out += padded[:, k : k + nx] * weights[k]
    return out

