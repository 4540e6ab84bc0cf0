"""Subcommands of the `galseg` CLI, one module each (see :mod:`napari_galseg.cli`)."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

from ..segmenters.base import ProgressCallback


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, unit: str = "it") -> Iterator[ProgressCallback]:
    """A tqdm bar on stderr wrapped as a ``progress(done, total, message)`` callback."""
    from tqdm.auto import tqdm

    bar = None  # created on the first update, so an early error prints no empty bar

    def update(done: int, total: int, message: str = "") -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def refuse_existing(*paths, overwrite: bool) -> None:
    """Fail before any work when an output file exists and --overwrite was not given (the atomic
    writers refuse too, but only after the work is done)."""
    if overwrite:
        return
    for path in paths:
        if path and Path(path).exists():
            raise FileExistsError(f"{path} already exists; choose another name or pass --overwrite")


def refuse_inputs_as_outputs(outputs, inputs) -> None:
    """An output that is one of the inputs (the same file, whatever the path says) is refused,
    with or without --overwrite: writing it would replace the data being read."""
    import os

    for out in outputs:
        if not out or not Path(out).exists():
            continue
        for given in inputs:
            if given and Path(given).exists():
                try:
                    same = os.path.samefile(out, given)
                except OSError:
                    continue
                if same:
                    raise FileExistsError(f"{out} is also an input ({given}); write the output to another "
                                          "file (--overwrite never replaces an input)")


def check_outputs(outputs, *, inputs=(), overwrite: bool, fits: tuple = (), catalogs: tuple = ()) -> None:
    """Everything that can be said about the output paths before any work is done.

    ``outputs`` are all files the command will write; the ones in ``fits`` must have FITS names
    (.fits, .fit, .fts, .fits.gz: no tile compression), the ones in ``catalogs`` catalog names.
    Refuses existing files without ``overwrite``, any output that is an input, folders that are
    missing, are files or are not writable.
    """
    from .._atomic import check_output_folder

    outputs = [o for o in outputs if o]
    refuse_inputs_as_outputs(outputs, inputs)
    refuse_existing(*outputs, overwrite=overwrite)
    for out in [o for o in fits if o]:
        lower = str(out).lower()
        if lower.endswith(".fz"):
            raise ValueError(f"{out}: tile-compressed (.fz) output is not supported; write .fits (then "
                             "`fpack` it) or .fits.gz")
        if not lower.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")):
            raise ValueError(f"{out}: labels are written as FITS; give a name ending in .fits "
                             f"(or .fits.gz), not {Path(out).suffix or 'no suffix'}")
    for out in [o for o in catalogs if o]:
        if not str(out).lower().endswith((".ecsv", ".fits", ".fit", ".fits.gz", ".reg")):
            raise ValueError(f"{out}: cannot tell the catalog format from its name; use .ecsv, .fits or .reg")
    for out in outputs:
        check_output_folder(out, create=False)


def parse_set_options(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (repeated ``--set``) to a dict, with a clear error for a missing '='."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
