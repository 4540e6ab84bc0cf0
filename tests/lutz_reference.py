"""The whole-frame Lutz scan SExtractor mode used before it read frames in strips: the reference its
strip-fed scan (``napari_galseg.sextractor.lutz``) is checked against, object by object."""
from __future__ import annotations

import numpy as np
from numba import njit

from napari_galseg.sextractor.lutz import COMPLETE, INCOMPLETE, M_F, M_NONE, M_S, NONOBJECT, OBJECT, UNKNOWN, M_f, M_s, _update


@njit(cache=True, nogil=True)
def lutz_scan(above):
    """(first pixel, pixel count) of every completed object in completion order, and ``nextpix``."""
    h, w = above.shape
    return lutz_scan_into(above, np.full(h * w, -1, np.int64))


@njit(cache=True, nogil=True)
def lutz_scan_into(above, nextpix):
    """:func:`lutz_scan` with the pixel links in ``nextpix`` (all -1; int32 halves a frame's share)."""
    h, w = above.shape
    size = w + 2
    info_n = np.zeros(size, np.int64)
    info_f = np.full(size, -1, np.int64)
    info_l = np.full(size, -1, np.int64)
    store_n = np.zeros(size, np.int64)
    store_f = np.full(size, -1, np.int64)
    store_l = np.full(size, -1, np.int64)
    marker = np.zeros(size, np.int8)
    start = np.zeros(size, np.int64)
    end = np.zeros(size, np.int64)
    psstack = np.zeros(2 * size + 4, np.int64)
    out_first = np.empty(1024, np.int64)  # grown by doubling: objects are far fewer than pixels
    out_n = np.empty(1024, np.int64)
    nout = 0
    co = 0
    pstop = 0
    for yl in range(h + 1):
        ps = COMPLETE
        cs = NONOBJECT
        for xl in range(w + 1):
            luflag = xl < w and yl < h and above[yl, xl]
            newmarker = marker[xl]
            marker[xl] = M_NONE
            cur = yl * w + xl
            if luflag and cs != OBJECT:  # start of a segment
                cs = OBJECT
                if ps == OBJECT:
                    if start[co] == UNKNOWN:
                        marker[xl] = M_S
                        start[co] = xl
                    else:
                        marker[xl] = M_s
                else:
                    psstack[pstop] = ps
                    pstop += 1
                    marker[xl] = M_S
                    co += 1
                    start[co] = xl
                    ps = COMPLETE
                    info_n[co] = 0
                    info_f[co] = -1
                    info_l[co] = -1
            if newmarker != M_NONE:
                if newmarker == M_S:
                    psstack[pstop] = ps
                    pstop += 1
                    if cs == NONOBJECT:
                        psstack[pstop] = COMPLETE
                        pstop += 1
                        co += 1
                        info_n[co] = store_n[xl]
                        info_f[co] = store_f[xl]
                        info_l[co] = store_l[xl]
                        start[co] = UNKNOWN
                    else:
                        _update(info_n, info_f, info_l, co, store_n[xl], store_f[xl], store_l[xl], nextpix)
                    ps = OBJECT
                elif newmarker == M_s:
                    if cs == OBJECT and ps == COMPLETE:
                        pstop -= 1
                        xl2 = start[co]
                        _update(info_n, info_f, info_l, co - 1, info_n[co], info_f[co], info_l[co], nextpix)
                        co -= 1
                        if start[co] == UNKNOWN:
                            start[co] = xl2
                        else:
                            marker[xl2] = M_s
                    ps = OBJECT
                elif newmarker == M_f:
                    ps = INCOMPLETE
                else:  # 'F'
                    pstop -= 1
                    ps = psstack[pstop]
                    if cs == NONOBJECT and ps == COMPLETE:
                        if start[co] == UNKNOWN:
                            if nout == len(out_first):
                                out_first = np.concatenate((out_first, np.empty(nout, np.int64)))
                                out_n = np.concatenate((out_n, np.empty(nout, np.int64)))
                            out_first[nout] = info_f[co]
                            out_n[nout] = info_n[co]
                            nout += 1
                        else:
                            marker[end[co]] = M_F
                            store_n[start[co]] = info_n[co]
                            store_f[start[co]] = info_f[co]
                            store_l[start[co]] = info_l[co]
                        co -= 1
                        pstop -= 1
                        ps = psstack[pstop]
            if luflag:
                _update(info_n, info_f, info_l, co, 1, cur, cur, nextpix)
            elif cs == OBJECT:
                cs = NONOBJECT
                if ps != COMPLETE:
                    marker[xl] = M_f
                    end[co] = xl
                else:
                    pstop -= 1
                    ps = psstack[pstop]
                    marker[xl] = M_F
                    store_n[start[co]] = info_n[co]
                    store_f[start[co]] = info_f[co]
                    store_l[start[co]] = info_l[co]
                    co -= 1
    return out_first[:nout].copy(), out_n[:nout].copy(), nextpix


@njit(cache=True, nogil=True)
def pixel_lists(first, counts, nextpix, minarea):
    """The pixel lists of the objects of at least ``minarea`` pixels, concatenated, and their offsets."""
    keep = counts >= minarea
    total = 0
    for i in range(len(counts)):
        if keep[i]:
            total += counts[i]
    flat = np.empty(total, np.int64)
    offsets = np.zeros(keep.sum() + 1, np.int64)
    k = 0
    j = 0
    for i in range(len(counts)):
        if not keep[i]:
            continue
        p = first[i]
        while p != -1:
            flat[k] = p
            k += 1
            p = nextpix[p]
        j += 1
        offsets[j] = k
    return flat, offsets


@njit(cache=True, nogil=True)
def links_to_labels(first, nextpix):
    """Turn the scan's pixel links into a component map in place: object ``k`` of ``first`` (every
    completed object, small ones too) gets label ``k + 1``, other pixels 0. What a labelling of
    the same mask gives up to the numbering, without a second frame (call after :func:`pixel_lists`)."""
    for k in range(len(first)):
        p = first[k]
        while p != -1:
            q = nextpix[p]  # each pixel is in one list only: its link is read before it is overwritten
            nextpix[p] = k + 1
            p = q
    for i in range(len(nextpix)):
        if nextpix[i] < 0:
            nextpix[i] = 0
    return nextpix


# --- the same scan fed in strips of rows: state kept between calls, links in pool space -------------
