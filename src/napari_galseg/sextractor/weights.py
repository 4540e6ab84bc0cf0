"""SExtractor's weight maps (``weight.c``, ``back.c``, ``interpolate.c``): one variance per pixel.

WEIGHT_TYPE MAP_RMS, MAP_VAR and MAP_WEIGHT read a map as σ, σ² or 1/σ²; BACKGROUND takes the
background rms map. The map becomes a variance (weight_to_var); a variance or weight map is scaled
so that its median matches the image's own noise (RESCALE_WEIGHTS, the factor ``sigfac`` from the
background meshes of both); pixels whose variance reaches WEIGHT_THRESH (converted the same way,
before scaling, as SExtractor does) are "low weight": left out of the background, masked in the
photometry, and with INTERP_TYPE ALL replaced along the scan by their left (or upper) neighbour for
up to INTERP_MAXXLAG (MAXYLAG) pixels. Detection then thresholds each pixel at DETECT_THRESH × the
square root of the *filtered* variance.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from .background import BIG, SExBackground, _fqmedian
from .errors import SExtractorInputError

WEIGHT_TYPES = ("NONE", "BACKGROUND", "MAP_RMS", "MAP_VAR", "MAP_WEIGHT")
WTHRESH_CONVFAC = 1e-4  # weight.h: the low-detection-weight flag's cap, as a fraction of BIG
OBJ_LOWWEIGHT, OBJ_LOWDWEIGHT = 1, 2


@dataclasses.dataclass
class WeightSettings:
    """WEIGHT_* and INTERP_* keys of a ``.sex`` file (SExtractor's defaults)."""

    type: str = "NONE"
    #: the WEIGHT_IMAGE path, or the map itself (raw: σ, σ² or weight as the type says)
    image: object = None
    #: WEIGHT_THRESH as given (None: SExtractor's default, 0 for MAP_WEIGHT, "infinite" otherwise)
    thresh: float | None = None
    rescale: bool = True
    gain: bool = True
    interp: bool = True  # INTERP_TYPE ALL (NONE: False)
    xlag: int = 16
    ylag: int = 16

    @property
    def on(self) -> bool:
        return self.type != "NONE"


def weight_to_var(raw: np.ndarray, kind: str, sigfac: float = 1.0) -> np.ndarray:
    """weight_to_var(): σ, σ² or weight as float32 variance (weight ≤ 0 → BIG), scaled by sigfac²."""
    data = np.asarray(raw, np.float32)
    f2 = np.float32(np.float32(sigfac) * np.float32(sigfac))
    if kind in ("MAP_RMS", "BACKGROUND"):
        with np.errstate(over="ignore"):
            return np.where(data < np.float32(BIG), data * data, data).astype(np.float32)
    if kind == "MAP_VAR":
        return (data * f2).astype(np.float32)
    with np.errstate(divide="ignore"):
        return np.where(data > 0, f2 / np.where(data > 0, data, np.float32(1)), np.float32(BIG)).astype(np.float32)


def var_threshold(w: WeightSettings) -> np.float32:
    """WEIGHT_THRESH in variance units, converted before any rescaling (makeit.c)."""
    thresh = w.thresh if w.thresh is not None else (0.0 if w.type == "MAP_WEIGHT" else BIG)
    return np.float32(weight_to_var(np.array([thresh], np.float32), w.type)[0])


def read_map(source, shape: tuple[int, int], what: str, key: str) -> np.ndarray:
    """A weight or flag map from a FITS path (first image HDU) or an array, checked against the image."""
    if isinstance(source, np.ndarray):
        data, name = source, f"the {what}"
    else:
        from astropy.io import fits

        name = str(source)
        try:
            with fits.open(source, memmap=False) as hdus:
                hdu = next((h for h in hdus if getattr(h, "data", None) is not None and h.data.ndim == 2), None)
                if hdu is None:
                    raise SExtractorInputError(f"{name} ({key}): no 2-D image in the file; give the {what} as a "
                                               "FITS image")
                data = np.array(hdu.data)
        except FileNotFoundError:
            raise SExtractorInputError(f"{name} ({key}): no such file; give the path of the {what}") from None
        except OSError as exc:
            raise SExtractorInputError(f"{name} ({key}): not a readable FITS file ({exc}); give the {what} "
                                       "as a FITS image") from None
    if data.shape != tuple(shape):
        raise SExtractorInputError(f"{name} ({key}): the {what} has shape {data.shape} but the image has "
                                   f"{tuple(shape)}; give the {what} made for this frame")
    return data


def map_rows(source, shape: tuple[int, int], what: str, key: str):
    """``rows(y0, y1)`` of a weight map (float32) from a FITS path or an array, checked against the
    image as :func:`read_map` checks it; a plain FITS file is read a strip at a time, never whole."""
    if isinstance(source, np.ndarray):
        data = read_map(source, shape, what, key)
        return lambda y0, y1: np.asarray(data[y0:y1], np.float32)
    from pathlib import Path

    from ..io import FitsReadError, open_fits_array
    from ..io.fits_rows import FitsRowReader

    name = str(source)
    if not Path(source).is_file():
        raise SExtractorInputError(f"{name} ({key}): no such file; give the path of the {what}")
    try:
        array, _header = open_fits_array(source)
    except (FitsReadError, OSError, ValueError) as exc:
        raise SExtractorInputError(f"{name} ({key}): not a readable FITS image ({exc}); give the {what} "
                                   "as a FITS image") from None
    if tuple(array.shape) != tuple(shape):
        raise SExtractorInputError(f"{name} ({key}): the {what} has shape {tuple(array.shape)} but the image has "
                                   f"{tuple(shape)}; give the {what} made for this frame")
    return FitsRowReader(array).read_rows


def weight_scale(bg: SExBackground) -> float:
    """makeback()'s sigfac: the median over meshes of the image σ / √(variance map's mode)."""
    wb = bg.var_back.ravel().astype(np.float64)
    sig = bg.sigma.ravel().astype(np.float64)
    good = wb > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (sig[good] / np.sqrt(wb[good])).astype(np.float32)
    ratio = ratio[ratio > 0.0]
    return float(_fqmedian(ratio)) if ratio.size else 1.0


@njit(cache=True, nogil=True)
def _interpolate_rows(sub, var, wthresh, xlag, ylag, allflag, ytimeout, backup, wbackup):
    """interpolate() over consecutive rows, its per-column state carried in the last three arrays."""
    h, w = sub.shape
    for y in range(h):
        xtimeout = 0
        for x in range(w):
            if var[y, x] >= wthresh:
                if not xtimeout:
                    if ytimeout[x]:
                        ytimeout[x] -= 1
                        var[y, x] = wbackup[x]
                        if allflag:
                            sub[y, x] = backup[x]
                else:
                    xtimeout -= 1
                    var[y, x] = var[y, x - 1]
                    if allflag:
                        sub[y, x] = sub[y, x - 1]
            else:
                xtimeout = xlag
                ytimeout[x] = ylag
            wbackup[x] = var[y, x]
            if allflag:
                backup[x] = sub[y, x]


class InterpolationState:
    """SExtractor's interpolate() fed a block of rows at a time (the frame top to bottom): low-weight
    pixels (variance ≥ wthresh) take the value and variance of their left neighbour for up to
    ``xlag`` pixels, then of the pixel above for up to ``ylag`` rows, in place; this holds what the
    scan remembers of the rows above."""

    def __init__(self, width: int):
        self.ytimeout = np.zeros(width, np.int64)
        self.backup = np.zeros(width, np.float32)
        self.wbackup = np.zeros(width, np.float32)

    def apply(self, sub, var, wthresh, xlag, ylag, allflag) -> None:
        _interpolate_rows(sub, var, wthresh, xlag, ylag, allflag, self.ytimeout, self.backup, self.wbackup)


def low_weight_flags(var: np.ndarray, fvar: np.ndarray, wthresh: np.float32) -> np.ndarray:
    """The scan's per-pixel weight flags: OBJ_LOWWEIGHT where the variance reaches WEIGHT_THRESH,
    OBJ_LOWDWEIGHT where the detection (filtered) variance does at the pixel or one of its 8 neighbours."""
    from scipy import ndimage as ndi

    cdw = min(float(wthresh), BIG * WTHRESH_CONVFAC)
    low_d = ndi.binary_dilation(fvar >= np.float32(cdw), structure=np.ones((3, 3), bool))
    return ((var >= wthresh).astype(np.uint8) * OBJ_LOWWEIGHT) | (low_d.astype(np.uint8) * OBJ_LOWDWEIGHT)
