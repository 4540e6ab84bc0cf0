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


def parse_set_options(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (repeated ``--set``) to a dict, with a clear error for a missing '='."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out
