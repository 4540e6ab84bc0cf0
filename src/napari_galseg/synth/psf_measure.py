"""The PSF of a frame, measured on its isolated, unsaturated point sources.

Candidates come from the photutils detection that :func:`.conditions.measure_conditions` already
ran (``detect_sources`` + ``SourceCatalog``): bright (peak ≥ ``MIN_PEAK_SNR`` σ), roundish, away from
the crop's edge, alone in their cutout and not flat-topped (saturated). Each candidate is fitted
with astropy's Moffat2D, integrated over the pixel (GalSim and real detectors both integrate over
the pixel; a point-sampled Moffat reads a 1.5 px PSF ~9 % wide), by astropy's ``TRFLSQFitter``.
Stars are the *narrowest* compact sources of a frame: the stellar locus is the tight group of fitted
FWHMs at the narrow end, and the PSF is the median over it. When that group holds fewer than
``MIN_STARS`` sources the narrowest few sources stand in for it, flagged ``"narrowest"``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.modeling.models import Moffat2D

#: the least signal-to-noise of a PSF candidate, over its whole segment (fitted FWHMs scatter by a
#: few % at 40) and at its peak (a wide PSF spreads a bright star thin)
MIN_FLUX_SNR = 40.0
MIN_PEAK_SNR = 8.0
#: fewer stars than this in the stellar locus: the PSF comes from the narrowest sources instead
MIN_STARS = 5
#: candidates fitted at most (the brightest unsaturated ones): enough for a locus, bounded time
MAX_FITS = 150
#: fits of a Moffat β below this are extended sources (an exponential disk fits β ≈ 1.2–1.6); real
#: PSFs have β ≈ 2–6
MIN_STAR_BETA = 1.8
#: relative half-width of the stellar locus in fitted FWHM
LOCUS_WIDTH = 0.12
#: Moffat β above which the profile is called Kolmogorov-like: atmospheric (Kolmogorov) seeing is
#: fitted best by a Moffat of β ≈ 4.8 (Trujillo et al. 2001; ≈ 4.2 when only 1.5 px wide), instrument-dominated PSFs by β ≈ 2.5–3.5
KOLMOGOROV_BETA = 4.0


#: the FWHM reported (flag "default") when no source is bright enough to measure any: a typical
#: ground-based seeing sampled at ~0.25"/px, to be overridden with --psf-fwhm
DEFAULT_FWHM = 3.0


class PixelMoffat2D(Moffat2D):
    """astropy's Moffat2D averaged over the pixel (``sub`` × ``sub`` samples), for fitting stars
    whose PSF is only a few pixels wide. Same parameters, same ``fwhm``; fitted by astropy's own
    fitters (numerical derivatives)."""

    sub = 4
    fit_deriv = None

    @classmethod
    def evaluate(cls, x, y, amplitude, x_0, y_0, gamma, alpha):
        offsets = (np.arange(cls.sub) + 0.5) / cls.sub - 0.5
        total = 0.0
        for dy in offsets:
            for dx in offsets:
                total = total + Moffat2D.evaluate(x + dx, y + dy, amplitude, x_0, y_0, gamma, alpha)
        return total / (cls.sub * cls.sub)


@dataclass
class PsfMeasurement:
    """What :func:`measure_psf` found (lengths in pixels)."""

    fwhm: float
    flag: str
    n_sources: int
    ellipticity: float = 0.0
    beta: float | None = None
    kind: str = "moffat"
    notes: list[str] = field(default_factory=list)


def _saturated(cut: np.ndarray, peak: float) -> bool:
    """Flat-topped: three or more pixels at the peak value (a clipped, saturated core)."""
    return int(np.count_nonzero(cut >= peak - 1e-6 * max(abs(peak), 1.0))) >= 3


def _fit_one(data, err, segm_data, label, yx, half):
    """Fit a pixel-integrated Moffat to the cutout around one candidate; (fwhm, beta) or None."""
    from astropy.modeling.fitting import TRFLSQFitter

    cy, cx = int(round(yx[0])), int(round(yx[1]))
    sl = (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))
    cut, seg = data[sl], segm_data[sl]
    good = np.isfinite(cut) & ((seg == 0) | (seg == label))
    if err is not None:
        e = err[sl]
        good &= np.isfinite(e) & (e > 0)
    if good.sum() < 0.8 * cut.size:
        return None
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
    peak = float(np.nanmax(np.where(good, cut, -np.inf)))
    if peak <= 0:
        return None
    init = PixelMoffat2D(amplitude=peak * 1.3, x_0=yx[1] - cx, y_0=yx[0] - cy, gamma=1.5, alpha=3.0,
                         bounds={"gamma": (0.1, 4.0 * half), "alpha": (1.01, 20.0),
                                 "x_0": (-2.0, 2.0), "y_0": (-2.0, 2.0)})
    weights = None if err is None else np.where(good, 1.0 / np.where(good, err[sl], 1.0), 0.0)
    z = np.where(good, cut, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = TRFLSQFitter()(init, xx, yy, z, weights=weights, maxiter=200)
        except Exception:  # a fit that cannot converge is no measurement
            return None
    fwhm, beta = float(fit.fwhm), float(fit.alpha.value)
    if not (np.isfinite(fwhm) and 0.5 < fwhm < half and fit.amplitude.value > 0 and beta >= MIN_STAR_BETA):
        return None
    return fwhm, beta


def _locus(fwhm: np.ndarray) -> np.ndarray:
    """Indices of the stellar locus: the tightest crowd of fitted FWHMs at the narrow end.

    For each candidate as a centre, count the FWHMs within ±LOCUS_WIDTH; the locus is the crowd
    of the narrowest centre whose count reaches half of the best count (so a few narrow outliers,
    e.g. hot pixels or noise, do not define it, and many galaxies, wider, never do)."""
    order = np.argsort(fwhm)
    f = fwhm[order]
    counts = np.array([np.count_nonzero(np.abs(f - c) <= LOCUS_WIDTH * c) for c in f])
    need = max(2, int(np.ceil(0.5 * counts.max())))
    centre = f[int(np.argmax(counts >= need))]
    for _ in range(3):  # re-centre on the crowd's median
        members = np.abs(f - centre) <= LOCUS_WIDTH * centre
        centre = float(np.median(f[members]))
    members = np.abs(f - centre) <= LOCUS_WIDTH * centre
    return order[members]


def measure_psf(data: np.ndarray, err: np.ndarray | None, segm, catalog, noise: float,
                saturation: float | None = None, sky: float = 0.0, max_fits: int = MAX_FITS) -> PsfMeasurement:
    """The PSF from a sky-subtracted crop ``data``, its segmentation ``segm`` and photutils
    ``catalog`` (see the module docstring). ``saturation`` (image units, sky included) drops
    candidates whose peak reaches 80 % of it. At most ``max_fits`` candidates are fitted, brightest
    first (the fits are most of the time: a range check needs fewer than a description)."""
    notes: list[str] = []
    if catalog is None or len(catalog) == 0:
        return PsfMeasurement(fwhm=DEFAULT_FWHM, flag="default", n_sources=0,
                              notes=[f"no source detected: PSF FWHM {DEFAULT_FWHM:g} px assumed; give --psf-fwhm to set it"])
    ny, nx = data.shape
    peak = np.asarray(catalog.max_value, float)
    xc = np.asarray(catalog.x_centroid, float)
    yc = np.asarray(catalog.y_centroid, float)
    ell = np.asarray(catalog.ellipticity, float)
    mom = np.asarray(catalog.fwhm.value if hasattr(catalog.fwhm, "value") else catalog.fwhm, float)
    labels = np.asarray(catalog.labels)
    flux = np.asarray(catalog.segment_flux, float)
    flux_err = np.asarray(catalog.segment_flux_err, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(flux_err > 0, flux / flux_err, 0.0)
    ok = np.isfinite(xc) & np.isfinite(yc) & np.isfinite(mom) & (snr >= MIN_FLUX_SNR) & (peak >= MIN_PEAK_SNR * noise)
    if saturation is not None:
        ok &= peak + sky < 0.8 * saturation
    ok &= np.nan_to_num(ell, nan=1.0) < 0.35
    segm_data = segm.data
    fits_, used = [], []
    for i in np.flatnonzero(ok)[np.argsort(-snr[ok])]:
        if len(fits_) >= max_fits:
            break
        half = int(np.clip(np.ceil(2.5 * mom[i]), 6, 30))
        if not (half <= yc[i] < ny - half - 1 and half <= xc[i] < nx - half - 1):
            continue
        cy, cx = int(round(yc[i])), int(round(xc[i]))
        sl = (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))
        seg = segm_data[sl]
        if np.any((seg != 0) & (seg != labels[i])):  # not isolated: another source in the cutout
            continue
        if _saturated(data[sl], peak[i]):
            continue
        result = _fit_one(data, err, segm_data, labels[i], (yc[i], xc[i]), half)
        if result is not None:
            fits_.append(result)
            used.append(i)
    if not fits_:
        # nothing fittable: the moment FWHM of the narrowest bright-enough sources
        bright = np.flatnonzero(np.isfinite(mom) & (snr >= 20))
        if not len(bright):
            return PsfMeasurement(fwhm=DEFAULT_FWHM, flag="default", n_sources=0,
                                  notes=[f"no source bright enough to measure a PSF: FWHM {DEFAULT_FWHM:g} px assumed; "
                                         "give --psf-fwhm to set it"])
        narrow = bright[np.argsort(mom[bright])[:5]]
        return PsfMeasurement(fwhm=float(np.median(mom[narrow])), flag="narrowest", n_sources=len(narrow),
                              ellipticity=float(np.nanmedian(ell[narrow])),
                              notes=[f"no isolated point source could be fitted: PSF FWHM from the {len(narrow)} "
                                     "narrowest sources' moments (an upper limit); give --psf-fwhm to override"])
    fwhm = np.array([f for f, _ in fits_])
    beta = np.array([b for _, b in fits_])
    used = np.array(used)
    members = _locus(fwhm)
    flag = "stars"
    if len(members) < MIN_STARS:
        members = np.argsort(fwhm)[:3]
        flag = "narrowest"
        notes.append(f"only {len(fwhm)} isolated compact source(s) fitted, too few for a stellar locus: PSF from "
                     f"the {len(members)} narrowest (may read wide); give --psf-fwhm to override")
    fw = float(np.median(fwhm[members]))
    b = float(np.median(beta[members]))
    e = float(np.nanmedian(ell[used[members]]))
    kind = "kolmogorov" if b >= KOLMOGOROV_BETA else "moffat"
    return PsfMeasurement(fwhm=fw, flag=flag, n_sources=int(len(members)), ellipticity=e,
                          beta=b, kind=kind, notes=notes)
