"""The signal-to-noise channel: ``asinh((image - sky) / rms / softening)``.

The study's channels map the image to [0, 1] between percentiles, which squeezes the sky noise
into a sliver of the range (``normalised``) or clips it to black (``stretched``: black at sky +
1σ). A network that must find faint outskirts (the synthetic truth reaches 0.5σ per pixel) needs
exactly that range: this channel keeps it linear in units of the noise (σ = 1 around the sky) and
compresses bright cores logarithmically (asinh), so a 1000σ core is ~7.6.

``sky`` is one number fitted on a reproducible sample (a 3σ-clipped median), so the channel is
pointwise: a patch, a tile and the whole frame give the same values. A slow sky gradient left in
the image stays in the channel as a smooth offset that the network's context absorbs.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ._sampling import DEFAULT_MAX_SAMPLE, check_2d, strided_sample


@dataclass
class SnrParams:
    """``softening``: the S/N (in σ) where asinh turns from linear to logarithmic; ``sky``: the
    sky level in image units (fitted when None)."""

    softening: float = 1.0
    sky: float | None = None
    max_sample: int = DEFAULT_MAX_SAMPLE
    fill: float = 0.0

    @property
    def fitted(self) -> bool:
        return self.sky is not None

    def unfitted(self) -> SnrParams:
        return dataclasses.replace(self, sky=None)

    def _check(self) -> None:
        if not (math.isfinite(self.softening) and self.softening > 0):
            raise ValueError(f"snr softening must be a positive number of sigma, got {self.softening}")
        if self.sky is not None and not math.isfinite(self.sky):
            raise ValueError(f"snr sky must be a finite number, got {self.sky}")


def fit_snr(image, params: SnrParams | None = None) -> SnrParams:
    """Fit the sky level: the 3σ-clipped median of a reproducible sample of ``image``."""
    from astropy.stats import sigma_clipped_stats

    params = params or SnrParams()
    params._check()
    check_2d(image, "image")
    sample, _, _ = strided_sample(image, params.max_sample)
    values = sample[np.isfinite(sample)]
    if not values.size:
        raise ValueError("the image has no finite pixel in its sample: cannot fit the sky level of the snr channel")
    _, median, _ = sigma_clipped_stats(values, sigma=3.0, maxiters=10)
    return dataclasses.replace(params, sky=float(median))


def snr_block(image: np.ndarray, rms: np.ndarray, params: SnrParams) -> np.ndarray:
    """The channel over one in-memory block (float32); pixels without a finite value or a positive
    rms get ``fill``."""
    if rms is None:
        raise ValueError("the snr channel needs the rms map: pass rms=... (--rms on the command line)")
    if not params.fitted:
        raise ValueError("the snr channel is not fitted (no sky level): fit the recipe on the image first")
    image = np.asarray(image, dtype=np.float32)
    rms = np.asarray(rms, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        good = np.isfinite(image) & np.isfinite(rms) & (rms > 0)
        x = (image - np.float32(params.sky)) / (rms * np.float32(params.softening))
        out = np.arcsinh(x, dtype=np.float32)
    out[~good] = np.float32(params.fill)
    return out
