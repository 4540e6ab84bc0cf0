"""Write a field as the coadds surveys ship (for tests, docs and trying the plugin on real layouts).

``hsc`` (HSC/LSST: IMAGE, MASK with ``MP_*`` bit names, VARIANCE), ``des`` (SCI, MSK, WGT inverse
variance) and ``hst`` (drizzle: SCI, WHT inverse variance, CTX); a pixel flagged in ``bad`` is set
in the mask's BAD bit, or gets zero weight where the layout has no mask (HST).
"""
from __future__ import annotations

import numpy as np

LAYOUTS = ("hsc", "des", "hst")
#: the LSST/HSC mask planes written in an ``hsc`` file's MASK header
HSC_PLANES = {"BAD": 0, "SAT": 1, "INTRP": 2, "CR": 3, "EDGE": 4, "DETECTED": 5, "SUSPECT": 7, "NO_DATA": 8}


def write_coadd(path, image, rms, layout: str = "hsc", bad=None, header=None, overwrite: bool = False) -> None:
    """Write ``image`` and its 1σ ``rms`` as a ``layout`` coadd; ``bad`` (bool) flags bad pixels."""
    from astropy.io import fits

    from .._atomic import atomic_path

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    rms64 = np.asarray(rms, np.float64)
    bad = np.zeros(np.shape(image), bool) if bad is None else np.asarray(bad, bool)
    sci = fits.ImageHDU(np.asarray(image, np.float32), header=header)
    hdus = [fits.PrimaryHDU()]
    if layout == "hsc":
        mask = np.where(bad, 1 << HSC_PLANES["BAD"], 0).astype(np.int32)
        mask[(np.arange(mask.shape[0]) % 97 == 0)[:, None] & ~bad] |= 1 << HSC_PLANES["DETECTED"]  # informative only
        mhdu = fits.ImageHDU(mask, name="MASK")
        for name, bit in HSC_PLANES.items():
            mhdu.header[f"HIERARCH MP_{name}" if len(name) > 5 else f"MP_{name}"] = bit
        sci.name = "IMAGE"
        hdus += [sci, mhdu, fits.ImageHDU((rms64 ** 2).astype(np.float32), name="VARIANCE")]
    elif layout == "des":
        sci.name = "SCI"
        hdus += [sci, fits.ImageHDU(np.where(bad, 2, 0).astype(np.int16), name="MSK"),
                 fits.ImageHDU((1 / rms64 ** 2).astype(np.float32), name="WGT")]
    else:
        sci.name = "SCI"
        weight = np.where(bad, 0.0, 1 / rms64 ** 2).astype(np.float32)
        hdus += [sci, fits.ImageHDU(weight, name="WHT"), fits.ImageHDU(np.ones(np.shape(image), np.int32), name="CTX")]
    with atomic_path(path, overwrite=overwrite) as tmp:
        fits.HDUList(hdus).writeto(tmp)
