"""The errors and warnings of reading FITS files (their own module so that the checks and the
reader can both raise them)."""
from __future__ import annotations

__all__ = ["FitsReadError", "FitsReadWarning"]


class FitsReadError(ValueError):
    """A FITS file we cannot open as a 2-D image; the message says what is wrong and what to do."""


class FitsReadWarning(UserWarning):
    """Part of a FITS file was skipped (e.g. a cube extension beside 2-D images)."""
