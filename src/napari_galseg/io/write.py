"""Write 2-D images and label maps to FITS: atomically, streaming, never overwriting by default.

:func:`write_fits` streams a numpy or dask array to a temporary file one block row at a time and
renames it onto the target only when complete (see :mod:`napari_galseg._atomic`), so a 25000²
label image is never held whole and a failure leaves any existing file as it was.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from napari_galseg._atomic import atomic_path

from .fits import FitsImage

__all__ = ["fits_row_writer", "label_role", "labels_header", "write_fits", "write_fits_rows", "write_label_strips",
           "write_labels"]


# Structural and compression keywords that describe the old data layout, never to be copied.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|BZERO|BSCALE|BLANK|GROUPS|"
    r"CHECKSUM|DATASUM|ZIMAGE|ZBITPIX|ZNAXIS\d*|ZTILE\d*|ZCMPTYPE|ZNAME\d*|ZVAL\d*|ZQUANTIZ|"
    r"ZDITHER0|ZSIMPLE|ZEXTEND|ZBLOCKED|ZTENSION|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|ZBLANK|"
    r"ZSCALE|ZZERO|ZMASKCMP|TFIELDS|TTYPE\d+|TFORM\d+|TUNIT\d+|TDIM\d+|THEAP|END)$")
_WCS_KEY = re.compile(
    r"^(WCSAXES\w?|CTYPE\d\w?|CRVAL\d\w?|CRPIX\d\w?|CDELT\d\w?|CUNIT\d\w?|CROTA\d|CD\d_\d\w?|"
    r"PC\d_\d\w?|PV\d_\d+\w?|PS\d_\d+\w?|LONPOLE\w?|LATPOLE\w?|RADESYS\w?|RADECSYS|EQUINOX\w?|"
    r"EPOCH|WCSNAME\w?|A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|A_\d_\d|B_\d_\d|AP_\d_\d|BP_\d_\d|"
    r"A_DMAX|B_DMAX)$")

_FITS_DTYPES = {  # what each numpy type is stored as (FITS has no int8/uint16/uint32 natively)
    "b": "u1", "u1": "u1", "i1": "i2", "i2": "i2", "u2": "i4", "i4": "i4", "u4": "i8",
    "i8": "i8", "u8": "i8", "f2": "f4", "f4": "f4", "f8": "f8",
}
_BITPIX = {"u1": 8, "i2": 16, "i4": 32, "i8": 64, "f4": -32, "f8": -64}


def _storage_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    key = "b" if dt == np.bool_ else f"{dt.kind}{dt.itemsize}"
    if key not in _FITS_DTYPES:
        raise TypeError(f"cannot write {dt} pixels to FITS; convert to an integer or float type first")
    return np.dtype(_FITS_DTYPES[key])


def _output_header(data_shape: tuple[int, int], storage: np.dtype, header: Any, wcs: Any):
    from astropy.io import fits

    out = fits.Header()
    out["SIMPLE"] = (True, "conforms to FITS standard")
    out["BITPIX"] = _BITPIX[storage.str[1:]]
    out["NAXIS"] = 2
    out["NAXIS1"] = data_shape[1]
    out["NAXIS2"] = data_shape[0]
    out["EXTEND"] = True
    if header is not None:
        for card in (header.cards if hasattr(header, "cards") else fits.Header(header).cards):
            key = card.keyword
            if _STRUCTURAL.match(key) or (wcs is not None and _WCS_KEY.match(key)):
                continue
            out.append(card, end=True)
    if wcs is not None:
        out.update(wcs.to_header(relax=True))
    return out


def _as_2d(data: Any) -> Any:
    if getattr(data, "ndim", None) is None:
        data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"write_fits writes 2-D images; got an array of shape {tuple(data.shape)}")
    return data


class RowSink:
    """Where the bands of rows of one FITS image go (see :func:`fits_row_writer`)."""

    def __init__(self, fh, shape: tuple[int, int], storage: np.dtype):
        self._fh, self.shape, self.storage = fh, shape, storage
        self._info = np.iinfo(storage) if storage.kind in "iu" else None
        self.rows_written = 0

    def write(self, rows: np.ndarray) -> None:
        """The next band of rows (shape (n, width)), checked against the storage type."""
        if rows.ndim != 2 or rows.shape[1] != self.shape[1]:
            raise ValueError(f"a band of rows must be (n, {self.shape[1]}), got {rows.shape}")
        if self.rows_written + rows.shape[0] > self.shape[0]:
            raise ValueError(f"more rows than the image's {self.shape[0]}")
        _check_range(rows, self.storage, self._info)
        self._fh.write(np.ascontiguousarray(rows, dtype=self.storage.newbyteorder(">")).data)
        self.rows_written += rows.shape[0]


@contextlib.contextmanager
def fits_row_writer(path: str | os.PathLike, shape: tuple[int, int], dtype: Any, header: Any = None,
                    wcs: Any = None, overwrite: bool = False) -> Iterator[RowSink]:
    """The one FITS writer: a 2-D image streamed to disk as bands of rows, atomically.

    ``with fits_row_writer(path, shape, dtype, header, wcs) as out: out.write(rows)`` writes the
    header, then each band of rows as it comes, pads the file and renames it onto ``path`` only
    when every row was written — a failure or an exception leaves any existing file as it was.
    Refuses to replace an existing file unless ``overwrite=True``; a name ending in ``.gz`` is
    gzip-compressed while streaming.
    """
    path = Path(path)
    lower = path.name.lower()
    if lower.endswith(".fz"):
        raise ValueError(f"{path.name}: tile-compressed (.fz) output is not supported; write .fits "
                         "and compress it with `fpack`, or write .fits.gz")
    if not lower.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")):
        raise ValueError(f"{path.name}: this writes FITS; give a name ending in .fits (or .fits.gz) so that "
                         "the file is not mistaken for another format")
    shape = (int(shape[0]), int(shape[1]))
    storage = _storage_dtype(dtype)
    header_bytes = _output_header(shape, storage, header, wcs).tostring().encode("ascii")
    opener = _gzip_open if lower.endswith(".gz") else open
    with atomic_path(path, overwrite=overwrite) as tmp, opener(tmp, "wb") as fh:
        fh.write(header_bytes)
        sink = RowSink(fh, shape, storage)
        yield sink
        if sink.rows_written != shape[0]:
            raise RuntimeError(f"only {sink.rows_written} of {shape[0]} rows were written to {path.name}")
        fh.write(b"\0" * (-(sink.rows_written * shape[1] * storage.itemsize) % 2880))


def write_fits(path: str | os.PathLike, data: Any, header: Any = None, wcs: Any = None,
               overwrite: bool = False, dtype: Any = None, scheduler: Any = None) -> Path:
    """Write a 2-D numpy or dask array to a FITS file atomically, one block row at a time.

    The header (minus its layout keywords) and ``wcs`` (which replaces any WCS in ``header``) are
    copied. Dask arrays are computed one row of chunks at a time and streamed to a temporary file
    that is renamed onto ``path`` only when complete, so a 25000² image is never held whole and
    a failure leaves any existing file untouched. Refuses to replace an existing file unless
    ``overwrite=True``. ``data`` may also be a :class:`FitsImage` (its header is the default).
    A name ending in ``.gz`` is gzip-compressed while streaming. ``scheduler`` (e.g. a
    ``distributed.Client``) computes the dask blocks elsewhere. Returns the path written.
    """
    if isinstance(data, FitsImage):
        header = data.header if header is None else header
        data = data.data
    data = _as_2d(data)
    with fits_row_writer(path, tuple(data.shape), dtype if dtype is not None else data.dtype, header, wcs,
                         overwrite) as out:
        step = max(1, (16 << 20) // max(1, data.shape[1] * out.storage.itemsize))
        for pieces in _block_rows(data, scheduler):
            # the pieces of one block row side by side, converted ~16 MiB of rows at a time:
            # no concatenated copy of the whole block row is ever made
            for y0 in range(0, pieces[0].shape[0], step):
                out.write(np.concatenate([p[y0:y0 + step] for p in pieces], axis=1))
            del pieces
    return Path(path)


def write_fits_rows(path: str | os.PathLike, shape: tuple[int, int], dtype: Any, header: Any,
                    rows: Iterable[np.ndarray], overwrite: bool = False, wcs: Any = None) -> Path:
    """Write a 2-D image given as consecutive bands of rows, atomically, never holding the image.

    ``rows`` yields (n, width) arrays top to bottom (a generator may compute each band as it is
    asked for); the file has the same bytes as ``write_fits(path, image, header=header, wcs=wcs,
    dtype=dtype)`` of the stacked bands (for a label image give ``labels_header(frame_header)``).
    The existing-file check comes before the first band is asked for; a band that fails, too few
    or too many rows leave no file (and any existing one as it was). Each band is converted to
    big-endian ~4 MiB of rows at a time, so a tall band costs no second copy of itself. A
    generator is closed at the end, also on failure, so its own clean-up runs.
    """
    shape = (int(shape[0]), int(shape[1]))
    try:
        with fits_row_writer(path, shape, dtype, header, wcs, overwrite) as out:
            step = max(1, (4 << 20) // max(1, shape[1] * out.storage.itemsize))
            for band in rows:
                band = np.asarray(band)
                if band.ndim != 2:
                    raise ValueError(f"a band of rows must be (n, {shape[1]}), got {band.shape}")
                for y0 in range(0, band.shape[0], step):
                    out.write(band[y0:y0 + step])
                del band
    finally:
        close = getattr(rows, "close", None)
        if callable(close):
            close()
    return Path(path)


def write_label_strips(path: str | os.PathLike, strips: Iterable[tuple[int, int, np.ndarray]],
                       shape: tuple[int, int], header: Any = None, overwrite: bool = False) -> Path:
    """Write streamed ``(y0, y1, labels)`` strips (in order) as int32 FITS, never holding the frame."""
    with fits_row_writer(path, shape, np.int32, header, overwrite=overwrite) as out:
        for y0, y1, labels in strips:
            if y0 != out.rows_written:
                raise RuntimeError(f"label strips out of order: got rows {y0}..{y1}, expected {out.rows_written}")
            out.write(np.asarray(labels))
    return Path(path)


def _gzip_open(path: Path, mode: str):
    import gzip

    return gzip.open(path, mode, compresslevel=6)


def _check_range(values: np.ndarray, storage: np.dtype, info: Any) -> None:
    if info is None or not values.size or values.dtype == storage or values.dtype == np.bool_:
        return
    if values.dtype.kind == "f":  # float pixels into an integer file: never NaN -> INT_MIN, 1.7 -> 1
        finite = np.isfinite(values)
        if not finite.all():
            raise ValueError(f"{int((~finite).sum())} pixel(s) are NaN or infinite and cannot be stored as "
                             f"{storage} integers; replace them (e.g. with 0 = sky) or write a float image")
        if (values != np.round(values)).any():
            bad = values[values != np.round(values)].ravel()[0]
            raise ValueError(f"the values are not whole numbers (e.g. {bad:g}) and would be truncated in "
                             f"{storage} pixels; round or threshold them first, or write a float image")
    lo, hi = values.min(), values.max()
    if lo < info.min or hi > info.max:
        raise OverflowError(f"values {lo}..{hi} do not fit in {storage} FITS pixels; "
                            "relabel or write as a wider type")


def _block_rows(data: Any, scheduler: Any = None) -> Iterable[list[np.ndarray]]:
    """Rows of blocks, each as a list of computed chunks left to right.

    Dask arrays are computed one chunk row at a time (the chunks of a row in one call, so shared
    neighbours of overlapping graphs are computed once); numpy arrays are cut in ~64 MiB slabs.
    """
    chunks = getattr(data, "chunks", None)
    if chunks is not None and not isinstance(data, np.ndarray) and hasattr(data, "blocks"):
        import dask

        for i in range(len(chunks[0])):
            pieces = dask.compute(*[data.blocks[i, j] for j in range(len(chunks[1]))], scheduler=scheduler)
            yield [np.asarray(p) for p in pieces]
        return
    rows = max(1, (64 << 20) // max(1, data.shape[1] * np.dtype(data.dtype).itemsize))
    for y0 in range(0, data.shape[0], rows):
        yield [np.asarray(data[y0:y0 + rows])]


#: The card that says who made a label image: "prediction" (a segmenter's output) or "truth".
#: ``galseg evaluate`` reads it to refuse a prediction given as the truth.
ROLE_KEY = "SEGROLE"
LABEL_ROLES = ("prediction", "truth")


def labels_header(like: Any = None, role: str | None = "prediction"):
    """The header a label image gets: ``like``'s (a FitsImage, a Header or None) with the image's
    unit and extension cards dropped and ``EXTNAME = 'LABELS'``, so it reopens as labels.

    ``role`` ("prediction", the default: what galseg writes is a segmenter's output; "truth"; or
    None) goes into the ``SEGROLE`` card; a role copied from ``like`` is never kept."""
    from astropy.io import fits

    if role is not None and role not in LABEL_ROLES:
        raise ValueError(f"role must be one of {LABEL_ROLES} or None, got {role!r}")
    header = like.header if isinstance(like, FitsImage) else like  # WCS cards copied verbatim
    header = fits.Header(header) if header is not None else fits.Header()  # a copy; dicts too
    for key in ("BUNIT", "EXTNAME", "EXTVER", "DATAMIN", "DATAMAX", "SATURATE", "CONTENT", ROLE_KEY):
        header.remove(key, ignore_missing=True, remove_all=True)
    header["EXTNAME"] = ("LABELS", "instance segmentation map (0 = sky)")
    if role is not None:
        header[ROLE_KEY] = (role, "predicted segmentation (napari-galseg)" if role == "prediction"
                            else "true segmentation")
    return header


def label_role(header: Any) -> str | None:
    """What a label file says it holds: "prediction", "truth" (the ``SEGROLE`` card, or the truth
    of a field made by ``galseg synth``) or None when it does not say."""
    if header is None:
        return None
    role = str(header.get(ROLE_KEY, "")).strip().lower()
    if role in LABEL_ROLES:
        return role
    synthetic = str(header.get("ORIGIN", "")).startswith("napari-galseg synth")
    if synthetic and str(header.get("CONTENT", "")).strip().lower() == "segmentation":
        return "truth"
    return None


def write_labels(path: str | os.PathLike, labels: Any, like: Any = None, overwrite: bool = False,
                 scheduler: Any = None, role: str | None = "prediction") -> Path:
    """Write an instance label image as int32 FITS, with the header and WCS of ``like``.

    ``like`` is a :class:`FitsImage`, an astropy ``Header`` or None and ``role`` the ``SEGROLE``
    card (see :func:`labels_header`); ``scheduler`` as in :func:`write_fits`.
    """
    return write_fits(path, labels, header=labels_header(like, role), overwrite=overwrite, dtype=np.int32,
                      scheduler=scheduler)
