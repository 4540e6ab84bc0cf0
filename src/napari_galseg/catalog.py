"""Source catalogs: photutils SourceCatalog → astropy Table, and exports (ECSV, FITS, DS9 regions).

The table has one row per segment of the label image (``label`` = the segment's id) with
``parent`` (the detected object a deblended segment came from; equal to ``label``'s parent id in
the undeblended detection), centroid (``x_centroid``, ``y_centroid``, 0-based pixel coordinates,
as photutils and numpy), bounding box, ``area``, ellipse (``semimajor_axis``, ``semiminor_axis``
in pixels, ``orientation`` in degrees counter-clockwise from +x, ``eccentricity``,
``ellipticity``), ``segment_flux`` (+ error), ``kron_radius``, ``kron_flux`` (+ error),
``min_value``, ``max_value``; ``ra``/``dec`` when a WCS is given.

Every export is atomic and never replaces an existing file unless ``overwrite=True``.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np

from ._atomic import atomic_path

__all__ = [
    "CATALOG_COLUMNS",
    "add_sky_coordinates",
    "build_catalog_window",
    "ellipse_corners",
    "points_data",
    "source_catalog",
    "write_catalog",
    "write_ds9_regions",
]

#: the photutils SourceCatalog properties written to the table, in order
CATALOG_COLUMNS = [
    "label", "x_centroid", "y_centroid", "bbox_xmin", "bbox_xmax", "bbox_ymin", "bbox_ymax", "area",
    "semimajor_axis", "semiminor_axis", "orientation", "eccentricity", "ellipticity", "min_value", "max_value",
    "segment_flux", "segment_flux_err", "kron_radius", "kron_flux", "kron_flux_err",
]


def _to_table(cat, offset=(0, 0)):
    """SourceCatalog → Table with window offsets added back to the pixel coordinates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = cat.to_table(columns=CATALOG_COLUMNS)
    y0, x0 = offset
    for name in ("x_centroid", "bbox_xmin", "bbox_xmax"):
        table[name] += x0
    for name in ("y_centroid", "bbox_ymin", "bbox_ymax"):
        table[name] += y0
    return table


def source_catalog(data, labels, convolved=None, error=None, mask=None, parent=None, wcs=None):
    """Catalog of a whole (in-memory) label image.

    ``data``: background-subtracted image; ``convolved``: the smoothed image used for detection
    (centroids and shapes are measured on it, as photutils recommends); ``error``: per-pixel 1σ
    (e.g. the rms map); ``parent``: optional array mapping each label to its detection's id.
    """
    from photutils.segmentation import SegmentationImage, SourceCatalog

    labels = np.asarray(labels)
    if labels.shape != np.shape(data):
        raise ValueError(f"labels {labels.shape} and data {np.shape(data)} must have the same shape")
    if not labels.any():
        return _empty_table()
    cat = SourceCatalog(np.asarray(data, dtype=float), SegmentationImage(labels.astype(np.int32)), convolved_data=convolved, error=error, mask=mask)
    table = _to_table(cat)
    table.add_column(np.asarray(parent)[table["label"]] if parent is not None else table["label"].copy(), name="parent", index=1)
    if wcs is not None:
        add_sky_coordinates(table, wcs)
    return table


def _empty_table():
    from astropy.table import Table

    names = ["label", "parent"] + CATALOG_COLUMNS[1:]
    dtypes = [np.int64, np.int64] + [np.float64] * (len(names) - 2)
    return Table(names=names, dtype=dtypes)


def _window_for(pipe, centers_x, centers_y, radii, base):
    ny, nx = pipe.shape
    y0 = min(base[0].start, int(np.floor(np.min(centers_y - radii))))
    y1 = max(base[0].stop, int(np.ceil(np.max(centers_y + radii))) + 1)
    x0 = min(base[1].start, int(np.floor(np.min(centers_x - radii))))
    x1 = max(base[1].stop, int(np.ceil(np.max(centers_x + radii))) + 1)
    return (slice(max(0, y0), min(ny, y1)), slice(max(0, x0), min(nx, x1)))


def _contains(outer, inner) -> bool:
    return all(o.start <= i.start and i.stop <= o.stop for o, i in zip(outer, inner))


def build_catalog_window(pipe, final, finals, parent_of, bboxes):
    """Catalog rows of the segments ``finals`` measured in a window large enough for their Kron
    apertures (used by the tiled photutils pipeline; the result equals an untiled catalog).

    The window grows in two steps: first to hold each segment's 6×semimajor measurement ellipse
    (where the Kron radius is measured), then to hold the Kron aperture itself
    (kron_params[0] × Kron radius × semimajor axis); apertures past the image edge are clipped the
    same way in a tiled and an untiled run.
    """
    from photutils.segmentation import SegmentationImage, SourceCatalog

    finals = np.asarray(finals)
    base = (slice(int(bboxes[:, 0].min()), int(bboxes[:, 1].max())), slice(int(bboxes[:, 2].min()), int(bboxes[:, 3].max())))
    window = base
    table = None
    for step in range(4):
        data, conv, _, rms, valid = pipe.prepare(window)
        seg = final.window(window)
        cat = SourceCatalog(data, SegmentationImage(seg), convolved_data=conv, error=rms, mask=~valid)
        cat = cat.select_labels(finals)
        a = np.atleast_1d(cat.semimajor_axis.value)
        xc = np.atleast_1d(cat.x_centroid) + window[1].start
        yc = np.atleast_1d(cat.y_centroid) + window[0].start
        ok = np.isfinite(a) & np.isfinite(xc) & np.isfinite(yc)
        if step == 0:
            needed_r = 6.0 * a + 3.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kron = np.atleast_1d(cat.kron_radius.value)
            kron = np.where(np.isfinite(kron), kron, 0.0)
            needed_r = np.maximum(6.0, float(cat.kron_params[0]) * np.maximum(kron, 1.4)) * a + 3.0
        if ok.any():
            needed = _window_for(pipe, xc[ok], yc[ok], needed_r[ok], base)
        else:
            needed = base
        if _contains(window, needed) and step > 0:
            table = _to_table(cat, (window[0].start, window[1].start))
            break
        window = (slice(min(window[0].start, needed[0].start), max(window[0].stop, needed[0].stop)),
                  slice(min(window[1].start, needed[1].start), max(window[1].stop, needed[1].stop)))
    if table is None:  # pragma: no cover - the window converges in two steps
        table = _to_table(cat, (window[0].start, window[1].start))
    parent_lookup = dict(zip(finals.tolist(), np.asarray(parent_of).tolist()))
    table.add_column([parent_lookup[int(v)] for v in table["label"]], name="parent", index=1)
    return table


def add_sky_coordinates(table, wcs) -> None:
    """Add ``ra``/``dec`` (degrees) computed from the pixel centroids with an astropy WCS."""
    if wcs is None or len(table) == 0:
        return
    sky = wcs.pixel_to_world(np.asarray(table["x_centroid"], float), np.asarray(table["y_centroid"], float))
    table["ra"] = sky.icrs.ra.deg
    table["dec"] = sky.icrs.dec.deg


def _plain(table):
    """A copy with numpy-native columns (Quantity kept as columns with units)."""
    from astropy.table import QTable, Table

    return Table(QTable(table), copy=True)


def write_catalog(table, path: str | os.PathLike, overwrite: bool = False, format: str | None = None) -> Path:
    """Write ``table`` as ECSV (``.ecsv``), FITS binary table (``.fits``/``.fit``/``.fits.gz``) or DS9
    regions (``.reg``), chosen by ``format`` or the file suffix. Atomic; refuses to overwrite."""
    path = Path(path)
    name = path.name.lower()
    fmt = format or ("ecsv" if name.endswith(".ecsv") else "fits" if name.endswith((".fits", ".fit", ".fits.gz")) else "reg" if name.endswith(".reg") else None)
    if fmt is None:
        raise ValueError(f"cannot tell the catalog format from {path.name!r}; use a .ecsv, .fits or .reg file name")
    if fmt == "reg":
        return write_ds9_regions(table, path, overwrite=overwrite)
    if fmt not in ("ecsv", "fits"):
        raise ValueError(f"unknown catalog format {fmt!r}; choose ecsv, fits or reg")
    table = _plain(table)
    meta = dict(table.meta)
    if fmt == "fits":  # FITS headers hold scalars only: keep the parameters as a JSON string
        import json

        table.meta = {k.upper()[:8]: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
        if "params" in meta:
            table.meta["PARAMS"] = json.dumps(meta["params"], default=str)
    with atomic_path(path, overwrite=overwrite) as tmp:
        table.write(tmp, format="ascii.ecsv" if fmt == "ecsv" else "fits")
    return path


def write_ds9_regions(table, path: str | os.PathLike, overwrite: bool = False, scale: float = 2.0) -> Path:
    """DS9 region file of one ellipse per row (``scale`` × semimajor/semiminor axes, in image pixels,
    1-based as DS9 expects), labelled with the segment id; ``fk5`` ellipses when ra/dec exist is left
    to DS9's own WCS conversion (we write ``image`` coordinates, exact for the file they came from)."""
    lines = ["# Region file format: DS9 version 4.1", "# written by napari-galseg", 'global color=green width=1 font="helvetica 9 normal"', "image"]
    for row in table:
        x = float(row["x_centroid"]) + 1.0
        y = float(row["y_centroid"]) + 1.0
        a = float(np.asarray(getattr(row["semimajor_axis"], "value", row["semimajor_axis"]))) * scale
        b = float(np.asarray(getattr(row["semiminor_axis"], "value", row["semiminor_axis"]))) * scale
        theta = float(np.asarray(getattr(row["orientation"], "value", row["orientation"])))
        if not all(math.isfinite(v) for v in (x, y, a, b, theta)):
            continue
        lines.append(f"ellipse({x:.3f},{y:.3f},{a:.3f},{b:.3f},{theta:.3f}) # text={{{int(row['label'])}}}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(path)


# -- for viewers (pure numpy: the widgets turn these into napari layers) ---------------------------


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
