"""What a FITS file holds, from its name and header: FITS file names, and the kind of an HDU
(image, rms map or label map) — by keywords first, pixels next, the file name last."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .label_map import looks_like_label_map

#: File name endings we treat as FITS (lower case; compared case-insensitively).
FITS_SUFFIXES = (
    ".fits", ".fit", ".fts", ".fz", ".fits.fz", ".fits.gz", ".fit.gz", ".fts.gz",
)
_LABEL_WORDS = ("true", "truth", "seg", "segm", "segmap", "segmentation", "mask", "masks",
                "label", "labels", "labelmap")
_RMS_WORDS = ("rms", "err", "error", "errors", "sigma", "noise", "weight", "weights", "wht",
              "var", "variance", "ivar", "invvar", "std", "unc", "uncertainty")
# Header keywords that say what an HDU holds. EXTNAME first: in multi-extension files it is the
# most specific; the file name is the last resort.
_KIND_KEYWORDS = ("EXTNAME", "HDUNAME", "CONTENT", "IMAGETYP", "FILETYPE", "PRODTYPE", "BUNIT", "OBJECT")
# Names astropy gives compressed/primary HDUs by default: not worth putting in a layer name.
_BORING_EXTNAMES = {"", "PRIMARY", "COMPRESSED_IMAGE", "IMAGE"}


def fits_stem(path: str | os.PathLike) -> str:
    """File name without its FITS endings: ``img.fits.gz`` -> ``img``."""
    name = Path(path).name
    lower = name.lower()
    for suffix in sorted(FITS_SUFFIXES + (".gz",), key=len, reverse=True):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name


def is_fits_path(path: str | os.PathLike) -> bool:
    """True when the file name ends like a FITS file (the content is checked on opening)."""
    lower = str(path).lower()
    return any(lower.endswith(suffix) for suffix in FITS_SUFFIXES)


def find_fits_files(folder: str | os.PathLike) -> list[Path]:
    """FITS files directly inside ``folder`` (not recursive), sorted by name; hidden files skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and is_fits_path(p))


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", text.lower()) if w}


def _kind_from_text(text: str, integer: bool) -> str | None:
    words = _words(text)
    if integer and words.intersection(_LABEL_WORDS):
        return "labels"
    if words.intersection(_RMS_WORDS):
        return "rms"
    return None


def _scaled_integers(header: Any) -> bool:
    """BZERO/BSCALE on integers: raw CCD frames (int16 + BZERO=32768) stay images whatever their pixels."""
    return header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0


def guess_kind(header: Any, path: str | os.PathLike | None, dtype: np.dtype) -> str:
    """``"labels"``, ``"rms"`` or ``"image"`` from header keywords, then the file name.

    Only integer images can be labels (a float image called ``mask`` is still an image); noise
    maps (rms, err, sigma, weight, ...) may have any type.
    """
    integer = np.issubdtype(np.dtype(dtype), np.integer) or np.dtype(dtype) == np.bool_
    header = header if header is not None else {}
    for key in _KIND_KEYWORDS:
        value = header.get(key) if hasattr(header, "get") else None
        if isinstance(value, str) and value.strip():
            kind = _kind_from_text(value, integer)
            if kind:
                return kind
    if path is not None:
        kind = _kind_from_text(fits_stem(path), integer)
        if kind:
            return kind
    return "image"


def hdu_kind(header: Any, path: str | os.PathLike | None, array) -> str:
    """:func:`guess_kind`, then the pixels: an integer image that looks like a segmentation map
    (:func:`~napari_galseg.io.label_map.looks_like_label_map`) is labels even without a keyword
    (a prediction saved without EXTNAME); raw frames with BZERO/BSCALE stay images."""
    kind = guess_kind(header, path, array.dtype)
    if kind == "image" and not _scaled_integers(header) and looks_like_label_map(array):
        kind = "labels"
    return kind
