"""Fields made like a given frame: its PSF, noise, sky, depth and density, with exact truth.

A frame's :class:`~.conditions.FrameConditions` set a GalSim field (:mod:`.galsim_backend`):

- the PSF profile, FWHM, Moffat β and ellipticity as measured;
- the noise: the frame's rms map (a crop of it, when one is given) or its level, in the frame's
  units. The generator draws in its own units (sky 200 e⁻, read noise 5 e⁻); the field is then
  scaled by ``noise_rms / generator noise`` and put on the frame's sky, so fluxes, noise and sky
  are in the frame's units and the truth (flux above half the local noise) is unchanged;
- the density: the generator's galaxy density is calibrated so that a field drawn with it shows
  the frame's *detected* density (the same measurement on both), once;
- the flux distribution's slope from the frame's number counts, sizes scaled to the pixel scale;
- galaxies beyond smooth profiles: bulge + disk, knotty, irregular and merging systems.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .conditions import FrameConditions

#: PSF FWHM (px) the generator can draw: narrower is undersampled beyond GalSim's pixel
#: integration being meaningful here, wider needs stamps beyond its 401 px cap for bright objects
PSF_RANGE = (0.8, 25.0)
#: the generator's own noise with its default sky and read noise (e⁻ per pixel, exposure 1)
_GEN_SKY, _GEN_READ = 200.0, 5.0
#: morphology mix of the fields (the rest bulge + disk)
MORPHOLOGY_MIX = {"knotty_fraction": 0.3, "irregular_fraction": 0.1, "merger_fraction": 0.05}


@dataclass
class LikeSettings:
    """How a frame's conditions become generator settings (see :func:`like_settings`)."""

    options: dict
    #: frame units per generator unit
    scale: float
    #: the frame's sky level (image units)
    sky: float
    conditions: FrameConditions
    notes: list[str] = field(default_factory=list)


def like_settings(cond: FrameConditions, morphology: dict | None = None) -> LikeSettings:
    """The GalSim settings of fields like ``cond``; a ValueError (one line) when the generator
    cannot draw such a frame."""
    lo, hi = PSF_RANGE
    if not (lo <= cond.psf_fwhm_px <= hi):
        raise ValueError(f"the frame's PSF FWHM is {cond.psf_fwhm_px:.3g} px; the generator draws {lo:g}–{hi:g} px "
                         "(stamps cap at 401 px); give --psf-fwhm if the measurement is wrong, or rebin the frame")
    if not (cond.noise_rms > 0 and math.isfinite(cond.noise_rms)):
        raise ValueError(f"the frame's noise ({cond.noise_rms}) is not a positive number: give an rms map (--rms)")
    gen_noise = math.sqrt(_GEN_SKY + _GEN_READ**2)
    options: dict = {"psf": cond.psf_kind if cond.psf_kind in ("moffat", "kolmogorov") else "moffat",
                     "psf_fwhm": float(cond.psf_fwhm_px), "sky_level": _GEN_SKY, "read_noise": _GEN_READ,
                     "sky_gradient": 0.0, "depth_variation": 0.1, "galaxy_density": 600.0,
                     "psf_ellipticity": float(min(max(cond.psf_ellipticity or 0.0, 0.0), 0.5)),
                     **(MORPHOLOGY_MIX if morphology is None else morphology)}
    if options["psf"] == "moffat" and cond.psf_moffat_beta:
        options["moffat_beta"] = float(min(max(cond.psf_moffat_beta, 1.5), 10.0))
    notes = []
    if cond.flux_slope is not None and 1.2 <= cond.flux_slope <= 2.8:
        options["flux_slope"] = float(cond.flux_slope)
    if cond.pixel_scale_arcsec:
        options["pixel_scale_arcsec"] = float(cond.pixel_scale_arcsec)
        # the generator's sizes are for 0.2"/px: a finer pixel sees the same galaxies larger
        options["size_pivot"] = 2.0 * float(np.clip(0.2 / cond.pixel_scale_arcsec, 0.5, 2.0))
    return LikeSettings(options, cond.noise_rms / gen_noise, float(cond.sky), cond, notes)


def _to_frame_units(f, settings: LikeSettings):
    """A generator field scaled to the frame's units and sky."""
    s = settings.scale
    sky_gen = settings.options["sky_level"]
    catalog = f.catalog.copy()
    catalog["flux"] = catalog["flux"] * s
    return dataclasses.replace(f, catalog=catalog, image=((f.image - sky_gen) * s + settings.sky).astype(np.float32),
                               rms=(f.rms * s).astype(np.float32), noiseless=(f.noiseless * s).astype(np.float32))


def calibrate_density(settings: LikeSettings, seed: int = 0, size: int = 1024, steps: int = 2) -> LikeSettings:
    """Scale the generator's galaxy density until a field drawn with it shows the frame's detected
    density, measured the same way (the detected density grows about linearly with it: two steps)."""
    from .conditions import measure_conditions
    from .galsim_backend import make_galsim_field

    target = settings.conditions.density_per_mpix
    if not target > 0:
        return settings
    options, notes = dict(settings.options), list(settings.notes)
    for k in range(steps):
        trial = _to_frame_units(make_galsim_field(size, seed + 7919 + k, **options), settings)
        measured = measure_conditions(trial.image, trial.rms, psf_fwhm=settings.conditions.psf_fwhm_px).density_per_mpix
        if not measured > 0:
            break
        ratio = target / measured
        options["galaxy_density"] = float(np.clip(options["galaxy_density"] * ratio, 30.0, 5000.0))
        notes.append(f"density step {k + 1}: {measured:.0f} detected per Mpix for {target:.0f} on the frame")
        if abs(ratio - 1) < 0.05:
            break
    return dataclasses.replace(settings, options=options, notes=notes)


def make_like_field(cond: FrameConditions, size: int | tuple[int, int] = 2048, seed: int = 0, *,
                    rms_map=None, settings: LikeSettings | None = None, calibrate: bool = True):
    """A field like the frame of ``cond`` (a :class:`~.builtin.SyntheticField` in the frame's
    units). ``rms_map``: the frame's noise map; its central part of the field's size becomes the
    field's noise (the frame's own pattern), else the noise is its level with a mild variation."""
    from .galsim_backend import make_galsim_field

    shape = (size, size) if np.isscalar(size) else tuple(int(v) for v in size)
    if settings is None:
        settings = like_settings(cond)
        if calibrate:  # trial fields of about the field's size (at least 512², at most 1024²)
            settings = calibrate_density(settings, seed, size=int(np.clip(max(shape), 512, 1024)))
    noise = None
    if rms_map is not None:
        ny, nx = np.shape(rms_map)
        if ny < shape[0] or nx < shape[1]:
            shape = (min(ny, shape[0]), min(nx, shape[1]))
        y0, x0 = (ny - shape[0]) // 2, (nx - shape[1]) // 2
        crop = np.asarray(rms_map[y0 : y0 + shape[0], x0 : x0 + shape[1]], np.float64)
        good = np.isfinite(crop) & (crop > 0)
        if not good.any():
            raise ValueError("the rms map has no positive finite value in its central part: check the rms file")
        crop[~good] = np.median(crop[good])
        noise = crop / settings.scale
    f = make_galsim_field(shape, seed, noise_map=noise, **settings.options)
    out = _to_frame_units(f, settings)
    out.catalog.meta["like"] = {"conditions": cond.to_dict(), "options": settings.options, "scale": settings.scale,
                                "notes": settings.notes}
    return out
