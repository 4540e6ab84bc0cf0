"""napari sample data: synthetic galaxy fields with their rms map and true segmentation."""
from __future__ import annotations

import numpy as np


def _layers(field, multiscale_levels: int = 1) -> list[tuple]:
    from ..synth import field_wcs

    header = field.header()
    wcs = field_wcs(field.shape, field.options)
    meta = {"header": header, "wcs": wcs, "source": f"napari_galseg.synth seed={field.seed}"}

    def pyramid(arr, labels=False):
        levels = [arr]
        for _ in range(multiscale_levels - 1):
            levels.append(levels[-1][::2, ::2])
        return levels if multiscale_levels > 1 else arr

    sky = float(np.median(field.image[::8, ::8]))
    hi = float(np.percentile(field.image[::4, ::4], 99.7))
    return [
        (
            pyramid(field.image),
            {"name": "img", "contrast_limits": (sky - 2 * float(np.median(field.rms)), hi), "gamma": 0.5,
             "metadata": {**meta, "galseg_kind": "image"}},
            "image",
        ),
        (
            pyramid(field.rms),
            {"name": "rms", "colormap": "magma", "visible": False, "metadata": {**meta, "galseg_kind": "rms"}},
            "image",
        ),
        (
            pyramid(field.truth, labels=True),
            {"name": "true", "opacity": 0.5, "metadata": {**meta, "galseg_kind": "labels", "galseg_role": "truth"}},
            "labels",
        ),
    ]


def _with_conventions(layers: list[tuple]) -> list[tuple]:
    """The viewer the sample opens in gets the display conventions, as a FITS file's does."""
    from .reader import _current_viewer, _display_conventions

    viewer = _current_viewer()
    if viewer is not None:
        _display_conventions(viewer)
    return layers


def small_field() -> list[tuple]:
    """A 1024² field (about 700 objects), made in a second."""
    from ..synth import make_field

    return _with_conventions(_layers(make_field(1024, seed=0)))


def large_field() -> list[tuple]:
    """A 4096² field shown as a multiscale pyramid (about 12,000 objects; takes ~20 s to make)."""
    from ..synth import make_field

    return _with_conventions(_layers(make_field(4096, seed=0), multiscale_levels=4))
