"""Atomic file writes: a temporary file in the target's folder, then one rename.

A crash or an exception mid-write leaves the user's existing file untouched and no partial file
behind; an existing target is never replaced unless the caller says ``overwrite=True``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


class FileExistsClearError(FileExistsError):
    """Raised instead of silently overwriting a user's file."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    >>> with atomic_path("out.fits") as tmp:   # doctest: +SKIP
    ...     hdul.writeto(tmp)
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsClearError(f"{path} already exists; choose another name or pass overwrite=True (--overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=(suffix or path.suffix) + ".part")
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers such as astropy refuse an existing file
    try:
        yield tmp_path
        if path.exists() and not overwrite:  # appeared while we were writing
            raise FileExistsClearError(f"{path} appeared while writing; your file was left as it is")
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` atomically (replacing by default: used for configs we own)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
