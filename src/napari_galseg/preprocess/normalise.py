"""Normalisation to [0, 1] with the astropy.visualization intervals (MinMax, Percentile, ZScale,
asymmetric percentile), fitted once on a reproducible sample of the whole image.

``fit_normalise`` turns the interval choice into concrete numbers (``vmin``, ``vmax``); applying
those numbers to a tile, a patch or the whole image gives the same value for the same pixel. That is
what makes a model trained on 256² patches see the same inputs at inference on a 25000² frame.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ._sampling import (
    DEFAULT_MAX_SAMPLE,
    check_2d,
    finite_values,
    is_dask,
    strided_sample,
)

INTERVALS = ("minmax", "percentile", "asymmetric_percentile", "zscale")


@dataclass
class IntervalParams:
    """How the lower and upper levels are chosen (astropy.visualization interval names).

    - ``minmax``: the smallest and largest finite sampled value (``MinMaxInterval``).
    - ``percentile``: keep the central ``percentile`` % (``PercentileInterval``).
    - ``asymmetric_percentile``: ``lower_percentile`` .. ``upper_percentile`` (``AsymmetricPercentileInterval``).
    - ``zscale``: IRAF/DS9 zscale (``ZScaleInterval`` with ``zscale_contrast``, ``zscale_samples``).
    ``max_sample`` bounds how many pixels are read to fit the interval (see ``_sampling``).
    """

    interval: str = "percentile"
    percentile: float = 99.5
    lower_percentile: float = 1.0
    upper_percentile: float = 99.0
    zscale_contrast: float = 0.25
    zscale_samples: int = 1000
    max_sample: int = DEFAULT_MAX_SAMPLE

    def _check_interval(self) -> None:
        if self.interval not in INTERVALS:
            raise ValueError(f"unknown interval {self.interval!r}; choose one of {', '.join(INTERVALS)}")
        if not 0 < self.percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        if not 0 <= self.lower_percentile < self.upper_percentile <= 100:
            raise ValueError("need 0 <= lower_percentile < upper_percentile <= 100, got "
                             f"{self.lower_percentile} and {self.upper_percentile}")


def interval_limits(values: np.ndarray, params: IntervalParams) -> tuple[float, float]:
    """Lower and upper level of the finite 1-D ``values`` with astropy's interval classes."""
    from astropy.visualization import (
        AsymmetricPercentileInterval,
        MinMaxInterval,
        PercentileInterval,
        ZScaleInterval,
    )

    params._check_interval()
    if params.interval == "minmax":
        interval = MinMaxInterval()
    elif params.interval == "percentile":
        interval = PercentileInterval(params.percentile)
    elif params.interval == "asymmetric_percentile":
        interval = AsymmetricPercentileInterval(params.lower_percentile, params.upper_percentile)
    else:
        interval = ZScaleInterval(n_samples=params.zscale_samples, contrast=params.zscale_contrast)
    lo, hi = interval.get_limits(values)
    return float(lo), float(hi)


def scale_to_unit(x: np.ndarray, lo: float, hi: float, clip: bool) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` in float64, optionally clipped to [0, 1]; 0 where ``hi == lo``."""
    x = np.asarray(x, dtype=np.float64)
    if hi == lo:
        return np.zeros_like(x)
    y = (x - lo) / (hi - lo)
    if clip:
        np.clip(y, 0.0, 1.0, out=y)
    return y


@dataclass
class NormaliseParams(IntervalParams):
    """Linear normalisation ``(x - vmin) / (vmax - vmin)``.

    ``vmin``/``vmax`` are filled in by fitting (or set by hand); ``clip`` keeps the result in [0, 1]
    like ``astropy.visualization.ImageNormalize(clip=True)``; NaN/Inf pixels become ``fill``.
    """

    vmin: float | None = None
    vmax: float | None = None
    clip: bool = True
    fill: float = 0.0

    @property
    def fitted(self) -> bool:
        return self.vmin is not None and self.vmax is not None

    def unfitted(self) -> NormaliseParams:
        return dataclasses.replace(self, vmin=None, vmax=None)

    def fit_values(self, values: np.ndarray) -> NormaliseParams:
        """A copy with ``vmin``/``vmax`` from the finite sampled ``values``."""
        lo, hi = interval_limits(values, self)
        return dataclasses.replace(self, vmin=lo, vmax=hi)


def fit_normalise(image, params: NormaliseParams | None = None, **changes) -> NormaliseParams:
    """Fit ``params`` (defaults if None) on a reproducible sample of ``image`` (numpy or dask)."""
    params = dataclasses.replace(params or NormaliseParams(), **changes)
    params._check_interval()
    check_2d(image, "image")
    sample, _, _ = strided_sample(image, params.max_sample)
    return params.fit_values(finite_values(sample))


def normalise_block(block: np.ndarray, params: NormaliseParams) -> np.ndarray:
    """Normalise one in-memory block with already fitted ``params`` (float32 out)."""
    x = np.asarray(block, dtype=np.float64)
    finite = np.isfinite(x)
    y = scale_to_unit(np.where(finite, x, 0.0), params.vmin, params.vmax, params.clip)
    y[~finite] = params.fill
    return y.astype(np.float32)


def normalise(image, params: NormaliseParams | None = None, **changes):
    """Normalise a 2-D image to [0, 1] (float32); numpy in → numpy out, dask in → lazy dask out.

    Unfitted ``params`` are fitted on ``image`` first; pass fitted params (from ``fit_normalise`` on
    the whole image) to process tiles or patches identically.
    """
    params = dataclasses.replace(params or NormaliseParams(), **changes)
    check_2d(image, "image")
    if not params.fitted:
        params = fit_normalise(image, params)
    if is_dask(image):
        return image.map_blocks(normalise_block, params, dtype=np.float32)
    return normalise_block(image, params)
