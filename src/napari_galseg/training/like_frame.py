"""Training data for a frame nobody labelled: simulated fields made like it.

The CLI (``galseg train METHOD --like FRAME``), a job spec (``like: true``) and the training
widget's "like this frame" mode all come here: the frame's conditions are measured, a field with
exact truth is drawn like it (:mod:`napari_galseg.synth.like`), and the model records what it was
made for (its conditions and a validity range around the frame's PSF).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def like_training_field(model, image, rms=None, *, header=None, wcs=None, size: int = 2048, seed: int = 0,
                        psf_fwhm: float | None = None, provenance: dict | None = None,
                        say: Callable[[str], None] | None = None):
    """``(image, truth, rms)`` of a simulated field like the frame ``image`` (its ``rms`` map when
    given), ready for ``model.fit``; ``model``'s recipe and provenance are set for it."""
    from ..background import estimate_rms_map
    from ..preprocess import as_recipe
    from ..synth.conditions import measure_conditions
    from ..synth.like import make_like_field

    if size < 256:
        raise ValueError(f"the simulated field must be at least 256 px a side, got {size}")
    cond = measure_conditions(image, rms, header=header, wcs=wcs, psf_fwhm=psf_fwhm)
    say = say or (lambda line: None)
    for note in cond.notes:
        say(note)
    say(f"frame: PSF {cond.psf_fwhm_px:.2f} px ({cond.psf_kind}, {cond.psf_flag}), noise {cond.noise_rms:.4g}, "
        f"{cond.density_per_mpix:.0f} sources per Mpix; simulating a {size}² field like it")
    field = make_like_field(cond, size, seed, rms_map=rms)
    # the noise map the model trains with is the one it will be given on the frame: the frame's
    # own map when there is one, else estimated from the pixels as it will be there
    train_rms = field.rms if rms is not None else np.asarray(estimate_rms_map(field.image))
    caps = model.capabilities
    if model.recipe is None and caps.uses_recipe and caps.uses_device:  # networks: S/N input, any frame units
        model.recipe = as_recipe("snr").to_dict()
    fwhm = cond.psf_fwhm_px
    model.provenance["training"] = {"like": {**(provenance or {}), "field_size": size, "seed": seed,
                                             "generator": field.catalog.meta["like"]["options"]}}
    model.provenance["conditions"] = cond.to_dict()
    model.provenance["valid_range"] = {"psf_fwhm_px": [round(0.8 * fwhm, 3), round(1.25 * fwhm, 3)]}
    return field.image, field.truth, train_rms
