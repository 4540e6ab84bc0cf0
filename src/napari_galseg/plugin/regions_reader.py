"""Open DS9/CRTF region files as a Shapes layer (ellipses, circles, boxes, polygons).

Regions in image coordinates open anywhere; regions in sky coordinates are placed through the WCS
of an image already open in the viewer (the FITS reader keeps it in ``layer.metadata["wcs"]``).
Read through astropy's ``regions`` (:func:`napari_galseg.io.catalog.read_regions`).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .reader import _current_viewer, _notify

REGION_SUFFIXES = (".reg", ".crtf")


def get_regions_reader(path: Any) -> Callable | None:
    if not isinstance(path, (str, os.PathLike)) or not str(path).lower().endswith(REGION_SUFFIXES):
        return None

    def read(_path: Any = None, **_kwargs: Any) -> list[tuple]:
        try:
            return [region_layer(path, _viewer_wcs())]
        except Exception as exc:  # a reader must never raise into napari
            _notify(f"napari-galseg could not read the regions of {path}: {exc}", error=True)
            return [(None,)]

    return read


def _viewer_wcs():
    viewer = _current_viewer()
    if viewer is None:
        return None
    for layer in reversed(list(viewer.layers)):
        wcs = layer.metadata.get("wcs") if hasattr(layer, "metadata") else None
        if wcs is not None:
            return wcs
    return None


def _rotated_box(cx: float, cy: float, width: float, height: float, angle_deg: float) -> np.ndarray:
    """(4, 2) corners in (row, col) of a ``width`` × ``height`` box centred at (cx, cy), rotated."""
    theta = np.deg2rad(angle_deg)
    c, s = np.cos(theta), np.sin(theta)
    corners = []
    for u, v in ((-1, -1), (-1, 1), (1, 1), (1, -1)):
        dx, dy = u * width / 2, v * height / 2
        corners.append((cy + dx * s + dy * c, cx + dx * c - dy * s))
    return np.array(corners)


def region_shapes(regions) -> tuple[list[np.ndarray], list[str], list[str]]:
    """napari Shapes data, shape types and texts of pixel regions (others are skipped)."""
    data, types, texts = [], [], []
    for region in regions:
        kind = type(region).__name__
        angle = float(getattr(getattr(region, "angle", 0.0), "value", getattr(region, "angle", 0.0)))
        if kind == "EllipsePixelRegion":
            shape = _rotated_box(region.center.x, region.center.y, region.width, region.height, angle)
            types.append("ellipse")
        elif kind == "CirclePixelRegion":
            shape = _rotated_box(region.center.x, region.center.y, 2 * region.radius, 2 * region.radius, 0.0)
            types.append("ellipse")
        elif kind == "RectanglePixelRegion":
            shape = _rotated_box(region.center.x, region.center.y, region.width, region.height, angle)
            types.append("polygon")
        elif kind == "PolygonPixelRegion":
            shape = np.column_stack([region.vertices.y, region.vertices.x])
            types.append("polygon")
        else:
            continue
        data.append(shape)
        texts.append(str(region.meta.get("text", "")))
    return data, types, texts


def region_layer(path: str | os.PathLike, wcs=None) -> tuple:
    """A Shapes layer data tuple of the file's regions (sky ones placed with ``wcs``)."""
    from ..io.catalog import read_regions

    data, types, texts = region_shapes(read_regions(path, wcs=wcs))
    if not data:
        raise ValueError("it holds no ellipse, circle, box or polygon region")
    return (data, {"name": Path(path).stem, "shape_type": types, "edge_color": "yellow", "edge_width": 1.0,
                   "face_color": "transparent", "features": {"text": texts}}, "shapes")
