"""Compiled inner loops (numba, ``nogil``: they run in parallel in the tile threads).

Only loops that numpy cannot vectorise live here: sorting and sigma-clipping the background
boxes, the background spline's row pass, labelling tiles and summarising their labels, the
per-segment catalog sums, and photutils' deblender (the "may split" test, the multi-level markers,
scikit-image's watershed with the contrast step). Each gives exactly what the numpy / photutils /
scikit-image code it replaces gives (tests compare them). numba compiles them once per machine
(~15–30 s) and caches the machine code beside this file (``cache=True``); :func:`load` loads them
all up front (~1 s).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _radix_sort_f32(values, n, keys, scratch, counts):
    """Sort ``values[:n]`` (finite float32) ascending in place: LSD radix sort of the IEEE bit
    patterns (sign-flipped so unsigned order is float order), 11+11+10 bits, ~4x faster than
    numpy's sort for boxes of a few thousand pixels."""
    bits = values.view(np.uint32)
    for i in range(n):
        k = bits[i]
        keys[i] = (k ^ np.uint32(0xFFFFFFFF)) if k & np.uint32(0x80000000) else (k | np.uint32(0x80000000))
    src, dst = keys, scratch
    for shift in (0, 11, 22):
        counts[:] = 0
        for i in range(n):
            counts[(src[i] >> shift) & 0x7FF] += 1
        total = 0
        for d in range(2048):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(n):
            d = (src[i] >> shift) & 0x7FF
            dst[counts[d]] = src[i]
            counts[d] += 1
        src, dst = dst, src
    for i in range(n):
        k = src[i]
        bits[i] = (k ^ np.uint32(0x80000000)) if k & np.uint32(0x80000000) else (k ^ np.uint32(0xFFFFFFFF))


@njit(cache=True, nogil=True)
def sort_rows_nan_last(boxes):
    """Each row of float32 ``boxes`` sorted ascending, non-finite values (NaN, ±inf) replaced by
    NaN and moved last, and the number of finite values per row."""
    n, m = boxes.shape
    out = np.empty((n, m), np.float32)
    n_good = np.empty(n, np.int64)
    keys = np.empty(m, np.uint32)
    scratch = np.empty(m, np.uint32)
    counts = np.empty(2048, np.int64)
    for i in range(n):
        row = out[i]
        good = 0
        for j in range(m):
            v = boxes[i, j]
            if np.isfinite(v):
                row[good] = v
                good += 1
        for j in range(good, m):
            row[j] = np.nan
        _radix_sort_f32(row, good, keys, scratch, counts)
        n_good[i] = good
    return out, n_good


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
def spline_rows(cols, rows, weights, lo, hi):
    """``out[y, x] = Σ_k weights[k, y] * cols[rows[k, y], x]`` (4 taps, float32, in that order),
    clipped to ``[lo, hi]``: the y pass of the background spline, one pass over the output
    instead of numpy's four."""
    ny = rows.shape[1]
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


def load() -> None:
    """Load (or, the very first time on a machine, compile) every kernel with the argument types
    the pipeline uses, by calling each on a tiny input. Numba otherwise does this on the first
    call of each, inside the first run (~1 s from its cache: scanning the installed packages for
    numba extensions is most of it; ~30 s the very first time)."""
    img = np.zeros((4, 4), np.float32)
    labels = np.zeros((4, 4), np.int32)
    srt, good = sort_rows_nan_last(img)
    clip_sorted_rows(srt, good, 3.0, 10)
    may_split(img, labels, np.zeros(1, np.bool_), 10, 8)
    spline_rows(img, np.zeros((4, 4), np.int64), img, 0.0, 1.0)
    inside = np.ones((4, 4), np.bool_)
    for thresholds in (np.zeros(2, np.float32), np.zeros(2, np.float64)):
        deblend_markers(img, inside, thresholds, 10, 8)
    watershed_flood(np.zeros(9, np.float64), np.zeros(9, np.int32), np.zeros(9, np.int8), np.zeros(1, np.int64))
    deblend_watershed(img, inside, labels, 0.001, 1.0, 8)
    found, n = label_mask(inside, 8)
    label_summary(found, n)
    for error in (img, np.zeros((1, 1), np.float32)):
        segment_sums_kernel(labels, 1, img, img, error, True, inside)


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
