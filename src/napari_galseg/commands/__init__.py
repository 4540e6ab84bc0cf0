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


def parse_set_options(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (repeated ``--set``) to a dict, with a clear error for a missing '='."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
