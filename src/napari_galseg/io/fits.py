"""Open FITS images lazily and write them back atomically.

Survey images are bigger than memory (a 25000² float32 frame is 2.3 GiB), so nothing here reads a
whole image: :func:`open_fits` returns a :class:`FitsImage` whose ``data`` is a dask array over
:class:`FitsArray`, an array-like that reads exactly the pixels a slice asks for, in native byte
order. Plain images are memory-mapped; images with BZERO/BSCALE/BLANK (which astropy refuses to
memory-map) and tile-compressed images (RICE, ``.fz``) are read through ``hdu.section``, one
block at a time, with one file handle per thread so dask threads never share a file position.

``.fits.gz`` (whole-file gzip) cannot be read in pieces without decompressing from the start, so
such files are read eagerly when they are smaller than ``max_gzip_bytes`` once decompressed and
refused otherwise with a message saying how to convert them (``gunzip`` or ``fpack``).

Writing is in :mod:`napari_galseg.io.write`.
"""
from __future__ import annotations

import math
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .label_map import looks_like_label_map

__all__ = [
    "FITS_SUFFIXES",
    "FitsArray",
    "FitsImage",
    "FitsReadError",
    "FitsReadWarning",
    "open_fits",
    "open_fits_all",
    "is_fits_path",
    "find_fits_files",
    "fits_stem",
    "guess_kind",
]

#: File name endings we treat as FITS (lower case; compared case-insensitively).
FITS_SUFFIXES = (
    ".fits", ".fit", ".fts", ".fz", ".fits.fz", ".fits.gz", ".fit.gz", ".fts.gz",
)
#: Chunk side of the dask arrays we hand out: ~16 MiB of float32, a good unit of work and I/O.
DEFAULT_CHUNK = 2048
#: Largest decompressed ``.fits.gz`` image we read into memory (gzip cannot be read in pieces).
DEFAULT_MAX_GZIP_BYTES = 1 << 30

_LABEL_WORDS = ("true", "truth", "seg", "segm", "segmap", "segmentation", "mask", "masks",
                "label", "labels", "labelmap")
_RMS_WORDS = ("rms", "err", "error", "errors", "sigma", "noise", "weight", "weights", "wht",
              "var", "variance", "ivar", "invvar", "std", "unc", "uncertainty")
# Header keywords that say what an HDU holds. EXTNAME first: in multi-extension files it is the
# most specific; the file name is the last resort.
_KIND_KEYWORDS = ("EXTNAME", "HDUNAME", "CONTENT", "IMAGETYP", "FILETYPE", "PRODTYPE", "BUNIT", "OBJECT")
# Names astropy gives compressed/primary HDUs by default: not worth putting in a layer name.
_BORING_EXTNAMES = {"", "PRIMARY", "COMPRESSED_IMAGE", "IMAGE"}


class FitsReadError(ValueError):
    """A FITS file we cannot open as a 2-D image; the message says what is wrong and what to do."""


class FitsReadWarning(UserWarning):
    """Part of a FITS file was skipped (e.g. a cube extension beside 2-D images)."""


# --------------------------------------------------------------------------------------------
# names and kinds


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


# --------------------------------------------------------------------------------------------
# the lazy array


def _normalise_key(key: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Turn a numpy basic-indexing key into one slice or int per axis (no Ellipsis, no negatives)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1:]
    key = key + (slice(None),) * (len(shape) - len(key))
    if len(key) != len(shape):
        raise IndexError(f"too many indices for an image of shape {shape}")
    out = []
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            out.append(slice(*k.indices(n)))
        elif isinstance(k, (int, np.integer)):
            k = int(k)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for axis with size {n}")
            out.append(k % n)
        else:
            raise TypeError(f"FITS images support slices and integers only, not {type(k).__name__}")
    return tuple(out)


class FitsArray:
    """A read-only, picklable array-like over one image HDU that reads only what is sliced.

    ``arr[y0:y1, x0:x1]`` returns a native-byte-order numpy array holding just that region (steps
    are honoured without reading the skipped rows). Give it to :func:`dask.array.from_array` for a
    lazy array, or slice it directly for cheap samples (dask reads whole chunks).

    ``mode`` is ``"plain"`` (images astropy could memory-map: read with positioned
    reads of just the bytes needed, see :meth:`_read_plain`), ``"section"``
    (scaled or tile-compressed images: ``hdu.section`` on a per-thread file handle) or
    ``"memory"`` (gzip-compressed files, read once on first use).
    """

    def __init__(self, path: str | os.PathLike, hdu: int, shape: tuple[int, ...], dtype: Any,
                 mode: str, squeeze: tuple[int, ...] = (), data_offset: int | None = None):
        if mode not in ("plain", "section", "memory"):
            raise ValueError(f"unknown FitsArray mode {mode!r}")
        self.path = str(path)
        self.hdu = int(hdu)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.mode = mode
        # leading length-1 axes of the stored array (e.g. NAXIS3 = 1) that we hide
        self.squeeze = tuple(squeeze)
        # byte offset of the pixels in the file (plain mode): FITS stores them big-endian
        self.data_offset = data_offset
        if mode == "plain" and data_offset is None:
            raise ValueError("plain mode needs the data offset of the HDU")
        self._init_handles()

    def _init_handles(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._shared: Any = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_lock", "_local", "_shared"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_handles()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"FitsArray({self.path!r}, hdu={self.hdu}, shape={self.shape}, dtype={self.dtype}, mode={self.mode!r})"

    # -- file access
    def _open(self, memmap: bool):
        from astropy.io import fits

        return fits.open(self.path, memmap=memmap, lazy_load_hdus=True)

    def _stored(self):
        """The stored array (or section) of the HDU, with the hidden length-1 axes still there."""
        if self.mode == "memory":
            if self._shared is None:
                with self._lock:
                    if self._shared is None:
                        with self._open(memmap=False) as hdul:
                            data = np.asarray(hdul[self.hdu].data)
                        self._shared = (None, _native(data))
            return self._shared[1]
        hdul = getattr(self._local, "hdul", None)
        if hdul is None:  # one handle per thread: astropy sections seek and read on a shared file
            hdul = self._local.hdul = self._open(memmap=False)
        return hdul[self.hdu].section

    def _read_plain(self, key: tuple[Any, ...]) -> np.ndarray:
        """Read exactly the bytes of ``key`` with positioned reads, row segment by row segment.

        Why not slice a memory map: pages a map touches count in the process's resident memory,
        and the kernel maps whole read-around windows, so a strided zoomed-out view of a 16k²
        image showed ~240 MB resident. Positioned reads keep memory at the size of the answer
        and are safe from many threads (no shared file position).
        """
        if not hasattr(os, "pread"):  # Windows: fall back to a short-lived memory map
            stored_shape = (1,) * len(self.squeeze) + self.shape
            mapped = np.memmap(self.path, dtype=self.dtype.newbyteorder(">"), mode="r",
                               offset=self.data_offset, shape=stored_shape)
            return _native(mapped[(0,) * len(self.squeeze) + key], self.dtype)
        rows_key, cols_key = key
        rows = range(rows_key, rows_key + 1) if isinstance(rows_key, int) else range(*rows_key.indices(self.shape[0]))
        cols = range(cols_key, cols_key + 1) if isinstance(cols_key, int) else range(*cols_key.indices(self.shape[1]))
        raw = self.dtype.newbyteorder(">")
        item, width = raw.itemsize, self.shape[1]
        out = np.empty((len(rows), len(cols)), dtype=self.dtype)
        if len(rows) and len(cols):
            fd = self._fd()
            span = cols[-1] - cols[0] + 1  # contiguous columns covering the request
            if cols.step == 1 and span == width and rows.step == 1:
                nbytes = len(rows) * width * item  # whole rows: one read
                buf = _pread_exact(fd, nbytes, self.data_offset + rows[0] * width * item, self.path)
                out[...] = np.frombuffer(buf, dtype=raw).reshape(len(rows), width)
            else:
                # one positioned read per row straight into a big-endian buffer, one conversion
                staging = np.empty((len(rows), span), dtype=raw)
                row_bytes = span * item
                base = self.data_offset + cols[0] * item
                for i, row in enumerate(rows):
                    got = os.preadv(fd, [staging[i]], base + row * width * item) if _HAS_PREADV else 0
                    if got != row_bytes:  # short read or no preadv: the careful path
                        staging[i] = np.frombuffer(
                            _pread_exact(fd, row_bytes, base + row * width * item, self.path), dtype=raw)
                out[...] = staging[:, :: cols.step]
        if isinstance(rows_key, int):
            out = out[0]
        if isinstance(cols_key, int):
            out = out[..., 0]
        return out

    def _fd(self) -> int:
        if self._shared is None:
            with self._lock:
                if self._shared is None:
                    self._shared = os.open(self.path, os.O_RDONLY)
        return self._shared

    def __del__(self) -> None:
        fd = getattr(self, "_shared", None)
        if self.__dict__.get("mode") == "plain" and isinstance(fd, int):
            try:
                os.close(fd)
            except OSError:
                pass

    def __getitem__(self, key: Any) -> np.ndarray:
        key = _normalise_key(key, self.shape)
        full_key = (0,) * len(self.squeeze) + key
        if self.mode == "plain":
            return self._read_plain(key)
        stored = self._stored()
        if self.mode == "section" and len(key) == 2 and isinstance(key[0], slice) and key[0].step != 1:
            # sections read row by row for strided keys anyway; do it here so only those rows
            # are decompressed, then stack them
            rows = range(key[0].start, key[0].stop, key[0].step)
            pieces = [np.asarray(stored[full_key[:-2] + (r, key[1])]) for r in rows]
            width = len(range(*key[1].indices(self.shape[1]))) if isinstance(key[1], slice) else None
            if pieces:
                out = np.stack(pieces)
            else:
                out = np.empty((0,) + ((width,) if width is not None else ()), dtype=self.dtype)
        else:
            out = np.asarray(stored[full_key])
        return _native(out, self.dtype)

    def __dask_tokenize__(self):
        stat = os.stat(self.path)
        return ("FitsArray", self.path, self.hdu, self.mode, stat.st_size, stat.st_mtime_ns)

    def __array__(self, dtype=None, copy=None):
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)


_HAS_PREADV = hasattr(os, "preadv")


def _pread_exact(fd: int, nbytes: int, offset: int, path: str) -> bytes:
    buf = os.pread(fd, nbytes, offset)
    while len(buf) < nbytes:  # pread may return less on some filesystems
        more = os.pread(fd, nbytes - len(buf), offset + len(buf))
        if not more:
            raise FitsReadError(f"{path} ended early: the file was truncated after it was opened")
        buf += more
    return buf


def _native(array: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """A native-byte-order copy (FITS is big-endian); only the block asked for is converted."""
    target = np.dtype(dtype if dtype is not None else array.dtype).newbyteorder("=")
    return np.array(array, dtype=target, copy=True)


# --------------------------------------------------------------------------------------------
# opening


@dataclass(eq=False)
class FitsImage:
    """One 2-D image HDU of a FITS file, opened lazily.

    ``data`` is a dask array (chunks of ``DEFAULT_CHUNK``²) in native byte order; ``array`` is the
    underlying :class:`FitsArray`, cheaper to slice for small samples. ``kind`` is ``"image"``,
    ``"labels"`` (integer segmentation maps) or ``"rms"`` (noise/weight maps).
    """

    data: Any
    header: Any
    wcs: Any
    name: str
    kind: str
    path: Path
    hdu: int
    array: FitsArray = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def pyramid(self, min_size: int = 512, method: str | None = None) -> list:
        """Multiscale levels for napari (see :func:`napari_galseg.io.pyramid.build_pyramid`)."""
        from .pyramid import build_pyramid

        levels = build_pyramid(self.array, min_size=min_size, method=method,
                               labels=self.kind == "labels", chunks=self.data.chunksize)
        if levels[0].shape == self.data.shape:
            levels[0] = self.data  # same pixels; reuse the graph (and any cached chunks)
        return levels

    def contrast_limits(self, n_samples: int = 100_000) -> tuple[float, float]:
        """zscale limits from a sparse, reproducible sample of the image (never a full read)."""
        from .pyramid import contrast_limits_zscale

        return contrast_limits_zscale(self.array, n_samples=n_samples)

    def compute(self) -> np.ndarray:
        """The whole image as a numpy array (only for images that fit in memory)."""
        return np.asarray(self.data.compute())


def _check_header_start(path: Path) -> None:
    """Say plainly when a file is empty or not FITS at all (astropy's messages are terse)."""
    size = path.stat().st_size
    if size == 0:
        raise FitsReadError(f"{path} is empty (0 bytes): the file was not written completely; "
                            "copy or download it again.")
    with open(path, "rb") as fh:
        start = fh.read(80)
    if start[:2] == b"\x1f\x8b":  # gzip: look inside
        import gzip

        try:
            with gzip.open(path, "rb") as fh:
                start = fh.read(80)
        except (OSError, EOFError) as exc:
            raise FitsReadError(f"{path} is a damaged gzip file ({exc}); download or copy it again.") from exc
    elif start[:3] in (b"BZh", b"PK\x03"):
        return  # bzip2 / zip: astropy reads these too
    if not start.startswith(b"SIMPLE  ="):
        shown = start[:16].decode("ascii", errors="replace")
        raise FitsReadError(
            f"{path} is not a FITS file: it starts with {shown!r} instead of 'SIMPLE  ='. "
            "Check that this is the image you meant (a FITS file may have been saved under another "
            "format), or convert it to FITS first.")


def _open_hdulist(path: Path):
    from astropy.io import fits

    _check_header_start(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is checked and reported below
            hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
    except OSError as exc:
        raise FitsReadError(
            f"{path} starts like a FITS file but its header cannot be read ({exc}). The file is "
            "probably truncated or damaged; copy or download it again.") from exc
    except Exception as exc:  # astropy raises assorted errors on damaged headers
        raise FitsReadError(f"{path} could not be read as FITS ({type(exc).__name__}: {exc}).") from exc
    compression = getattr(hdul._file, "compression", None)
    if compression is None:
        file_size = path.stat().st_size
        for index, hdu in enumerate(hdul):
            info = hdu.fileinfo() or {}
            expected = info.get("datLoc", 0) + getattr(hdu, "_data_size", 0)
            if expected > file_size:
                hdul.close()
                raise FitsReadError(
                    f"{path} is truncated: HDU {index} needs {expected:,} bytes but the file has only "
                    f"{file_size:,}. The copy or download was probably cut short; fetch the file again.")
    return hdul


def _is_image_hdu(hdu) -> bool:
    from astropy.io import fits

    return (isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
            and not isinstance(hdu, fits.GroupsHDU))  # random groups (old radio data) are not images


def _image_hdu_indices(hdul) -> list[int]:
    """Image HDUs that hold data (an empty primary in front of extensions is skipped)."""
    return [i for i, hdu in enumerate(hdul)
            if _is_image_hdu(hdu) and hdu.header.get("NAXIS", 0) > 0 and all(n > 0 for n in hdu.shape)]


def _axis_names(shape: Sequence[int]) -> str:
    n = len(shape)
    return ", ".join(f"NAXIS{n - i}={size}" for i, size in enumerate(shape))


def _celestial_wcs(header):
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
            if not wcs.has_celestial:
                return None
            return wcs.celestial
    except Exception:  # a malformed WCS must not stop the image from opening
        return None


def _select_hdu(hdul, path: Path, hdu: int | str | None) -> int:
    images = _image_hdu_indices(hdul)
    if hdu is None:
        if not images:
            raise _no_image_error(hdul, path)
        return images[0]
    try:
        index = hdul.index_of(hdu)
        if not 0 <= index < len(hdul):
            raise IndexError(index)
    except (KeyError, IndexError) as exc:
        raise FitsReadError(f"{path} has no HDU {hdu!r}; it has {len(hdul)} HDUs "
                            f"(image HDUs with data: {images or 'none'}).") from exc
    return index


def _no_image_error(hdul, path: Path) -> FitsReadError:
    kinds = ", ".join(f"{i}: {type(h).__name__}" for i, h in enumerate(hdul))
    if all(_is_image_hdu(h) for h in hdul):
        return FitsReadError(f"{path} has no image data: every HDU is empty (NAXIS=0) [{kinds}]. "
                             "The file holds only headers; check that the right file was saved.")
    return FitsReadError(f"{path} has no image HDU [{kinds}]; it holds tables only. Open a file "
                         "with a 2-D image, or convert the table to an image first.")


def _image_from_hdul(hdul, path: Path, index: int, *, chunks: int, max_gzip_bytes: int,
                     check_finite: bool, multi: bool) -> FitsImage:
    import dask.array as da

    hdu = hdul[index]
    if not _is_image_hdu(hdu):
        raise FitsReadError(f"HDU {index} of {path} is a {type(hdu).__name__}, not an image. "
                            f"Image HDUs with data: {_image_hdu_indices(hdul) or 'none'}.")
    header = hdu.header
    shape = tuple(int(n) for n in (hdu.shape or ()))
    if header.get("NAXIS", 0) == 0 or not shape or any(n == 0 for n in shape):
        others = _image_hdu_indices(hdul)
        raise FitsReadError(f"HDU {index} of {path} is empty (no pixels: NAXIS={header.get('NAXIS', 0)}, "
                            f"shape {shape}). Image HDUs with data: {others or 'none'}.")
    squeeze: list[int] = []
    while len(shape) - len(squeeze) > 2 and shape[len(squeeze)] == 1:
        squeeze.append(len(squeeze))  # degenerate leading axes (NAXIS3 = 1) are harmless
    plane_shape = shape[len(squeeze):]
    if len(plane_shape) == 1:
        raise FitsReadError(f"HDU {index} of {path} is 1-D (NAXIS1={shape[-1]}), a spectrum or a "
                            "table-like vector; napari-galseg segments 2-D images.")
    if len(plane_shape) > 2:
        extra = [f"NAXIS{len(shape) - i} (numpy axis {i}, length {shape[i]})"
                 for i in range(len(shape) - 2) if shape[i] > 1]
        raise FitsReadError(
            f"HDU {index} of {path} is a {len(shape)}-D cube ({_axis_names(shape)}): axis "
            f"{' and '.join(extra)} is extra; napari-galseg segments 2-D images. Extract one plane "
            "first, e.g. in Python: `from astropy.io import fits; d, h = fits.getdata(p, header=True); "
            "fits.writeto('plane.fits', d[0], h)`, or open the cube with napari's own reader.")

    compressed = hdu.__class__.__name__ == "CompImageHDU"
    gzipped = getattr(hdul._file, "compression", None) is not None
    if compressed:
        dtype = hdu.section.dtype
        mode = "section"
    else:
        dtype = hdu.section.dtype  # applies BZERO/BSCALE as astropy does (int16+BSCALE -> float32)
        scaled = any(k in header for k in ("BSCALE", "BZERO", "BLANK")) and (
            hdu._orig_bscale != 1 or hdu._orig_bzero != 0 or "BLANK" in header)
        mode = "section" if scaled else "plain"
    if gzipped:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > max_gzip_bytes:
            raise FitsReadError(
                f"{path} is gzip-compressed as a whole, which cannot be read in pieces, and its image "
                f"needs {nbytes / 2**30:.1f} GiB once decompressed (limit {max_gzip_bytes / 2**30:.1f} GiB). "
                f"Decompress it (`gunzip -k {path.name}`) or tile-compress it (`fpack`), then open the "
                ".fits / .fz file, which is read lazily.")
        mode = "memory"

    data_offset = hdu.fileinfo()["datLoc"] if mode == "plain" else None
    array = FitsArray(path, index, plane_shape, dtype, mode, squeeze=tuple(squeeze), data_offset=data_offset)
    data = da.from_array(array, chunks=(chunks, chunks), asarray=False, fancy=False,
                         name=f"fits-{_token(path, index, chunks)}")
    kind = guess_kind(header, path, array.dtype)
    if kind == "image" and not _scaled_integers(header) and looks_like_label_map(array):
        kind = "labels"  # a segmentation map by its pixels (e.g. a prediction saved without EXTNAME)
    extname = str(header.get("EXTNAME", "")).strip()
    if multi:
        label = extname if extname.upper() not in _BORING_EXTNAMES else str(index)
        extver = header.get("EXTVER")
        if label == extname and isinstance(extver, int) and extver > 1:
            label = f"{label},{extver}"
        name = f"{fits_stem(path)}[{label}]"
    else:
        name = fits_stem(path)
    image = FitsImage(data=data, header=header.copy(), wcs=_celestial_wcs(header), name=name,
                      kind=kind, path=path, hdu=index, array=array)
    if check_finite and np.issubdtype(array.dtype, np.floating):
        _check_not_all_nan(image)
    return image


def _token(path: Path, index: int, chunks: int) -> str:
    from dask.base import tokenize

    stat = path.stat()
    return tokenize(str(path.resolve()), index, chunks, stat.st_size, stat.st_mtime_ns)


def _check_not_all_nan(image: FitsImage, band_bytes: int = 32 << 20) -> None:
    """Raise when every pixel is NaN/inf: a sparse sample first, a streamed scan only if needed."""
    from .pyramid import sample_pixels

    if np.isfinite(sample_pixels(image.array, n_samples=20_000)).any():
        return
    ny, nx = image.array.shape
    rows = max(1, band_bytes // max(1, nx * image.array.dtype.itemsize))
    for y0 in range(0, ny, rows):  # stops at the first finite pixel
        if np.isfinite(image.array[y0:y0 + rows, :]).any():
            return
    raise FitsReadError(
        f"HDU {image.hdu} of {image.path} has no finite pixels (all NaN or infinite): nothing to show "
        "or segment. The image was probably masked or failed in an earlier processing step.")


def open_fits(path: str | os.PathLike, hdu: int | str | None = None, *, chunks: int = DEFAULT_CHUNK,
              max_gzip_bytes: int = DEFAULT_MAX_GZIP_BYTES, check_finite: bool = True) -> FitsImage:
    """Open one 2-D image HDU of a FITS file lazily.

    ``hdu`` is an index or an EXTNAME; by default the first image HDU with data (the empty
    primary HDU of a multi-extension or ``.fz`` file is skipped). Raises :class:`FitsReadError`
    with a message that says what is wrong for files that are not FITS, truncated, without an
    image, empty, cubes, or entirely NaN; :class:`FileNotFoundError` for missing files.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise FitsReadError(f"{path} is a folder; open one of its FITS files "
                            f"({', '.join(p.name for p in find_fits_files(path)) or 'none found'})")
    hdul = _open_hdulist(path)
    try:
        index = _select_hdu(hdul, path, hdu)
        n_images = len(_image_hdu_indices(hdul))
        return _image_from_hdul(hdul, path, index, chunks=chunks, max_gzip_bytes=max_gzip_bytes,
                                check_finite=check_finite, multi=n_images > 1)
    finally:
        hdul.close()  # the FitsArray reopens the file on its own when sliced


def open_fits_all(path: str | os.PathLike, *, chunks: int = DEFAULT_CHUNK,
                  max_gzip_bytes: int = DEFAULT_MAX_GZIP_BYTES, check_finite: bool = True) -> list[FitsImage]:
    """Every 2-D image HDU of a (multi-extension) FITS file, in file order.

    HDUs that cannot be opened as 2-D images (cubes, all-NaN planes) are skipped with a
    :class:`FitsReadWarning` when others can; when none can, the first problem is raised.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    hdul = _open_hdulist(path)
    try:
        indices = _image_hdu_indices(hdul)
        if not indices:
            raise _no_image_error(hdul, path)
        images, problems = [], []
        for index in indices:
            try:
                images.append(_image_from_hdul(hdul, path, index, chunks=chunks,
                                               max_gzip_bytes=max_gzip_bytes,
                                               check_finite=check_finite, multi=len(indices) > 1))
            except FitsReadError as exc:
                problems.append(exc)
        if not images:
            raise problems[0]
        for exc in problems:
            warnings.warn(f"skipped: {exc}", FitsReadWarning, stacklevel=2)
        return images
    finally:
        hdul.close()
