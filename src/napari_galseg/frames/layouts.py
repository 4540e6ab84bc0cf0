"""Write a field as the coadds surveys ship (for tests, docs and trying the plugin on real layouts).

``hsc`` (HSC/LSST: IMAGE, MASK with ``MP_*`` bit names, VARIANCE), ``des`` (SCI, MSK, WGT inverse
variance) and ``hst`` (drizzle: SCI, WHT inverse variance, CTX); a pixel flagged in ``bad`` is set
in the mask's BAD bit, or gets zero weight where the layout has no mask (HST).

The planes are written a strip of rows at a time (one ``StreamingHDU`` each), so ``image``,
``rms`` and ``bad`` may be memory-mapped survey-size frames: a 25000² coadd is made in a few
strips' worth of memory. ``bad`` may be a broadcast view (``np.broadcast_to(rows[:, None], shape)``)
so that a full-frame mask never exists either.
"""
from __future__ import annotations

import numpy as np

LAYOUTS = ("hsc", "des", "hst")
#: the LSST/HSC mask planes written in an ``hsc`` file's MASK header
HSC_PLANES = {"BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5, "SUSPECT": 7, "NO_DATA": 8}
#: pixels per written strip (whole rows): ~8 Mpix keeps the float64 temporaries near 64 MB
STRIP_PIXELS = 1 << 23


def write_coadd(path, image, rms, layout: str = "hsc", bad=None, header=None, overwrite: bool = False) -> None:
    """Write ``image`` and its 1σ ``rms`` as a ``layout`` coadd; ``bad`` (bool) flags bad pixels."""
    from .._atomic import atomic_path

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    shape = tuple(np.shape(image))
    if len(shape) != 2 or tuple(np.shape(rms)) != shape or (bad is not None and tuple(np.shape(bad)) != shape):
        raise ValueError(f"image, rms and bad must be 2-D frames of one shape, got {shape}, {np.shape(rms)} and "
                         f"{None if bad is None else np.shape(bad)}")

    def noise(y0, y1):
        return np.asarray(rms[y0:y1], np.float64)

    def flagged(y0, y1):
        return np.zeros((y1 - y0, shape[1]), bool) if bad is None else np.asarray(bad[y0:y1], bool)

    def hsc_mask(y0, y1):
        strip = flagged(y0, y1)
        mask = np.where(strip, 1 << HSC_PLANES["BAD"], 0).astype(np.int32)
        mask[(np.arange(y0, y1) % 97 == 0)[:, None] & ~strip] |= 1 << HSC_PLANES["DETECTED"]  # informative only
        return mask

    science = (np.float32, lambda y0, y1: np.asarray(image[y0:y1], np.float32))
    if layout == "hsc":
        planes = [("IMAGE", *science, header),
                  ("MASK", np.int32, hsc_mask, {f"HIERARCH MP_{name}" if len(name) > 5 else f"MP_{name}": bit
                                                for name, bit in HSC_PLANES.items()}),
                  ("VARIANCE", np.float32, lambda y0, y1: (noise(y0, y1) ** 2).astype(np.float32), None)]
    elif layout == "des":
        planes = [("SCI", *science, header),
                  ("MSK", np.int16, lambda y0, y1: np.where(flagged(y0, y1), 2, 0).astype(np.int16), None),
                  ("WGT", np.float32, lambda y0, y1: (1 / noise(y0, y1) ** 2).astype(np.float32), None)]
    else:
        planes = [("SCI", *science, header),
                  ("WHT", np.float32,
                   lambda y0, y1: np.where(flagged(y0, y1), 0.0, 1 / noise(y0, y1) ** 2).astype(np.float32), None),
                  ("CTX", np.int32, lambda y0, y1: np.ones((y1 - y0, shape[1]), np.int32), None)]
    rows = max(1, STRIP_PIXELS // max(shape[1], 1))
    with atomic_path(path, overwrite=overwrite) as tmp:
        _write_planes(tmp, shape, planes, rows)


def _write_planes(path, shape, planes, rows: int) -> None:
    """An empty primary HDU, then each ``(name, dtype, strip(y0, y1), header cards)`` plane streamed."""
    from astropy.io import fits

    path = str(path)  # StreamingHDU takes a Path's bare name for the file, relative to the working folder
    fits.PrimaryHDU().writeto(path, overwrite=True)
    for name, dtype, strip, cards in planes:
        template = fits.ImageHDU(np.zeros((1, 1), dtype), header=None if isinstance(cards, dict) else cards)
        template.name = name
        hdr = template.header
        for key, value in (cards.items() if isinstance(cards, dict) else ()):
            hdr[key] = value
        hdr["NAXIS1"], hdr["NAXIS2"] = shape[1], shape[0]
        stream = fits.StreamingHDU(path, hdr)
        try:
            for y0 in range(0, shape[0], rows):
                stream.write(np.ascontiguousarray(strip(y0, min(y0 + rows, shape[0])), dtype))
        finally:
            stream.close()
