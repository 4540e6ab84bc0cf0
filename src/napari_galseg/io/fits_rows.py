"""Rows of a FITS plane as native float32, strip by strip, for a command that never holds the frame.

:class:`FitsRowReader` gives ``read_rows(y0, y1)``: the same float32 values as converting the
whole plane (``out[...] = array[...]`` over a :class:`FitsArray`), for any BITPIX, BSCALE/BZERO
and BLANK, with the process's resident memory at the size of one strip. Plain images are read
with positioned reads straight into the strip (no memory map: pages a map touches count in the
resident memory, ru_maxrss); scaled images go through astropy's section (which reads only the
rows asked for, so its scaling is astropy's own); gzip files are read whole once (``FitsArray``'s
"memory" mode).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .errors import FitsReadError
from .fits_array import FitsArray

__all__ = ["FitsRowReader", "no_finite_pixels_error"]


def no_finite_pixels_error(array: FitsArray) -> FitsReadError:
    """The error of a plane with no finite pixel: nothing to extract (SExtractor mode's wording)."""
    return FitsReadError(f"HDU {array.hdu} of {array.path} has no finite pixels (all NaN or infinite): "
                         "nothing to extract.")


class FitsRowReader:
    """Strips of rows of one FITS plane as native float32, and whether any pixel read was finite.

    ``with FitsRowReader(array) as rows: strip = rows.read_rows(y0, y1)``; after reading every
    row, :meth:`check_finite` raises :func:`no_finite_pixels_error` when none was finite (the
    check ``read_float32`` makes over the whole frame). ``out`` (an (y1 - y0, width) C-contiguous
    float32 array) is filled in place instead of a new array. One reader serves one thread (it
    reuses one staging buffer); strips may overlap and come in any order.
    """

    def __init__(self, array: FitsArray):
        if len(array.shape) != 2:
            raise ValueError(f"FitsRowReader reads 2-D planes; got shape {array.shape}")
        self.array = array
        self.shape = tuple(array.shape)
        self.any_finite = False
        # positioned reads where FitsArray itself reads plain bytes (no BLANK, no scaling)
        self._direct = array.mode == "plain" and array.blank is None and hasattr(os, "preadv")
        self._raw = array.dtype.newbyteorder(">")
        self._fd: int | None = None
        self._staging = np.empty(0, np.uint8)

    def __enter__(self) -> FitsRowReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (reading again reopens it)."""
        fd, self._fd = self._fd, None
        self._staging = np.empty(0, np.uint8)
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, AttributeError):
            pass

    def read_rows(self, y0: int, y1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``y0 .. y1 - 1`` of the plane as native float32 (into ``out`` when given)."""
        h, w = self.shape
        y0, y1 = int(y0), int(y1)
        if not 0 <= y0 <= y1 <= h:
            raise IndexError(f"rows {y0}..{y1} are outside the image's 0..{h}")
        if out is None:
            out = np.empty((y1 - y0, w), np.float32)
        elif out.shape != (y1 - y0, w) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {(y1 - y0, w)}, "
                             f"got {out.dtype} {out.shape}")
        if y1 > y0:
            if self._direct:
                self._read_direct(y0, y1, out)
            else:  # astropy's scaling / BLANK, or a gzip file in memory: what read_float32 does
                out[...] = self.array[y0:y1]
            if not self.any_finite:
                self.any_finite = bool(np.isfinite(out).any())
        return out

    def check_finite(self) -> None:
        """Raise when no pixel read so far was finite (call it after reading every row)."""
        if not self.any_finite:
            raise no_finite_pixels_error(self.array)

    def _read_direct(self, y0: int, y1: int, out: np.ndarray) -> None:
        """Positioned reads of the rows' big-endian bytes: straight into ``out`` for BITPIX -32,
        else into a reused staging buffer, swapped in place, then one conversion into ``out``."""
        w, raw = self.shape[1], self._raw
        nbytes = (y1 - y0) * w * raw.itemsize
        offset = self.array.data_offset + y0 * w * raw.itemsize
        if raw == np.dtype(">f4"):
            self._pread_into(memoryview(out.reshape(-1).view(np.uint8)), offset)
            if sys.byteorder == "little":
                out.byteswap(inplace=True)  # bytes only: NaN payloads stay as they were
            return
        if self._staging.nbytes < nbytes:
            self._staging = np.empty(nbytes, np.uint8)
        buf = self._staging[:nbytes]
        self._pread_into(memoryview(buf), offset)
        # big-endian -> native in the stored type, then -> float32: the conversion FitsArray +
        # read_float32 make
        stored = buf.view(raw).reshape(y1 - y0, w)
        if sys.byteorder == "little":
            stored = stored.byteswap(inplace=True).view(raw.newbyteorder("="))
        out[...] = stored

    def _pread_into(self, view: memoryview, offset: int) -> None:
        if self._fd is None:
            self._fd = os.open(self.array.path, os.O_RDONLY)
        done = 0
        while done < len(view):  # preadv may return less than asked on some filesystems
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got <= 0:
                raise FitsReadError(f"{self.array.path} ended early: the file was truncated after it was opened")
            done += got
