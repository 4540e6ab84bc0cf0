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
from .classstar import class_star
from .cleaning import order_and_clean
from .deblend import GlibcRand, deblend, may_split
from .flags import as_flags, combine, merge
from .isophotal import isophotal_rows
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
    ys_all, xs_all = np.divmod(flat, w)  # every detection's pixels, in list order, one after another
    del flat
    val_all, cval_all = sub[ys_all, xs_all], filt[ys_all, xs_all]
    pthr_all = pvar_all = None
    if var is not None:
        pthr_all, pvar_all = pthr[ys_all, xs_all], wvar[ys_all, xs_all]
    iso_args = (dthresh, thresh, var_b, s.gain, h, w, s.minarea)
    iso_opts = dict(gainflag=gainflag, threshfac=threshfac)
    # deblend() in NUMBER order (its random draws), only for the detections with several local maxima
    split = {}
    for k in np.flatnonzero(may_split(xs_all, ys_all, cval_all, offsets, s.deblend_nthresh,
                                      s.deblend_mincont)).tolist():
        lo, hi = int(offsets[k]), int(offsets[k + 1])
        odthresh = float(pthr_all[lo:hi].min()) if var is not None else dthresh
        parts = deblend(xs_all[lo:hi], ys_all[lo:hi], cval_all[lo:hi], val_all[lo:hi], float(np.float32(odthresh)),
                        s.deblend_nthresh, s.deblend_mincont, s.minarea, rng)
        if parts is not None:
            split[k] = parts
    # the isophotal measurements of the whole detections, then of the branches, in one call each
    is_whole = np.ones(len(offsets) - 1, bool)
    is_whole[list(split)] = False
    whole = np.flatnonzero(is_whole)
    cids = comp[ys_all[offsets[whole]], xs_all[offsets[whole]]].tolist()
    whole_rows = iter(isophotal_rows(cids, xs_all, ys_all, val_all, cval_all, offsets, *iso_args, objects=whole,
                                     pthr=pthr_all, pvar=pvar_all, **iso_opts))
    sel, boff, bids, centers, cores = [], [0], [], [], []
    for k, parts in split.items():
        for pidx, center, ncore in parts:
            g = int(offsets[k]) + pidx
            comp[ys_all[g], xs_all[g]] = next_id  # each branch masks its siblings in photometry
            sel.append(g)
            boff.append(boff[-1] + len(g))
            bids.append(next_id)
            centers.append(center)
            cores.append(g[:ncore])
            next_id += 1
    g = np.concatenate(sel) if sel else np.zeros(0, np.int64)
    branch_rows = iter(isophotal_rows(bids, xs_all[g], ys_all[g], val_all[g], cval_all[g], boff, *iso_args,
                                      centers=centers, pthr=None if var is None else pthr_all[g],
                                      pvar=None if var is None else pvar_all[g], **iso_opts))
    del val_all, cval_all, pthr_all, pvar_all, sel, g
    cores = iter(cores)
    for k in range(len(offsets) - 1):
        parts = split.get(k)
        if parts is None:
            row = next(whole_rows)
            row["_line"] = row["_ymax"] + 1  # the scan line that completes the detection
            _pixel_flags(row, row["_ys"], row["_xs"], wflags, flagmaps, s.flag_types)
            rows.append(row)
            continue
        line = int(ys_all[offsets[k]:offsets[k + 1]].max()) + 1  # the detection's, for each of its branches
        for _ in parts:
            row = next(branch_rows)
            _pixel_flags(row, row["_ys"], row["_xs"], wflags, flagmaps, s.flag_types)
            core = next(cores)
            core_x, core_y = xs_all[core], ys_all[core]  # the branch's flags come from its core
            edge = core_x.min() == 0 or core_x.max() == w - 1 or core_y.min() == 0 or core_y.max() == h - 1
            row["_flag"] = (row["_flag"] & ~OBJ_TRUNC) | (OBJ_TRUNC if edge else 0) | OBJ_MERGED
            row["_line"] = line
            rows.append(row)
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
