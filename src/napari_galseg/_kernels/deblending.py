"""photutils' deblender: the exact "may this object split?" test, the multi-level markers and scikit-image's watershed with the contrast step."""
from __future__ import annotations

import numpy as np
from numba import njit

from .labelling import _find, _union_to_min


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
    parent = np.empty(flat.size, np.int64)  # only the current label's entries are ever read
    size = np.empty(flat.size, np.int64)
    for i in range(order.shape[0]):
        parent[order[i]] = -1
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
                    if flat[q] != lab or parent[q] < 0:  # another label: parent[q] unset
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
    return out


@njit(cache=True, nogil=True)
def _label_level(pix, above, nx, index_of, connectivity, out_ids, parent):
    """Connected components (union-find) of the object pixels ``pix`` (flat bbox indices, raster
    order) where ``above``; ids 1.. in ``out_ids`` (0 where not above), sizes returned."""
    n = pix.shape[0]
    for i in range(n):
        parent[i] = i if above[i] else -1
    for i in range(n):
        if not above[i]:
            continue
        p = pix[i]
        y = p // nx
        x = p - y * nx
        # earlier raster neighbours only: left, and the row above (3 or 1 of them)
        for dy, dx in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
            if connectivity == 4 and dy != 0 and dx != 0:
                continue
            xx = x + dx
            if xx < 0 or xx >= nx or y + dy < 0:
                continue
            j = index_of[(y + dy) * nx + xx]
            if j < 0 or parent[j] < 0:
                continue
            _union_to_min(parent, i, j)
    n_ids = 0
    sizes = np.zeros(n + 1, np.int64)
    for i in range(n):
        if parent[i] < 0:
            out_ids[i] = 0
            continue
        r = _find(parent, i)
        if r == i:
            n_ids += 1
            out_ids[i] = n_ids
        else:
            out_ids[i] = out_ids[r]  # r < i: already numbered
        sizes[out_ids[i]] += 1
    return n_ids, sizes[: n_ids + 1]


@njit(cache=True, nogil=True)
def deblend_markers(conv, inside, thresholds, n_pixels, connectivity):
    """photutils' ``make_markers`` for one source, compiled: ``(markers, n)`` with markers
    numbered 1..n in raster order (n = 0: no level holds two pieces, the source cannot split).

    The pieces of the source above each threshold (pieces under ``n_pixels`` dropped); starting
    at the lowest level with two or more pieces and going up the levels that have two or more,
    a marker holding two or more pieces of the level is replaced by them. The same partition as
    the level-by-level numpy version (``photutils_pipeline._deblend_markers_numpy``).
    """
    ny, nx = conv.shape
    conv_flat = conv.ravel()
    inside_flat = inside.ravel()
    index_of = np.full(ny * nx, -1, np.int64)
    n = 0
    for p in range(ny * nx):
        if inside_flat[p]:
            index_of[p] = n
            n += 1
    pix = np.empty(n, np.int64)
    values = np.empty(n, conv.dtype)
    for p in range(ny * nx):
        if index_of[p] >= 0:
            pix[index_of[p]] = p
            values[index_of[p]] = conv_flat[p]
    n_levels = thresholds.shape[0]
    ids = np.zeros((n_levels, n), np.int64)
    big_count = np.zeros(n_levels, np.int64)
    big = []
    above = np.empty(n, np.bool_)
    parent = np.empty(n, np.int64)
    for k in range(n_levels):
        for i in range(n):
            above[i] = values[i] > thresholds[k]
        _, sizes = _label_level(pix, above, nx, index_of, connectivity, ids[k], parent)
        is_big = sizes >= n_pixels
        is_big[0] = False
        big.append(is_big)
        big_count[k] = np.sum(is_big)
    markers = np.zeros(ny * nx, np.int32)
    first = -1
    for k in range(n_levels):
        if big_count[k] >= 2:
            first = k
            break
    if first < 0:
        return markers.reshape(ny, nx), 0
    # current markers: an id per object pixel (0 = none), unique across levels
    lower = np.zeros(n, np.int64)
    stride = n + 1
    for i in range(n):
        lab = ids[first, i]
        if big[first][lab]:
            lower[i] = first * stride + lab
    max_id = n_levels * stride + 1
    seen_upper = np.full(max_id, -1, np.int64)  # per marker: the first upper piece seen in it
    split = np.zeros(max_id, np.bool_)
    for k in range(first + 1, n_levels):
        if big_count[k] < 2:
            continue
        seen_upper[:] = -1
        split[:] = False
        any_split = False
        for i in range(n):
            m = lower[i]
            lab = ids[k, i]
            if m == 0 or lab == 0 or not big[k][lab]:
                continue
            if seen_upper[m] < 0:
                seen_upper[m] = lab
            elif seen_upper[m] != lab:
                split[m] = True
                any_split = True
        if not any_split:
            continue
        for i in range(n):
            m = lower[i]
            if m != 0 and split[m]:
                lab = ids[k, i]
                lower[i] = k * stride + lab if (lab != 0 and big[k][lab]) else 0
    # number the markers by their first pixel in raster order
    number = np.zeros(max_id, np.int64)
    count = 0
    for i in range(n):
        m = lower[i]
        if m == 0:
            continue
        if number[m] == 0:
            count += 1
            number[m] = count
        markers[pix[i]] = number[m]
    return markers.reshape(ny, nx), count


@njit(cache=True, nogil=True)
def _heap_smaller(hv, ha, i, j):
    if hv[i] != hv[j]:
        return hv[i] < hv[j]
    return ha[i] < ha[j]


@njit(cache=True, nogil=True)
def _heap_swap(hv, ha, hi, hs, i, j):
    hv[i], hv[j] = hv[j], hv[i]
    ha[i], ha[j] = ha[j], ha[i]
    hi[i], hi[j] = hi[j], hi[i]
    hs[i], hs[j] = hs[j], hs[i]


@njit(cache=True, nogil=True)
def watershed_flood(image, output, mask, offsets):
    """Marker-based watershed on raveled, padded arrays, flooding ``output`` in place: the
    algorithm of scikit-image's ``watershed`` (no compactness, no watershed lines), with the same
    binary heap ordered by (value, age) and the same neighbour order, so ties resolve the same
    way and the labels are identical. ``mask`` must be 0 on the padding border."""
    size = image.shape[0]
    cap = size + 16
    hv = np.empty(cap, np.float64)
    ha = np.empty(cap, np.int64)
    hi = np.empty(cap, np.int64)
    hs = np.empty(cap, np.int64)
    items = 0

    def push(items, value, age, index, source):
        child = items
        hv[child] = value
        ha[child] = age
        hi[child] = index
        hs[child] = source
        items += 1
        while child > 0:
            parent = (child + 1) // 2 - 1
            if _heap_smaller(hv, ha, child, parent):
                _heap_swap(hv, ha, hi, hs, parent, child)
                child = parent
            else:
                break
        return items

    for p in range(size):
        if output[p]:
            items = push(items, image[p], 0, p, p)
    age = 1
    while items > 0:
        value, index, source = hv[0], hi[0], hs[0]
        items -= 1
        if items > 0:
            _heap_swap(hv, ha, hi, hs, 0, items)
            i = 0
            while True:
                smallest = i
                left = 2 * i + 1
                right = left + 1
                if left < items:
                    if _heap_smaller(hv, ha, left, i):
                        smallest = left
                    if right < items and _heap_smaller(hv, ha, right, smallest):
                        smallest = right
                else:
                    break
                if smallest == i:
                    break
                _heap_swap(hv, ha, hi, hs, i, smallest)
                i = smallest
        for k in range(offsets.shape[0]):
            nb = index + offsets[k]
            if not mask[nb] or output[nb]:
                continue
            age += 1
            output[nb] = output[index]
            nv = image[nb]
            if nv < value:
                nv = value
            items = push(items, nv, age, nb, source)
    return output


@njit(cache=True, nogil=True)
def deblend_watershed(conv, inside, markers, contrast, source_sum, connectivity):
    """The watershed and contrast steps of photutils' deblender for one source: flood ``markers``
    over ``inside`` along ``-conv`` (:func:`watershed_flood`), then, while two or more children
    remain and the faintest holds less than ``contrast`` of ``source_sum``, drop it and flood
    again. Sums per child in float64 in raster order (``scipy.ndimage.sum_labels``' numbers).
    Returns the child labels (original marker ids, 0 outside) and how many remain."""
    ny, nx = conv.shape
    width = nx + 2
    size = (ny + 2) * width
    image = np.zeros(size, np.float64)
    mask = np.zeros(size, np.int8)
    out = np.zeros(size, np.int32)
    for y in range(ny):
        for x in range(nx):
            q = (y + 1) * width + x + 1
            image[q] = -np.float64(conv[y, x])
            if inside[y, x]:
                mask[q] = 1
                out[q] = markers[y, x]
    if connectivity == 4:
        offsets = np.array([-width, -1, 1, width], np.int64)
    else:
        offsets = np.array([-width, -1, 1, width, -width - 1, -width + 1, width - 1, width + 1], np.int64)
    n_ids = 0
    for q in range(size):
        if out[q] > n_ids:
            n_ids = out[q]
    sums = np.zeros(n_ids + 1, np.float64)
    present = np.zeros(n_ids + 1, np.bool_)
    while True:
        watershed_flood(image, out, mask, offsets)
        sums[:] = 0.0
        present[:] = False
        for y in range(ny):
            for x in range(nx):
                lab = out[(y + 1) * width + x + 1]
                sums[lab] += np.float64(conv[y, x])
                present[lab] = True
        count = 0
        faintest = -1
        low = np.inf
        for lab in range(1, n_ids + 1):
            if present[lab]:
                count += 1
                frac = sums[lab] / source_sum
                if frac < low:
                    low = frac
                    faintest = lab
        if count <= 1 or not low < contrast:
            break
        for q in range(size):
            if out[q] == faintest:
                out[q] = 0
    labels = np.zeros((ny, nx), np.int32)
    for y in range(ny):
        for x in range(nx):
            labels[y, x] = out[(y + 1) * width + x + 1]
    return labels, count
