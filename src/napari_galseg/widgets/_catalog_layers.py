"""A source catalog as napari layer data (pure numpy), the style that makes it visible over a
zscaled image, and the ``<labels> catalog`` layer the segment widgets put over the image."""
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


#: catalogue shapes over an image: a colour that stands out on grey and on every colormap of the
#: Display dock, and an edge that stays visible when the frame is zoomed out (data pixels)
CATALOG_STYLE = {"color": "yellow", "edge_width": 1.5}


def is_catalog_layer(layer) -> bool:
    """A Shapes or Points layer that shows a catalogue (named ``... catalog`` by the segment
    widgets, or carrying ``galseg_kind = "catalog"`` in its metadata)."""
    if type(layer).__name__ not in ("Shapes", "Points"):
        return False
    return layer.metadata.get("galseg_kind") == "catalog" or str(layer.name).endswith(" catalog")


def style_catalog_layer(layer, style: dict | None = None) -> None:
    """Give a catalogue layer :data:`CATALOG_STYLE` (a thin cyan edge is lost on a grey image)."""
    style = style or CATALOG_STYLE
    n = len(layer.data)
    if type(layer).__name__ == "Shapes":
        if n:
            layer.edge_color = style["color"]
            layer.edge_width = [style["edge_width"]] * n
        layer.current_edge_color = style["color"]
        layer.current_edge_width = style["edge_width"]
    else:  # the same edge in data pixels as the ellipses, whatever each marker's size
        layer.border_width_is_relative = False
        if n:
            layer.border_color = style["color"]
            layer.border_width = style["edge_width"]
        layer.current_border_color = style["color"]
        layer.current_border_width = style["edge_width"]


#: napari's Shapes layer slows down with many shapes: above this, sources are drawn as points
MAX_ELLIPSES = 5000


def show_catalog(viewer, catalog, name, translate, scale):
    """The catalog over the image: ellipses (Shapes) for moderate counts, else points; the catalog
    columns travel as features, so hovering a source shows its flux, area, Kron radius…"""
    coords, features = points_data(catalog)
    ellipses = None
    if len(coords) <= MAX_ELLIPSES and "semimajor_axis" in catalog.colnames:
        ellipses = list(ellipse_corners(catalog))
    return show_catalog_layer(viewer, coords, features, name, translate, scale, ellipses=ellipses)


def show_catalog_layer(viewer, coords, features, name, translate, scale, ellipses=None, size=6):
    """``name catalog`` over the image, replacing an earlier one: ellipses (Shapes) when given,
    else points at ``coords`` (row, col) of ``size`` data pixels; ``features`` (the catalogue's
    columns) travel with it, and it gets the DS9-like catalogue style (yellow, visible edge)."""
    layer_name = f"{name} catalog"
    if layer_name in viewer.layers:
        viewer.layers.remove(layer_name)
    # the labels layer it measures: the header dock follows it to the image (widgets/wcs_info.py)
    common = {"name": layer_name, "translate": translate, "scale": scale, "features": features,
              "metadata": {"galseg_kind": "catalog", "source_layer": name}}
    if ellipses is not None:
        layer = viewer.add_shapes(ellipses, shape_type="ellipse", face_color="transparent", **common)
    else:
        layer = viewer.add_points(coords, size=size, face_color="transparent", **common)
    style_catalog_layer(layer)
    return layer
