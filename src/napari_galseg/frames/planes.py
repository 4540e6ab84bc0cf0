"""Which HDU of a multi-extension coadd is the science, the noise and the mask, by EXTNAME.

HSC/LSST: IMAGE, MASK, VARIANCE; DES: SCI, MSK, WGT; HST drizzle: SCI, WHT (+ CTX); Euclid-like
files: SCI/FLUX, RMS, FLAG. Headers only are read. Each plane can be named by hand instead
(``--hdu``, ``--noise-hdu``, ``--mask-hdu``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCIENCE_NAMES = ("IMAGE", "SCI", "SCIENCE", "FLUX", "DATA", "IMG")
#: noise EXTNAMEs and the kind of noise each holds
NOISE_NAMES = {"VARIANCE": "variance", "VAR": "variance", "WGT": "weight", "WHT": "weight", "WEIGHT": "weight",
               "IVAR": "weight", "INVVAR": "weight", "RMS": "rms", "ERR": "rms", "ERROR": "rms", "SIGMA": "rms",
               "NOISE": "rms", "UNCERTAINTY": "rms"}
MASK_NAMES = ("MASK", "MSK", "MASKBITS", "FLAGS", "FLAG", "BPM", "DQ")


@dataclass
class Planes:
    """HDU indices (or EXTNAMEs given by hand) of one file's planes; None where it has none."""

    science: int | str | None = None
    noise: int | str | None = None
    noise_kind: str | None = None
    mask: int | str | None = None
    #: EXTNAME of every image HDU with data, by index (for messages and layer names)
    names: dict[int, str] | None = None


def _extname(hdu) -> str:
    """The HDU's EXTNAME, upper case; "" when it has none or the card cannot be parsed (a damaged
    card is the reader's to report, not a reason to fail finding planes)."""
    try:
        return str(hdu.header.get("EXTNAME", "")).strip().upper()
    except Exception:  # astropy's VerifyError for an unparsable card
        return ""


def find_planes(path: str | Path) -> Planes:
    """The planes of ``path`` by EXTNAME (a single-image file: its one image is the science)."""
    from ..io.fits import _image_hdu_indices, _open_hdulist

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with _open_hdulist(path) as hdul:
        indices = _image_hdu_indices(hdul)
        names = {i: _extname(hdul[i]) for i in indices}
    planes = Planes(names=names)
    if len(indices) < 2:
        return planes
    for i, name in names.items():
        if planes.science is None and name in SCIENCE_NAMES:
            planes.science = i
        elif planes.noise is None and name in NOISE_NAMES:
            planes.noise, planes.noise_kind = i, NOISE_NAMES[name]
        elif planes.mask is None and name in MASK_NAMES:
            planes.mask = i
    if planes.science is None:  # e.g. a primary image followed by a WHT extension
        others = [i for i in indices if i not in (planes.noise, planes.mask)]
        planes.science = others[0] if others else None
    return planes


def hdu_value(value):
    """An ``--hdu``-style value: an index as int, an EXTNAME as given; None stays None."""
    if value is None or value == "":
        return None
    return int(value) if str(value).lstrip("-").isdigit() else value


def describe(planes: Planes, path) -> str:
    """``IMAGE (1), VARIANCE (3)``: the planes a file has, for messages."""
    return ", ".join(f"{name or 'unnamed'} ({i})" for i, name in (planes.names or {}).items())
