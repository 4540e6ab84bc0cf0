"""Job inputs given as arrays (a viewer's layers) become FITS files in the job folder first.

A job names its inputs by path, so whatever runs it (a subprocess, a SLURM node, a dask worker)
needs only the file system. Arrays are written as :func:`io.write_fits` writes everything: block
row by block row (dask arrays computed a row of chunks at a time, numpy/memmaps in slabs), to a
temporary name renamed at the end — a 25000² layer never sits in memory twice.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

INPUTS_DIR = "inputs"


def save_inputs(job_dir: str | os.PathLike, arrays: dict[str, Any], headers: dict[str, Any] | None = None,
                progress=None) -> dict[str, str]:
    """Write ``{"image": array, "rms": ..., "truth": labels}`` to ``JOB/inputs/<kind>.fits``;
    returns ``{kind: path}``. Truth is written as int32 labels, the others as they are."""
    from ..io.write import write_fits, write_labels

    folder = Path(job_dir) / INPUTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, (kind, array) in enumerate(arrays.items()):
        if progress is not None:
            progress(i, len(arrays), f"saving {kind} to the job folder")
        path = folder / f"{kind}.fits"
        header = (headers or {}).get(kind)
        if kind == "truth":
            write_labels(path, array, like=header, overwrite=True, role="truth")
        else:
            write_fits(path, array, header=header, overwrite=True)
        paths[kind] = str(path)
    if progress is not None:
        progress(len(arrays), len(arrays), "inputs saved")
    return paths
