"""What a frame looks like: the conditions simulations are matched to and models are checked against.

:class:`FrameConditions` is measured once from a frame (:func:`measure_conditions`) and travels
with it: ``galseg describe`` prints it, ``galseg synth --like`` makes fields with it, a model
folder records the conditions it was trained for, and a built-in model's validity range is
checked against it. Its JSON keys are part of the CLI's interface (docs/synth.md): keep them.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field

import numpy as np

#: how the PSF was measured (``psf_flag``)
PSF_FLAGS = ("stars", "narrowest", "given", "default")


@dataclass
class FrameConditions:
    """Measured conditions of one frame; every length in pixels of that frame."""

    #: (ny, nx) of the frame
    shape: tuple[int, int]
    #: PSF FWHM (px), how it was measured (one of PSF_FLAGS), from how many sources
    psf_fwhm_px: float
    psf_flag: str = "stars"
    psf_n_sources: int = 0
    #: PSF ellipticity 1 - b/a and profile: "moffat" (with its β) or "kolmogorov"
    psf_ellipticity: float = 0.0
    psf_kind: str = "moffat"
    psf_moffat_beta: float | None = None
    #: sky level and the median 1σ noise, in image units; whether the noise came from a given map
    sky: float = 0.0
    noise_rms: float = 1.0
    noise_from_map: bool = False
    #: arcsec per pixel from the WCS (None: no WCS, lengths in pixels only)
    pixel_scale_arcsec: float | None = None
    #: header values where present (SATURATE / MAGZERO-like cards), else None
    saturation: float | None = None
    zero_point: float | None = None
    #: sources detected per million pixels (4σ on the PSF-matched filtered image, 5 px) and their
    #: flux distribution:
    #: histogram edges (image units) and counts, and the fitted slope of dN/dF ∝ F^-slope
    density_per_mpix: float = 0.0
    flux_edges: list[float] = field(default_factory=list)
    flux_counts: list[int] = field(default_factory=list)
    flux_slope: float | None = None
    #: the flux above which the slope was fitted (the counts' turnover, ~ the detection limit)
    flux_turnover: float | None = None
    #: sources detected in the measured window, and that window [y0, y1, x0, x1] of the frame
    n_detected: int = 0
    measured_window: list[int] = field(default_factory=list)
    #: one line per thing worth knowing (no WCS, few stars, ...), in the order found
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON types; a float that is not finite (nothing to measure it on) becomes None,
        so the JSON stays valid JSON."""
        d = dataclasses.asdict(self)
        d["shape"] = list(self.shape)
        for key, value in d.items():
            if isinstance(value, float) and not np.isfinite(value):
                d[key] = None
        return d

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> FrameConditions:
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept["shape"] = tuple(int(s) for s in kept.get("shape", (0, 0)))
        return cls(**kept)


#: the smallest frame side that can be measured (a background box and a few PSF cutouts)
MIN_SIDE = 64
#: detection of the PSF candidates: SExtractor-like 5σ, 5 connected pixels
DETECT_SIGMA = 5.0
DETECT_NPIXELS = 5
#: detection for the density and number counts: 4σ of the PSF-matched filtered image (a 4σ
#: noise peak of a smoothed 16 Mpix frame is rare: ~1-2 false sources per Mpix)
DENSITY_SIGMA = 4.0
#: header cards read for the saturation level and the photometric zero point, first found wins
SATURATION_CARDS = ("SATURATE", "SATUR", "SATLEVEL", "SATURLEV", "MAXLIN")
ZERO_POINT_CARDS = ("MAGZERO", "MAGZPT", "MAGZP", "PHOTZP", "ZEROPT", "ZP", "ZPT", "MAG_ZP")


def central_window(shape: tuple[int, int], max_pixels: int) -> tuple[slice, slice]:
    """The central window of at most ``max_pixels`` pixels (square where the frame allows): survey
    frames are measured on it, never read whole."""
    ny, nx = shape
    side = int(np.sqrt(max(int(max_pixels), MIN_SIDE * MIN_SIDE)))
    h = min(ny, side)
    w = min(nx, max(side, int(max_pixels) // h))
    y0, x0 = (ny - h) // 2, (nx - w) // 2
    return slice(y0, y0 + h), slice(x0, x0 + w)


def header_value(header, cards) -> float | None:
    """The first of ``cards`` in ``header`` that holds a finite number, else None."""
    if header is None:
        return None
    for card in cards:
        try:
            value = float(header[card])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(value):
            return value
    return None


def pixel_scale_arcsec(wcs=None, header=None) -> float | None:
    """Mean arcsec per pixel of a celestial WCS (astropy ``proj_plane_pixel_scales``), else None."""
    if wcs is None and header is not None:
        from astropy.wcs import WCS, FITSFixedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            try:
                wcs = WCS(header)
            except Exception:  # a broken WCS is no WCS
                return None
    if wcs is None or not getattr(wcs, "has_celestial", False):
        return None
    from astropy.wcs.utils import proj_plane_pixel_scales

    scales = proj_plane_pixel_scales(wcs.celestial) * 3600.0  # degrees → arcsec
    value = float(np.mean(scales[:2]))
    return value if np.isfinite(value) and value > 0 else None


def number_counts(flux: np.ndarray, n_bins: int = 20):
    """Log-spaced histogram of source fluxes and the slope of dN/dF ∝ F^-slope above the turnover.

    The slope is scipy's maximum-likelihood Pareto fit (``scipy.stats.pareto.fit``, location 0,
    scale fixed at the turnover: the upper edge of the most populated bin, below which detection is
    incomplete).
    Returns (edges, counts, slope or None, turnover flux or None)."""
    from scipy import stats

    flux = np.asarray(flux, float)
    flux = flux[np.isfinite(flux) & (flux > 0)]
    if len(flux) < 2 or flux.max() <= flux.min():
        return [], [], None, None
    edges = np.geomspace(flux.min(), flux.max() * (1 + 1e-9), n_bins + 1)
    counts, _ = np.histogram(flux, edges)
    turnover = float(edges[int(np.argmax(counts)) + 1])
    above = flux[flux >= turnover]
    slope = None
    if len(above) >= 20:
        b, _, _ = stats.pareto.fit(above, floc=0.0, fscale=turnover)
        slope = float(b) + 1.0
    return [float(e) for e in edges], [int(c) for c in counts], slope, turnover


def _read_window(array, window) -> np.ndarray:
    from ..background import direct_source, read_float32

    block = read_float32(direct_source(array), window).copy()
    block[~np.isfinite(block)] = np.nan
    return block


def detect_matched(data: np.ndarray, err: np.ndarray, mask: np.ndarray, fwhm: float):
    """Sources of the PSF-matched (Gaussian of the PSF's FWHM) filtered image above
    ``DENSITY_SIGMA`` × its own noise, ``DETECT_NPIXELS`` connected pixels: ``(fluxes, count)``.

    The density a frame shows, and the one a field made like it must show: a matched filter finds
    the faint galaxies a per-pixel 5σ cut misses (several times as many), so the number is a
    statistic of the depth rather than of the few brightest cores.
    """
    from astropy.convolution import convolve_fft
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel

    size = int(2 * round(1.5 * fwhm) + 1)
    kernel = make_2dgaussian_kernel(float(fwhm), size=max(size, 3))
    kernel.normalize()
    smoothed = convolve_fft(data, kernel, mask=mask, normalize_kernel=False, allow_huge=True)
    noise = err * float(np.sqrt(np.sum(kernel.array**2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segm = detect_sources(np.where(mask, 0.0, smoothed), DENSITY_SIGMA * noise, DETECT_NPIXELS, mask=mask)
        if segm is None:
            return None, 0
        fluxes = np.asarray(SourceCatalog(data, segm, mask=mask).segment_flux, float)
    return fluxes, int(segm.n_labels)


def measure_conditions(image, rms=None, *, header=None, wcs=None, psf_fwhm=None, max_pixels=4096**2,
                       matched: bool = True, max_fits: int | None = None, progress=None) -> FrameConditions:
    """Measure a frame's conditions (see the module docstring) on its central ``max_pixels``.

    ``image`` and ``rms`` may be numpy, memmap or dask arrays of any size: only the central window
    is read. The noise is the median of ``rms`` there when given, else of an estimated noise map
    (:func:`..background.estimate_rms_map`); the sky is the median of the background mesh. The PSF
    is fitted on the isolated, unsaturated point sources among the 5σ (5 px) sources
    (:mod:`.psf_measure`) unless ``psf_fwhm`` is given; the density and number counts come from a
    deeper detection on the image filtered with that PSF (:func:`detect_matched`).
    ``matched=False`` skips the PSF-matched detection (the density and counts are then the 5σ
    detection's): what a model's range check uses, for speed and memory, with a smaller
    ``max_fits`` (point sources fitted for the PSF; default :data:`.psf_measure.MAX_FITS`).
    ``progress(done, total)`` is called after each of the 4 steps.
    """
    from ..background import estimate_mesh
    from .psf_measure import MAX_FITS, measure_psf

    shape = tuple(int(s) for s in np.shape(image))
    if len(shape) != 2:
        raise ValueError(f"a frame to describe must be 2-D, got shape {shape}")
    if min(shape) < MIN_SIDE:
        raise ValueError(f"the frame is too small to measure: {shape[0]}×{shape[1]} px, at least {MIN_SIDE} px a side needed")
    if rms is not None and tuple(np.shape(rms)) != shape:
        raise ValueError(f"the rms map has shape {tuple(np.shape(rms))}, the image {shape}: they must match")
    if psf_fwhm is not None and not (np.isfinite(psf_fwhm) and psf_fwhm > 0):
        raise ValueError(f"psf_fwhm must be a positive number of pixels, got {psf_fwhm}")
    total = 4

    def step(n):
        if progress is not None:
            progress(n, total)

    notes: list[str] = []
    window = central_window(shape, max_pixels)
    data = _read_window(image, window)
    crop_shape = data.shape
    if crop_shape != shape:
        notes.append(f"measured on the central {crop_shape[0]}×{crop_shape[1]} px of the {shape[0]}×{shape[1]} frame")
    finite = np.isfinite(data)
    if finite.mean() < 0.1:
        raise ValueError("the frame is too empty to measure: fewer than 10 % of its central pixels are finite")
    step(1)
    # background and noise: the detection mesh (64 px boxes) for the sky, the noise mesh for the rms
    box = min(64, min(crop_shape) // 2)
    mesh = estimate_mesh(data, box_size=box)
    sky = float(np.median(mesh.bkg_filled))
    window_all = (slice(0, crop_shape[0]), slice(0, crop_shape[1]))
    if rms is not None:
        err = _read_window(rms, window)
        good = np.isfinite(err) & (err > 0)
        if not good.any():
            raise ValueError("the rms map has no positive finite value in the measured window")
        err[~good] = np.nan
        noise, from_map = float(np.median(err[good])), True
    else:
        from ..background import NOISE_BOX, MeshMap

        noise_box = min(NOISE_BOX, min(crop_shape) // 2)
        noise_mesh = mesh if noise_box == box else estimate_mesh(data, box_size=noise_box)
        noise, from_map = noise_mesh.rms_median, False
        err = MeshMap(noise_mesh, "rms")[window_all]
        notes.append("no rms map given: the noise is estimated from the sky (σ-clipped mesh)")
    step(2)
    # detection: density and number counts
    from photutils.segmentation import SourceCatalog, detect_sources

    sub = data - mesh.evaluate("bkg", window_all)
    mask = ~np.isfinite(sub) | ~np.isfinite(err)
    sub_filled = np.where(mask, 0.0, sub).astype(np.float32)
    err_filled = np.where(mask, noise, err).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segm = detect_sources(sub_filled, DETECT_SIGMA * err_filled, DETECT_NPIXELS, mask=mask)
        catalog = None
        if segm is not None:
            catalog = SourceCatalog(sub_filled, segm, error=err_filled, mask=mask)
    n_sources = 0 if segm is None else int(segm.n_labels)
    mpix = float(np.count_nonzero(~mask)) / 1e6
    density = n_sources / mpix if mpix > 0 else 0.0
    edges, counts, slope, turnover = number_counts(
        [] if catalog is None else np.asarray(catalog.segment_flux, float))
    step(3)
    saturation = header_value(header, SATURATION_CARDS)
    zero_point = header_value(header, ZERO_POINT_CARDS)
    if psf_fwhm is not None:
        psf_kwargs = dict(psf_fwhm_px=float(psf_fwhm), psf_flag="given", psf_n_sources=0)
    else:
        psf = measure_psf(sub_filled, err_filled, segm, catalog, noise, saturation=saturation, sky=sky,
                          max_fits=max_fits or MAX_FITS)
        notes.extend(psf.notes)
        psf_kwargs = dict(psf_fwhm_px=psf.fwhm, psf_flag=psf.flag, psf_n_sources=psf.n_sources,
                          psf_ellipticity=psf.ellipticity, psf_kind=psf.kind, psf_moffat_beta=psf.beta)
    # the density and number counts: a deeper, PSF-matched detection (see detect_matched); without
    # ``matched`` (a model's range check needs the PSF only) those of the 5σ detection stay
    if matched:
        deep, n_sources = detect_matched(sub_filled, err_filled, mask, psf_kwargs["psf_fwhm_px"])
        density = n_sources / mpix if mpix > 0 else 0.0
        if deep is not None:
            edges, counts, slope, turnover = number_counts(deep)
    step(4)
    scale = pixel_scale_arcsec(wcs, header)
    if scale is None:
        notes.append("no WCS: lengths in pixels")
    return FrameConditions(shape=shape, **psf_kwargs, sky=sky, noise_rms=float(noise), noise_from_map=from_map,
                           pixel_scale_arcsec=scale, saturation=saturation, zero_point=zero_point,
                           density_per_mpix=float(density), flux_edges=edges, flux_counts=counts,
                           flux_slope=slope, flux_turnover=turnover, n_detected=n_sources,
                           measured_window=[window[0].start, window[0].stop, window[1].start, window[1].stop],
                           notes=notes)
