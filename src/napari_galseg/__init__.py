"""napari-galseg: find and segment galaxies in survey-size FITS images.

The public API for scripts (none of it imports napari or Qt)::

    import napari_galseg as gs
    img = gs.open_fits("img.fits")            # lazy dask array + header + WCS
    field = gs.synth.make_field(1024, seed=0)
    labels = gs.segmenters.get("photutils")().predict(field.image, rms=field.rms).labels
    gs.metrics.evaluate(labels, field.truth)

Submodules load on first use, so ``import napari_galseg`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"io", "synth", "preprocess", "segmenters", "metrics", "tiling", "training", "catalog", "inference"}
_FROM_IO = {"open_fits", "open_fits_all", "write_fits", "write_labels"}

__all__ = ["__version__", *sorted(_SUBMODULES), *sorted(_FROM_IO)]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FROM_IO:
        return getattr(importlib.import_module(f"{__name__}.io"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
