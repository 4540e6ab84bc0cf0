"""One synthetic field seen in several bands: the same galaxies, each with its own colour, a PSF
and independent noise per band — for testing and measuring multi-band detection.

Each galaxy is bright (flux × 1) in one band chosen at random and ``faint`` × as bright in the
others, so a galaxy can be near the threshold in every band but one. The truth is the first
band's (the galaxies are the same; footprints differ a little with the PSF).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BandField:
    """``images[band]``, ``rms[band]`` (float32), the instance ``truth`` and each galaxy's
    brightest band (``favourite[id]``, an index into ``bands``)."""

    bands: tuple[str, ...]
    images: dict
    rms: dict
    truth: np.ndarray
    favourite: np.ndarray


def make_bands(size: int = 512, seed: int = 0, bands=("g", "r", "i"), faint: float = 0.25,
               psf_fwhm: dict | None = None, sky: float = 10.0) -> BandField:
    """The field of :func:`~napari_galseg.synth.make_field` (``size``, ``seed``) in ``bands``;
    ``psf_fwhm`` maps a band to its PSF FWHM in pixels (default: the field's for every band)."""
    from scipy import ndimage

    from .builtin import make_field

    bands = tuple(bands)
    if len(set(bands)) != len(bands) or not bands:
        raise ValueError(f"bands must be distinct names, got {bands}")
    rng = np.random.default_rng([int(seed), 28])
    images, rms, truth, favourite, owner = {}, {}, None, None, None
    for b, name in enumerate(bands):
        options = {"psf_fwhm": float(psf_fwhm[name])} if psf_fwhm and name in psf_fwhm else {}
        f = make_field(size, seed=seed, **options)
        if truth is None:
            truth = f.truth
            favourite = rng.integers(0, len(bands), int(truth.max()) + 1)
            _, (iy, ix) = ndimage.distance_transform_edt(truth == 0, return_indices=True)
            owner = truth[iy, ix]  # each pixel's light takes the colour of the nearest true galaxy
        scale = np.where(favourite == b, 1.0, float(faint))[owner]
        images[name] = (f.noiseless * scale + rng.normal(0.0, 1.0, f.image.shape) * f.rms + sky).astype(np.float32)
        rms[name] = f.rms
    return BandField(bands, images, rms, truth, favourite)
