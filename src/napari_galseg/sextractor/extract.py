"""SExtractor mode's settings, its result and the steps the strip driver (:mod:`.stream`) calls:
detection (``scan.c``) and the photometry of the objects CLEAN's list writes (``analyse.c``).

Detection: the background-subtracted image correlated with the ``.conv`` kernel divided by the sum
of its absolute values (zero outside the frame), pixels above DETECT_THRESH × the *global*
background σ (or the absolute value) — with a weight map, × the square root of each pixel's
filtered variance (``weights``) — 8-connected, at least DETECT_MINAREA of them. Moments,
positions and shapes are weighted by the *filtered* values, as in SExtractor; FLUX_ISO sums the
unfiltered values over the detection footprint.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from numba import njit

from .background import SExBackground
from .measure import STEP_APER, STEP_AUTO, STEP_GROWTH, STEP_WINPOS, Objects, PhotSettings, measure
from .weights import WeightSettings

OBJ_MERGED, OBJ_SATUR, OBJ_TRUNC = 2, 4, 8
PI = 3.1415926535898  # SExtractor's value (define.h)


@dataclasses.dataclass
class ExtractSettings:
    """The ``.sex`` values this extraction honours (SExtractor's defaults)."""

    detect_thresh: float = 1.5
    analysis_thresh: float = 1.5
    thresh_absolute: bool = False
    minarea: int = 5
    kernel: np.ndarray | None = dataclasses.field(default_factory=lambda: np.array([[1., 2, 1], [2, 4, 2], [1, 2, 1]]))
    kernel_normalise: bool = True
    back_size: tuple[int, int] = (64, 64)
    back_filtersize: tuple[int, int] = (3, 3)
    back_filtthresh: float = 0.0
    back_type: str = "AUTO"
    back_value: float = 0.0
    apertures: tuple[float, ...] = (5.0,)
    autoparams: tuple[float, float] = (2.5, 3.5)
    autoapers: tuple[float, float] = (0.0, 0.0)
    fluxfrac: tuple[float, ...] = (0.5,)
    mag_zeropoint: float = 0.0
    gain: float = 0.0
    satur_level: float = 50000.0
    mask_correct: bool = True
    clean: bool = False
    deblend_nthresh: int = 32
    deblend_mincont: float = 1.0
    clean_param: float = 1.0
    objstack: int = 3000
    #: MEMORY_BUFSIZE: frames up to this height are held whole, which fixes SExtractor's NUMBER order
    bufsize: int = 1024
    seeing_fwhm: float = 1.2
    pixel_scale: float = 1.0
    #: the star/galaxy network (STARNNW_NAME), read when CLASS_STAR is wanted
    nnw: object = None
    #: the catalogue columns wanted (None: all); SExtractor sets flags only in the steps it runs
    wanted: frozenset | None = None
    #: WEIGHT_TYPE, WEIGHT_IMAGE, WEIGHT_THRESH, RESCALE_WEIGHTS, WEIGHT_GAIN, INTERP_*
    weight: WeightSettings = dataclasses.field(default_factory=WeightSettings)
    #: FLAG_IMAGE (paths or integer arrays) and their FLAG_TYPE
    flag_images: tuple = ()
    flag_types: tuple[str, ...] = ()
    #: threads for the photometry (0: every core this process may use)
    threads: int = 0

    def needs(self, *names: str) -> bool:
        return self.wanted is None or any(n in self.wanted for n in names)


@dataclasses.dataclass
class Extraction:
    """What one run gives: the maps, the segmentation (SExtractor's NUMBER per pixel) and the columns."""

    background: SExBackground
    #: the segmentation as its detected pixels and their NUMBER (rows or the whole map on demand)
    labels: object
    columns: dict[str, np.ndarray]
    thresh: float
    dthresh: float
    back_value: float | None = None  #: BACK_TYPE MANUAL's level (None: the map)
    #: the weight scaling factor applied (RESCALE_WEIGHTS) or divided out of the rms (1.0 without one)
    sigfac: float = 1.0
    #: rows of the variance per pixel (after scaling) when a weight map is used, and the
    #: interpolation applied to them ((WEIGHT_THRESH, INTERP_MAXXLAG, INTERP_MAXYLAG) or None)
    variance_rows: object = None
    interpolation: tuple | None = None

    @property
    def segmentation(self) -> np.ndarray:
        """The whole segmentation map (int32), made on demand."""
        return self.labels.rows(0, self.labels.shape[0])

    @property
    def back_level(self) -> np.ndarray:
        """The full-resolution background subtracted (CHECKIMAGE_TYPE BACKGROUND), made on demand:
        the extraction itself never holds it whole."""
        if self.back_value is not None:
            return np.full(self.background.shape, np.float32(self.back_value))
        return self.background.level()

    @property
    def variance(self) -> np.ndarray | None:
        """The whole variance map the extraction used (after scaling and interpolation), made on demand."""
        if self.variance_rows is None:
            return None
        from .weights import InterpolationState

        h, w = self.background.shape
        var = np.array(self.variance_rows(0, h), np.float32)
        if self.interpolation is not None:
            InterpolationState(w).apply(var, var, self.interpolation[0], self.interpolation[1],
                                        self.interpolation[2], False)
        return var


@njit(cache=True, nogil=True)
def _convolve(img, k):
    """convolve(): SExtractor's float32 correlation, terms added in the kernel's row order, zero
    outside the frame (scipy sums in float64, which moves pixels at the threshold)."""
    h, w = img.shape
    kh, kw = k.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for my in range(kh):
            yy = y - kh // 2 + my
            if yy < 0 or yy >= h:
                continue
            for mx in range(kw):
                dmx = mx - kw // 2
                mval = k[my, mx]
                for x in range(max(0, -dmx), min(w, w - dmx)):
                    out[y, x] += mval * img[yy, x + dmx]
    return out


def _filter(sub: np.ndarray, kernel: np.ndarray | None, normalise: bool) -> np.ndarray:
    if kernel is None:
        return sub
    k = np.asarray(kernel, np.float32)
    if normalise:  # getconv(): divided by the sum of |values| (their quadratic sum if that is 0)
        total = np.abs(k.astype(np.float64)).sum()
        if total == 0.0:
            total = math.sqrt((k.astype(np.float64) ** 2).sum())
        k = (k / total).astype(np.float32)
    filled = sub if np.isfinite(sub).all() else np.where(np.isfinite(sub), sub, np.float32(0.0))
    return _convolve(filled, k)


@njit(cache=True, nogil=True)
def _above(filt, sub, dthresh):
    """Detected pixels: filtered value above the threshold where the frame has data (no
    whole-frame boolean temporaries)."""
    h, w = filt.shape
    out = np.empty((h, w), np.bool_)
    for y in range(h):
        for x in range(w):
            out[y, x] = filt[y, x] > dthresh and not math.isnan(sub[y, x]) and not math.isinf(sub[y, x])
    return out


@njit(cache=True, nogil=True)
def _above_map(filt, sub, pthr):
    """:func:`_above` with a threshold per pixel (a weight map's)."""
    h, w = filt.shape
    out = np.empty((h, w), np.bool_)
    for y in range(h):
        for x in range(w):
            out[y, x] = filt[y, x] > pthr[y, x] and not math.isnan(sub[y, x]) and not math.isinf(sub[y, x])
    return out


def extract(image, s: ExtractSettings, progress=None) -> Extraction:
    """Run SExtractor's detection and measurements on a float image (NaN = no data), or a row
    source (``.shape`` and ``.read(y0, y1)``: a FITS file read in strips), strip by strip.
    ``progress(rows_done, rows)`` is called after each block of rows."""
    from .stream import ArrayRows, extract_rows

    source = image if hasattr(image, "read") and hasattr(image, "shape") else ArrayRows(image)
    return extract_rows(source, s, progress)


def _clean_margin(s: ExtractSettings) -> int:
    """prefs.cleanmargin: the largest aperture's half-size when apertures are measured."""
    if not s.needs("FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER"):
        return 0
    return max([int((d + 1) / 2) + 1 for d in s.apertures] + [0])




def _photometry(rows, sub, comp, bg: SExBackground, s: ExtractSettings, var: float, wvar: np.ndarray,
                gainflag: bool, oy: int = 0) -> None:
    """BACKGROUND, apertures, AUTO, FLUX_RADIUS, XWIN/YWIN and the FLAGS of each row (endobject()),
    measured in threads (``measure``), each object on the rows in memory when SExtractor measures it.
    ``sub``, ``comp`` and ``wvar`` (if any) hold the frame's rows from ``oy`` on."""
    zp = s.mag_zeropoint
    if not rows:
        return
    # back() at every object's nearest pixel in one call (the same arithmetic per element)
    backs = bg.at(np.array([int(r["_mx"] + 0.5) for r in rows], np.int64),
                  np.array([int(r["_my"] + 0.5) for r in rows], np.int64))
    aper = s.needs("FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER")
    growth = s.needs("FLUX_RADIUS", "XWIN_IMAGE", "YWIN_IMAGE")
    auto = growth or s.needs("FLUX_AUTO", "FLUXERR_AUTO", "MAG_AUTO", "MAGERR_AUTO", "KRON_RADIUS")
    winpos = growth and s.needs("XWIN_IMAGE", "YWIN_IMAGE")
    steps = (STEP_APER if aper else 0) | (STEP_AUTO if auto else 0) | (STEP_GROWTH if growth else 0) \
        | (STEP_WINPOS if winpos else 0)
    p = PhotSettings(tuple(s.apertures), tuple(s.fluxfrac), s.autoparams, s.autoapers, var, s.gain, s.mask_correct,
                     bool(gainflag), steps)

    def col(key):
        return np.array([r[key] for r in rows], np.float64)

    objs = Objects(np.array([r["_cid"] for r in rows], np.int64), col("_mx"), col("_my"), col("A_IMAGE"),
                   col("B_IMAGE"), col("CXX_IMAGE"), col("CYY_IMAGE"), col("CXY_IMAGE"), col("X_IMAGE"),
                   col("Y_IMAGE"), np.array([r.get("_fymin", 0) for r in rows], np.int64),
                   np.array([r.get("_fymax", sub.shape[0]) for r in rows], np.int64))  # the rows in memory
    m = measure(sub, comp, wvar, oy, objs, p, threads=s.threads, block=16)
    for i, (r, bkg) in enumerate(zip(rows, backs)):
        bkg = float(bkg)
        r["BACKGROUND"] = bkg
        if aper:
            fl, fe = m.flux_aper[i], m.fluxerr_aper[i]
            r["FLUX_APER"], r["FLUXERR_APER"] = fl, fe
            r["MAG_APER"] = np.array([(-2.5 * math.log10(f) + zp) if f > 0 else 99.0 for f in fl.tolist()])
            r["MAGERR_APER"] = np.array([1.086 * e / f if f > 0 else 99.0 for f, e in zip(fl.tolist(), fe.tolist())])
        if auto:
            tv, err = float(m.flux_auto[i]), float(m.fluxerr_auto[i])
            r["FLUX_AUTO"], r["FLUXERR_AUTO"], r["KRON_RADIUS"] = tv, err, float(m.kron_radius[i])
            r["MAG_AUTO"] = -2.5 * math.log10(tv) + zp if tv > 0 else 99.0
            r["MAGERR_AUTO"] = 1.086 * err / tv if tv > 0 else 99.0
        if growth:
            r["FLUX_RADIUS"] = m.flux_radius[i]
        if winpos:
            r["XWIN_IMAGE"], r["YWIN_IMAGE"] = float(m.xwin[i]), float(m.ywin[i])
        flag = r["_flag"] | int(m.flags[i])
        if r["FLUX_MAX"] + bkg >= s.satur_level:
            flag |= OBJ_SATUR
        r["FLAGS"] = flag
