"""SExtractor's multi-threshold deblending (``refine.c``: parcelout, gatherup), replayed.

Each detection is re-thresholded at DEBLEND_NTHRESH levels spaced exponentially between the
detection threshold and its filtered peak; a branch splits off when at least two of its sub-parts
hold more than DEBLEND_MINCONT of the detection's filtered flux. The pixels below the branch
levels are then given to the branches at random, with probabilities from each branch's Gaussian
profile: SExtractor draws them with the C library's ``rand()``, never seeded, so this module
draws the same sequence (glibc's additive generator, seed 1) in the same order and gets the same
pixels — as long as the detections are deblended in the same order (the whole frame, one run).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .lutz import lutz_lists

PI = 3.1415926535898
MAXDEBAREA = 3


class GlibcRand:
    """glibc's ``rand()`` (TYPE_3 additive feedback, 31 words) from its default seed 1."""

    RAND_MAX = 2147483647

    def __init__(self, seed: int = 1):
        r = [0] * 34
        r[0] = seed
        for i in range(1, 31):
            hi, lo = divmod(r[i - 1], 127773)
            word = 16807 * lo - 2836 * hi
            if word < 0:
                word += 2147483647
            r[i] = word
        for i in range(31, 34):
            r[i] = r[i - 31]
        self.state = np.array(r, dtype=np.uint32)
        self.pos = np.zeros(1, np.int64)  # index of the next word in the ring of 34
        for _ in range(310):
            _next(self.state, self.pos)

    def __call__(self) -> int:
        return int(_next(self.state, self.pos))


@njit(cache=True, nogil=True)
def _next(state, pos):
    i = pos[0]
    v = np.uint32(state[(i + 34 - 31) % 34] + state[(i + 34 - 3) % 34])
    state[i % 34] = v
    pos[0] = (i + 1) % 34
    return v >> np.uint32(1)


class _Obj:
    """A (sub)object of the tree: indices into the root's pixel arrays, list order kept."""

    __slots__ = ("idx", "fdnpix", "fdflux", "fdpeak", "dthresh", "xmin", "xmax", "ymin", "ymax")

    def __init__(self, idx, fdflux, fdpeak, box, dthresh):
        self.idx = idx
        self.fdnpix = len(idx)
        self.fdflux = float(fdflux)
        self.fdpeak = float(fdpeak)
        self.dthresh = dthresh
        self.xmin, self.xmax, self.ymin, self.ymax = (int(v) for v in box)


@njit(cache=True, nogil=True)
def _sub_level(submap, cval, xs, ys, sx, sy, xmin, xmax, ymin, ymax, thresh, minarea):
    """lutz() of the sub-threshold ``thresh`` in the box: root pixel indices of each object in
    list order, their offsets, and preanalyse(ANALYSE_FAST)'s flux, peak and box of each."""
    box = submap[ymin - sy:ymax - sy + 1, xmin - sx:xmax - sx + 1]
    bh, bw = box.shape
    above = np.zeros((bh, bw), np.bool_)
    for y in range(bh):
        for x in range(bw):
            i = box[y, x]
            if i >= 0 and cval[i] > thresh:
                above[y, x] = True
    flat, offsets = lutz_lists(above, minarea)
    n = len(offsets) - 1
    idx = np.empty(len(flat), np.int64)
    flux = np.empty(n, np.float32)
    peak = np.empty(n, np.float32)
    boxes = np.empty((n, 4), np.int64)
    for k in range(n):
        total = 0.0
        pk = np.float32(-1e30)
        x0, x1, y0, y1 = 1 << 30, -1, 1 << 30, -1
        for q in range(offsets[k], offsets[k + 1]):
            cell = flat[q]
            i = box[cell // bw, cell % bw]
            idx[q] = i
            total += cval[i]
            pk = max(pk, cval[i])
            x0, x1 = min(x0, xs[i]), max(x1, xs[i])
            y0, y1 = min(y0, ys[i]), max(y1, ys[i])
        flux[k] = np.float32(total)
        peak[k] = pk
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = x0, x1, y0, y1
    return idx, offsets, flux, peak, boxes


@njit(cache=True, nogil=True)
def _pairwise_block(a, lo, n):
    """One leaf of numpy's pairwise summation (n <= 128): 8 accumulators, then the rest."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def pairwise_sum(a, lo, n):
    """numpy's float64 ``sum`` of ``a[lo:lo + n]``: its pairwise summation (blocks of up to 128
    halved on multiples of 8, left + right), so compiled moments keep numpy's rounding bit for
    bit. The halving runs on an explicit stack: numba's cache cannot reload a recursive function."""
    if n <= 128:
        return _pairwise_block(a, lo, n)
    los = np.empty(128, np.int64)
    ns = np.empty(128, np.int64)
    split = np.zeros(128, np.bool_)
    vals = np.empty(128, np.float64)
    top, nv = 0, 0
    los[0], ns[0] = lo, n
    while top >= 0:
        m = ns[top]
        if m <= 128:
            vals[nv] = _pairwise_block(a, los[top], m)
            nv += 1
            top -= 1
        elif not split[top]:
            split[top] = True
            n2 = m // 2
            n2 -= n2 % 8
            l0 = los[top]
            los[top + 1], ns[top + 1], split[top + 1] = l0 + n2, m - n2, False  # right, done second
            los[top + 2], ns[top + 2], split[top + 2] = l0, n2, False  # left, done first
            top += 2
        else:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return vals[0]


@njit(cache=True, nogil=True)
def _npsum(a):
    return pairwise_sum(a, 0, len(a))


@njit(cache=True, nogil=True)
def _moments(xs, ys, cval, dval, thresh, has_center, cx, cy):
    """The arithmetic of :func:`moments`, compiled with numpy's sums and float32 comparisons."""
    n = len(xs)
    xmin, ymin = xs.min(), ys.min()
    cv = np.empty(n, np.float64)
    x = np.empty(n, np.float64)
    y = np.empty(n, np.float64)
    for i in range(n):
        cv[i] = np.float64(cval[i])
        x[i] = np.float64(xs[i] - xmin)
        y[i] = np.float64(ys[i] - ymin)
    t = np.empty(n, np.float64)
    rv = _npsum(cv)
    for i in range(n):
        t[i] = cv[i] * x[i]
    xm = _npsum(t) / rv
    for i in range(n):
        t[i] = cv[i] * y[i]
    ym = _npsum(t) / rv
    for i in range(n):
        t[i] = cv[i] * x[i] * x[i]
    sxx = _npsum(t) / rv
    for i in range(n):
        t[i] = cv[i] * y[i] * y[i]
    syy = _npsum(t) / rv
    for i in range(n):
        t[i] = cv[i] * x[i] * y[i]
    sxy = _npsum(t) / rv
    if not has_center:
        xm2 = sxx - xm * xm
        ym2 = syy - ym * ym
        xym = sxy - xm * ym
    else:
        xn, yn = cx - xmin, cy - ymin
        xm2 = sxx + xn * xn - 2 * xm * xn
        ym2 = syy + yn * yn - 2 * ym * yn
        xym = sxy + xn * yn - xm * yn - xn * ym
        xm, ym = xn, yn
    singu = False
    if xm2 * ym2 - xym * xym < 0.00694:
        xm2 += 0.0833333
        ym2 += 0.0833333
        singu = True
    temp2 = xm2 * ym2 - xym * xym
    temp = xm2 - ym2
    theta = math.atan2(2.0 * xym, temp) / 2.0 if abs(temp) > 0.0 else PI / 4.0
    temp = math.sqrt(0.25 * temp * temp + xym * xym)
    pm = 0.5 * (xm2 + ym2)
    a = np.float64(np.float32(math.sqrt(pm + temp)))
    b = np.float64(np.float32(math.sqrt(max(pm - temp, 0.0))))
    peak = np.float64(dval.max())
    thresh2 = (thresh + peak) / 2.0
    t1 = np.float32(thresh)  # numpy compares a float32 array with a Python float in float32
    t2 = np.float32(thresh2)
    dnpix = 0
    nabove2 = 0
    for i in range(n):
        if dval[i] > t1:
            dnpix += 1
        if dval[i] > t2:
            nabove2 += 1
    darea = np.float64(nabove2) - dnpix
    t1t2 = thresh / thresh2
    abcor = 1.0
    if t1t2 > 0.0 and a > 0 and b > 0:
        abcor = min((darea if darea < 0.0 else -1.0) / (2 * PI * math.log(t1t2 if t1t2 < 1.0 else 0.99) * a * b), 1.0)
    return (xm + xmin, ym + ymin, xm2, ym2, xym, a, b, theta, np.float64(np.float32(ym2 / temp2)),
            np.float64(np.float32(xm2 / temp2)), np.float64(np.float32(-2 * xym / temp2)), abcor, singu, rv)


_MOMENT_KEYS = ("mx", "my", "xm2", "ym2", "xym", "a", "b", "theta", "cxx", "cyy", "cxy", "abcor", "singu", "rv")


def moments(xs, ys, cval, dval, thresh, center=None):
    """preanalyse(ANALYSE_FULL): barycentre, second moments, ellipse and abcor of one pixel list.

    ``center``: SExtractor's ROBUST mode for deblended objects, moments about the core's centre.
    """
    cx, cy = (0.0, 0.0) if center is None else (float(center[0]), float(center[1]))
    values = _moments(np.asarray(xs, np.int64), np.asarray(ys, np.int64), np.asarray(cval, np.float32),
                      np.asarray(dval, np.float32), float(thresh), center is not None, cx, cy)
    return dict(zip(_MOMENT_KEYS, values))


@njit(cache=True, nogil=True)
def _expf(x):
    return np.float32(math.exp(np.float32(x)))


@njit(cache=True, nogil=True)
def _gather(px, py, mx, my, cxx, cyy, cxy, abcor, amp, state, pos):
    """gatherup()'s draw for each free pixel: the branch it goes to (0-based)."""
    nobj = len(mx)
    out = np.empty(len(px), np.int64)
    p = np.zeros(nobj + 1, np.float32)
    for k in range(len(px)):
        distmin = np.float32(1e31)
        iclst = 0
        for i in range(nobj):
            dx = np.float32(px[k] - mx[i])
            dy = np.float32(py[k] - my[i])
            q = cxx[i] * dx * dx + cyy[i] * dy * dy + cxy[i] * dx * dy
            dist = np.float32(0.5 * np.float64(q) / np.float64(abcor[i]))
            p[i + 1] = p[i] + (np.float32(amp[i] * np.float32(math.exp(-dist))) if dist < 70.0 else np.float32(0.0))
            if dist < distmin:
                distmin = dist
                iclst = i
        if p[nobj] > 1.0e-31:
            r = np.float32(_next(state, pos))
            drand = np.float32(np.float32(p[nobj] * r) / np.float32(2147483647.0))
            i = 1
            while i <= nobj and p[i] < drand:
                i += 1
            out[k] = iclst if i > nobj else i - 1
        else:
            out[k] = iclst
    return out


@njit(cache=True, nogil=True)
def _local_maxima(submap, cval, xs, ys, sx, sy):
    """How many pixels are at least as high as all their 8 neighbours within the detection (two
    at most: only whether there is more than one matters)."""
    h, w = submap.shape
    n = 0
    for i in range(len(xs)):
        y0, x0 = ys[i] - sy, xs[i] - sx
        top = True
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                y, x = y0 + dy, x0 + dx
                if (dy or dx) and 0 <= y < h and 0 <= x < w and submap[y, x] >= 0 and cval[submap[y, x]] > cval[i]:
                    top = False
        if top:
            n += 1
            if n > 1:
                return n
    return n


@njit(cache=True, nogil=True)
def _maxima_map(submap, cval, xs, ys, sx, sy):
    """Which pixels are at least as high as all their 8 neighbours within the detection: every
    part above a threshold holds one (its highest pixel), so a part with a single one cannot split."""
    h, w = submap.shape
    out = np.ones(len(xs), np.bool_)
    for i in range(len(xs)):
        y0, x0 = ys[i] - sy, xs[i] - sx
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                y, x = y0 + dy, x0 + dx
                if (dy or dx) and 0 <= y < h and 0 <= x < w and submap[y, x] >= 0 and cval[submap[y, x]] > cval[i]:
                    out[i] = False
    return out


@njit(cache=True, nogil=True)
def _several_maxima(xs, ys, cval, offsets):
    """:func:`_local_maxima` >= 2 for each detection ``offsets[k]:offsets[k + 1]`` of the
    concatenated pixel arrays, in one call."""
    n = len(offsets) - 1
    out = np.zeros(n, np.bool_)
    for k in range(n):
        lo, hi = offsets[k], offsets[k + 1]
        oxs, oys, ocv = xs[lo:hi], ys[lo:hi], cval[lo:hi]
        sx, sy = oxs.min(), oys.min()
        submap = np.full((oys.max() - sy + 1, oxs.max() - sx + 1), -1, np.int64)
        for i in range(hi - lo):
            submap[oys[i] - sy, oxs[i] - sx] = i
        out[k] = _local_maxima(submap, ocv, oxs, oys, sx, sy) >= 2
    return out


def may_split(xs, ys, cval, offsets, nthresh: int, mincont: float) -> np.ndarray:
    """Which detections (pixels ``offsets[k]:offsets[k + 1]`` of the concatenated arrays, ``cval``
    filtered) :func:`deblend` may split: the others, with a single local maximum, it returns
    whole before drawing any random number, so the driver need not call it for them."""
    n = len(offsets) - 1
    if nthresh < 2 or mincont >= 1.0 or n <= 0:
        return np.zeros(max(n, 0), np.bool_)
    return _several_maxima(np.asarray(xs, np.int64), np.asarray(ys, np.int64), np.asarray(cval, np.float32),
                           np.asarray(offsets, np.int64))


@njit(cache=True, nogil=True)
def _parcel(submap, cval, xs, ys, sx, sy, thresholds, value0, deb_minarea, root_flux, root_peak, dthresh0, ismax):
    """parcelout()'s tree and its choice of branches, compiled (a Python tree of objects was most
    of the deblending time). The objects of every level are kept in flat arrays (pixel indices in
    list order, flux, peak, threshold, box, the range of their children one level up); levels stop
    once no part holds more than ``value0`` above its threshold. A part holding fewer than two of
    the local maxima ``ismax`` is not cut further: it has one part at most at each level above,
    so no choice below it can change (all True: every part is cut, as SExtractor does). Returns
    whether the detection splits, the chosen branches in SExtractor's order, and the object arrays."""
    n = len(xs)
    nthresh = len(thresholds)
    cap = 64
    start = np.empty(cap, np.int64)
    end = np.empty(cap, np.int64)
    flux = np.empty(cap, np.float64)
    fpeak = np.empty(cap, np.float64)
    fthresh = np.empty(cap, np.float64)
    box = np.empty((cap, 4), np.int64)
    kid_lo = np.zeros(cap, np.int64)
    kid_hi = np.zeros(cap, np.int64)
    nmax = np.empty(cap, np.int64)  # local maxima held (2: two or more)
    pix = np.empty(2 * n + 16, np.int64)
    for i in range(n):
        pix[i] = i
    npix = n
    start[0], end[0], flux[0], fpeak[0], fthresh[0] = 0, n, root_flux, root_peak, dthresh0
    box[0, 0], box[0, 1], box[0, 2], box[0, 3] = xs.min(), xs.max(), ys.min(), ys.max()
    nmax[0] = min(ismax.sum(), 2)
    nobj = 1
    level_lo = np.zeros(nthresh + 1, np.int64)
    level_hi = np.zeros(nthresh + 1, np.int64)
    level_hi[0] = 1
    nlev = 1
    owner = np.zeros(n, np.int64)  # each pixel's part at the previous level (-1: none)
    for k in range(1, nthresh):
        thresh = thresholds[k]
        new_lo = nobj
        new_owner = np.full(n, -1, np.int64)
        for gi in range(level_lo[k - 1], level_hi[k - 1]):
            pi = gi - level_lo[k - 1]
            if nmax[gi] < 2:
                kid_lo[gi], kid_hi[gi] = nobj, nobj
                continue
            idx, offs, pflux, pk, boxes = _sub_level(submap, cval, xs, ys, sx, sy, box[gi, 0], box[gi, 1],
                                                     box[gi, 2], box[gi, 3], thresh, deb_minarea)
            kid_lo[gi] = nobj
            for q in range(len(offs) - 1):
                if owner[idx[offs[q]]] != pi:  # belong(): its first pixel is the parent's
                    continue
                m = offs[q + 1] - offs[q]
                if nobj == cap:
                    cap *= 2
                    start = np.concatenate((start, np.empty(nobj, np.int64)))
                    end = np.concatenate((end, np.empty(nobj, np.int64)))
                    flux = np.concatenate((flux, np.empty(nobj, np.float64)))
                    fpeak = np.concatenate((fpeak, np.empty(nobj, np.float64)))
                    fthresh = np.concatenate((fthresh, np.empty(nobj, np.float64)))
                    box = np.concatenate((box, np.empty((nobj, 4), np.int64)))
                    kid_lo = np.concatenate((kid_lo, np.zeros(nobj, np.int64)))
                    kid_hi = np.concatenate((kid_hi, np.zeros(nobj, np.int64)))
                    nmax = np.concatenate((nmax, np.empty(nobj, np.int64)))
                if npix + m > len(pix):
                    pix = np.concatenate((pix, np.empty(max(npix + m, len(pix)), np.int64)))
                nm = 0
                for t in range(m):
                    i = idx[offs[q] + t]
                    pix[npix + t] = i
                    new_owner[i] = nobj - new_lo
                    if ismax[i]:
                        nm += 1
                nmax[nobj] = min(nm, 2)
                start[nobj], end[nobj] = npix, npix + m
                npix += m
                flux[nobj], fpeak[nobj], fthresh[nobj] = pflux[q], pk[q], thresh
                box[nobj, 0], box[nobj, 1], box[nobj, 2], box[nobj, 3] = boxes[q, 0], boxes[q, 1], boxes[q, 2], boxes[q, 3]
                nobj += 1
            kid_hi[gi] = nobj
        level_lo[k], level_hi[k] = new_lo, nobj
        nlev += 1
        owner = new_owner
        more = False
        for j in range(new_lo, nobj):
            if flux[j] - fthresh[j] * (end[j] - start[j]) > value0:
                more = True
                break
        if not more:
            break
    ok = np.ones(nobj, np.bool_)
    chosen = np.empty(nobj, np.int64)
    nchosen = 0
    for k in range(nlev - 2, -1, -1):
        for gi in range(level_lo[k], level_hi[k]):
            m = 0
            for j in range(kid_lo[gi], kid_hi[gi]):
                if flux[j] - fthresh[j] * (end[j] - start[j]) > value0:
                    m += 1
                ok[gi] = ok[gi] and ok[j]
            if m > 1:
                for j in range(kid_lo[gi], kid_hi[gi]):
                    if ok[j] and flux[j] - fthresh[j] * (end[j] - start[j]) > value0:
                        chosen[nchosen] = j
                        nchosen += 1
                ok[gi] = False
    return not ok[0], chosen[:nchosen], pix[:npix], start[:nobj], end[:nobj], flux[:nobj], fpeak[:nobj], fthresh[:nobj]


@njit(cache=True, nogil=True)
def _front(xs, ys, cval, dthresh0, expo, mincont, deb_minarea):
    """deblend()'s start, compiled: the detection's map, its local maxima (with one, nothing can
    split: every part above any threshold holds its own), its flux, peak and levels, then
    :func:`_parcel`. ``expo``: k / nthresh, given at run time so that each level is the C
    library's pow() as Python's ** computes it (0 < ``dthresh0`` < inf)."""
    n = len(xs)
    sx, sy = xs.min(), ys.min()
    submap = np.full((ys.max() - sy + 1, xs.max() - sx + 1), -1, np.int64)
    for i in range(n):
        submap[ys[i] - sy, xs[i] - sx] = i
    ismax = _maxima_map(submap, cval, xs, ys, sx, sy)
    if ismax.sum() < 2:
        e = np.zeros(1, np.int64)[:0]
        f = np.zeros(1, np.float64)[:0]
        return False, e, e, e, e, f, f, f
    c64 = np.empty(n, np.float64)
    for i in range(n):
        c64[i] = cval[i]
    root_flux = np.float64(np.float32(pairwise_sum(c64, 0, n)))
    peak = np.float64(cval.max())
    thresholds = np.empty(len(expo), np.float32)
    for k in range(len(expo)):
        thresholds[k] = np.float32(dthresh0 * (peak / dthresh0) ** expo[k]) if peak > 0.0 else np.float32(dthresh0)
    return _parcel(submap, cval, xs, ys, sx, sy, thresholds, root_flux * mincont, deb_minarea, root_flux, peak,
                   dthresh0, ismax)


def deblend(xs, ys, cval, dval, dthresh0: float, nthresh: int, mincont: float, minarea: int, rng: GlibcRand,
            front=False):
    """parcelout() + gatherup() of one detection (pixel arrays in list order).

    None when it stays whole, else the branches: (pixel indices in list order, core centre, the
    number of core pixels, which come first). Levels stop being built once no part at a level holds more than DEBLEND_MINCONT above its
    threshold: parts of higher levels hold less, so no branch below could split. ``front``: what
    :func:`deblend_front` gave for this detection, if it was already run (in another thread).
    """
    if front is False:
        front = deblend_front(xs, ys, cval, dthresh0, nthresh, mincont, minarea)
    if front is None:
        return None
    return _gatherup(front, np.asarray(xs, np.int64), np.asarray(ys, np.int64), np.asarray(cval, np.float32), dval,
                     dthresh0, rng)


def deblend_front(xs, ys, cval, dthresh0: float, nthresh: int, mincont: float, minarea: int):
    """parcelout() of one detection: its branches before gatherup(), or None when it stays whole.
    Draws no random number, so it may run in any order or thread (the compiled part frees the GIL)."""
    if nthresh < 2 or mincont >= 1.0:
        return None
    xs = np.asarray(xs, np.int64)
    ys = np.asarray(ys, np.int64)
    cval = np.asarray(cval, np.float32)
    deb_minarea = min(minarea, MAXDEBAREA)
    if 0.0 < dthresh0 < math.inf:
        split, chosen, pix, start, end, flux, fpeak, fthresh = _front(
            xs, ys, cval, float(dthresh0), np.arange(nthresh) / nthresh, float(mincont), deb_minarea)
    else:  # Python's ** (a complex or an error for such thresholds, as before)
        sx, sy = int(xs.min()), int(ys.min())
        submap = np.full((int(ys.max()) - sy + 1, int(xs.max()) - sx + 1), -1, np.int64)
        submap[ys - sy, xs - sx] = np.arange(len(xs))
        ismax = _maxima_map(submap, cval, xs, ys, sx, sy)
        if ismax.sum() < 2:
            return None
        root_flux = float(np.float32(cval.astype(np.float64).sum()))
        peak = float(cval.max())
        thresholds = np.array([np.float32(dthresh0 * (peak / dthresh0) ** (k / nthresh) if peak > 0.0 else dthresh0)
                               for k in range(nthresh)], np.float32)  # [0] unused
        split, chosen, pix, start, end, flux, fpeak, fthresh = _parcel(
            submap, cval, xs, ys, sx, sy, thresholds, root_flux * mincont, deb_minarea, root_flux, peak,
            float(dthresh0), ismax)
    if not split:
        return None
    return [_Obj(pix[start[j]:end[j]], flux[j], fpeak[j], (0, 0, 0, 0), float(fthresh[j])) for j in chosen]


def _gatherup(branches, xs, ys, cval, dval, dthresh0, rng):
    taken = np.zeros(len(xs), bool)
    mom = []
    amp = []
    for o in branches:
        mo = moments(xs[o.idx], ys[o.idx], cval[o.idx], dval[o.idx], o.dthresh)
        mom.append(mo)
        taken[o.idx] = True
        mo["abcor"] = float(np.float32(mo["abcor"]))  # a float in SExtractor's objects
        dist = np.float32(o.fdnpix / (2 * PI * mo["abcor"] * mo["a"] * mo["b"]))
        a = np.float32(np.float32(dthresh0) * _expf(dist)) if dist < 70.0 else np.float32(4.0 * o.fdpeak)
        amp.append(np.float32(min(a, np.float32(4.0 * o.fdpeak))))
    free = np.nonzero(~taken)[0]
    f32 = np.float32
    who = _gather(xs[free].astype(np.int64), ys[free].astype(np.int64),
                  np.array([m["mx"] for m in mom]), np.array([m["my"] for m in mom]),
                  np.array([m["cxx"] for m in mom], f32), np.array([m["cyy"] for m in mom], f32),
                  np.array([m["cxy"] for m in mom], f32), np.array([m["abcor"] for m in mom], f32),
                  np.array(amp, f32), rng.state, rng.pos)
    out = []
    for i, o in enumerate(branches):
        idx = np.concatenate([o.idx, free[who == i]])
        out.append((idx, (mom[i]["mx"], mom[i]["my"]), len(o.idx)))
    return out
