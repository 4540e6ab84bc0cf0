"""SExtractor's detection and isophotal measurements (``scan.c``, ``analyse.c``), and the driver
that runs deblending, CLEAN and the photometry in SExtractor's order.

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

from .background import SExBackground, sextractor_background
from .classstar import class_star, iso_areas
from .cleaning import order_and_clean
from .deblend import GlibcRand, deblend, moments, pairwise_sum
from .flags import as_flags, combine, merge
from .lutz import links_to_labels, lutz_scan_into, pixel_lists
from .measure import STEP_APER, STEP_AUTO, STEP_GROWTH, STEP_WINPOS, Objects, PhotSettings, measure
from .weights import BIG, WeightSettings, interpolate, low_weight_flags, read_map, var_threshold, weight_scale, weight_to_var

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


def extract_whole_frame(image: np.ndarray, s: ExtractSettings, progress=None, consume: bool = False) -> Extraction:
    """Run SExtractor's detection and measurements on a float image (NaN = no data).

    ``consume``: ``image`` is a float32 array the caller gives up; it becomes the
    background-subtracted frame in place (one whole frame less at the peak)."""
    if consume and isinstance(image, np.ndarray) and image.dtype == np.float32 and image.flags.writeable:
        sub = image
    else:
        sub = np.array(image, dtype=np.float32)
    wt = s.weight
    raw = read_map(wt.image, sub.shape, "weight map", "WEIGHT_IMAGE") if wt.on and wt.type != "BACKGROUND" else None
    wthresh = var_threshold(wt) if wt.on else np.float32(BIG)
    var0 = weight_to_var(raw, wt.type) if raw is not None else None
    bg = sextractor_background(sub, s.back_size, s.back_filtersize, s.back_filtthresh, var=var0, wthresh=wthresh)
    if s.back_type == "AUTO":
        bg.subtract_from(sub)  # float32 pixel minus float32 level, as before, a block of rows at a time
    else:
        sub -= np.float32(s.back_value)
    backsig = bg.backsig
    var, sigfac = None, 1.0
    if wt.type == "BACKGROUND":
        var = weight_to_var(bg.rms(), "BACKGROUND")
    elif wt.type == "MAP_RMS":
        var = var0
    elif raw is not None:  # a variance or weight map is scaled to the image's noise (makeback)
        sigfac = weight_scale(bg)
        if wt.rescale:
            var = weight_to_var(raw, wt.type, sigfac)
        else:
            var, backsig = var0, float(np.float32(backsig / np.float32(sigfac)))
    del raw, var0  # var is a new array (weight_to_var's), which interpolation may change in place
    if var is not None and wt.interp:
        interpolate(sub, var, wthresh, wt.xlag, wt.ylag, True)
    filt = _filter(sub, s.kernel, s.kernel_normalise)
    dthresh = s.detect_thresh if s.thresh_absolute else s.detect_thresh * backsig
    thresh = s.analysis_thresh if s.thresh_absolute else s.analysis_thresh * backsig
    fvar = pthr = wflags = None
    if var is not None:
        fvar = _filter(var, s.kernel, s.kernel_normalise)
        if s.thresh_absolute:
            pthr = np.full(sub.shape, np.float32(dthresh))
        else:  # scanimage(): thresh = relthresh * sqrt(filtered variance), per pixel
            with np.errstate(invalid="ignore"):
                pthr = (np.float64(np.float32(s.detect_thresh)) * np.sqrt(fvar.astype(np.float64))).astype(np.float32)
        above = _above_map(filt, sub, pthr)
        if s.needs("FLAGS_WEIGHT", "NLOWWEIGHT_ISO", "NLOWDWEIGHT_ISO"):
            wflags = low_weight_flags(var, fvar, wthresh)
        del fvar
    else:
        above = _above(filt, sub, np.float32(dthresh))
    h, w = sub.shape
    flagmaps = [as_flags(read_map(f, (h, w), "flag map", "FLAG_IMAGE"), str(f) if not isinstance(f, np.ndarray)
                         else "flag map") for f in s.flag_images]
    wvar = var if var is not None else np.zeros((0, 0), np.float32)
    gainflag = var is not None and wt.gain
    threshfac = float(np.float32(thresh)) / float(np.float32(backsig)) if backsig > 0.0 else 1.0
    var_b = backsig * backsig
    # SExtractor's scan gives the completion order (NUMBER) and each object's pixel-list order
    links = np.full(h * w, -1, np.int32 if h * w < 2**31 else np.int64)
    first, counts, nextpix = lutz_scan_into(above, links)
    del above
    flat, offsets = pixel_lists(first, counts, nextpix, s.minarea)
    # the links become the component map (8-connected, each branch later gets an id of its own)
    comp = links_to_labels(first, links).reshape(h, w)
    del nextpix, links
    rows = []
    rng = GlibcRand()
    next_id = len(first) + 1
    for k in range(len(offsets) - 1):
        idx = flat[offsets[k]:offsets[k + 1]]
        ys, xs = idx // w, idx % w
        val, cval = sub[ys, xs], filt[ys, xs]
        opt = _Weighted(pthr[ys, xs], wvar[ys, xs], gainflag, threshfac) if var is not None else None
        odthresh = float(opt.pthr.min()) if opt is not None else dthresh
        parts = deblend(xs, ys, cval, val, float(np.float32(odthresh)), s.deblend_nthresh, s.deblend_mincont,
                        s.minarea, rng)
        line = int(ys.max()) + 1  # the scan line that completes the detection (and its branches)
        if parts is None:
            rows.append(_isophotal(int(comp[ys[0], xs[0]]), ys, xs, val, cval, dthresh, thresh, var_b, s.gain, h, w,
                                   s.minarea, opt=opt))
            rows[-1]["_line"] = line
            _pixel_flags(rows[-1], ys, xs, wflags, flagmaps, s.flag_types)
            continue
        for pidx, center, ncore in parts:
            comp[ys[pidx], xs[pidx]] = next_id  # each branch masks its siblings in photometry
            row = _isophotal(next_id, ys[pidx], xs[pidx], val[pidx], cval[pidx], dthresh, thresh, var_b, s.gain,
                             h, w, s.minarea, center=center, opt=None if opt is None else opt.take(pidx))
            _pixel_flags(row, ys[pidx], xs[pidx], wflags, flagmaps, s.flag_types)
            core_x, core_y = xs[pidx[:ncore]], ys[pidx[:ncore]]  # the branch's flags come from its core
            edge = core_x.min() == 0 or core_x.max() == w - 1 or core_y.min() == 0 or core_y.max() == h - 1
            row["_flag"] = (row["_flag"] & ~OBJ_TRUNC) | (OBJ_TRUNC if edge else 0) | OBJ_MERGED
            row["_line"] = line
            rows.append(row)
            next_id += 1
    blankh = np.shape(s.kernel)[0] // 2 + 1 if s.kernel is not None else 0
    convh = np.shape(s.kernel)[0] if s.kernel is not None else 0
    strip_margin = max(1, (convh - 1) // 2 + 1) if convh else 1
    rows = order_and_clean(rows, h, s.clean, s.clean_param, _clean_margin(s), max(s.bufsize, convh), blankh,
                           s.objstack, strip_margin)
    # the filtered frame is read no more: its memory takes the segmentation (one frame less)
    seg = filt.view(np.int32) if filt is not sub and filt.dtype == np.float32 else np.zeros(sub.shape, np.int32)
    del filt
    seg[:] = 0
    for number, r in enumerate(rows, 1):
        r["NUMBER"] = number
        for part in [r, *r["_slaves"]]:
            seg[part["_ys"], part["_xs"]] = number
            if part is not r:  # SExtractor pastes a cleaned object's pixels back: nobody masks them
                back = part["_ys"] <= part["_paste_row"]
                comp[part["_ys"][back], part["_xs"][back]] = 0
        r["FLUXERR_ISO"] = math.sqrt(r["_fluxvar"])
        r["MAG_ISO"] = -2.5 * math.log10(r["FLUX_ISO"]) + s.mag_zeropoint if r["FLUX_ISO"] > 0 else 99.0
        r["MAGERR_ISO"] = 1.086 * r["FLUXERR_ISO"] / r["FLUX_ISO"] if r["FLUX_ISO"] > 0 else 99.0
    if var is not None:  # low-weight pixels are masked like neighbours' (in place: sub is read no more)
        np.putmask(sub, var >= wthresh, np.float32(np.nan))
    _photometry(rows, sub, comp, bg, s, var_b, wvar, gainflag)
    for r in rows:  # CLEAN's merges (mergeflags) and the columns of the flag maps
        for part in r["_slaves"]:
            r["_imaflags"] = [merge(m, sl, k) for m, sl, k in zip(r["_imaflags"], part["_imaflags"], s.flag_types)]
        if flagmaps or s.needs("IMAFLAGS_ISO", "NIMAFLAGS_ISO"):
            n_maps = max(len(flagmaps), 1)
            r["IMAFLAGS_ISO"] = np.array([f for f, _n in r["_imaflags"]] or [0] * n_maps, np.int64)
            r["NIMAFLAGS_ISO"] = np.array([n for _f, n in r["_imaflags"]] or [0] * n_maps, np.int64)
    if s.nnw is not None and rows and s.needs("CLASS_STAR"):
        stars = class_star(s.nnw, np.array([r["_iso"] for r in rows]), np.array([r["FLUX_MAX"] for r in rows]),
                           thresh, s.seeing_fwhm, s.pixel_scale)
        for r, v in zip(rows, stars):
            r["CLASS_STAR"] = float(v)
    names = [k for k in (rows[0] if rows else {}) if not k.startswith("_")]
    columns = {k: np.array([r[k] for r in rows]) for k in names}
    class _Frame:
        shape = seg.shape

        def rows(self, y0, y1):
            return seg[y0:y1]

    return Extraction(background=bg, labels=_Frame(), columns=columns, thresh=thresh, dthresh=dthresh,
                      back_value=None if s.back_type == "AUTO" else float(s.back_value), sigfac=sigfac,
                      variance_rows=None if var is None else (lambda y0, y1: var[y0:y1]))


@dataclasses.dataclass
class _Weighted:
    """One detection's per-pixel detection thresholds and variances, in pixel-list order."""

    pthr: np.ndarray
    pvar: np.ndarray
    gainflag: bool
    threshfac: float

    def take(self, idx) -> _Weighted:
        return _Weighted(self.pthr[idx], self.pvar[idx], self.gainflag, self.threshfac)


def _pixel_flags(row: dict, ys, xs, wflags, flagmaps, flag_types) -> None:
    """weight_count() and getflags() of one detection's pixels."""
    nw = ndw = 0  # without a weight map SExtractor writes zeros
    if wflags is not None:
        f = wflags[ys, xs]
        nw, ndw = int((f & 1).astype(bool).sum()), int((f & 2).astype(bool).sum())
    row["NLOWWEIGHT_ISO"], row["NLOWDWEIGHT_ISO"] = nw, ndw
    row["FLAGS_WEIGHT"] = (1 if nw else 0) | (2 if ndw else 0)
    row["_imaflags"] = [combine(m[ys, xs], k) for m, k in zip(flagmaps, flag_types)]


def _clean_margin(s: ExtractSettings) -> int:
    """prefs.cleanmargin: the largest aperture's half-size when apertures are measured."""
    if not s.needs("FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER"):
        return 0
    return max([int((d + 1) / 2) + 1 for d in s.apertures] + [0])


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


def _isophotal(cid, ys, xs, val, cval, dthresh, thresh, var, gain, h, w, minarea, center=None,
               opt: _Weighted | None = None) -> dict:
    """preanalyse(ANALYSE_FULL|ANALYSE_ROBUST) and examineiso() of one detection; ``center``: the
    core centre of a deblended branch (its moments are taken about it). With a weight map
    (``opt``) the detection threshold is the lowest of its pixels', the analysis threshold and the
    isophotal flux error follow each pixel's variance."""
    pdthresh = dthresh
    if opt is not None:
        dthresh = float(opt.pthr.min())
        pdthresh = opt.pthr
    mo = moments(xs, ys, cval, val, dthresh, center)
    rv = mo["rv"]
    mx, my, xm2, ym2, xym, a, b = mo["mx"], mo["my"], mo["xm2"], mo["ym2"], mo["xym"], mo["a"], mo["b"]
    singu, theta = mo["singu"], mo["theta"]
    temp2 = xm2 * ym2 - xym * xym
    xmin, ymin = int(xs.min()), int(ys.min())
    pvar = np.zeros(0, np.float32) if opt is None else opt.pvar
    flux, sigtv, sxx, syy, sxy, serr = _error_sums(xs, ys, cval, val, float(mx), float(my), float(var), float(gain),
                                                   pvar, opt is not None and opt.gainflag)
    athresh = np.float32(thresh)
    if opt is None:
        above = val > athresh
    else:
        pa = (opt.threshfac * np.sqrt(opt.pvar.astype(np.float64))).astype(np.float32)
        athresh = pa.min()
        above = val > pa
    # position errors (examineiso, errflag)
    fdflux2 = float(np.float32(rv)) ** 2
    emx2 = sxx / fdflux2
    emy2 = syy / fdflux2
    emxy = sxy / fdflux2
    esum = serr * 0.08333 / fdflux2
    if singu and emx2 * emy2 - emxy * emxy < esum * esum:
        emx2 += esum
        emy2 += esum
    peak = float(val.max())
    abcor = float(np.float32(mo["abcor"]))
    flag = OBJ_TRUNC if (xs.min() == 0 or xs.max() == w - 1 or ys.min() == 0 or ys.max() == h - 1) else 0
    last = ys == ys.max()
    return {
        "_cid": cid, "_ys": ys, "_xs": xs, "_ymax": int(ys.max()), "_xend": int(xs[last].max()),
        "_mx": mx, "_my": my, "_flag": flag, "_fdflux": float(np.float32(rv)), "_fdnpix": len(val),
        "_abcor": abcor, "_iso": iso_areas(val, peak, float(athresh)), "_dthresh": dthresh,
        "_mthresh": float(_mthresh(cval, np.atleast_1d(np.asarray(pdthresh, np.float32)), minarea)), "_fluxvar": sigtv,
        "X_IMAGE": mx + 1.0, "Y_IMAGE": my + 1.0,
        "X2_IMAGE": xm2, "Y2_IMAGE": ym2, "XY_IMAGE": xym,
        "ERRX2_IMAGE": emx2, "ERRY2_IMAGE": emy2, "ERRXY_IMAGE": emxy,
        "A_IMAGE": a, "B_IMAGE": b, "THETA_IMAGE": float(np.float32(theta * 180.0 / PI)),
        "CXX_IMAGE": float(np.float32(ym2 / temp2)), "CYY_IMAGE": float(np.float32(xm2 / temp2)),
        "CXY_IMAGE": float(np.float32(-2 * xym / temp2)),
        "ELONGATION": a / b if b > 0 else 0.0, "ELLIPTICITY": 1 - b / a if a > 0 else 0.0,
        "ISOAREA_IMAGE": int(above.sum()), "ISOAREAF_IMAGE": int(len(val)),
        "FLUX_ISO": flux, "FLUX_MAX": peak,
        "THRESHOLD": float(np.float32(dthresh)),
        "XMIN_IMAGE": xmin + 1, "YMIN_IMAGE": ymin + 1, "XMAX_IMAGE": int(xs.max()) + 1, "YMAX_IMAGE": int(ys.max()) + 1,
        "XPEAK_IMAGE": int(xs[np.argmax(cval)]) + 1, "YPEAK_IMAGE": int(ys[np.argmax(cval)]) + 1,
    }


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
    m = measure(sub, comp, wvar, oy, objs, p, threads=s.threads)
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
