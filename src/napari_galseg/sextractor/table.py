"""A SExtractor catalogue as a flat table and positions, the shape a viewer's layers and tables take.

A viewer's table wants one 1-D column per value, so a vector parameter is split the way astropy
reads SExtractor's ASCII_HEAD file (``FLUX_APER(3)`` → ``FLUX_APER``, ``FLUX_APER_1``,
``FLUX_APER_2``): a column of the table and of the catalogue file then carry the same name.
Positions turn SExtractor's 1-based (X_IMAGE, Y_IMAGE) into the 0-based (row, col) of an array.
"""
from __future__ import annotations

import numpy as np

from .catalog import Column


def flat_columns(cols: list[Column]) -> dict[str, np.ndarray]:
    """Every value of the ``.param`` columns as a 1-D array, in the file's order; vectors split
    as astropy's ``ascii.read(format="sextractor")`` names them."""
    out: dict[str, np.ndarray] = {}
    for c in cols:
        if not c.size:
            out[c.name] = np.asarray(c.values)
            continue
        values = np.asarray(c.values).reshape(len(c.values), c.size)
        for i in range(c.size):
            out[c.name if i == 0 else f"{c.name}_{i}"] = values[:, i]
    return out


def source_positions(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 2) array positions (row, col) = (Y_IMAGE - 1, X_IMAGE - 1) of an extraction's sources
    (its columns always hold the barycentres, whatever the ``.param`` asks for)."""
    x = np.asarray(columns.get("X_IMAGE", []), np.float64)
    y = np.asarray(columns.get("Y_IMAGE", []), np.float64)
    return np.column_stack([y - 1.0, x - 1.0]) if len(x) else np.zeros((0, 2))
