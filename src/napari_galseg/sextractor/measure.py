"""The photometry of many objects at once: FLUX_APER, FLUX_AUTO, FLUX_RADIUS and XWIN/YWIN.

One compiled loop measures a block of objects with the per-object kernels (``photometry``,
``growth``) and releases the GIL, so blocks run side by side in threads. Each object still sees
only its own strip, the frame rows [fy0, fy1) SExtractor holds when it measures it, so the
results are the per-object calls', bit for bit; the caller holds just the rows that cover the
strips of the objects it measures, not the frame.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from .growth import growth_radii, windowed_position
from .photometry import aperture_flux, auto_flux

#: the steps a run needs (SExtractor only sets the flags of the steps it runs)
STEP_APER, STEP_AUTO, STEP_GROWTH, STEP_WINPOS = 1, 2, 4, 8


@dataclasses.dataclass(frozen=True)
class PhotSettings:
    """The photometry's settings: PHOT_APERTURES, PHOT_FLUXFRAC, PHOT_AUTOPARAMS, PHOT_AUTOAPERS,
    the background variance, GAIN, MASK_TYPE CORRECT, WEIGHT_GAIN and the steps to run."""

    apertures: tuple[float, ...]
    fluxfrac: tuple[float, ...]
    autoparams: tuple[float, float]
    autoapers: tuple[float, float]
    var: float
    gain: float
    correct: bool
    gainflag: bool
    steps: int


@dataclasses.dataclass
class Objects:
    """The objects to measure, one array element each: their component id in ``seg``, the
    0-based centre (mx, my), the shape (A, B, CXX, CYY, CXY), X/Y_IMAGE (1-based) and the strip
    [fy0, fy1) of frame rows in memory when SExtractor measures them."""

    own: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    a: np.ndarray
    b: np.ndarray
    cxx: np.ndarray
    cyy: np.ndarray
    cxy: np.ndarray
    x_image: np.ndarray
    y_image: np.ndarray
    fy0: np.ndarray
    fy1: np.ndarray

    def __len__(self) -> int:
        return len(self.own)


@dataclasses.dataclass
class Measured:
    """The photometry of each object (rows as :class:`Objects`); ``flags``: the OR of the flags
    the steps set (aperture truncation, crowding). Columns of steps not run stay 0."""

    flux_aper: np.ndarray      #: (n, naper)
    fluxerr_aper: np.ndarray   #: (n, naper)
    flux_auto: np.ndarray
    fluxerr_auto: np.ndarray
    kron_radius: np.ndarray
    flux_radius: np.ndarray    #: (n, nfrac)
    xwin: np.ndarray
    ywin: np.ndarray
    flags: np.ndarray


@njit(cache=True, nogil=True)
def _measure_block(sub, seg, wvar, oy, i0, i1, own, mx, my, a, b, cxx, cyy, cxy, xim, yim, fy0, fy1,
                   apertures, fracs, kron_fact, min_radius, aper_est, aper_meas, var, gain, correct, gainflag,
                   steps, flux_aper, fluxerr_aper, flux_auto, fluxerr_auto, kron_radius, flux_radius, xwin, ywin,
                   flags):
    """Objects i0 … i1-1 into the output arrays; ``sub``/``seg``/``wvar`` hold frame rows from
    ``oy`` on, covering each object's strip (``wvar`` (0, 0): no weight map)."""
    weighted = wvar.shape[0] > 0
    for i in range(i0, i1):
        lo = fy0[i] - oy
        hi = fy1[i] - oy
        s = sub[lo:hi]
        g = seg[lo:hi]
        v = wvar[lo:hi] if weighted else wvar[0:0]
        flag = 0
        if steps & STEP_APER:
            for k in range(len(apertures)):
                f, e, fg = aperture_flux(s, g, own[i], mx[i], my[i], apertures[k], var, gain, correct, fy0[i],
                                         fy1[i], v, gainflag)
                flux_aper[i, k] = f
                fluxerr_aper[i, k] = e
                flag |= fg
        if steps & STEP_AUTO:
            tv, err, kron, fg = auto_flux(s, g, own[i], mx[i], my[i], a[i], b[i], cxx[i], cyy[i], cxy[i], kron_fact,
                                          min_radius, aper_est, aper_meas, var, gain, correct, fy0[i], fy1[i], v,
                                          gainflag)
            flag |= fg
            flux_auto[i] = tv
            fluxerr_auto[i] = err
            kron_radius[i] = kron
            if steps & STEP_GROWTH:
                radii, hl, fg = growth_radii(s, g, own[i], mx[i], my[i], a[i], aper_est, tv, fracs, correct, fy0[i],
                                             fy1[i])
                flag |= fg
                flux_radius[i] = radii
                if steps & STEP_WINPOS:
                    xw, yw, fg = windowed_position(s, g, own[i], xim[i], yim[i], hl, cxx[i], cyy[i], cxy[i], correct,
                                                   fy0[i], fy1[i])
                    flag |= fg
                    xwin[i] = xw
                    ywin[i] = yw
        flags[i] = flag


def default_threads() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def measure(sub: np.ndarray, seg: np.ndarray, wvar: np.ndarray, oy: int, objs: Objects, p: PhotSettings,
            threads: int = 0, block: int = 64) -> Measured:
    """Measure ``objs`` on the frame rows [oy, oy + len(sub)) held in ``sub`` (background-subtracted
    float32, NaN = no data), ``seg`` (component ids: other objects' pixels are masked) and ``wvar``
    (a weight map's variance, or a (0, 0) array without one); those rows must cover every object's
    strip [fy0, fy1). ``threads``: 0 = every core; blocks of ``block`` consecutive objects go to
    the threads, each with just the rows its strips span."""
    n = len(objs)
    f64 = np.float64
    ap = np.asarray(p.apertures, f64).reshape(-1)
    fr = np.asarray(p.fluxfrac, f64).reshape(-1)
    out = Measured(np.zeros((n, len(ap))), np.zeros((n, len(ap))), np.zeros(n), np.zeros(n), np.zeros(n),
                   np.zeros((n, len(fr))), np.zeros(n), np.zeros(n), np.zeros(n, np.int64))
    if n == 0:
        return out
    fy0 = np.asarray(objs.fy0, np.int64)
    fy1 = np.asarray(objs.fy1, np.int64)
    if fy0.min() < oy or fy1.max() > oy + sub.shape[0] or (fy0 >= fy1).any():
        raise ValueError(f"the strips [{fy0.min()}, {fy1.max()}) are not all within the rows held "
                         f"[{oy}, {oy + sub.shape[0]}), or one is empty")
    weighted = wvar.shape[0] > 0
    if weighted and wvar.shape != sub.shape:
        raise ValueError(f"the weight map's rows {wvar.shape} are not the image's {sub.shape}")
    args = (np.asarray(objs.own, np.int64), *(np.asarray(x, f64) for x in (
        objs.mx, objs.my, objs.a, objs.b, objs.cxx, objs.cyy, objs.cxy, objs.x_image, objs.y_image)), fy0, fy1,
        ap, fr, float(p.autoparams[0]), float(p.autoparams[1]), float(p.autoapers[0]), float(p.autoapers[1]),
        float(p.var), float(p.gain), bool(p.correct), bool(p.gainflag), int(p.steps),
        out.flux_aper, out.fluxerr_aper, out.flux_auto, out.fluxerr_auto, out.kron_radius, out.flux_radius,
        out.xwin, out.ywin, out.flags)

    def run(i0: int, i1: int) -> None:
        lo, hi = int(fy0[i0:i1].min()), int(fy1[i0:i1].max())  # the rows this block's strips span
        r0, r1 = lo - oy, hi - oy
        _measure_block(sub[r0:r1], seg[r0:r1], wvar[r0:r1] if weighted else wvar, lo, i0, i1, *args)

    threads = threads or default_threads()
    bounds = [(i, min(i + block, n)) for i in range(0, n, block)]
    if threads == 1 or len(bounds) == 1:
        for i0, i1 in bounds:
            run(i0, i1)
    else:
        with ThreadPoolExecutor(min(threads, len(bounds))) as pool:
            for f in [pool.submit(run, i0, i1) for i0, i1 in bounds]:
                f.result()
    return out
