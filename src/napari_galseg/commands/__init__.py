"""Subcommands of the `galseg` CLI, one module each (see :mod:`napari_galseg.cli`)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ._progress import ProgressDisplay


@contextlib.contextmanager
def progress_bar(description: str, unit: str | None = "it") -> Iterator[ProgressDisplay]:
    """A ``progress(done, total, message)`` callback for the CLI: a bar on a terminal, a line every
    few percent otherwise (see :mod:`napari_galseg.commands._progress`); ``.write(line)`` prints
    beside it, ``unit`` names what is counted (tiles, blocks...; None shows no counts)."""
    display = ProgressDisplay(description, unit=unit)
    try:
        yield display
    finally:
        display.close()


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
