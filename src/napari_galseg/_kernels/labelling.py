"""Labelling tiles as ``scipy.ndimage.label`` does (union-find to the smallest root) and per-label summaries."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]
        p = parent[p]
    return p


@njit(cache=True, nogil=True)
def _union_to_min(parent, a, b):
    """Join the sets of ``a`` and ``b`` under the smaller root, so every root is its set's
    smallest member (what numbering in raster order relies on)."""
    a = _find(parent, a)
    b = _find(parent, b)
    if a < b:
        parent[b] = a
    elif b < a:
        parent[a] = b


@njit(cache=True, nogil=True)
def label_mask(mask, connectivity):
    """Connected components of a 2-D boolean mask: ``(labels int32, n)``, numbered 1..n in raster
    order of each component's first pixel — the same labels as ``scipy.ndimage.label`` with the
    full (8) or cross (4) structure, computed without holding the GIL."""
    ny, nx = mask.shape
    labels = np.zeros((ny, nx), np.int32)
    parent = np.empty(ny * nx // 2 + 2, np.int64)  # provisional ids; a new id needs an unset left pixel
    n_prov = 0
    for y in range(ny):
        for x in range(nx):
            if not mask[y, x]:
                continue
            best = 0
            # earlier raster neighbours only: left, and the row above (3 or 1 of them)
            for dy, dx in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
                if connectivity == 4 and dy != 0 and dx != 0:
                    continue
                yy, xx = y + dy, x + dx
                if yy < 0 or xx < 0 or xx >= nx:
                    continue
                other = labels[yy, xx]
                if other == 0:
                    continue
                if best == 0:
                    best = other
                else:
                    _union_to_min(parent, best, other)
            if best == 0:
                n_prov += 1
                if n_prov >= parent.shape[0]:
                    grown = np.empty(parent.shape[0] * 2, np.int64)
                    grown[: parent.shape[0]] = parent
                    parent = grown
                parent[n_prov] = n_prov
                best = n_prov
            labels[y, x] = best
    # final ids in raster order of first appearance (provisional ids already are: roots are minima)
    final = np.zeros(n_prov + 1, np.int32)
    n = 0
    for i in range(1, n_prov + 1):
        r = _find(parent, i)
        if r == i:
            n += 1
            final[i] = n
    for i in range(1, n_prov + 1):
        final[i] = final[_find(parent, i)]
    for y in range(ny):
        for x in range(nx):
            if labels[y, x]:
                labels[y, x] = final[labels[y, x]]
    return labels, n


@njit(cache=True, nogil=True)
def label_summary(labels, n):
    """Bounding boxes ``(n, 4)`` as (y0, y1, x0, x1), half-open, pixel counts ``(n + 1,)`` and the
    flat index of the first pixel ``(n + 1,)`` of labels 1..n (``scipy.ndimage.find_objects`` +
    ``bincount`` + first occurrences in one pass)."""
    ny, nx = labels.shape
    first = np.full(n + 1, -1, np.int64)
    boxes = np.empty((n, 4), np.int64)
    boxes[:, 0] = ny
    boxes[:, 1] = 0
    boxes[:, 2] = nx
    boxes[:, 3] = 0
    areas = np.zeros(n + 1, np.int64)
    for y in range(ny):
        for x in range(nx):
            lab = labels[y, x]
            if lab == 0:
                continue
            if areas[lab] == 0:
                first[lab] = y * nx + x
            areas[lab] += 1
            b = boxes[lab - 1]
            if y < b[0]:
                b[0] = y
            if y + 1 > b[1]:
                b[1] = y + 1
            if x < b[2]:
                b[2] = x
            if x + 1 > b[3]:
                b[3] = x + 1
    return boxes, areas, first
