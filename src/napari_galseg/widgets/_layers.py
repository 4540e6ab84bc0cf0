"""Small facts about napari layers that every widget needs: full-resolution data, the visible part."""
from __future__ import annotations

from typing import Any

import numpy as np


def camera(viewer) -> Any:
    """The viewer's camera: ``viewer.scene.camera`` since napari 0.9 (``viewer.camera`` warns)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def centre_on(viewer, world, min_zoom: float = 4.0) -> None:
    """Centre the view on the (y, x) world point ``world``, zoomed in to at least ``min_zoom``
    (a table row that jumps to a source should show it, not a dot in the whole frame)."""
    cam = camera(viewer)
    cam.center = tuple(float(v) for v in np.asarray(world, float)[-2:])
    cam.zoom = max(cam.zoom, min_zoom)


def level0(layer) -> Any:
    """Full-resolution data of a (possibly multiscale) layer, without reading it."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def canvas_region(layer, min_side: int = 8) -> tuple[slice, slice] | None:
    """Full-resolution rows/columns of ``layer`` shown on the canvas, or None while the canvas has
    not been drawn (a hidden viewer), recognised by a view narrower than ``min_side`` pixels."""
    shape = np.asarray(level0(layer).shape[-2:])
    corners = np.asarray(layer.corner_pixels, dtype=float)[:, -2:]
    if getattr(layer, "multiscale", False):
        corners = corners * np.asarray(layer.downsample_factors[layer.data_level])[-2:]
    lo = np.clip(np.floor(corners[0]).astype(int), 0, shape)
    hi = np.clip(np.ceil(corners[1]).astype(int) + 1, 0, shape)
    if np.any(hi - lo < min_side):
        return None
    return slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1]))


def visible_region(layer) -> tuple[slice, slice]:
    """The part of ``layer`` shown on the canvas, in full-resolution pixels; the whole image if unknown."""
    region = canvas_region(layer)
    if region is None:
        ny, nx = level0(layer).shape[-2:]
        region = slice(0, int(ny)), slice(0, int(nx))
    return region


def offset_of(layer, y0: int, x0: int) -> np.ndarray:
    """World translate of a layer showing ``layer``'s pixels from row ``y0``, column ``x0`` on
    (a field-of-view result placed over its image)."""
    return np.asarray(layer.translate)[-2:] + np.asarray(layer.scale)[-2:] * [y0, x0]
