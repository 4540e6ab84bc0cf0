"""The text files a SExtractor configuration is made of: ``.sex`` keys and ``.conv`` filter kernels.

Shared by SExtractor mode (this package) and the photutils pipeline's mapping of a ``.sex`` file
(``segmenters.photutils.sextractor``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import SExtractorConfigError

#: SExtractor's ``default.conv`` (3x3 "all-ground" kernel, FWHM = 2 px, NORM), used when FILTER_NAME
#: is missing or names a ``default.conv`` that is not found (the file SExtractor ships)
DEFAULT_CONV = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])


def read_sex_text(path: Path) -> str:
    """The text of a ``.sex`` file; :class:`SExtractorConfigError` in one line when it is unreadable."""
    try:
        return path.read_text()
    except OSError as exc:
        raise SExtractorConfigError(f"cannot read the SExtractor configuration {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SExtractorConfigError(f"{path} is not a text file (a .sex configuration is plain text)") from None


def parse_sex(text: str) -> dict[str, list[str]]:
    """Keys (upper case) and their values from the text of a ``.sex`` file.

    ``KEY value[,value ...]  # comment``; values are split at commas and blanks; a later line
    repeating a key wins, as in SExtractor.
    """
    return {key: values for key, (values, _line) in parse_sex_lines(text).items()}


def parse_sex_lines(text: str, name: str = "") -> dict[str, tuple[list[str], int]]:
    """:func:`parse_sex` with the line each key was read from, so errors can name it."""
    keys: dict[str, tuple[list[str], int]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        key = parts[0].upper()
        if not key.replace("_", "").isalnum():
            where = f"{name} line {number}" if name else f"line {number}"
            raise SExtractorConfigError(f"{where}: {raw.strip()!r} is not 'KEY value' (is this a .sex file?)")
        values = [v for v in (parts[1].replace(",", " ").split() if len(parts) > 1 else []) if v]
        keys[key] = (values, number)
    return keys


def read_conv(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """A SExtractor filter file: ``(kernel, normalise)``.

    The first line is ``CONV NORM`` or ``CONV NONORM``; ``#`` lines are comments; then one row of
    numbers per line. A file without the CONV line is read as NORM (SEP's and most tools' reading).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SExtractorConfigError(f"cannot read the filter file {path} ({exc.strerror or exc}); "
                                    "check FILTER_NAME or set FILTER N") from None
    normalise = True
    rows: list[list[float]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.upper().startswith("CONV"):
            word = line.split()[1].upper() if len(line.split()) > 1 else "NORM"
            if word not in ("NORM", "NONORM"):
                raise SExtractorConfigError(f"{path} line {number}: expected 'CONV NORM' or 'CONV NONORM', got {raw.strip()!r}")
            normalise = word == "NORM"
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise SExtractorConfigError(f"{path} line {number}: {raw.strip()!r} is not a row of numbers") from None
    if not rows:
        raise SExtractorConfigError(f"{path} holds no kernel rows")
    if len({len(r) for r in rows}) != 1:
        raise SExtractorConfigError(f"{path}: the kernel rows have different lengths {[len(r) for r in rows]}")
    kernel = np.array(rows, dtype=np.float64)
    if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise SExtractorConfigError(f"{path}: the kernel is {kernel.shape[0]}x{kernel.shape[1]}; both sides must be odd")
    return kernel, normalise
