"""Preprocessing: normalisation, contrast stretches, the rms channel, composites, and recipes.

Everything works on numpy arrays (numpy out) and dask arrays (lazy dask out, chunk by chunk).
Intervals are fitted once on a reproducible sample of the whole image and stored as numbers, so a
fitted :class:`Recipe` gives the same values on a tile, a patch or the whole image.

>>> from napari_galseg.preprocess import default_recipe
>>> recipe = default_recipe().fit(image, rms)        # doctest: +SKIP
>>> x = recipe.apply(image, rms)                     # doctest: +SKIP  (3, ny, nx) float32
"""
from __future__ import annotations

from ._sampling import DEFAULT_MAX_SAMPLE, sample_grid, strided_sample
from .composite import composite
from .normalise import (
                      INTERVALS,
                      IntervalParams,
                      NormaliseParams,
                      fit_normalise,
                      interval_limits,
                      normalise,
)
from .recipe import (
                      NAMED_RECIPES,
                      STEPS,
                      Channel,
                      Recipe,
                      as_recipe,
                      default_recipe,
                      image_only_recipe,
                      snr_only_recipe,
                      snr_recipe,
)
from .rms import BadRmsWarning, RmsParams, fit_rms_channel, no_data, rms_channel
from .snr import SnrParams, fit_snr, snr_block
from .stretch import (
                      STRETCHES,
                      CoarseBackground,
                      StretchParams,
                      astropy_stretch,
                      estimate_background,
                      fit_stretch,
                      stretch,
)

__all__ = [
                      "DEFAULT_MAX_SAMPLE",
                      "INTERVALS",
                      "STEPS",
                      "STRETCHES",
                      "BadRmsWarning",
                      "Channel",
                      "CoarseBackground",
                      "IntervalParams",
                      "NormaliseParams",
                      "Recipe",
                      "RmsParams",
                      "StretchParams",
                      "as_recipe",
                      "astropy_stretch",
                      "no_data",
                      "composite",
                      "default_recipe",
                      "estimate_background",
                      "fit_normalise",
                      "fit_rms_channel",
                      "fit_stretch",
                      "image_only_recipe",
                      "snr_only_recipe",
                      "snr_recipe",
                      "SnrParams",
                      "fit_snr",
                      "snr_block",
                      "NAMED_RECIPES",
                      "interval_limits",
                      "normalise",
                      "rms_channel",
                      "sample_grid",
                      "stretch",
                      "strided_sample",
]
