"""Catalog exports: ECSV, FITS binary tables and region files (DS9 or CRTF, through astropy's ``regions``).

Tables in memory keep photutils' and numpy's 0-based pixel positions; files follow what
astronomers read them with: ECSV and FITS tables get the **FITS 1-based convention** of DS9 and
SExtractor's ``X_IMAGE`` (the centre of the first pixel is (1, 1)), a unit on every column that has
one and a description of each known column, and say the convention in their ``meta``
(:func:`file_table`).
Region files carry sky coordinates (``fk5``/``icrs``) when the image has a WCS, image coordinates
otherwise; :func:`read_regions` reads them back (for a Shapes/Points layer). Every export is atomic
and never replaces an existing file unless ``overwrite=True``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_path


def _plain(table):
    """A copy with numpy-native columns (Quantity kept as columns with units)."""
    from astropy.table import QTable, Table

    return Table(QTable(table), copy=True)


#: what a catalogue file says about its pixel positions (meta "pixel_convention", FITS "PIXCONV")
PIXEL_CONVENTION = "FITS 1-based (as DS9 and SExtractor X_IMAGE): the centre of the first pixel is x = y = 1"
_POSITIONS = ("x_centroid", "y_centroid", "bbox_xmin", "bbox_xmax", "bbox_ymin", "bbox_ymax")
_ONE_BASED = "[pix, FITS 1-based: the first pixel's centre is 1]"
_COLUMNS = {  # name: (unit, description)
    "label": (None, "id of the object in the label image (0 = sky)"),
    "parent": (None, "label of the detected object this deblended segment came from"),
    "x_centroid": ("pix", f"centroid x {_ONE_BASED}"),
    "y_centroid": ("pix", f"centroid y {_ONE_BASED}"),
    "bbox_xmin": ("pix", f"first column of the bounding box {_ONE_BASED}"),
    "bbox_xmax": ("pix", f"last column of the bounding box {_ONE_BASED}"),
    "bbox_ymin": ("pix", f"first row of the bounding box {_ONE_BASED}"),
    "bbox_ymax": ("pix", f"last row of the bounding box {_ONE_BASED}"),
    "area": ("pix2", "pixels of the segment"),
    "semimajor_axis": ("pix", "1-sigma semimajor axis of the light distribution"),
    "semiminor_axis": ("pix", "1-sigma semiminor axis of the light distribution"),
    "orientation": ("deg", "angle of the major axis, counter-clockwise from +x"),
    "eccentricity": (None, "eccentricity of the ellipse (0 = round)"),
    "ellipticity": (None, "1 - semiminor / semimajor"),
    "min_value": (None, "faintest pixel of the segment, image units (sky-subtracted)"),
    "max_value": (None, "brightest pixel of the segment, image units (sky-subtracted)"),
    "segment_flux": (None, "sum of the segment's pixels, image units (sky-subtracted)"),
    "segment_flux_err": (None, "1-sigma error of segment_flux from the noise map, image units"),
    "kron_radius": ("pix", "unscaled Kron radius"),
    "kron_flux": (None, "flux in the Kron aperture, image units"),
    "kron_flux_err": (None, "1-sigma error of kron_flux, image units"),
    "score": (None, "detection score of the model (COCO AP ranks by it)"),
    "ra": ("deg", "right ascension of the centroid (ICRS)"),
    "dec": ("deg", "declination of the centroid (ICRS)"),
}


def file_table(table):
    """The table as a catalogue file holds it: pixel positions moved to the FITS 1-based
    convention, units and descriptions on the known columns, the convention in ``meta``.
    A table already converted (its meta says so) is returned as a copy, unchanged."""
    import astropy.units as u

    table = _plain(table)
    if table.meta.get("pixel_convention") != PIXEL_CONVENTION:
        for name in _POSITIONS:
            if name in table.colnames:
                table[name] = table[name] + 1
        table.meta["pixel_convention"] = PIXEL_CONVENTION
    for name, (unit, description) in _COLUMNS.items():
        if name not in table.colnames:
            continue
        column = table[name]
        if unit is not None and column.unit is None:
            column.unit = u.Unit(unit)
        if not column.description or "0-based" in str(column.description):
            column.description = description
    return table


def write_catalog(table, path: str | os.PathLike, overwrite: bool = False, format: str | None = None,
                  wcs=None) -> Path:
    """Write ``table`` as ECSV (``.ecsv``), FITS binary table (``.fits``/``.fit``/``.fits.gz``) or DS9
    regions (``.reg``, sky ellipses when ``wcs`` is given), chosen by ``format`` or the file suffix.
    Tables get :func:`file_table`'s 1-based positions and units. Atomic; refuses to overwrite."""
    path = Path(path)
    name = path.name.lower()
    fmt = format or ("ecsv" if name.endswith(".ecsv") else "fits" if name.endswith((".fits", ".fit", ".fits.gz")) else "reg" if name.endswith(".reg") else None)
    if fmt is None:
        raise ValueError(f"cannot tell the catalog format from {path.name!r}; use a .ecsv, .fits or .reg file name")
    if fmt == "reg":
        return write_regions(table, path, overwrite=overwrite, wcs=wcs)
    if fmt not in ("ecsv", "fits"):
        raise ValueError(f"unknown catalog format {fmt!r}; choose ecsv, fits or reg")
    table = file_table(table)
    meta = dict(table.meta)
    if fmt == "fits":  # FITS headers hold scalars only: keep the parameters as a JSON string
        import json

        meta["PIXCONV"] = meta.pop("pixel_convention")
        table.meta = {k.upper()[:8]: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}
        if "params" in meta:
            table.meta["PARAMS"] = json.dumps(meta["params"], default=str)
    with atomic_path(path, overwrite=overwrite) as tmp:
        table.write(tmp, format="ascii.ecsv" if fmt == "ecsv" else "fits")
    return path


def catalog_regions(table, wcs=None, scale: float = 2.0):
    """One ellipse region per source (``scale`` × the semimajor/semiminor axes, labelled with the
    segment id), in sky coordinates when ``wcs`` is given, else in image pixels."""
    import astropy.units as u
    from regions import EllipsePixelRegion, PixCoord, Regions

    out = []
    for row in table:
        x, y = float(row["x_centroid"]), float(row["y_centroid"])
        a, b, theta = (float(np.asarray(getattr(row[k], "value", row[k]))) for k in ("semimajor_axis", "semiminor_axis", "orientation"))
        if not all(math.isfinite(v) for v in (x, y, a, b, theta)):
            continue
        region = EllipsePixelRegion(PixCoord(x, y), width=2 * a * scale, height=2 * b * scale, angle=theta * u.deg,
                                    meta={"text": str(int(row["label"]))})
        out.append(region.to_sky(wcs) if wcs is not None else region)
    return Regions(out)


def write_regions(table, path: str | os.PathLike, overwrite: bool = False, scale: float = 2.0, wcs=None,
                  format: str = "ds9") -> Path:
    """A region file (``format`` ds9 or crtf) of :func:`catalog_regions`; DS9 reads it over the image
    (``fk5`` ellipses when ``wcs`` is given, ``image`` ones otherwise)."""
    text = catalog_regions(table, wcs, scale).serialize(format=format)
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def read_regions(path: str | os.PathLike, wcs=None) -> list:
    """Regions of a DS9/CRTF file, as pixel regions (sky ones converted with ``wcs``)."""
    from regions import Regions

    try:
        regions = Regions.read(str(path))
    except Exception as exc:
        raise ValueError(f"{path} is not a region file regions can read ({exc})") from None
    pixel = []
    for region in regions:
        if not hasattr(region, "to_sky"):  # a sky region
            if wcs is None:
                raise ValueError(f"{path} holds sky regions: open it over an image that has a WCS")
            region = region.to_pixel(wcs)
        pixel.append(region)
    return pixel
