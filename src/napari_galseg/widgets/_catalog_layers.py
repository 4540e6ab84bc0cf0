"""A source catalog as napari layer data (pure numpy; the widgets build the layers)."""
from __future__ import annotations

import numpy as np


def _values(column) -> np.ndarray:
    return np.asarray(getattr(column, "value", column), dtype=float)


def points_data(table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(coords, properties)`` for a napari Points layer: coords are (row, col) = (y, x) centroids;
    properties hold every numeric column (units dropped), e.g. ``properties["kron_flux"]``."""
    coords = np.column_stack([_values(table["y_centroid"]), _values(table["x_centroid"])]) if len(table) else np.zeros((0, 2))
    properties = {}
    for name in table.colnames:
        column = table[name]
        if np.asarray(column).dtype.kind in "iuf":
            properties[name] = _values(column) if np.asarray(column).dtype.kind == "f" else np.asarray(column)
    return coords, properties


def ellipse_corners(table, scale: float = 2.0) -> np.ndarray:
    """(N, 4, 2) corners, in (y, x), of each source's ellipse bounding box rotated by its orientation
    — the form napari's Shapes layer takes for ``shape_type="ellipse"``. ``scale`` multiplies the
    semimajor/semiminor axes (2 ≈ the visible extent of a galaxy)."""
    if len(table) == 0:
        return np.zeros((0, 4, 2))
    x, y = _values(table["x_centroid"]), _values(table["y_centroid"])
    a, b = _values(table["semimajor_axis"]) * scale, _values(table["semiminor_axis"]) * scale
    theta = np.deg2rad(_values(table["orientation"]))
    c, s = np.cos(theta), np.sin(theta)
    corners = []
    for u, v in ((-1, -1), (-1, 1), (1, 1), (1, -1)):
        dx = u * a * c - v * b * s
        dy = u * a * s + v * b * c
        corners.append(np.column_stack([y + dy, x + dx]))
    return np.stack(corners, axis=1)
