"""SExtractor catalogues: the ``.param`` columns written as ASCII_HEAD, ASCII, FITS_1.0 or FITS_LDAC.

The layouts are SExtractor's own, so tools that read its catalogues read these: ASCII_HEAD's
``#   n NAME  description  [unit]`` header and printf formats; FITS_1.0's primary HDU and
``OBJECTS`` table; FITS_LDAC's ``LDAC_IMHEAD`` (the image header as 80-character cards, what SCAMP
and PSFEx read) and ``LDAC_OBJECTS``. Every file is written atomically.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np

from .._atomic import atomic_path
from .params import COLUMNS, ParamList

_NUMPY = {"J": np.int32, "I": np.int16, "E": np.float32, "D": np.float64}


@dataclasses.dataclass
class Column:
    name: str
    size: int          #: 0 for a scalar, else the vector length
    values: np.ndarray  #: (n,) or (n, size)

    @property
    def meta(self):
        return COLUMNS[self.name]


def catalog_columns(columns: dict[str, np.ndarray], params: ParamList, wcs=None) -> list[Column]:
    """The ``.param`` columns, in its order, from an extraction's columns (and the frame's WCS)."""
    n = len(columns.get("NUMBER", []))
    out = []
    for name, size in params.columns:
        if name in ("ALPHA_J2000", "DELTA_J2000"):
            values = _sky(columns, wcs, n)[0 if name == "ALPHA_J2000" else 1]
        else:
            values = np.asarray(columns[name]) if n else np.zeros((0, size) if size else 0)
        if size:
            values = values.reshape(n, -1)[:, :size]
        out.append(Column(name, size, values.astype(_NUMPY[COLUMNS[name][1]])))
    return out


def _sky(columns, wcs, n):
    """(ra, dec) of the barycentres; without a celestial WCS SExtractor writes zeros."""
    x = np.asarray(columns.get("X_IMAGE", np.zeros(n)), np.float64)
    y = np.asarray(columns.get("Y_IMAGE", np.zeros(n)), np.float64)
    if wcs is None or not getattr(wcs, "has_celestial", False) or n == 0:
        return np.zeros(n), np.zeros(n)
    from astropy.coordinates import FK5

    sky = wcs.celestial.pixel_to_world(x - 1.0, y - 1.0)
    try:
        sky = sky.transform_to(FK5(equinox="J2000"))
        return sky.ra.deg, sky.dec.deg
    except Exception:  # a frame astropy cannot convert: its native coordinates
        return sky.spherical.lon.deg, sky.spherical.lat.deg


def ascii_text(cols: list[Column], header: bool = True) -> str:
    """ASCII_HEAD (or ASCII without the header) text."""
    buf = io.StringIO()
    if header:
        index = 1
        for c in cols:
            desc, _t, _f, unit = c.meta
            line = f"#{index:4d} {c.name:<22.22} {desc:<58.58}"
            buf.write(line + (f" [{unit}]" if unit else "") + "\n")
            index += max(c.size, 1)
    n = len(cols[0].values) if cols else 0
    fmts = [c.meta[2] for c in cols]
    for i in range(n):
        parts = []
        for c, fmt in zip(cols, fmts):
            if c.size:
                parts.extend(fmt % v for v in c.values[i])
            else:
                parts.append(fmt % c.values[i])
        buf.write(" ".join(parts) + "\n")
    return buf.getvalue()


def _tdisp(fmt: str) -> str:
    f = fmt.lstrip("%").lstrip("+")
    kind = f[-1]
    body = f[:-1]
    return {"d": "I", "f": "F", "e": "E", "g": "G"}[kind] + body


def _objects_hdu(cols: list[Column], extname: str):
    from astropy.io import fits

    fcols = []
    for c in cols:
        desc, t, fmt, unit = c.meta
        fcols.append(fits.Column(name=c.name, format=f"{max(c.size, 1)}{t}", unit=unit or None, disp=_tdisp(fmt),
                                 array=c.values))
    hdu = fits.BinTableHDU.from_columns(fcols, name=extname)
    for i, c in enumerate(cols, 1):
        hdu.header.comments[f"TTYPE{i}"] = c.meta[0]
    return hdu


def _summary_cards(header, info: dict) -> None:
    for key, (value, comment) in info.items():
        header[key] = (value, comment)


def write_catalog(cols: list[Column], path, catalog_type: str, image_header=None, info: dict | None = None,
                  overwrite: bool = True) -> None:
    """Write ``cols`` as ``catalog_type`` at ``path`` (atomically)."""
    from astropy.io import fits

    info = info or {}
    if catalog_type in ("ASCII_HEAD", "ASCII"):
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(ascii_text(cols, header=catalog_type == "ASCII_HEAD"))
        return
    objects = _objects_hdu(cols, "LDAC_OBJECTS" if catalog_type == "FITS_LDAC" else "OBJECTS")
    if catalog_type == "FITS_1.0":
        primary = fits.PrimaryHDU()
        if image_header is not None:
            for card in image_header.cards:
                if card.keyword not in ("SIMPLE", "BITPIX", "EXTEND", "") and not card.keyword.startswith("NAXIS"):
                    primary.header.append(card)
        _summary_cards(primary.header, info)
        hdus = fits.HDUList([primary, objects])
    elif catalog_type == "FITS_LDAC":
        head = fits.Header(image_header.cards) if image_header is not None else fits.Header()
        _summary_cards(head, info)
        cards = [c.image for c in head.cards] + ["END".ljust(80)]
        imhead = fits.BinTableHDU.from_columns(
            [fits.Column(name="Field Header Card", format=f"{80 * len(cards)}A", dim=f"(80, {len(cards)})",
                         array=np.array([cards], dtype="S80"))], name="LDAC_IMHEAD")
        hdus = fits.HDUList([fits.PrimaryHDU(), imhead, objects])
    else:
        raise ValueError(f"unknown CATALOG_TYPE {catalog_type}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        hdus.writeto(tmp)
