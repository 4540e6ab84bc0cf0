"""A user's frame: science plane + noise (rms, variance or weight) + mask + header, opened lazily.

:func:`open_frame` finds the planes (one multi-extension file, or separate files), checks them
once (shapes, negative noise, a frame with no defined pixel) and gives the segmenters two lazy
arrays: ``frame.image``, the science plane with NaN wherever there is no data (zero weight,
infinite variance, masked bits) — every segmenter treats NaN as a bad pixel — and ``frame.rms``,
the 1σ map. ``frame.valid`` is what the metrics score. Each is converted per window when read
(:class:`FrameScience`), never as a frame-sized temporary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..background import direct_source, read_float32
from .mask import MaskPlane, bad_bits
from .noise import NoiseMap, noise_kind
from .planes import describe, find_planes, hdu_value


class NoDataError(ValueError):
    """Every pixel of a frame is undefined; ``reason`` says by which plane (the one-line message
    speaks of segmenting: a caller that scores says it its own way)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class FrameScience:
    """The science plane with NaN where the noise says "no data" or the mask says "bad"."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, science, noise: NoiseMap | None = None, mask: MaskPlane | None = None):
        self.source = direct_source(science)
        self.shape = tuple(int(s) for s in np.shape(science))
        self.noise, self.mask = noise, mask

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if not isinstance(key, tuple) or len(key) != 2 or not all(isinstance(k, slice) for k in key):
            raise TypeError("a frame's science plane supports 2-D slicing only, e.g. img[y0:y1, x0:x1]")
        block = read_float32(self.source, key)
        if self.noise is not None:
            block = np.where(np.isnan(self.noise[key]), np.float32(np.nan), block)
        if self.mask is not None:
            block = np.where(self.mask[key], np.float32(np.nan), block)
        return block

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


def _lazy(array_like, name: str, chunks: int):
    """A dask array over an array-like (``direct_source`` gives the array-like back to the
    tiled pipelines, which then read exactly their windows)."""
    import dask.array as da

    return da.from_array(array_like, chunks=(chunks, chunks), asarray=False, fancy=False, name=name)


@dataclass(eq=False)
class Frame:
    """What a segmenter, the metrics and a widget need of one frame (see :func:`open_frame`)."""

    science: Any  # FitsImage of the science plane (header, WCS, path, name)
    noise: NoiseMap | None = None
    mask: MaskPlane | None = None
    #: where each plane came from, for notes and records ("noise": "coadd.fits[VARIANCE] (variance)")
    sources: dict[str, str] = field(default_factory=dict)
    #: what the user should hear about the frame (a noise map that looks like another kind)
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.science.shape)

    @property
    def header(self):
        return self.science.header

    @property
    def wcs(self):
        return self.science.wcs

    def _token(self, what: str) -> str:
        from dask.base import tokenize

        return f"frame-{what}-" + tokenize(str(self.science.path), self.science.hdu, sorted(self.sources.items()),
                                          getattr(self.mask, "bits", None))

    @property
    def image(self):
        """The science plane for the segmenters: the file's own lazy array when nothing is undefined
        by noise or mask, else NaN at those pixels (lazy, per window)."""
        if self.noise is None and self.mask is None:
            return self.science.data
        return _lazy(FrameScience(self.science.array, self.noise, self.mask), self._token("image"),
                     self.science.data.chunksize[0])

    @property
    def rms(self):
        """The lazy 1σ map (NaN = no data), or None when the frame came without noise."""
        if self.noise is None:
            return None
        return _lazy(self.noise, self._token("rms"), self.science.data.chunksize[0])

    @property
    def valid(self):
        """Lazy bool map of the pixels that hold data (what is detected and scored)."""
        import dask.array as da

        return da.isfinite(self.image)

    def check_has_data(self, band_bytes: int = 32 << 20) -> None:
        """Raise when no pixel is defined (all NaN, zero weight or masked): a sample, then a scan
        that stops at the first defined pixel."""
        if _has_data(FrameScience(self.science.array, self.noise, self.mask), band_bytes):
            return
        rows = max(1, band_bytes // max(1, self.shape[1] * 16))
        why = []
        if self.noise is not None:
            why.append(f"the {self.noise.kind} map ({self.sources.get('noise')}) "
                       + ("is zero everywhere" if self.noise.kind == "weight" else "has no finite positive value")
                       if _all_no_data(self.noise, rows) else "")
        if self.mask is not None:
            why.append(f"the mask ({self.sources.get('mask')}) flags every pixel" if _all_true(self.mask, rows) else "")
        reason = "; ".join(w for w in why if w) or "no pixel is finite, of non-zero weight and unmasked at once"
        raise NoDataError(f"{self.science.path}: every pixel of the frame is undefined ({reason}); nothing to segment",
                          reason)


def frame_arrays(image, noise=None, kind: str = "rms", *, scale: float = 1.0, mask=None, mask_bits: str | None = None,
                 mask_header=None, names: tuple[str, str, str] = ("the image", "the noise map", "the mask")):
    """``(image, rms)`` for the segmenters from arrays (napari layers, a script's arrays), as
    :func:`open_frame` makes them from files: the image NaN where the noise says "no data" or
    the mask's bad bits are set, the noise of ``kind`` (rms, variance, weight or a WEIGHT_TYPE) as
    a 1σ map (NaN = no data). Both are converted window by window: numpy when they fit in memory,
    lazy dask arrays above that. ``mask_bits`` as ``--mask-bits`` (default: the header's bad planes,
    else any bit). Raises ValueError in one line (shapes, negative noise, no pixel with data)."""
    from ..arrays import IN_MEMORY_PIXELS

    shape = tuple(int(s) for s in np.shape(image))
    noise_map = mask_plane = None
    if noise is not None:
        if tuple(np.shape(noise)) != shape:
            raise ValueError(f"{names[1]} has shape {tuple(np.shape(noise))} but {names[0]} has {shape}; they must be "
                             "on the same pixel grid")
        noise_map = NoiseMap(noise, kind, scale, name=names[1])
        _check_negative(noise_map)
    if mask is not None:
        if tuple(np.shape(mask)) != shape:
            raise ValueError(f"{names[2]} has shape {tuple(np.shape(mask))} but {names[0]} has {shape}; they must be "
                             "on the same pixel grid")
        mask_plane = MaskPlane(mask, bad_bits(mask_bits, mask_header), name=names[2])
    if noise_map is None and mask_plane is None:
        return image, None
    science = FrameScience(image, noise_map, mask_plane)
    if not _has_data(science):
        raise ValueError(f"every pixel of {names[0]} is without data (zero weight, infinite variance or masked); "
                         "nothing to segment")
    if shape[0] * shape[1] <= IN_MEMORY_PIXELS:
        return science[:, :], (noise_map[:, :] if noise_map is not None else None)
    from dask.base import tokenize

    chunks = 2048
    token = tokenize(id(image), id(noise), id(mask), kind, scale, getattr(mask_plane, "bits", None))
    return (_lazy(science, f"frame-image-{token}", chunks),
            _lazy(noise_map, f"frame-rms-{token}", chunks) if noise_map is not None else None)


def _has_data(science: FrameScience, band_bytes: int = 32 << 20) -> bool:
    """True when some pixel is defined: a sample, then a scan that stops at the first one."""
    from ..io import sample_pixels

    if np.isfinite(sample_pixels(science, n_samples=20_000)).any():
        return True
    ny, nx = science.shape
    rows = max(1, band_bytes // max(1, nx * 16))
    return any(np.isfinite(science[y0:y0 + rows, :]).any() for y0 in range(0, ny, rows))


def _all_no_data(noise: NoiseMap, rows: int) -> bool:
    return all(np.isnan(noise[y0:y0 + rows, :]).all() for y0 in range(0, noise.shape[0], rows))


def _all_true(mask: MaskPlane, rows: int) -> bool:
    return all(mask[y0:y0 + rows, :].all() for y0 in range(0, mask.shape[0], rows))


def _check_negative(noise: NoiseMap) -> None:
    """Refuse a noise map with negative values seen in a sample (the rest is checked as read)."""
    from ..io import sample_pixels

    sample = sample_pixels(noise.source, n_samples=20_000)
    with np.errstate(invalid="ignore"):
        negative = sample < 0
    if negative.any():
        raise ValueError(f"{noise.name} has negative values (e.g. {float(sample[negative][0]):g}); a {noise.kind} map "
                         "is ≥ 0 — check that the right plane or --weight-type was given")


def open_frame(path, *, hdu=None, noise=None, noise_kind_name: str | None = None, noise_hdu=None,
               noise_scale: float = 1.0, mask=None, mask_bits: str | None = None, mask_hdu=None,
               planes: bool = True):
    """Open a frame lazily; checks everything cheap before any work.

    ``path`` holds the science plane (``hdu``, else found by EXTNAME in a multi-extension coadd,
    else its first image). ``noise`` is a separate noise file (``noise_hdu`` in it), else the
    coadd's noise plane (``noise_hdu`` picks it by hand); its kind is ``noise_kind_name`` (rms,
    variance, weight or MAP_RMS/MAP_VAR/MAP_WEIGHT), else the plane's EXTNAME's, else rms.
    ``mask`` / ``mask_hdu`` / ``mask_bits`` likewise. ``planes=False`` uses no coadd plane that
    was not named. Raises ValueError (and FitsReadError, FileNotFoundError) with one-line messages.
    """
    from ..io import open_fits

    path = Path(path)
    kind = noise_kind(noise_kind_name) if noise_kind_name else None
    found = find_planes(path) if planes else None
    hdu, noise_hdu, mask_hdu = hdu_value(hdu), hdu_value(noise_hdu), hdu_value(mask_hdu)
    science_hdu = hdu if hdu is not None else (found.science if found else None)
    science = open_fits(path, hdu=science_hdu)
    sources = {"science": _where(science)}
    noise_map = mask_plane = None

    noise_file, noise_at = (noise, noise_hdu) if noise else (path, noise_hdu if noise_hdu is not None
                                                              else (found.noise if found else None))
    if noise_at is not None or noise:
        plane = open_fits(noise_file, hdu=noise_at, check_finite=False)
        if plane.path == science.path and plane.hdu == science.hdu:
            raise ValueError(f"the noise plane and the science plane are the same HDU ({_where(science)}); "
                             f"the file has {describe(found, path) if found else 'one image'}")
        plane_kind = kind or _kind_from_name(plane) or "rms"
        _same_shape(plane, science, f"the {plane_kind} map")
        noise_map = NoiseMap(plane.array, plane_kind, noise_scale, name=f"the {plane_kind} map {_where(plane)}")
        _check_negative(noise_map)
        sources["noise"] = f"{_where(plane)} ({plane_kind})"
    elif kind is not None:
        raise ValueError(f"--weight-type {noise_kind_name} names the kind of a noise map, but none was given and "
                         f"{path} has no noise plane ({describe(found, path) if found else 'one image'}); "
                         "give the map with --rms/--variance/--weight or its HDU with --noise-hdu")

    mask_file, bits_spec = _mask_spec(mask) if mask else (path, None)
    mask_at = mask_hdu if mask_hdu is not None else (None if mask else (found.mask if found else None))
    if mask or mask_at is not None:
        plane = open_fits(mask_file, hdu=mask_at, check_finite=False)
        _same_shape(plane, science, "the mask")
        bits = bad_bits(bits_spec if bits_spec is not None else mask_bits, plane.header)
        mask_plane = MaskPlane(plane.array, bits, name=f"the mask {_where(plane)}")
        sources["mask"] = f"{_where(plane)} (bits {'any' if bits == -1 else hex(bits)})"
    elif mask_bits:
        raise ValueError(f"--mask-bits {mask_bits} chooses bits of a mask, but none was given and {path} has no "
                         "mask plane; give it with --mask FILE or --mask-hdu")
    frame = Frame(science, noise_map, mask_plane, sources)
    if noise_map is not None or mask_plane is not None:
        frame.check_has_data()
    if noise_map is not None:
        from ..io import sample_pixels
        from .noise import kind_doubt

        science_sample = sample_pixels(FrameScience(science.array, noise_map, mask_plane), n_samples=20_000)
        doubt = kind_doubt(science_sample, sample_pixels(noise_map, n_samples=20_000), noise_map.kind)
        if doubt:
            frame.notes.append(f"{doubt} ({sources['noise']})")
    return frame


def _mask_spec(value: str) -> tuple[str, str | None]:
    """``FILE[:BITS]`` → (file, bits); a ':' that is part of an existing path is the path's."""
    text = str(value)
    if Path(text).exists() or ":" not in text:
        return text, None
    file, bits = text.rsplit(":", 1)
    return file, bits


def _kind_from_name(plane) -> str | None:
    from .planes import NOISE_NAMES

    return NOISE_NAMES.get(str(plane.header.get("EXTNAME", "")).strip().upper())


def _where(image) -> str:
    extname = str(image.header.get("EXTNAME", "")).strip()
    return f"{image.path}[{extname or image.hdu}]"


def _same_shape(plane, science, what: str) -> None:
    if tuple(plane.shape) != tuple(science.shape):
        raise ValueError(f"{what} {_where(plane)} has shape {tuple(plane.shape)} but the image {_where(science)} has "
                         f"{tuple(science.shape)}; they must be on the same pixel grid")
