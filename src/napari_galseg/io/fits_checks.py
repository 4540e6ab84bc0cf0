"""Checks of a FITS file before its pixels are read: complete, sane scaling cards, intact
compressed tiles, parsable header cards.

astropy opens many damaged files without a word and fails later, on the first read, with a numpy or
cfitsio error (or not at all: wrong pixels). These checks run on opening and raise
:class:`~napari_galseg.io.errors.FitsReadError` with a sentence that says what is wrong and what to
do; a file that is only a little off (no final padding, an unparsable comment card) opens with a
:class:`~napari_galseg.io.errors.FitsReadWarning`.
"""
from __future__ import annotations

import contextlib
import copy
import math
import re
import warnings
from pathlib import Path

import numpy as np

from .errors import FitsReadError, FitsReadWarning

__all__ = ["MAX_CHECKSUM_BYTES", "card_warnings_summary", "check_complete", "check_datasum", "check_scaling_cards",
           "collect_card_warnings", "disk_sizes", "readable_header"]


def disk_sizes(hdu) -> tuple[int, int]:
    """(bytes of data, bytes with the padding to 2880) that ``hdu`` occupies on disk."""
    header = getattr(hdu, "_bintable", hdu).header  # a compressed image is stored as a table
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0, 0
    sizes = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
    if header.get("GROUPS") is True and sizes and sizes[0] == 0:
        sizes = sizes[1:]  # random groups: NAXIS1 = 0 is a placeholder
    nbits = abs(int(header.get("BITPIX", 8))) * int(header.get("GCOUNT", 1)) * (
        int(header.get("PCOUNT", 0)) + math.prod(sizes))
    nbytes = nbits // 8
    return nbytes, nbytes + (-nbytes % 2880)


def check_complete(hdul, path: Path) -> None:
    """Refuse truncated files; accept complete data without the final 2880-byte padding (with a
    warning, as astropy does)."""
    from astropy.io.fits.hdu.base import _NonstandardHDU

    if isinstance(hdul[0], _NonstandardHDU):
        raise FitsReadError(f"{path} says SIMPLE = F: it does not conform to the FITS standard and "
                            "cannot be read as an image. Convert it with the software that wrote it.")
    if getattr(hdul._file, "compression", None) is not None:
        return  # inside gzip/zip: reading is checked when the data is decompressed
    file_size = path.stat().st_size
    end = 0
    for index, hdu in enumerate(hdul):
        info = hdu.fileinfo() or {}
        start = info.get("datLoc", 0)
        try:
            nbytes, padded = disk_sizes(hdu)
        except (TypeError, ValueError) as exc:
            raise FitsReadError(f"HDU {index} of {path} has invalid size cards (NAXISn, BITPIX, "
                                f"PCOUNT, GCOUNT: {exc}); the header is damaged.") from None
        if start + nbytes > file_size:
            raise FitsReadError(
                f"{path} is truncated: HDU {index} needs {start + nbytes:,} bytes but the file has only "
                f"{file_size:,}. The copy or download was probably cut short; fetch the file again.")
        if start + padded > file_size:
            warnings.warn(f"{path} lacks the final padding of HDU {index} ({start + padded - file_size} "
                          "bytes to a multiple of 2880); the data are complete and were read.",
                          FitsReadWarning, stacklevel=4)
        end = start + padded
    if end < file_size:
        with open(path, "rb") as fh:
            fh.seek(end)
            rest = fh.read(8)
        if rest.startswith(b"XTENSIO"):
            raise FitsReadError(
                f"{path} is truncated: HDU {len(hdul)} starts at byte {end:,} but its header is cut "
                "short. The copy or download was probably cut short; fetch the file again.")


def check_scaling_cards(header, path: Path, index: int) -> None:
    """BSCALE/BZERO must be finite numbers (BSCALE not 0) and BLANK an integer; astropy would
    fail with a numpy error on the first read, or scale every pixel to one value."""
    for key in ("BSCALE", "BZERO"):
        if key not in header:
            continue
        value = header[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FitsReadError(f"HDU {index} of {path} has {key} = {value!r}, which is not a number; "
                                f"the pixels cannot be scaled. Fix or remove the {key} card.")
    if header.get("BSCALE", 1) == 0:
        raise FitsReadError(f"HDU {index} of {path} has BSCALE = 0, which would make every pixel "
                            "equal to BZERO; fix the BSCALE card.")
    if "BLANK" in header and int(header.get("BITPIX", 0)) > 0:
        value = header["BLANK"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise FitsReadError(f"HDU {index} of {path} has BLANK = {value!r}, which is not an integer; "
                                "fix or remove the BLANK card.")


#: Compressed HDUs with at most this many bytes on disk have their DATASUM checked on opening
#: (damaged tiles can decompress without an error, into wrong pixels).
MAX_CHECKSUM_BYTES = 256 << 20


def check_datasum(hdu, path: Path, index: int) -> None:
    """Compare a tile-compressed HDU's DATASUM (fpack writes one) with its bytes on disk."""
    table = getattr(hdu, "_bintable", None)
    expected = None if table is None else table.header.get("DATASUM")
    if not isinstance(expected, str) or not expected.strip().isdigit():
        return
    start = (hdu.fileinfo() or {}).get("datLoc")
    _, padded = disk_sizes(hdu)
    if start is None or padded > MAX_CHECKSUM_BYTES:
        return
    with open(path, "rb") as fh:
        fh.seek(start)
        raw = fh.read(padded)
    raw += b"\0" * (padded - len(raw))
    if int(table._compute_checksum(np.frombuffer(raw, dtype=np.uint8))) != int(expected):
        raise FitsReadError(f"HDU {index} of {path}: the compressed data fail their checksum (DATASUM); "
                            "the file is damaged. Fetch or re-create it.")


def readable_header(header, path: Path, index: int):
    """A copy of ``header`` without the cards astropy cannot parse (an unterminated string...),
    with a warning naming them: one damaged comment card must not stop an image from opening."""
    from astropy.io import fits

    clean = fits.Header()
    dropped = []
    for card in header.cards:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                card.value  # noqa: B018 - parsing the card is the check
                clean.append(copy.copy(card), end=True)
        except Exception:
            dropped.append(card.keyword or card.image[:8].strip())
    if dropped:
        warnings.warn(f"HDU {index} of {path}: ignored unreadable header card(s) {', '.join(dropped)}",
                      FitsReadWarning, stacklevel=4)
    return clean


# astropy's lines that say nothing about a card of their own
_CARD_NOISE = ("Verification reported errors", "Note: astropy.io.fits uses zero-based indexing")
_CARD_NAME = re.compile(r"(?:keyword name|Card keyword) '([^']*)'|non-standard convention:\s*(\S[^=]*?)\s*=")


@contextlib.contextmanager
def collect_card_warnings():
    """Collect astropy's warnings about non-standard header cards into a list instead of the
    console: a real ESO frame prints eight of them on every open, one per card and pass. Other
    warnings go where they went. Yields the list of messages (one line each)."""
    from astropy.io.fits.verify import VerifyWarning

    collected: list[str] = []
    with warnings.catch_warnings():
        shown = warnings.showwarning
        warnings.simplefilter("always", VerifyWarning)

        def show(message, category, filename, lineno, file=None, line=None):
            text = " ".join(str(message).split())
            if issubclass(category, VerifyWarning) or "header keyword is invalid" in text:
                if text and not text.startswith(_CARD_NOISE) and text not in collected:
                    collected.append(text)
                return
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield collected


def card_warnings_summary(messages: list[str], path: Path, index: int) -> str:
    """One line for all of a HDU's card warnings, naming the cards."""
    names: list[str] = []
    for text in messages:
        for match in _CARD_NAME.finditer(text):
            name = (match.group(1) or match.group(2) or "").strip().upper()
            if name and name not in names:
                names.append(name)
    what = f"{len(names)} header card(s) ({', '.join(names[:6])}{', …' if len(names) > 6 else ''})" if names \
        else "header cards"
    return f"HDU {index} of {Path(path).name}: {what} do not follow the FITS standard; read as they are"
