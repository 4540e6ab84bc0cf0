"""SExtractor's aperture and Kron photometry (``photom.c``), compiled.

Both follow SExtractor to the rounding: circular apertures sample boundary pixels on a 5×5 grid
(APER_OVERSAMP), not photutils' exact overlap, and the Kron ellipse takes whole pixels. Pixels of
*other* detections are masked and, with MASK_TYPE CORRECT, replaced by the pixel mirrored through
the object's centre (SExtractor's "blanking"), so photutils' apertures, which have no such mask,
cannot reproduce these fluxes.

Every kernel takes the frame rows [fy0, fy1) SExtractor holds when it measures the object (its
strip buffer): ``sub``, ``seg`` and a weight map's ``wvar`` hold just those rows (frame row ``y``
is array row ``y - fy0``; the full width), and nothing outside them is read. Coordinates stay the
frame's.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

APER_OVERSAMP = 5
KRON_NSIG = 6.0
CROWD_THRESHOLD = 0.1
OBJ_CROWDED = 1
OBJ_APERT_PB = 16


@njit(cache=True, nogil=True)
def _clamp_box(xmin, xmax, ymin, ymax, w, fy0, fy1):
    """A pixel box clamped to the frame's columns and the rows in memory, with OBJ_APERT_PB when
    it had to be (SExtractor's aperture truncation flag)."""
    flag = 0
    if xmin < 0:
        xmin = 0
        flag |= OBJ_APERT_PB
    if xmax > w:
        xmax = w
        flag |= OBJ_APERT_PB
    if ymin < fy0:
        ymin = fy0
        flag |= OBJ_APERT_PB
    if ymax > fy1:
        ymax = fy1
        flag |= OBJ_APERT_PB
    return xmin, xmax, ymin, ymax, flag


@njit(cache=True, nogil=True)
def subpixel_areas(scale2, oversamp):
    """The area of n sub-pixels for n = 0 … ``oversamp``²: ``scale2`` added n times in float32, as
    SExtractor's loop adds it, so :func:`_subpixel_area` may count and look the sum up."""
    areas = np.empty(oversamp * oversamp + 1, np.float32)
    acc = np.float32(0.0)
    areas[0] = acc
    for n in range(1, oversamp * oversamp + 1):
        acc += scale2
        areas[n] = acc
    return areas


@njit(cache=True, nogil=True)
def _subpixel_area(dx, dy, offset, scale, raper2, oversamp, areas, dx2):
    """The part of a border pixel inside the aperture of squared radius ``raper2``, counted on an
    ``oversamp``² grid of sub-pixels (SExtractor's float32 arithmetic, for FLUX_APER and XWIN).

    SExtractor adds the sub-pixel area once per sub-pixel inside, a chain of dependent float32
    additions; counting them and taking the sum from ``areas`` (:func:`subpixel_areas`) gives the
    same bits. The sub-pixel columns, and so their dx² (kept in the scratch ``dx2``), are the same
    in every sub-row; a sub-row whose smallest dx² is outside has none inside, one whose largest is
    inside has all (a float32 sum grows with either term)."""
    dx += offset
    dy += offset
    dx1 = dx
    lo = hi = dx1 * dx1
    for k in range(oversamp):
        d = dx1 * dx1
        dx2[k] = d
        if d < lo:
            lo = d
        if d > hi:
            hi = d
        dx1 += scale
    n = 0
    for _sy in range(oversamp):
        dy2 = dy * dy
        if lo + dy2 < raper2:
            if hi + dy2 < raper2:
                n += oversamp
            else:
                for k in range(oversamp):
                    if dx2[k] + dy2 < raper2:
                        n += 1
        dy += scale
    return areas[n]


@njit(cache=True, nogil=True)
def _masked(seg, own, row, x):
    """Whether another object's pixel: ``row`` is the strip's row (frame row - fy0)."""
    s = seg[row, x]
    return s != 0 and s != own


@njit(cache=True, nogil=True)
def _mirror(sub, seg, own, mx, my, x, y, correct, fy0, fy1):
    """The mirror pixel SExtractor uses for a masked one (MASK_TYPE CORRECT): its strip row and
    column (y2 - fy0, x2), or (-1, -1) when there is none (BLANK, off the frame or the strip,
    masked, no data) and the pixel counts as 0."""
    w = sub.shape[1]
    if correct:
        x2 = int(2 * mx + 0.49999 - x)
        y2 = int(2 * my + 0.49999 - y)
        if x2 >= 0 and x2 < w and y2 >= fy0 and y2 < fy1 and not _masked(seg, own, y2 - fy0, x2) \
                and not math.isnan(sub[y2 - fy0, x2]):
            return y2 - fy0, x2
    return -1, -1


@njit(cache=True, nogil=True)
def _corrected(sub, seg, own, mx, my, x, y, correct, fy0, fy1):
    """The value SExtractor uses at a masked pixel: the mirror pixel (MASK_TYPE CORRECT) or 0."""
    r2, x2 = _mirror(sub, seg, own, mx, my, x, y, correct, fy0, fy1)
    return float(sub[r2, x2]) if r2 >= 0 else 0.0


@njit(cache=True, nogil=True)
def _pixel(sub, seg, own, mx, my, x, y, correct, fy0, fy1, var, wvar):
    """(value, variance, masked) of one pixel for the photometry: a masked or low-weight (NaN)
    pixel takes its mirror's value and, with a weight map, its mirror's variance (0 without one)."""
    row = y - fy0
    pix = float(sub[row, x])
    weighted = wvar.shape[0] > 0
    pvar = float(wvar[row, x]) if weighted else var
    if _masked(seg, own, row, x) or math.isnan(pix):
        r2, x2 = _mirror(sub, seg, own, mx, my, x, y, correct, fy0, fy1)
        if r2 >= 0:
            pix = float(sub[r2, x2])
            if weighted:
                pvar = float(wvar[r2, x2])
        else:
            pix = 0.0
            if weighted:
                pvar = 0.0
        return pix, pvar, True
    return pix, pvar, False


@njit(cache=True, nogil=True)
def aperture_flux(sub, seg, own, mxd, myd, diameter, var, gain, correct, fy0, fy1, wvar, gainflag):
    """computeaperflux(): (flux, error, flag) in a circle of ``diameter`` px around (mx, my) (0-based).

    ``var``: the background variance; ``wvar``: the weight map's variance per pixel (an empty
    array without one); ``gainflag`` (WEIGHT_GAIN): the photon noise scaled by each pixel's variance."""
    w = sub.shape[1]
    mx = np.float32(mxd)
    my = np.float32(myd)
    raper = np.float32(diameter / 2.0)
    raper2 = raper * raper
    rintlim = raper - np.float32(0.75)
    rintlim2 = rintlim * rintlim if rintlim > 0.0 else np.float32(0.0)
    rextlim2 = (raper + np.float32(0.75)) * (raper + np.float32(0.75))
    scale = np.float32(1.0 / APER_OVERSAMP)
    scale2 = scale * scale
    offset = np.float32(0.5 * (scale - 1.0))
    areas = subpixel_areas(scale2, APER_OVERSAMP)
    dx2 = np.empty(APER_OVERSAMP, np.float32)
    xmin = int(mx - raper + np.float32(0.499999))
    xmax = int(mx + raper + np.float32(1.499999))
    ymin = int(my - raper + np.float32(0.499999))
    ymax = int(my + raper + np.float32(1.499999))
    flag = 0
    xmin, xmax, ymin, ymax, clipped = _clamp_box(xmin, xmax, ymin, ymax, w, fy0, fy1)
    flag |= clipped
    tv = 0.0
    area = 0.0
    sigtv = 0.0
    for y in range(ymin, ymax):
        for x in range(xmin, xmax):
            dx = np.float32(x) - mx
            dy = np.float32(y) - my
            r2 = dx * dx + dy * dy
            if r2 < rextlim2:
                if r2 > rintlim2:
                    locarea = _subpixel_area(dx, dy, offset, scale, raper2, APER_OVERSAMP, areas, dx2)
                else:
                    locarea = np.float32(1.0)
                area += locarea
                pix, pvar, _m = _pixel(sub, seg, own, np.float64(mx), np.float64(my), x, y, correct, fy0, fy1,
                                       var, wvar)
                sigtv += pvar * locarea
                tv += locarea * pix
                if gainflag and pix > 0.0 and gain > 0.0:
                    sigtv += pix / gain * pvar / var
    if not gainflag and gain > 0.0 and tv > 0.0:
        sigtv += tv / gain
    return tv, math.sqrt(sigtv), flag


@njit(cache=True, nogil=True)
def _ellipse_box(cxx, cyy, cxy, factor):
    dxlim = cxx - cxy * cxy / (np.float32(4.0) * cyy)
    dxlim = factor / np.float32(math.sqrt(dxlim)) if dxlim > 0.0 else np.float32(0.0)
    dylim = cyy - cxy * cxy / (np.float32(4.0) * cxx)
    dylim = factor / np.float32(math.sqrt(dylim)) if dylim > 0.0 else np.float32(0.0)
    return dxlim, dylim


@njit(cache=True, nogil=True)
def _clip_box(mx, my, dxlim, dylim, fy0, fy1, w):
    flag = 0
    xmin = int(math.floor(mx - dxlim + 0.5))
    xmax = int(math.floor(mx + dxlim + 0.5)) + 1
    ymin = int(math.floor(my - dylim + 0.5))
    ymax = int(math.floor(my + dylim + 0.5)) + 1
    xmin, xmax, ymin, ymax, clipped = _clamp_box(xmin, xmax, ymin, ymax, w, fy0, fy1)
    flag |= clipped
    return xmin, xmax, ymin, ymax, flag


@njit(cache=True, nogil=True)
def auto_flux(sub, seg, own, mxd, myd, a, b, cxx_, cyy_, cxy_, kron_fact, min_radius, aper_est, aper_meas,
              var, gain, correct, fy0, fy1, wvar, gainflag):
    """computeautoflux(): (flux, error, kron_radius, flag) in the Kron ellipse (0-based centre)."""
    w = sub.shape[1]
    mx = np.float32(mxd)
    my = np.float32(myd)
    a = np.float32(a)
    b = np.float32(b)
    flag = 0
    if KRON_NSIG * math.sqrt(a * b) > aper_est / 2.0:
        cx2, cy2, cxy = np.float32(cxx_), np.float32(cyy_), np.float32(cxy_)
        dxlim, dylim = _ellipse_box(cx2, cy2, cxy, np.float32(KRON_NSIG))
        klim2 = np.float32(KRON_NSIG * KRON_NSIG)
    else:
        cx2, cy2, cxy = np.float32(1.0), np.float32(1.0), np.float32(0.0)
        dxlim = dylim = np.float32(aper_est / 2.0)
        klim2 = dxlim * dxlim
    xmin, xmax, ymin, ymax, f = _clip_box(mx, my, dxlim, dylim, fy0, fy1, w)
    flag |= f
    r1 = 0.0
    v1 = 0.0
    area = 0
    areab = 0
    for y in range(ymin, ymax):
        for x in range(xmin, xmax):
            dx = np.float32(x) - mx
            dy = np.float32(y) - my
            r2 = cx2 * dx * dx + cy2 * dy * dy + cxy * dx * dy
            if r2 <= klim2:
                pix = sub[y - fy0, x]
                if not _masked(seg, own, y - fy0, x) and not math.isnan(pix):
                    area += 1
                    r1 += math.sqrt(r2) * pix
                    v1 += pix
                else:
                    areab += 1
    area += areab
    if area == 0:
        return 0.0, 0.0, 0.0, flag
    if r1 > 0.0 and v1 > 0.0:
        kron = kron_fact * r1 / v1
        if kron < min_radius:
            kron = min_radius
    else:
        kron = min_radius
    kron = np.float32(kron)
    if np.float32(areab) / area > CROWD_THRESHOLD:
        flag |= OBJ_CROWDED
    if kron * math.sqrt(a * b) > aper_meas / 2.0:
        cx2, cy2, cxy = np.float32(cxx_), np.float32(cyy_), np.float32(cxy_)
        dxlim, dylim = _ellipse_box(cx2, cy2, cxy, kron)
        klim2 = kron * kron
    else:
        cx2, cy2, cxy = np.float32(1.0), np.float32(1.0), np.float32(0.0)
        dxlim = dylim = np.float32(aper_meas / 2.0)
        klim2 = dxlim * dxlim
        kron = np.float32(0.0)
    xmin, xmax, ymin, ymax, f = _clip_box(mx, my, dxlim, dylim, fy0, fy1, w)
    flag |= f
    area = 0
    areab = 0
    tv = 0.0
    sigtv = 0.0
    for y in range(ymin, ymax):
        for x in range(xmin, xmax):
            dx = np.float32(x) - mx
            dy = np.float32(y) - my
            if cx2 * dx * dx + cy2 * dy * dy + cxy * dx * dy <= klim2:
                area += 1
                pix, pvar, masked = _pixel(sub, seg, own, np.float64(mx), np.float64(my), x, y, correct, fy0, fy1,
                                           var, wvar)
                if masked:
                    areab += 1
                sigtv += pvar
                tv += pix
                if gainflag and pix > 0.0 and gain > 0.0:
                    sigtv += pix / gain * pvar / var
    if np.float32(areab) > CROWD_THRESHOLD * area:
        flag |= OBJ_CROWDED
    if not gainflag and gain > 0.0 and tv > 0.0:
        sigtv += tv / gain
    if tv <= 0.0:
        kron = np.float32(0.0)
    return tv, math.sqrt(sigtv), float(kron), flag
