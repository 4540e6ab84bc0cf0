"""SExtractor's isophotal measurements of each detection (``analyse.c``: preanalyse(), examineiso()).

:func:`isophotal_rows` measures a whole batch of detections in one compiled call (one row of
values per detection, then the dicts the driver keeps): per detection in Python it was most of the
detection loop's time. ``tests/isophotal_reference.py`` keeps that per-detection numpy code, which
the batch reproduces bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .classstar import NISO
from .deblend import _moments, pairwise_sum

OBJ_TRUNC = 8
PI = 3.1415926535898  # SExtractor's value (define.h)


@njit(cache=True, nogil=True)
def _mthresh(cval, dthresh, minarea):
    """examineiso()'s CLEAN level: its heap of the minarea highest filtered values above the
    threshold, replayed step by step (it skips the pixel after the first minarea, and its sift-down
    is off by one, so the value is not exactly the minarea-th highest); pixels in raster order.
    ``dthresh``: float32, one threshold for all pixels or (a weight map's) one per pixel."""
    n = len(cval)
    if n < minarea:
        return 0.0
    one = len(dthresh) == 1
    t = np.empty(n, np.float64)
    for i in range(n):
        d = dthresh[0] if one else dthresh[i]
        t[i] = np.float64(np.float32(cval[i] - d))  # float32 differences, as the C code
    heap = t[:minarea].copy()
    for q in range(minarea, n):
        tpix = t[q]
        if q == minarea:  # sorted only once a pixel beyond the first minarea comes
            heap.sort()
            continue
        if tpix > heap[0]:
            heap[0] = tpix
            j = 0
            while True:
                k = (j + 1) << 1
                if k > minarea:
                    break
                hk = k
                if k != minarea and heap[hk - 1] > heap[hk]:
                    hk += 1
                    k += 1
                hk -= 1
                if heap[j] <= heap[hk]:
                    break
                heap[j], heap[hk] = heap[hk], heap[j]
                j = k
    return heap[0]


@njit(cache=True, nogil=True)
def _error_sums(xs, ys, cval, val, mx, my, var, gain, pvar, gainflag):
    """FLUX_ISO, its variance and examineiso()'s position-error sums, with numpy's pairwise float64
    sums. ``pvar``: the weight map's variance of each pixel (empty without one): the flux variance
    is their sum, plus with ``gainflag`` (WEIGHT_GAIN) each positive pixel's photon noise scaled by
    its variance over the background's ``var``."""
    n = len(xs)
    v = np.empty(n, np.float64)
    for i in range(n):
        v[i] = np.float64(val[i])
    flux = pairwise_sum(v, 0, n)
    if len(pvar) == 0:
        sigtv = var * n
        if gain > 0.0 and flux > 0.0:
            sigtv += flux / gain
    else:
        pv = np.empty(n, np.float64)
        for i in range(n):
            pv[i] = np.float64(pvar[i])
        sigtv = pairwise_sum(pv, 0, n)
        if gainflag and gain > 0.0:
            for i in range(n):
                v[i] = (v[i] if v[i] > 0.0 else 0.0) / gain * pv[i] / var
            sigtv += pairwise_sum(v, 0, n)
        elif gain > 0.0 and flux > 0.0:
            sigtv += flux / gain
    err = np.empty(n, np.float64)
    for i in range(n):
        c = np.float64(cval[i])
        err[i] = var + (c / gain if c > 0.0 else 0.0) if gain > 0.0 else var
    for i in range(n):
        dx = xs[i] - mx
        v[i] = err[i] * dx * dx
    sxx = pairwise_sum(v, 0, n)
    for i in range(n):
        dy = ys[i] - my
        v[i] = err[i] * dy * dy
    syy = pairwise_sum(v, 0, n)
    for i in range(n):
        v[i] = err[i] * (xs[i] - mx) * (ys[i] - my)
    sxy = pairwise_sum(v, 0, n)
    return flux, sigtv, sxx, syy, sxy, pairwise_sum(err, 0, n)


# the kernel's float and integer columns, in the order of the row's keys
_FKEYS = ("_mx", "_my", "_fdflux", "_abcor", "_dthresh", "_mthresh", "_fluxvar", "X_IMAGE", "Y_IMAGE", "X2_IMAGE",
          "Y2_IMAGE", "XY_IMAGE", "ERRX2_IMAGE", "ERRY2_IMAGE", "ERRXY_IMAGE", "A_IMAGE", "B_IMAGE", "THETA_IMAGE",
          "CXX_IMAGE", "CYY_IMAGE", "CXY_IMAGE", "ELONGATION", "ELLIPTICITY", "FLUX_ISO", "FLUX_MAX", "THRESHOLD")
_IKEYS = ("_ymax", "_xend", "_flag", "_fdnpix", "ISOAREA_IMAGE", "ISOAREAF_IMAGE", "XMIN_IMAGE", "YMIN_IMAGE",
          "XMAX_IMAGE", "YMAX_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE")
_NF, _NI = len(_FKEYS), len(_IKEYS)


@njit(cache=True, nogil=True)
def _min_f32(a):
    """numpy's ``min`` of a float array: NaN as soon as one value is NaN."""
    m = a[0]
    for i in range(1, len(a)):
        v = a[i]
        if math.isnan(v):
            return v
        if v < m:
            m = v
    return m


@njit(cache=True, nogil=True)
def _isophotal_batch(xs, ys, val, cval, starts, stops, has_center, cx, cy, pthr, pvar, gainflag, threshfac,
                     dthresh, dthresh32, thresh, var, gain, h, w, minarea, iso_expo):
    """The per-detection arithmetic (``tests/isophotal_reference.py``) for objects
    ``xs[starts[k]:stops[k]]`` …: a float and an integer row of values per object (``_FKEYS``, ``_IKEYS``) and its eight isophotal areas.
    ``pthr``/``pvar`` empty: no weight map. ``iso_expo``: the exponents i / 8 of the isophotal
    levels, given at run time so that the compiler keeps the C library's pow() for each (it would
    turn pow(x, 0.5) into a square root, rounded differently)."""
    n = len(starts)
    fo = np.empty((n, _NF), np.float64)
    io = np.empty((n, _NI), np.int64)
    iso = np.zeros((n, NISO), np.int64)
    weighted = len(pthr) > 0
    one = np.empty(1, np.float32)
    one[0] = dthresh32
    levels = np.empty(NISO, np.float32)
    for k in range(n):
        lo, hi = starts[k], stops[k]
        oxs, oys, oval, ocval = xs[lo:hi], ys[lo:hi], val[lo:hi], cval[lo:hi]
        m = hi - lo
        dth = dthresh
        if weighted:
            dth = np.float64(_min_f32(pthr[lo:hi]))
        (mx, my, xm2, ym2, xym, a, b, theta, cxx, cyy, cxy, abcor, singu,
         rv) = _moments(oxs, oys, ocval, oval, dth, has_center[k], cx[k], cy[k])
        temp2 = xm2 * ym2 - xym * xym
        if weighted:
            flux, sigtv, sxx, syy, sxy, serr = _error_sums(oxs, oys, ocval, oval, mx, my, var, gain, pvar[lo:hi],
                                                           gainflag)
        else:
            flux, sigtv, sxx, syy, sxy, serr = _error_sums(oxs, oys, ocval, oval, mx, my, var, gain, pvar, False)
        nabove = 0
        if weighted:
            athresh = np.float32(0.0)
            for i in range(m):
                pa = np.float32(threshfac * np.sqrt(np.float64(pvar[lo + i])))
                if i == 0 or (not math.isnan(athresh) and (math.isnan(pa) or pa < athresh)):
                    athresh = pa  # numpy's min: NaN once one is NaN
                if oval[i] > pa:
                    nabove += 1
        else:
            athresh = np.float32(thresh)
            for i in range(m):
                if oval[i] > athresh:
                    nabove += 1
        fd = np.float64(np.float32(rv))
        fdflux2 = fd * fd  # a float32's square is exact in float64, as Python's ** 2
        emx2 = sxx / fdflux2
        emy2 = syy / fdflux2
        emxy = sxy / fdflux2
        esum = serr * 0.08333 / fdflux2
        if singu and emx2 * emy2 - emxy * emxy < esum * esum:
            emx2 += esum
            emy2 += esum
        pk32 = oval[0]
        ipk = 0
        xmin, xmax, ymin, ymax = oxs[0], oxs[0], oys[0], oys[0]
        for i in range(m):
            v = oval[i]
            if not math.isnan(pk32) and (math.isnan(v) or v > pk32):
                pk32 = v
            c = ocval[i]
            cb = ocval[ipk]
            if not math.isnan(cb) and (math.isnan(c) or c > cb):
                ipk = i
            xmin, xmax = min(xmin, oxs[i]), max(xmax, oxs[i])
            ymin, ymax = min(ymin, oys[i]), max(ymax, oys[i])
        xend = -1
        for i in range(m):
            if oys[i] == ymax and (xend < 0 or oxs[i] > xend):
                xend = oxs[i]
        peak = np.float64(pk32)
        at = np.float64(athresh)
        if peak > 0.0 and at > 0.0:
            for j in range(NISO):
                levels[j] = np.float32(at * (peak / at) ** iso_expo[j])
        else:
            levels[:] = 0.0
        for i in range(m):
            v = oval[i]
            for j in range(NISO):
                if not v > levels[j]:
                    break
                iso[k, j] += 1
        f = fo[k]
        f[0], f[1], f[2], f[3] = mx, my, fd, np.float64(np.float32(abcor))
        f[4] = dth
        f[5] = _mthresh(ocval, pthr[lo:hi] if weighted else one, minarea)
        f[6] = sigtv
        f[7], f[8], f[9], f[10], f[11] = mx + 1.0, my + 1.0, xm2, ym2, xym
        f[12], f[13], f[14], f[15], f[16] = emx2, emy2, emxy, a, b
        f[17] = np.float64(np.float32(theta * 180.0 / PI))
        f[18] = np.float64(np.float32(ym2 / temp2))
        f[19] = np.float64(np.float32(xm2 / temp2))
        f[20] = np.float64(np.float32(-2 * xym / temp2))
        f[21] = a / b if b > 0 else 0.0
        f[22] = 1 - b / a if a > 0 else 0.0
        f[23], f[24] = flux, peak
        f[25] = np.float64(np.float32(dth))
        r = io[k]
        r[0], r[1] = ymax, xend
        r[2] = OBJ_TRUNC if (xmin == 0 or xmax == w - 1 or ymin == 0 or ymax == h - 1) else 0
        r[3], r[4], r[5] = m, nabove, m
        r[6], r[7], r[8], r[9] = xmin + 1, ymin + 1, xmax + 1, ymax + 1
        r[10], r[11] = oxs[ipk] + 1, oys[ipk] + 1
    return fo, io, iso


_ISO_EXPO = np.array([i / NISO for i in range(NISO)], np.float64)


def isophotal_rows(cids, xs, ys, val, cval, offsets, dthresh, thresh, var, gain, h, w, minarea, *, objects=None,
                   centers=None, pthr=None, pvar=None, gainflag=False, threshfac=1.0) -> list[dict]:
    """The isophotal measurements of many detections in one compiled call, the same dicts (keys, values,
    types). Detection ``k`` is the pixels ``offsets[k]:offsets[k + 1]`` of the concatenated pixel
    arrays (``xs``, ``ys`` int64, ``val`` background-subtracted and ``cval`` filtered values);
    ``objects``: which detections (all by default), ``cids`` their ids, ``centers``: each one's core
    centre (x, y) or None (deblended branches are measured about it). ``pthr``/``pvar``: a weight
    map's detection threshold and variance of each pixel (``gainflag``: WEIGHT_GAIN,
    ``threshfac``: analysis over detection threshold). A row's ``_ys``/``_xs`` are views of ``ys``/``xs``."""
    offsets = np.asarray(offsets, np.int64)
    if objects is None:
        starts, stops = offsets[:-1], offsets[1:]
    else:
        objects = np.asarray(objects, np.int64)
        starts, stops = offsets[objects], offsets[objects + 1]
    n = len(starts)
    if n == 0:
        return []
    has_center = np.zeros(n, np.bool_)
    cx = np.zeros(n, np.float64)
    cy = np.zeros(n, np.float64)
    if centers is not None:
        for k, c in enumerate(centers):
            if c is not None:
                has_center[k], cx[k], cy[k] = True, float(c[0]), float(c[1])
    weighted = pthr is not None
    empty = np.zeros(0, np.float32)
    fo, io, iso = _isophotal_batch(
        np.asarray(xs, np.int64), np.asarray(ys, np.int64), np.asarray(val, np.float32), np.asarray(cval, np.float32),
        np.ascontiguousarray(starts), np.ascontiguousarray(stops), has_center, cx, cy,
        np.asarray(pthr, np.float32) if weighted else empty, np.asarray(pvar) if weighted else empty,
        bool(weighted and gainflag), float(threshfac), float(dthresh), np.float32(dthresh), float(thresh), float(var),
        float(gain), int(h), int(w), int(minarea), _ISO_EXPO)
    rows = []
    for k, (lo, hi, cid, f, i) in enumerate(zip(starts.tolist(), stops.tolist(), cids, fo.tolist(), io.tolist())):
        rows.append({
            "_cid": cid, "_ys": ys[lo:hi], "_xs": xs[lo:hi], "_ymax": i[0], "_xend": i[1],
            "_mx": f[0], "_my": f[1], "_flag": i[2], "_fdflux": f[2], "_fdnpix": i[3],
            "_abcor": f[3], "_iso": iso[k], "_dthresh": f[4] if weighted else dthresh,
            "_mthresh": f[5], "_fluxvar": f[6],
            "X_IMAGE": f[7], "Y_IMAGE": f[8], "X2_IMAGE": f[9], "Y2_IMAGE": f[10], "XY_IMAGE": f[11],
            "ERRX2_IMAGE": f[12], "ERRY2_IMAGE": f[13], "ERRXY_IMAGE": f[14],
            "A_IMAGE": f[15], "B_IMAGE": f[16], "THETA_IMAGE": f[17],
            "CXX_IMAGE": f[18], "CYY_IMAGE": f[19], "CXY_IMAGE": f[20],
            "ELONGATION": f[21], "ELLIPTICITY": f[22],
            "ISOAREA_IMAGE": i[4], "ISOAREAF_IMAGE": i[5],
            "FLUX_ISO": f[23], "FLUX_MAX": f[24], "THRESHOLD": f[25],
            "XMIN_IMAGE": i[6], "YMIN_IMAGE": i[7], "XMAX_IMAGE": i[8], "YMAX_IMAGE": i[9],
            "XPEAK_IMAGE": i[10], "YPEAK_IMAGE": i[11],
        })
    return rows
