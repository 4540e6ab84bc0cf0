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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FitsReadError, FitsReadWarning
from .fits_array import FitsArray
from .fits_checks import (
    card_warnings_summary,
    check_complete,
    check_datasum,
    check_scaling_cards,
    collect_card_warnings,
    readable_header,
)
from .fits_kinds import FITS_SUFFIXES, find_fits_files, fits_stem, guess_kind, hdu_kind, is_fits_path

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

#: Chunk side of the dask arrays we hand out: ~16 MiB of float32, a good unit of work and I/O.
DEFAULT_CHUNK = 2048
#: Largest decompressed ``.fits.gz`` image we read into memory (gzip cannot be read in pieces).
DEFAULT_MAX_GZIP_BYTES = 1 << 30

# Names astropy gives compressed/primary HDUs by default: not worth putting in a layer name.
_BORING_EXTNAMES = {"", "PRIMARY", "COMPRESSED_IMAGE", "IMAGE"}


# --------------------------------------------------------------------------------------------
# names and kinds
















# --------------------------------------------------------------------------------------------
# the lazy array












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
    #: astropy's warnings about non-standard header cards, collected once on opening
    card_warnings: list[str] = field(default_factory=list, repr=False)

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
    if path.is_dir():
        raise FitsReadError(f"{path} is a folder; open one of its FITS files "
                            f"({', '.join(p.name for p in find_fits_files(path)) or 'none found'})")
    if not path.is_file():  # a pipe or a device would block or never end
        raise FitsReadError(f"{path} is not a regular file (a pipe, socket or device); "
                            "save the image to a file and open that.")
    size = path.stat().st_size
    if size == 0:
        raise FitsReadError(f"{path} is empty (0 bytes): the file was not written completely; "
                            "copy or download it again.")
    with open(path, "rb") as fh:
        start = fh.read(80)
    if start[:2] == b"\x1f\x8b":  # gzip: look inside
        import gzip
        import zlib

        try:
            with gzip.open(path, "rb") as fh:
                start = fh.read(80)
        except (OSError, EOFError, zlib.error) as exc:
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
        raise FitsReadError(f"{path} has a damaged or non-standard header and could not be read as "
                            f"FITS ({type(exc).__name__}: {exc}); re-create or fetch the file again.") from exc
    try:
        check_complete(hdul, path)
    except BaseException:
        hdul.close()
        raise
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
    """The image of one HDU; astropy's card warnings become one :class:`FitsReadWarning` and the
    image's ``card_warnings``."""
    with collect_card_warnings() as cards:
        image = _read_image_hdu(hdul, path, index, chunks=chunks, max_gzip_bytes=max_gzip_bytes,
                                check_finite=check_finite, multi=multi)
    if cards:
        image.card_warnings = cards
        warnings.warn(card_warnings_summary(cards, path, index), FitsReadWarning, stacklevel=3)
    return image


def _plane_array(hdul, path: Path, index: int, max_gzip_bytes: int):
    """The checked 2-D plane of one HDU as a :class:`FitsArray` and its readable header (no dask)."""
    hdu = hdul[index]
    if not _is_image_hdu(hdu):
        raise FitsReadError(f"HDU {index} of {path} is a {type(hdu).__name__}, not an image. "
                            f"Image HDUs with data: {_image_hdu_indices(hdul) or 'none'}.")
    header = hdu.header
    check_scaling_cards(header, path, index)
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
        check_datasum(hdu, path, index)
        dtype = hdu.section.dtype
        mode = "section"
    else:
        dtype = hdu.section.dtype  # applies BZERO/BSCALE as astropy does (int16+BSCALE -> float32)
        scaled = any(k in header for k in ("BSCALE", "BZERO", "BLANK")) and (
            hdu._orig_bscale != 1 or hdu._orig_bzero != 0 or "BLANK" in header)
        mode = "section" if scaled else "plain"
    blank = None
    if (not compressed and int(header.get("BITPIX", 0)) > 0 and "BLANK" in header
            and np.dtype(dtype).kind in "iu"):
        # integers kept as integers (no scaling, or the unsigned BZERO conventions): astropy
        # leaves blank pixels as numbers; compare with the blank's physical value
        blank = int(header["BLANK"]) * int(header.get("BSCALE", 1)) + int(header.get("BZERO", 0))
        dtype = np.float32 if np.dtype(dtype).itemsize <= 2 else np.float64
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
    array = FitsArray(path, index, plane_shape, dtype, mode, squeeze=tuple(squeeze), data_offset=data_offset,
                      blank=blank)
    return array, readable_header(header, path, index)


def _read_image_hdu(hdul, path: Path, index: int, *, chunks: int, max_gzip_bytes: int,
                    check_finite: bool, multi: bool) -> FitsImage:
    import dask.array as da

    array, header = _plane_array(hdul, path, index, max_gzip_bytes)
    data = da.from_array(array, chunks=(chunks, chunks), asarray=False, fancy=False,
                         name=f"fits-{_token(path, index, chunks)}")
    # the file name speaks for a file of one image only: in a multi-extension file each HDU's own
    # keywords and pixels decide (a science extension of "frame_err_v2.fits" is not a noise map)
    kind = hdu_kind(header, None if multi else path, array)
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
    path = _existing_file(path)
    hdul = _open_hdulist(path)
    try:
        index = _select_hdu(hdul, path, hdu)
        n_images = len(_image_hdu_indices(hdul))
        return _image_from_hdul(hdul, path, index, chunks=chunks, max_gzip_bytes=max_gzip_bytes,
                                check_finite=check_finite, multi=n_images > 1)
    finally:
        hdul.close()  # the FitsArray reopens the file on its own when sliced


def _existing_file(path) -> Path:
    """``path`` as a Path, refused plainly when missing or a folder (open_fits and open_fits_array)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise FitsReadError(f"{path} is a folder; open one of its FITS files "
                            f"({', '.join(p.name for p in find_fits_files(path)) or 'none found'})")
    return path


def open_fits_array(path: str | os.PathLike, hdu: int | str | None = None, *,
                    max_gzip_bytes: int = DEFAULT_MAX_GZIP_BYTES) -> tuple[FitsArray, Any]:
    """The 2-D plane :func:`open_fits` would open (the same HDU choice and checks) as a bare
    :class:`FitsArray` and its header: no dask graph and no WCS, for a command that reads the
    frame once in strips (SExtractor mode), so its start-up does not import dask."""
    path = _existing_file(path)
    with _open_hdulist(path) as hdul:
        index = _select_hdu(hdul, path, hdu)
        with collect_card_warnings() as cards:
            array, header = _plane_array(hdul, path, index, max_gzip_bytes)
    if cards:
        warnings.warn(card_warnings_summary(cards, path, index), FitsReadWarning, stacklevel=2)
    return array, header


def image_shape(path: str | os.PathLike, hdu: int | str | None = None) -> tuple[int, ...]:
    """The shape of the image :func:`open_fits` reads from ``path`` (the same HDU choice), from the
    headers alone: no WCS, no data, cheap enough for a GUI thread."""
    path = Path(path)
    with _open_hdulist(path) as hdul:
        return tuple(int(n) for n in hdul[_select_hdu(hdul, path, hdu)].shape)


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
