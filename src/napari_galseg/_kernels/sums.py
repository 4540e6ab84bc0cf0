"""Per-segment catalog sums in one pass over the segment pixels."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def segment_sums_kernel(labels, n, data, convolved, error, has_error, valid):
    """The per-label sums of ``catalog.segment_sums`` in two raster-order passes (float64, the same
    order as numpy's ``bincount``, so the same numbers). Returns a (15, n) float64 array in the
    order of ``catalog.SUM_FIELDS`` with local (not yet offset) coordinates."""
    ny, nx = labels.shape
    out = np.zeros((15, n), np.float64)
    w_sum, wx, wy, mxx, myy, mxy, n_valid, flux, err2, vmin, vmax, y0, y1, x0, x1 = (
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
    for i in range(n):
        out[vmin, i] = np.inf
        out[vmax, i] = -np.inf
        out[y0, i] = 9.2e18
        out[x0, i] = 9.2e18
        out[y1, i] = -1.0
        out[x1, i] = -1.0
    for y in range(ny):
        for x in range(nx):
            lab = labels[y, x]
            if lab == 0:
                continue
            i = lab - 1
            ok = valid[y, x]
            w = np.float64(convolved[y, x])
            if not ok or not np.isfinite(w) or w < 0:
                w = 0.0
            if ok:
                d = np.float64(data[y, x])
                out[n_valid, i] += 1.0
                out[flux, i] += d
                if has_error:
                    e = np.float64(error[y, x])
                    out[err2, i] += e * e
                else:
                    out[err2, i] += 0.0
                if d < out[vmin, i]:
                    out[vmin, i] = d
                if d > out[vmax, i]:
                    out[vmax, i] = d
            out[w_sum, i] += w
            out[wx, i] += w * x
            out[wy, i] += w * y
            if y < out[y0, i]:
                out[y0, i] = y
            if y > out[y1, i]:
                out[y1, i] = y
            if x < out[x0, i]:
                out[x0, i] = x
            if x > out[x1, i]:
                out[x1, i] = x
    for i in range(n):  # weighted centroids (local), then central moments in a second pass
        if out[w_sum, i] > 0:
            out[wx, i] = out[wx, i] / out[w_sum, i]
            out[wy, i] = out[wy, i] / out[w_sum, i]
        else:
            out[wx, i] = 0.0
            out[wy, i] = 0.0
    for y in range(ny):
        for x in range(nx):
            lab = labels[y, x]
            if lab == 0:
                continue
            i = lab - 1
            w = np.float64(convolved[y, x])
            if not valid[y, x] or not np.isfinite(w) or w < 0:
                w = 0.0
            dx = x - out[wx, i]
            dy = y - out[wy, i]
            out[mxx, i] += w * dx * dx
            out[myy, i] += w * dy * dy
            out[mxy, i] += w * dx * dy
    return out
