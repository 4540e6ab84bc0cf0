"""Noise maps of every kind (rms, variance, inverse-variance weight) as one lazy 1σ map.

Surveys ship their noise as a 1σ map (Euclid RMS), a variance (HSC/LSST VARIANCE) or an inverse
variance (DES WGT, Legacy Surveys invvar, HST WHT). The segmenters want a 1σ map, so a
:class:`NoiseMap` converts a window at a time when it is sliced: a 25000² frame never gets a
frame-sized temporary. Zero weight, infinite variance or rms, and NaN mean *no data*: those
pixels come out NaN (see :meth:`NoiseMap.no_data`), and the frame makes the science pixels NaN
there too, which every segmenter treats as bad. Negative values are refused: they are not noise.
"""
from __future__ import annotations

import numpy as np

from ..background import direct_source, read_float32, window_ranges

#: SExtractor's WEIGHT_TYPE names → our kinds
WEIGHT_TYPES = {"MAP_RMS": "rms", "MAP_VAR": "variance", "MAP_WEIGHT": "weight"}
KINDS = ("rms", "variance", "weight")


def noise_kind(name: str) -> str:
    """``"rms"``, ``"variance"`` or ``"weight"`` from a kind or a SExtractor WEIGHT_TYPE name."""
    text = str(name).strip()
    if text.lower() in KINDS:
        return text.lower()
    if text.upper() in WEIGHT_TYPES:
        return WEIGHT_TYPES[text.upper()]
    raise ValueError(f"unknown weight type {name!r}: give one of {', '.join(WEIGHT_TYPES)} "
                     f"(or {', '.join(KINDS)})")


def to_rms(block: np.ndarray, kind: str, scale: float = 1.0) -> np.ndarray:
    """One window of a noise map of ``kind`` as a float32 1σ map, NaN where there is no data.

    ``scale`` multiplies the map first (a drizzle exposure-time map used as a weight). Computed in
    float64 so sqrt(rms²) gives back the same float32 rms. Raises ValueError on negative values.
    """
    values = np.asarray(block, dtype=np.float64)
    if scale != 1.0:
        values = values * scale
    with np.errstate(invalid="ignore"):
        negative = values < 0
    if negative.any():
        first = np.argwhere(negative)[0]
        raise ValueError(f"the {kind} map has {int(negative.sum())} negative value(s) (first {values[tuple(first)]:g} at "
                         f"window pixel y={first[0]}, x={first[1]}); a noise map is ≥ 0 — check that the right "
                         "plane or --weight-type was given")
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "rms":
            rms = values
        elif kind == "variance":
            rms = np.sqrt(values)
        elif kind == "weight":
            rms = 1.0 / np.sqrt(values)
        else:  # pragma: no cover - kinds are checked by noise_kind
            raise ValueError(f"unknown noise kind {kind!r}")
    rms = rms.astype(np.float32)
    rms[~(np.isfinite(rms) & (rms > 0))] = np.nan
    return rms


class NoiseMap:
    """A noise plane of any kind as a read-only lazy 2-D float32 1σ map (NaN = no data).

    Slicing reads that window of ``source`` (numpy, memmap, dask or FITS reader) and converts it;
    like :class:`~napari_galseg.background.MeshMap`, nothing frame-sized is ever held.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, source, kind: str = "rms", scale: float = 1.0, name: str = ""):
        self.kind = noise_kind(kind)
        self.scale = float(scale)
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"the noise map's scale must be a positive number, got {scale!r}")
        self.source = direct_source(source)
        self.shape = tuple(int(s) for s in np.shape(source))
        if len(self.shape) != 2:
            raise ValueError(f"a noise map is 2-D, got shape {self.shape}")
        self.name = name or f"the {self.kind} map"

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        ys, xs = window_ranges(key, self.shape, "NoiseMap")
        block = read_float32(self.source, (slice(ys.start, ys.stop, ys.step), slice(xs.start, xs.stop, xs.step)))
        try:
            return to_rms(block, self.kind, self.scale)
        except ValueError as exc:  # say which file and where in the frame
            raise ValueError(f"{self.name}: {exc}".replace("window pixel", f"window from y={ys.start}, x={xs.start}, pixel")) from None

    def no_data(self, key) -> np.ndarray:
        """True where the window holds no data (zero weight, infinite or NaN noise)."""
        return np.isnan(self[key])

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


#: a noise map whose typical 1σ is this far (×/÷) from the image's pixel scatter is doubted
KIND_DOUBT_FACTOR = 5.0


def kind_doubt(image_sample: np.ndarray, noise_sample: np.ndarray, kind: str) -> str | None:
    """Why a noise map may be of another kind (a weight given as ``--rms`` …), or None.

    Compares the map's median 1σ with the image's robust pixel scatter (1.4826 × MAD of a
    sample, which sky pixels dominate) and names the kind that would fit within a factor 2.
    """
    pixels = np.asarray(image_sample, np.float64)
    pixels = pixels[np.isfinite(pixels)]
    values = np.asarray(noise_sample, np.float64)
    values = values[np.isfinite(values) & (values > 0)]
    if pixels.size < 100 or not values.size:
        return None
    scatter = 1.4826 * float(np.median(np.abs(pixels - np.median(pixels))))
    typical = float(np.median(values))
    if not scatter > 0 or 1 / KIND_DOUBT_FACTOR < typical / scatter < KIND_DOUBT_FACTOR:
        return None
    raw = {"rms": typical, "variance": typical ** 2, "weight": typical ** -2}[kind]  # the map's own value
    fits = [k for k, sigma in (("rms", raw), ("variance", raw ** 0.5), ("weight", raw ** -0.5))
            if k != kind and 0.5 < sigma / scatter < 2]
    hint = f"; it looks like {'an' if fits[0] == 'rms' else 'a'} {fits[0]} map (--{fits[0]})" if fits else ""
    return (f"warning: the {kind} map gives a typical 1σ of {typical:.3g}, {typical / scatter:.3g}× the image's pixel "
            f"scatter ({scatter:.3g}): thresholds will be {'far too high' if typical > scatter else 'far too low'}"
            f"{hint}")
