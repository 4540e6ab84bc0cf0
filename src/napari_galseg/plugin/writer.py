"""npe2 writers: napari Labels and Image layers to FITS.

Labels are written as int32, images in their own type; the FITS header and WCS of the layer's
source (``metadata["header"]``/``["wcs"]`` as set by our reader) are copied. Writes are atomic.

Overwriting: napari calls a writer only after its Save dialog, and Qt's Save dialog asks the user
before an existing file is replaced; napari's own writers overwrite. So a path that exists when
napari calls us was confirmed by the user, and we replace it (atomically: if writing fails the
old file is left as it was). The scripting API (:func:`napari_galseg.io.write_fits`) and the
``galseg`` CLI refuse to overwrite unless told to.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from napari_galseg.io import write_fits


def _level0(data: Any) -> Any:
    """Full-resolution data of a (possibly multiscale) layer."""
    if isinstance(data, (list, tuple)) or type(data).__name__ == "MultiScaleData":
        return data[0]
    return data


def _source(meta: dict | None) -> tuple[Any, Any]:
    metadata = (meta or {}).get("metadata") or {}
    return metadata.get("header"), metadata.get("wcs")


def _squeeze_to_2d(data: Any, what: str) -> Any:
    while getattr(data, "ndim", 2) > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f"FITS export writes 2-D {what}; this layer has shape {tuple(data.shape)}")
    return data


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer to ``path`` as int32 FITS; returns the paths written."""
    from astropy.io import fits

    header, wcs = _source(meta)
    labels = _squeeze_to_2d(_level0(data), "labels")
    like = fits.Header(header) if header is not None else fits.Header()
    # SEGROLE too: labels edited in the viewer are no longer known to be a prediction
    for key in ("BUNIT", "EXTNAME", "EXTVER", "DATAMIN", "DATAMAX", "SATURATE", "CONTENT", "SEGROLE"):
        like.remove(key, ignore_missing=True, remove_all=True)
    like["EXTNAME"] = ("LABELS", "instance segmentation map (0 = sky)")
    # the layer's WCS object (when known) replaces any WCS cards of the header
    written = write_fits(path, labels, header=like, wcs=wcs, overwrite=True, dtype=np.int32)
    return [str(written)]


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    """Write an Image layer (2-D, not RGB) to ``path`` as FITS; returns the paths written."""
    header, wcs = _source(meta)
    if (meta or {}).get("rgb"):
        raise ValueError("RGB layers cannot be written as a FITS image; write one channel at a time")
    image = _squeeze_to_2d(_level0(data), "images")
    return [str(write_fits(path, image, header=header, wcs=wcs, overwrite=True))]
