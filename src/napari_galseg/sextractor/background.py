"""SExtractor's background map, computed as SExtractor 2.25 computes it (``back.c``).

Per BACK_SIZE mesh: mean and σ, one 2σ clip around the mean, a histogram of the clipped range
(±5σ, bins chosen from the pixel count), then the mode 2.5·median − 1.5·mean of a 3σ-clipped
histogram (the median alone when the distribution is skewed). Meshes with fewer than half their
pixels valid are filled from the nearest valid ones; the mesh map is median-filtered over
BACK_FILTERSIZE meshes where the change exceeds BACK_FILTTHRESH, and interpolated with SExtractor's
natural bicubic spline. The float32/float64 mix of the C code is kept so the maps agree to
rounding, not only in distribution. The frame is read one band of meshes at a time
(:func:`sextractor_background_rows`) and the maps are made a strip of rows at a time
(``level_rows``, ``rms_rows``, ``subtract_rows``), so a frame need never be held whole.
"""
from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

BIG = 1e30
QUANTIF_NSIGMA = 5
QUANTIF_NMAXLEVELS = 4096
QUANTIF_AMIN = 4
BACK_MINGOODFRAC = 0.5


@njit(cache=True, nogil=True)
def _backguess(histo, nlevels, bmean, qzero, qscale, pearson):
    """backguess(): the mode (2.5·median − 1.5·mean, the median when skewed) and σ of a histogram."""
    nlevelsm1 = nlevels - 1
    hcut_i = nlevelsm1
    lcut_i = 0
    sig = 10.0 * nlevelsm1
    sig1 = 1.0
    medfac = pearson
    meafac = pearson - 1.0
    mea = float(bmean)
    med = float(bmean)
    n = 100
    while n > 0 and sig >= 0.1 and abs(sig / sig1 - 1.0) > 1e-4:
        n -= 1
        sig1 = sig
        total = 0
        mea = 0.0
        sig = 0.0
        lowsum = 0
        highsum = 0
        ilow = lcut_i
        ihigh = hcut_i
        for i in range(lcut_i, hcut_i + 1):
            if lowsum < highsum:
                lowsum += histo[ilow]
                ilow += 1
            else:
                highsum += histo[ihigh]
                ihigh -= 1
            pix = histo[i]
            total += pix
            dpix = float(pix) * i
            mea += dpix
            sig += dpix * i
        if ihigh >= 0:
            mx = histo[ilow] if histo[ilow] > histo[ihigh] else histo[ihigh]
            med = ihigh + 0.5 + (float(highsum) - lowsum) / (2.0 * mx)
        else:
            med = 0.0
        if total:
            mea /= total
            sig = sig / total - mea * mea
        sig = math.sqrt(sig) if sig > 0.0 else 0.0
        ftemp = med - 3.0 * sig
        lcut_i = int(ftemp + 0.5 if ftemp > 0.0 else ftemp - 0.5) if ftemp > 0.0 else 0
        ftemp = med + 3.0 * sig
        hcut_i = int(ftemp + 0.5 if ftemp > 0.0 else ftemp - 0.5) if ftemp < nlevelsm1 else nlevelsm1
    if abs(sig) > 0.0:
        if abs((mea - med) / sig) < 0.3:
            mode = qzero + (medfac * med - meafac * mea) * qscale
        else:
            mode = qzero + med * qscale
    else:
        mode = qzero + mea * qscale
    return mode, sig * qscale


@njit(cache=True, nogil=True)
def _quantify(mean, sigma, npix):
    """nlevels, qscale, qzero of a mesh's histogram."""
    step = math.sqrt(2 / math.pi) * QUANTIF_NSIGMA / QUANTIF_AMIN
    nlevels = int(step * npix + 1)
    if nlevels > QUANTIF_NMAXLEVELS:
        nlevels = QUANTIF_NMAXLEVELS
    qscale = np.float32(2 * QUANTIF_NSIGMA * sigma / nlevels) if sigma > 0.0 else np.float32(1.0)
    qzero = np.float32(mean - QUANTIF_NSIGMA * sigma)
    return nlevels, qscale, qzero


@njit(cache=True, nogil=True)
def _mesh_stats(block, wblock, wthresh, weighted, pearson):
    """(mode, sigma) of one mesh, and of its variance map when ``weighted``: backstat + backhisto +
    backguess of SExtractor. Weighted, pixels whose variance is ≥ ``wthresh`` take no part, and the
    variance mesh is clipped on the image's pixels and its own 2σ range (back.c)."""
    h, w = block.shape
    mean = 0.0
    sigma = 0.0
    wmean = 0.0
    wsigma = 0.0
    npix = 0
    for y in range(h):
        for x in range(w):
            pix = np.float64(block[y, x])  # a double in backstat(): pix*pix in float64
            if pix > -BIG and (not weighted or wblock[y, x] < wthresh):
                mean += pix
                sigma += pix * pix
                if weighted:
                    wpix = np.float64(wblock[y, x])
                    wmean += wpix
                    wsigma += wpix * wpix
                npix += 1
    if npix < np.float32(w * h * BACK_MINGOODFRAC):
        return -BIG, -BIG, -BIG, -BIG
    wlcut = np.float32(0.0)
    whcut = np.float32(0.0)
    if weighted:
        wmean /= npix
        sig = wsigma / npix - wmean * wmean
        wsigma = math.sqrt(sig) if sig > 0.0 else 0.0
        wlcut = np.float32(wmean - 2.0 * wsigma)
        whcut = np.float32(wmean + 2.0 * wsigma)
    mean /= npix
    sig = sigma / npix - mean * mean
    sigma = math.sqrt(sig) if sig > 0.0 else 0.0
    lcut = np.float32(mean - 2.0 * sigma)
    hcut = np.float32(mean + 2.0 * sigma)
    mean = 0.0
    sigma = 0.0
    wmean = 0.0
    wsigma = 0.0
    npix = 0
    wnpix = 0
    for y in range(h):
        for x in range(w):
            pix = np.float64(block[y, x])
            if block[y, x] <= hcut and block[y, x] >= lcut and (not weighted or wblock[y, x] < wthresh):
                mean += pix
                sigma += pix * pix
                npix += 1
                if weighted and wblock[y, x] <= whcut and wblock[y, x] >= wlcut:
                    wpix = np.float64(wblock[y, x])
                    wmean += wpix
                    wsigma += wpix * wpix
                    wnpix += 1
    mean /= npix
    sig = sigma / npix - mean * mean
    sigma = math.sqrt(sig) if sig > 0.0 else 0.0
    nlevels, qscale, qzero = _quantify(mean, sigma, npix)
    wnlevels, wqscale, wqzero = 1, np.float32(1.0), np.float32(0.0)
    if weighted:
        wmean /= wnpix
        sig = wsigma / wnpix - wmean * wmean
        wsigma = math.sqrt(sig) if sig > 0.0 else 0.0
        wnlevels, wqscale, wqzero = _quantify(wmean, wsigma, wnpix)
    # backhisto
    histo = np.zeros(nlevels, np.int64)
    whisto = np.zeros(wnlevels, np.int64)
    cste = np.float32(0.499999 - qzero / qscale)
    wcste = np.float32(0.499999 - wqzero / wqscale)
    for y in range(h):
        for x in range(w):
            binf = np.float32(np.float32(block[y, x] / qscale) + cste)
            b = int(binf)
            if b >= 0 and b < nlevels and (not weighted or wblock[y, x] < wthresh):
                histo[b] += 1
                if weighted:
                    wb = int(np.float32(np.float32(wblock[y, x] / wqscale) + wcste))
                    if wb >= 0 and wb < wnlevels:
                        whisto[wb] += 1
    mode, sig = _backguess(histo, nlevels, np.float32(mean), qzero, qscale, pearson)
    wmode, wsig = -BIG, -BIG
    if weighted:
        wmode, wsig = _backguess(whisto, wnlevels, np.float32(wmean), wqzero, wqscale, pearson)
    return mode, sig, wmode, wsig


@njit(cache=True, nogil=True)
def _mesh_map(image, wimage, wthresh, weighted, bw, bh, pearson):
    ny_img, nx_img = image.shape
    nx = (nx_img - 1) // bw + 1
    ny = (ny_img - 1) // bh + 1
    back = np.empty((ny, nx), np.float32)
    sigma = np.empty((ny, nx), np.float32)
    wback = np.empty((ny, nx), np.float32)
    wsigma = np.empty((ny, nx), np.float32)
    for j in range(ny):
        for i in range(nx):
            y0, y1 = j * bh, min((j + 1) * bh, ny_img)
            x0, x1 = i * bw, min((i + 1) * bw, nx_img)
            m, s, wm, ws = _mesh_stats(image[y0:y1, x0:x1], wimage[y0:y1, x0:x1] if weighted else image[:1, :1],
                                       wthresh, weighted, pearson)
            back[j, i] = m
            sigma[j, i] = s
            wback[j, i] = wm
            wsigma[j, i] = ws
    return back, sigma, wback, wsigma


def _fqmedian(values: np.ndarray) -> np.float32:
    v = np.sort(np.asarray(values, np.float32).ravel())
    n = v.size
    if n < 2:
        return np.float32(v[0])
    return np.float32(v[n // 2] if n & 1 else float(v[n // 2 - 1] + v[n // 2]) / 2.0)  # the float32 sum, halved


@njit(cache=True, nogil=True)
def _median_f32(v):
    """:func:`_fqmedian` of a float32 vector, compiled (the float32 sum of the middle two, halved
    in double)."""
    v = np.sort(v)
    n = v.size
    if n < 2:
        return v[0]
    if n & 1:
        return v[n // 2]
    return np.float32(np.float64(v[n // 2 - 1] + v[n // 2]) / 2.0)


@njit(cache=True, nogil=True)
def _median_filter(back, sigma, npx, npy, fthresh):
    """filterback()'s conditional median filter over the mesh map (a Python loop of numpy medians
    took seconds on an 8192² frame's 16384 meshes)."""
    ny, nx = back.shape
    back2 = back.copy()
    sigma2 = sigma.copy()
    for py in range(ny):
        ry = min(npy, ny - 1 - py, py)
        for px in range(nx):
            rx = min(npx, nx - 1 - px, px)
            med = _median_f32(back[py - ry:py + ry + 1, px - rx:px + rx + 1].copy().ravel())
            if abs(np.float64(med) - np.float64(back[py, px])) >= fthresh:
                back2[py, px] = med
                sigma2[py, px] = _median_f32(sigma[py - ry:py + ry + 1, px - rx:px + rx + 1].copy().ravel())
    return back2, sigma2


def _filter_meshes(back: np.ndarray, sigma: np.ndarray, fsize: tuple[int, int], fthresh: float):
    """filterback(): fill bad meshes from the nearest good ones, then the conditional median filter."""
    ny, nx = back.shape
    back = back.copy()
    sigma = sigma.copy()
    bad = back <= -BIG
    if bad.any():
        good = np.argwhere(~bad)
        back2 = back.copy()
        for py, px in np.argwhere(bad):
            if good.size == 0:
                back2[py, px], sigma[py, px] = 0.0, 1.0
                continue
            d2 = (good[:, 1] - px).astype(np.float32) ** 2 + (good[:, 0] - py) ** 2
            near = good[d2 == d2.min()]
            back2[py, px] = np.float32(back[near[:, 0], near[:, 1]].sum(dtype=np.float32) / len(near))
            sigma[py, px] = np.float32(sigma[near[:, 0], near[:, 1]].sum(dtype=np.float32) / len(near))
        back = back2
    npx = (fsize[0] if nx > 1 else 1) // 2
    npy = (fsize[1] if ny > 1 else 1) // 2
    back2, sigma2 = _median_filter(np.ascontiguousarray(back, np.float32), np.ascontiguousarray(sigma, np.float32),
                                   npx, npy, float(fthresh))
    backmean = _fqmedian(back2)
    backsig = _fqmedian(sigma2)
    if backsig <= 0.0:
        positive = sigma2[sigma2 > 0.0]
        backsig = _fqmedian(positive) if positive.size else np.float32(1.0)
    return back2, sigma2, float(backmean), float(backsig)


@njit(cache=True, nogil=True)
def _spline_coefficients(nodes):
    """makebackspline(): second derivatives of a natural cubic spline through each column of the
    float32 ``nodes`` (along axis 0), float32 throughout but for the final division by 6.0."""
    n, m = nodes.shape
    d = np.zeros((n, m), np.float32)
    if n < 2:
        return d
    u = np.zeros((n, m), np.float32)
    for c in range(m):
        for y in range(1, n - 1):
            temp = np.float32(-1.0) / (d[y - 1, c] + np.float32(4.0))
            d[y, c] = temp
            curv = nodes[y + 1, c] + nodes[y - 1, c] - np.float32(2.0) * nodes[y, c]
            u[y, c] = temp * (u[y - 1, c] - np.float32(6.0) * curv)
        d[n - 1, c] = 0.0
        for y in range(n - 2, 0, -1):
            d[y, c] = np.float32(np.float64(d[y, c] * d[y + 1, c] + u[y, c]) / 6.0)
    return d


@njit(cache=True, nogil=True)
def _line_spline(row, drow):
    """The second derivatives of a natural spline through one interpolated node row (along x)."""
    n = row.size
    drow[:] = 0.0
    if n < 2:
        return
    u = np.zeros(n, np.float32)
    for x in range(1, n - 1):
        temp = np.float32(-1.0) / (drow[x - 1] + np.float32(4.0))
        drow[x] = temp
        u[x] = temp * (u[x - 1] - np.float32(6.0) * (row[x + 1] + row[x - 1] - np.float32(2.0) * row[x]))
    for x in range(n - 2, 0, -1):
        drow[x] = np.float32(np.float64(drow[x] * drow[x + 1] + u[x]) / 6.0)


@njit(cache=True, nogil=True)
def _x_walk(width, bw, nbx):
    """subbackline()'s walk along x: the left node and the float32 offset of every column."""
    lo = np.empty(width, np.int64)
    dxs = np.empty(width, np.float32)
    xstep = np.float32(1.0 / bw)
    changepoint = bw // 2
    dx = np.float32((xstep - np.float32(1.0)) / np.float32(2.0))
    dx0 = np.float32(np.float32((bw + 1) % 2) * xstep / np.float32(2.0))
    xnode = 0
    i = 0
    node = 0
    for j in range(width):
        if i == changepoint and xnode > 0 and xnode < nbx - 1:
            node += 1
            dx = dx0
        lo[j] = node
        dxs[j] = dx
        if i == bw:
            xnode += 1
            i = 0
        i += 1
        dx = np.float32(dx + xstep)
    return lo, dxs


@njit(cache=True, nogil=True)
def _spline_rows(nodes, y0, out, bw, bh, subtract):
    """Rows [y0, y0 + len(out)) of the full-resolution map interpolated from the mesh ``nodes``
    (subbackline()/backrmsline()): per row, SExtractor's natural spline along y at each node
    column, then a natural spline along x through those values. Written into ``out`` (or
    subtracted from it when ``subtract``). Every row is computed on its own, so a row's value does
    not depend on the block it is asked in."""
    nby, nbx = nodes.shape
    nrows, width = out.shape
    dnodes = _spline_coefficients(nodes)
    lo, dxs = _x_walk(width, bw, nbx)
    one = np.float32(1.0)
    row = np.empty(nbx, np.float32)
    drow = np.zeros(nbx, np.float32)
    for r in range(nrows):
        if nby > 1:
            dy = np.float32(np.float32(y0 + r) / np.float32(bh)) - np.float32(0.5)
            yl = int(dy)  # (int) truncates toward zero
            dy = np.float32(dy - np.float32(yl))
            if yl < 0:
                yl = 0
                dy = np.float32(dy - one)
            if yl >= nby - 1:
                yl = nby - 2
                dy = np.float32(dy + one)
            cdy = np.float32(one - dy)
            dy3 = np.float32(np.float32(dy * dy) * dy) - dy
            cdy3 = np.float32(np.float32(cdy * cdy) * cdy) - cdy
            for c in range(nbx):
                row[c] = (cdy * nodes[yl, c] + dy * nodes[yl + 1, c] + cdy3 * dnodes[yl, c]
                          + dy3 * dnodes[yl + 1, c])
            if nbx > 1:
                _line_spline(row, drow)
        else:  # no spline along y, and none along x either (dnodes is zero): as back.c
            for c in range(nbx):
                row[c] = nodes[0, c]
                drow[c] = dnodes[0, c]
        for j in range(width):
            if nbx == 1:
                v = row[0]
            elif bw == 1:
                v = row[j]
            else:
                k = lo[j]
                dx = dxs[j]
                cdx = np.float32(one - dx)
                v = (cdx * (row[k] + (cdx * cdx - one) * drow[k])
                     + dx * (row[k + 1] + (dx * dx - one) * drow[k + 1]))
            if subtract:
                out[r, j] -= v
            else:
                out[r, j] = v


@dataclasses.dataclass
class SExBackground:
    """The mesh maps and what SExtractor derives from them."""

    back: np.ndarray        #: mode per mesh (after filtering), float32 (ny_mesh, nx_mesh)
    sigma: np.ndarray       #: σ per mesh (after filtering)
    backmean: float         #: median of the mesh modes
    backsig: float          #: median of the mesh σ: the global rms the RELATIVE thresholds use
    bw: int
    bh: int
    shape: tuple[int, int]
    #: with an external variance map: its mode per mesh (after filtering), for the weight scaling
    var_back: np.ndarray | None = None

    def level(self) -> np.ndarray:
        """The full-resolution background (CHECKIMAGE_TYPE BACKGROUND)."""
        return self.level_rows(0, self.shape[0])

    def level_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows [y0, y1) of :meth:`level`, the same bits, computed for those rows only."""
        return self._rows(self.back, y0, y1)

    def rms(self) -> np.ndarray:
        """The full-resolution background rms (CHECKIMAGE_TYPE BACKGROUND_RMS)."""
        return self.rms_rows(0, self.shape[0])

    def rms_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows [y0, y1) of :meth:`rms`, the same bits, computed for those rows only."""
        return self._rows(self.sigma, y0, y1)

    def subtract_from(self, image: np.ndarray) -> None:
        """``image -= level()`` in place, row by row (the map is never held)."""
        self.subtract_rows(image, 0)

    def subtract_rows(self, block: np.ndarray, y0: int) -> None:
        """``block -= level()[y0:y0 + len(block)]`` in place, for a strip of the frame's rows."""
        if block.ndim != 2 or block.shape[1] != self.shape[1] or not 0 <= y0 <= self.shape[0] - block.shape[0]:
            raise ValueError(f"rows [{y0}, {y0 + len(block)}) of width {block.shape[-1]} are not inside a "
                             f"background of shape {self.shape}")
        _spline_rows(np.ascontiguousarray(self.back, np.float32), int(y0), block, self.bw, self.bh, True)

    def _rows(self, nodes: np.ndarray, y0: int, y1: int) -> np.ndarray:
        if not 0 <= y0 <= y1 <= self.shape[0]:
            raise ValueError(f"rows [{y0}, {y1}) are not inside a background of shape {self.shape}")
        out = np.empty((y1 - y0, self.shape[1]), np.float32)
        _spline_rows(np.ascontiguousarray(nodes, np.float32), int(y0), out, self.bw, self.bh, False)
        return out

    def at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """back(): bilinear interpolation between mesh centres at integer pixels (the BACKGROUND column)."""
        nby, nbx = self.back.shape
        b = self.back
        dx = np.asarray(x, np.float64) / self.bw - 0.5
        dy = np.asarray(y, np.float64) / self.bh - 0.5
        xl = np.trunc(dx).astype(np.int64)
        yl = np.trunc(dy).astype(np.int64)
        dx = dx - xl
        dy = dy - yl
        for pos, d, nb in ((xl, dx, nbx), (yl, dy, nby)):
            low = pos < 0
            pos[low] = 0
            d[low] -= 1.0
            high = pos >= nb - 1
            pos[high] = 0 if nb < 2 else nb - 2
            d[high] += 1.0
        xh = np.minimum(xl + 1, nbx - 1)
        yh = np.minimum(yl + 1, nby - 1)
        b0, b1, b2, b3 = b[yl, xl], b[yl, xh], b[yh, xh], b[yh, xl]
        cdx = 1 - dx
        return ((1 - dy) * (cdx * b0 + dx * b1) + dy * (dx * b2 + cdx * b3)).astype(np.float32)


def sextractor_background(image: np.ndarray, back_size=(64, 64), filter_size=(3, 3), filter_thresh: float = 0.0,
                          pearson: float = 2.5, var: np.ndarray | None = None, wthresh: float = BIG) -> SExBackground:
    """The background of ``image`` (float32; NaN/masked pixels as NaN) as SExtractor makes it.

    ``var``: an external variance map (MAP_RMS/VAR/WEIGHT read as variance, unscaled): pixels at or
    above ``wthresh`` are left out of the statistics and the map's own mesh modes are kept in
    ``var_back``. Images wider than ~16000 px make SExtractor sample every other line of each mesh
    row for its first statistics (BACK_BUFSIZE); this follows the exhaustive path for every size.
    This is :func:`sextractor_background_rows` slicing ``image`` (no whole-frame copy).
    """
    if not hasattr(image, "shape"):
        image = np.asarray(image, np.float32)
    if var is not None and not hasattr(var, "shape"):
        var = np.asarray(var, np.float32)
    return sextractor_background_rows(lambda y0, y1: image[y0:y1], image.shape, back_size, filter_size,
                                      filter_thresh, pearson, None if var is None else (lambda y0, y1: var[y0:y1]),
                                      wthresh)


def sextractor_background_rows(read_rows, shape: tuple[int, int], back_size=(64, 64), filter_size=(3, 3),
                               filter_thresh: float = 0.0, pearson: float = 2.5, read_var_rows=None,
                               wthresh: float = BIG) -> SExBackground:
    """:func:`sextractor_background` of a frame read one band of meshes at a time.

    ``read_rows(y0, y1)`` gives the image rows [y0, y1) (float32, NaN = no data); ``read_var_rows``
    the variance map's, or None. Each band (BACK_SIZE rows; the last one shorter) is read once and
    dropped after its mesh statistics, so only the mesh maps outlive it: the whole frame is never
    held. The result is the same, bit for bit, as the whole-frame function's.
    """
    ny, nx = (int(n) for n in shape)
    bw = min(int(back_size[0]), nx)
    bh = min(int(back_size[1]), ny)
    nby, nbx = (ny - 1) // bh + 1, (nx - 1) // bw + 1
    weighted = read_var_rows is not None
    maps = [np.empty((nby, nbx), np.float32) for _ in range(4)]  # back, sigma, wback, wsigma

    def collect(j, future):
        for m, band_map in zip(maps, future.result()):
            m[j] = band_map[0]

    # the bands' statistics (compiled, without the GIL) run two at a time while the next is read
    with ThreadPoolExecutor(2) as pool:
        running = []
        for j in range(nby):
            y0, y1 = j * bh, min((j + 1) * bh, ny)
            band = _band(read_rows, y0, y1, nx, "image")
            if not np.isfinite(band).all():  # no-data pixels take no part in the mesh statistics
                band = np.where(np.isfinite(band), band, np.float32(-BIG))
            wband = _band(read_var_rows, y0, y1, nx, "variance map") if weighted else band[:1, :1]
            running.append((j, pool.submit(_mesh_map, band, wband, np.float32(wthresh), weighted, bw, bh,
                                           float(pearson))))
            del band, wband
            if len(running) > 2:
                collect(*running.pop(0))
        for item in running:
            collect(*item)
    back, sigma, wback, wsigma = maps
    fsize = (int(filter_size[0]), int(filter_size[1]))
    back, sigma, backmean, backsig = _filter_meshes(back, sigma, fsize, float(filter_thresh))
    var_back = _filter_meshes(wback, wsigma, fsize, float(filter_thresh))[0] if weighted else None
    return SExBackground(back=back, sigma=sigma, backmean=backmean, backsig=backsig, bw=bw, bh=bh, shape=(ny, nx),
                         var_back=var_back)


def _band(read_rows, y0: int, y1: int, nx: int, what: str) -> np.ndarray:
    band = np.asarray(read_rows(y0, y1), np.float32)
    if band.shape != (y1 - y0, nx):
        raise ValueError(f"the {what}'s rows [{y0}, {y1}) came back with shape {band.shape}, not {(y1 - y0, nx)}")
    return band
