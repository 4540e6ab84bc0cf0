"""Atomic file writes: a temporary file in the target's folder, then one rename.

A crash or an exception mid-write leaves the user's existing file untouched and no partial file
behind; an existing target is never replaced unless the caller says ``overwrite=True``.

The temporary file is ``.NAME.PID-RANDOM.part`` beside the target. A process killed with
``kill -9`` cannot remove it, so the next write to the same target removes the parts whose
writer is gone (its PID no longer runs; parts from before PIDs were recorded once they are an
hour old). Parts of a writer that is still running are left alone.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: Parts without a PID in their name (older versions) count as stale after this many seconds.
LEGACY_PART_AGE_S = 3600


class FileExistsClearError(FileExistsError):
    """Raised instead of silently overwriting a user's file."""


class OutputPathError(ValueError):
    """An output path that cannot be written (its folder is missing, is a file, or is read-only)."""


def check_output_folder(path: str | os.PathLike, create: bool = True) -> Path:
    """The folder ``path`` will be written in, checked: say in words what is wrong with it.

    A missing folder is created when ``create`` (the API's behaviour), else refused.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists() and not ancestor.is_dir():
            raise OutputPathError(f"cannot write {path}: {ancestor} is a file, not a folder; choose another output path")
        if ancestor.exists():
            break
    if not parent.exists():
        if not create:
            raise OutputPathError(f"cannot write {path}: the folder {parent} does not exist; create it first "
                                  f"(mkdir -p {parent}) or correct the path")
        parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: the folder {parent} is not writable; choose another output folder")
    if path.is_dir():
        raise OutputPathError(f"cannot write {path}: it is a folder; give a file name")
    return parent


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


# what follows ".NAME." in a part's name: "PID-RANDOM.SUFFIX.part" (RANDOM is tempfile's 8 chars)
_PART_REST = re.compile(r"^(?:(?P<pid>\d+)-)?[a-z0-9_]{8}(?:\.[^.]*)*\.part$")


def stale_parts(path: str | os.PathLike) -> list[Path]:
    """Left-over ``.part`` files of ``path`` whose writer has died."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    prefix = f".{path.name}."
    out = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _PART_REST.match(entry.name[len(prefix):])
        if match is None:
            continue
        try:
            if match["pid"]:
                if _pid_alive(int(match["pid"])):
                    continue
            elif time.time() - entry.stat().st_mtime < LEGACY_PART_AGE_S:
                continue
        except OSError:
            continue
        out.append(entry)
    return out


def remove_stale_parts(path: str | os.PathLike) -> int:
    """Remove the stale parts of ``path`` (see :func:`stale_parts`); returns how many."""
    removed = 0
    for part in stale_parts(path):
        with contextlib.suppress(OSError):
            part.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    >>> with atomic_path("out.fits") as tmp:   # doctest: +SKIP
    ...     hdul.writeto(tmp)
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsClearError(f"{path} already exists; choose another name or pass overwrite=True (--overwrite)")
    check_output_folder(path, create=True)
    remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                               suffix=(suffix or path.suffix) + ".part")
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
