"""The study's preprocessing variants (its table rows), as recipes.

The study fed each method four inputs: the normalised image; its "software" (FITS-Liberator)
stretch; that stretch plus the rms map; and the stretch plus a log-stretched rms map. ``default``
is each method's own choice (the U-Net's sky-subtracted ``default+snr``, the forest's galaxy
features, photutils on the calibrated image). Methods that read no recipe (photutils) run once,
under ``default``.
"""
from __future__ import annotations

from ..preprocess import Channel, Recipe, default_recipe
from ..preprocess.rms import RmsParams

#: the study's rows, in its words
STUDY_ROWS = {
    "normalised": "Image w/Normalize",
    "stretched": "Image software w/Normalize",
    "stretched+rms": "Image software + rms w/Normalize",
    "stretched+logrms": "Image software + rms w/Normalize and stretch",
}


def _normalised() -> Recipe:
    return Recipe([default_recipe().channels[0]], name="normalised")


def _stretched() -> Recipe:
    return Recipe(default_recipe().channels[:2], name="stretched")


def _stretched_rms() -> Recipe:
    linear_rms = Channel("rms", RmsParams(stretch="linear"), "rms", "rms")
    return Recipe([*default_recipe().channels[:2], linear_rms], name="stretched+rms")


def _stretched_logrms() -> Recipe:
    return Recipe(default_recipe().channels, name="stretched+logrms")


#: variant name -> recipe builder; None = the method's own default input
VARIANTS = {
    "normalised": _normalised,
    "stretched": _stretched,
    "stretched+rms": _stretched_rms,
    "stretched+logrms": _stretched_logrms,
    "default": None,
}


#: the setting that makes a method read the recipe's channels instead of its own default features
RECIPE_INPUT_SETTINGS = {"kmeans": {"channels": "recipe"}, "forest": {"features": "study"}}
#: a one-channel recipe has its texture in channel 0 (the study's features take channel 1 otherwise)
VARIANT_SETTINGS = {("forest", "normalised"): {"texture_channel": 0}}


def recipe_for(variant: str) -> Recipe | None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    build = VARIANTS[variant]
    return build() if build is not None else None


__all__ = ["RECIPE_INPUT_SETTINGS", "STUDY_ROWS", "VARIANTS", "VARIANT_SETTINGS", "recipe_for"]
