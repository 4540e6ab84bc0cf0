"""Compiled inner loops of the photutils pipeline (numba, ``nogil``: they run in the tile threads).

Only loops that numpy cannot vectorise live here: the sigma-clipping iterations of each background
box, and the test of whether a detected object can be deblended at all. Both give exactly what the
numpy/photutils code they replace gives (tests compare them); numba compiles them once per machine
and caches the machine code beside this file (``cache=True``), so only the very first run pays the
~2 s of compilation.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def clip_sorted_rows(srt, n_good, sigma, maxiters):
    """Sigma-clipped SExtractor background, std and kept count of each row of ``srt``.

    ``srt``: float32 rows sorted ascending with NaN last, ``n_good[i]`` finite values in row i.
    Same arithmetic as photutils' ``SigmaClip(sigma, maxiters)`` + ``SExtractorBackground`` +
    ``StdBackgroundRMS``: a clipped set is a contiguous range of the sorted row, so each iteration
    moves two indices (binary search) and reads the median, mean and variance off the row and its
    prefix sums (centred on the first median, in float64, to avoid cancellation).
    """
    n, m = srt.shape
    bkg = np.empty(n, np.float64)
    std_out = np.empty(n, np.float64)
    kept = np.empty(n, np.int64)
    c1 = np.empty(m + 1, np.float64)
    c2 = np.empty(m + 1, np.float64)
    for i in range(n):
        row = srt[i]
        good = n_good[i]
        if good == 0:
            bkg[i] = np.nan
            std_out[i] = np.nan
            kept[i] = 0
            continue
        shift = np.float64(row[(good - 1) // 2])
        c1[0] = 0.0
        c2[0] = 0.0
        for j in range(good):
            v = np.float64(row[j]) - shift
            c1[j + 1] = c1[j] + v
            c2[j + 1] = c2[j] + v * v
        lo = 0
        hi = good
        median = 0.0
        mean = 0.0
        std = 0.0
        for it in range(maxiters + 1):
            count = max(hi - lo, 1)
            a = np.float64(row[min(lo + (count - 1) // 2, m - 1)])
            b = np.float64(row[min(lo + count // 2, m - 1)])
            median = 0.5 * (a + b)
            mean = (c1[hi] - c1[lo]) / count
            var = (c2[hi] - c2[lo]) / count - mean * mean
            std = np.sqrt(max(var, 0.0))
            mean += shift
            if it == maxiters:
                break
            lower = np.float32(median - sigma * std)
            upper = np.float32(median + sigma * std)
            new_lo = max(lo, np.searchsorted(row[:good], lower, side="left"))
            new_hi = min(hi, np.searchsorted(row[:good], upper, side="right"))
            new_hi = max(new_hi, new_lo)
            if new_lo == lo and new_hi == hi:
                break
            lo = new_lo
            hi = new_hi
        if hi - lo == 0:
            bkg[i] = np.nan
            std_out[i] = np.nan
            kept[i] = 0
            continue
        value = 2.5 * median - 1.5 * mean
        if abs(mean - median) >= 0.3 * std:
            value = median
        if std == 0:
            value = mean
        bkg[i] = value
        std_out[i] = std
        kept[i] = hi - lo
    return bkg, std_out, kept


@njit(cache=True, nogil=True)
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]
        p = parent[p]
    return p


@njit(cache=True, nogil=True)
def may_split(values, labels, candidate, n_pixels, connectivity):
    """For each label ``l`` with ``candidate[l]``: can some threshold cut it into two or more
    connected pieces of at least ``n_pixels`` pixels each?

    Pixels of the label are added from the brightest down (union-find, counting the pieces that
    have reached ``n_pixels``); the answer is True as soon as two such pieces coexist. This tests
    *every* threshold, so it is True whenever photutils' deblender finds two pieces at one of its
    levels: a label answered False cannot be deblended (exact to skip), and the multi-level
    labelling runs only for the rest.
    """
    ny, nx = labels.shape
    n_labels = candidate.shape[0] - 1
    out = np.zeros(n_labels + 1, np.bool_)
    # pixels grouped by label (counting sort of the flat indices)
    counts = np.zeros(n_labels + 2, np.int64)
    flat = labels.ravel()
    for p in range(flat.size):
        lab = flat[p]
        if lab > 0 and candidate[lab]:
            counts[lab + 1] += 1
    for lab in range(1, n_labels + 2):
        counts[lab] += counts[lab - 1]
    order = np.empty(counts[n_labels + 1], np.int64)
    fill = counts[:-1].copy()
    for p in range(flat.size):
        lab = flat[p]
        if lab > 0 and candidate[lab]:
            order[fill[lab]] = p
            fill[lab] += 1
    parent = np.full(flat.size, -1, np.int64)
    size = np.zeros(flat.size, np.int64)
    vflat = values.ravel()
    for lab in range(1, n_labels + 1):
        start, stop = counts[lab], counts[lab + 1]
        if stop - start < 2 * n_pixels:
            continue
        pix = order[start:stop]
        by_value = pix[np.argsort(-vflat[pix])]
        n_big = 0
        for p in by_value:
            parent[p] = p
            size[p] = 1
            if n_pixels <= 1:
                n_big += 1
            y = p // nx
            x = p - y * nx
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                for dx in range(-1, 2):
                    if dy == 0 and dx == 0:
                        continue
                    if connectivity == 4 and dy != 0 and dx != 0:
                        continue
                    xx = x + dx
                    if xx < 0 or xx >= nx:
                        continue
                    q = yy * nx + xx
                    if parent[q] < 0 or flat[q] != lab:
                        continue
                    a = _find(parent, p)
                    b = _find(parent, q)
                    if a == b:
                        continue
                    big_a = size[a] >= n_pixels
                    big_b = size[b] >= n_pixels
                    if big_a and big_b:
                        n_big -= 1
                    elif not big_a and not big_b and size[a] + size[b] >= n_pixels:
                        n_big += 1
                    if size[a] < size[b]:
                        a, b = b, a
                    parent[b] = a
                    size[a] += size[b]
            if n_big >= 2:
                out[lab] = True
                break
        for p in pix:  # reset for the next label
            parent[p] = -1
            size[p] = 0
    return out


@njit(cache=True, nogil=True)
def spline_rows(cols, rows, weights, lo, hi):
    """``out[y, x] = Σ_k weights[k, y] * cols[rows[k, y], x]`` (4 taps, float32, in that order),
    clipped to ``[lo, hi]``: the y pass of the background spline, one pass over the output
    instead of numpy's four."""
    n_taps, ny = rows.shape
    nx = cols.shape[1]
    out = np.empty((ny, nx), np.float32)
    lo32 = np.float32(lo)
    hi32 = np.float32(hi)
    for y in range(ny):
        r0, r1, r2, r3 = rows[0, y], rows[1, y], rows[2, y], rows[3, y]
        w0, w1, w2, w3 = weights[0, y], weights[1, y], weights[2, y], weights[3, y]
        for x in range(nx):
            v = cols[r0, x] * w0
            v += cols[r1, x] * w1
            v += cols[r2, x] * w2
            v += cols[r3, x] * w3
            out[y, x] = min(max(v, lo32), hi32)
    return out
