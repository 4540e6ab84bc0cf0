"""SExtractor's growth curve (FLUX_RADIUS, ``growth.c``) and windowed centroid (XWIN/YWIN, ``winpos.c``).

The growth curve bins the light in 64 rings out to 6·A_IMAGE, oversampling 5×5 the pixels near a
ring boundary; FLUX_RADIUS interpolates it at PHOT_FLUXFRAC × FLUX_AUTO. The windowed centroid
iterates a Gaussian-weighted barycentre (σ from the half-light radius, 11×11 oversampling at the
window's edge). Neighbours are masked as for the apertures, and ``sub``/``seg`` hold only the
object's strip rows [fy0, fy1) (see ``photometry``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .photometry import _clamp_box, _corrected, _masked, _subpixel_area, subpixel_areas

GROWTH_NSTEP = 64
GROWTH_OVERSAMP = 5
GROWTH_NSIG = 6.0
GROWTH_MINHLRAD = 0.5
WINPOS_NITERMAX = 16
WINPOS_NSIG = 4.0
WINPOS_OVERSAMP = 11
WINPOS_STEPMIN = 0.0001
WINPOS_FAC = 2.0


@njit(cache=True, nogil=True)
def _radius(growth, step, rlim, tv):
    n = GROWTH_NSTEP - 1
    i = 0
    while i < n and growth[i] < tv:
        i += 1
    if i:
        dg = growth[i] - growth[i - 1]
        r = step * (i + (tv - growth[i - 1]) / dg if dg != 0.0 else i)
    else:
        r = step * (tv / growth[0] if growth[0] != 0.0 else 0.0)
    return min(r, rlim)


@njit(cache=True, nogil=True)
def growth_radii(sub, seg, own, mx, my, a, autoaper0, flux_auto, fracs, correct, fy0, fy1):
    """makeavergrowth(): (FLUX_RADIUS per fraction, the half-light radius, flag).

    Only the order of the additions into each ring fixes the bits, so what does not add is skipped:
    pixels whose every sub-pixel lies beyond the last ring, and the sub-pixel columns' dx², the
    same in each sub-row, are computed once per pixel."""
    w = sub.shape[1]
    flag = 0
    growth = np.zeros(GROWTH_NSTEP)
    rlim = GROWTH_NSIG * a
    if rlim < autoaper0:
        rlim = autoaper0
    raper = rlim + 1.5
    rextlim2 = raper * raper
    stepdens = GROWTH_NSTEP / rlim
    step = 1 / stepdens
    prevbinmargin = 0.75
    nextbinmargin = step - 0.75
    scale = 1.0 / GROWTH_OVERSAMP
    scale2 = scale * scale
    offset = 0.5 * (scale - 1.0)
    # a pixel's sub-pixels lie within 0.4·√2 < 0.6 of its centre: beyond rlim + 0.6 none is in a ring
    # (the margin dwarfs the rounding of r · stepdens)
    rskip2 = (rlim + 0.6) * (rlim + 0.6)
    dx2 = np.empty(GROWTH_OVERSAMP)
    xmin = int(mx - raper + 0.499999)
    xmax = int(mx + raper + 1.499999)
    ymin = int(my - raper + 0.499999)
    ymax = int(my + raper + 1.499999)
    xmin, xmax, ymin, ymax, clipped = _clamp_box(xmin, xmax, ymin, ymax, w, fy0, fy1)
    flag |= clipped
    for y in range(ymin, ymax):
        for x in range(xmin, xmax):
            dx = x - mx
            dy = y - my
            r2 = dx * dx + dy * dy
            if r2 < rextlim2 and r2 <= rskip2:
                pix = float(sub[y - fy0, x])
                if _masked(seg, own, y - fy0, x) or math.isnan(pix):
                    pix = _corrected(sub, seg, own, mx, my, x, y, correct, fy0, fy1)
                r = math.sqrt(r2)
                d = r - step * math.floor(r / step)  # fmod for r >= 0
                if d < prevbinmargin or d > nextbinmargin:
                    dx1 = dx + offset
                    for k in range(GROWTH_OVERSAMP):
                        dx2[k] = dx1 * dx1
                        dx1 += scale
                    dy += offset
                    v = scale2 * pix
                    for _sy in range(GROWTH_OVERSAMP):
                        dy2 = dy * dy
                        for k in range(GROWTH_OVERSAMP):
                            j = int(math.sqrt(dx2[k] + dy2) * stepdens)
                            if j < GROWTH_NSTEP:
                                growth[j] += v
                        dy += scale
                else:
                    j = int(r * stepdens)
                    if j < GROWTH_NSTEP:
                        growth[j] += pix
    total = 0.0
    for i in range(GROWTH_NSTEP):
        growth[i] += total
        total = growth[i]
    radii = np.empty(len(fracs))
    for k in range(len(fracs)):
        radii[k] = _radius(growth, step, rlim, fracs[k] * flux_auto)
    hl = abs(_radius(growth, step, rlim, 0.5 * flux_auto))
    if hl < GROWTH_MINHLRAD:
        hl = GROWTH_MINHLRAD
    return radii, hl, flag


@njit(cache=True, nogil=True)
def windowed_position(sub, seg, own, posx, posy, hl_radius, cxx, cyy, cxy, correct, fy0, fy1):
    """compute_winpos(): (XWIN, YWIN) 1-based, and the flag; back to (posx, posy) where SExtractor
    reverts (no flux, negative moments, or a shift outside the isophotal 1σ ellipse)."""
    w = sub.shape[1]
    flag = 0
    sig = np.float32(hl_radius * 2.0 / 2.35)
    # a zero half-light radius: C's 1/0 is infinite (and the window empty), Python's would raise
    invtwosig2 = np.float32(1.0 / (2.0 * sig * sig)) if sig > 0.0 else np.float32(np.inf)
    raper = np.float32(WINPOS_NSIG * sig)
    raper2 = raper * raper
    rintlim = raper - np.float32(0.75)
    rintlim2 = rintlim * rintlim if rintlim > 0.0 else np.float32(0.0)
    rextlim2 = (raper + np.float32(0.75)) * (raper + np.float32(0.75))
    scale = np.float32(1.0 / WINPOS_OVERSAMP)
    scale2 = scale * scale
    offset = np.float32(0.5 * (scale - 1.0))
    areas = subpixel_areas(scale2, WINPOS_OVERSAMP)
    dx2 = np.empty(WINPOS_OVERSAMP, np.float32)
    mx = posx - 1.0
    my = posy - 1.0
    for _i in range(WINPOS_NITERMAX):
        xmin = int(mx - raper + 0.499999)
        xmax = int(mx + raper + 1.499999)
        ymin = int(my - raper + 0.499999)
        ymax = int(my + raper + 1.499999)
        xmin, xmax, ymin, ymax, clipped = _clamp_box(xmin, xmax, ymin, ymax, w, fy0, fy1)
        flag |= clipped
        tv = 0.0
        dxpos = 0.0
        dypos = 0.0
        mx2 = 0.0
        my2 = 0.0
        mxy = 0.0
        for y in range(ymin, ymax):
            for x in range(xmin, xmax):
                dx = np.float32(x - mx)
                dy = np.float32(y - my)
                r2 = dx * dx + dy * dy
                if r2 < rextlim2:
                    if r2 > rintlim2:
                        locarea = _subpixel_area(dx, dy, offset, scale, raper2, WINPOS_OVERSAMP, areas, dx2)
                    else:
                        locarea = np.float32(1.0)
                    locarea *= np.float32(math.exp(-r2 * invtwosig2))
                    pix = float(sub[y - fy0, x])
                    if _masked(seg, own, y - fy0, x) or math.isnan(pix):
                        pix = _corrected(sub, seg, own, mx, my, x, y, correct, fy0, fy1)
                    locpix = locarea * pix
                    tv += locpix
                    ddx = np.float32(x - mx)
                    ddy = np.float32(y - my)
                    dxpos += locpix * ddx
                    dypos += locpix * ddy
                    mx2 += locpix * ddx * ddx
                    my2 += locpix * ddy * ddy
                    mxy += locpix * ddx * ddy
        if tv > 0.0:
            dxpos /= tv
            dypos /= tv
            mx += dxpos * WINPOS_FAC
            my += dypos * WINPOS_FAC
        else:
            break
        if dxpos * dxpos + dypos * dypos < WINPOS_STEPMIN * WINPOS_STEPMIN:
            break
    if not tv > 0.0:  # no flux in the window: SExtractor keeps the isophotal position
        return posx, posy, flag
    mx2 = mx2 / tv - dxpos * dxpos
    my2 = my2 / tv - dypos * dypos
    mxy = mxy / tv - dxpos * dypos
    dx = np.float32(mx + 1.0 - posx)
    dy = np.float32(my + 1.0 - posy)
    cx2, cy2, cxy2 = np.float32(cxx), np.float32(cyy), np.float32(cxy)
    outside = dx * dx > 1.0 and dy * dy > 1.0 and (cx2 * dx * dx + cy2 * dy * dy + cxy2 * dx * dy) > 1.0
    if outside or not tv > 0.0 or mx2 < 0.0 or my2 < 0.0 or mx2 * my2 - mxy * mxy < 0.0:
        return posx, posy, flag
    return mx + 1.0, my + 1.0, flag
