"""SExtractor's background map, computed as SExtractor 2.25 computes it (``back.c``).

Per BACK_SIZE mesh: mean and σ, one 2σ clip around the mean, a histogram of the clipped range
(±5σ, bins chosen from the pixel count), then the mode 2.5·median − 1.5·mean of a 3σ-clipped
histogram (the median alone when the distribution is skewed). Meshes with fewer than half their
pixels valid are filled from the nearest valid ones; the mesh map is median-filtered over
BACK_FILTERSIZE meshes where the change exceeds BACK_FILTTHRESH, and interpolated with SExtractor's
natural bicubic spline. The float32/float64 mix of the C code is kept so the maps agree to
rounding, not only in distribution.
"""
from __future__ import annotations

import dataclasses
import math

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


def _spline_coefficients(nodes: np.ndarray) -> np.ndarray:
    """Second derivatives of a natural cubic spline through ``nodes`` along axis 0 (makebackspline)."""
    n = nodes.shape[0]
    d = np.zeros_like(nodes, dtype=np.float32)
    if n < 2:
        return d
    u = np.zeros((max(n - 1, 1),) + nodes.shape[1:], np.float32)
    for y in range(1, n - 1):
        temp = np.float32(-1) / (d[y - 1] + np.float32(4))
        d[y] = temp
        u[y] = temp * (u[y - 1] - 6 * (nodes[y + 1] + nodes[y - 1] - 2 * nodes[y]))
    d[n - 1] = 0.0
    for y in range(n - 2, 0, -1):
        d[y] = ((d[y] * d[y + 1] + u[y]).astype(np.float64) / 6.0).astype(np.float32)  # C divides by 6.0 in double
    return d


def _interpolate(nodes: np.ndarray, dnodes: np.ndarray, shape: tuple[int, int], bw: int, bh: int) -> np.ndarray:
    """The full-resolution map of subbackline()/backrmsline()."""
    out = np.empty(shape, np.float32)
    for y0, y1, block in _interpolated_rows(nodes, dnodes, shape, bw, bh):
        out[y0:y1] = block
    return out


def _interpolated_rows(nodes: np.ndarray, dnodes: np.ndarray, shape: tuple[int, int], bw: int, bh: int,
                       block_bytes: int = 4 << 20):
    """The map of :func:`_interpolate` as ``(y0, y1, rows)`` blocks of ~``block_bytes``: spline
    along y at each node column, then a natural spline along x through the interpolated nodes.
    Each pixel's arithmetic is the same whatever the block; only the full-width temporaries stay
    small (a whole-frame expression held ~8 frames at once)."""
    height, width = shape
    nby, nbx = nodes.shape
    step = max(1, block_bytes // max(1, 4 * width))
    # along y: per image row, the interpolated node row
    if nby > 1:
        y = np.arange(height, dtype=np.float32)
        dy = y / np.float32(bh) - np.float32(0.5)
        yl = dy.astype(np.int64)  # (int) truncates toward zero
        dy = (dy - yl.astype(np.float32)).astype(np.float32)  # float32 throughout, as subbackline()
        low = yl < 0
        yl[low] = 0
        dy[low] -= 1.0
        high = yl >= nby - 1
        yl[high] = 0 if nby < 2 else nby - 2
        dy[high] += 1.0
        cdy = 1 - dy
        dy3 = dy * dy * dy - dy
        cdy3 = cdy * cdy * cdy - cdy
        rows = (cdy[:, None] * nodes[yl] + dy[:, None] * nodes[yl + 1] + cdy3[:, None] * dnodes[yl]
                + dy3[:, None] * dnodes[yl + 1]).astype(np.float32)
        drows = _spline_coefficients(rows.T).T if nbx > 1 else np.zeros_like(rows)
    else:
        rows = np.repeat(nodes, height, axis=0)
        drows = np.repeat(dnodes, height, axis=0)
    if nbx == 1 or bw == 1:
        for y0 in range(0, height, step):
            y1 = min(height, y0 + step)
            yield y0, y1, np.broadcast_to(rows[y0:y1, :1] if nbx == 1 else rows[y0:y1, :width], (y1 - y0, width))
        return
    # along x: the same node index and dx for every row (subbackline's walk)
    xstep = np.float32(1.0 / bw)
    changepoint = bw // 2
    dx = np.float32((xstep - 1) / 2)
    dx0 = np.float32(((bw + 1) % 2) * xstep / 2)
    lo = np.empty(width, np.int64)
    dxs = np.empty(width, np.float32)
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
    cdx = 1 - dxs
    cdx3, dxs3 = cdx * cdx - 1, dxs * dxs - 1
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        yield y0, y1, (cdx * (rows[y0:y1, lo] + cdx3 * drows[y0:y1, lo])
                       + dxs * (rows[y0:y1, lo + 1] + dxs3 * drows[y0:y1, lo + 1]))


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
        return _interpolate(self.back, _spline_coefficients(self.back), self.shape, self.bw, self.bh)

    def subtract_from(self, image: np.ndarray) -> None:
        """``image -= level()`` in place, a block of rows at a time (the map is never held whole)."""
        for y0, y1, block in _interpolated_rows(self.back, _spline_coefficients(self.back), self.shape, self.bw,
                                                self.bh):
            image[y0:y1] -= block

    def rms(self) -> np.ndarray:
        """The full-resolution background rms (CHECKIMAGE_TYPE BACKGROUND_RMS)."""
        return _interpolate(self.sigma, _spline_coefficients(self.sigma), self.shape, self.bw, self.bh)

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
    """
    img = np.asarray(image, dtype=np.float32)
    if not np.isfinite(img).all():  # no-data pixels take no part in the mesh statistics
        img = np.where(np.isfinite(img), img, np.float32(-BIG))
    ny, nx = img.shape
    bw = min(int(back_size[0]), nx)
    bh = min(int(back_size[1]), ny)
    weighted = var is not None
    wimg = np.asarray(var, np.float32) if weighted else img[:1, :1]
    back, sigma, wback, wsigma = _mesh_map(img, wimg, np.float32(wthresh), weighted, bw, bh, float(pearson))
    fsize = (int(filter_size[0]), int(filter_size[1]))
    back, sigma, backmean, backsig = _filter_meshes(back, sigma, fsize, float(filter_thresh))
    var_back = _filter_meshes(wback, wsigma, fsize, float(filter_thresh))[0] if weighted else None
    return SExBackground(back=back, sigma=sigma, backmean=backmean, backsig=backsig, bw=bw, bh=bh, shape=(ny, nx),
                         var_back=var_back)
