"""The ``.param`` file (PARAMETERS_NAME): which catalogue columns, in which order, of which size.

One name per line, ``#`` comments; ``NAME(n)`` asks for the first ``n`` elements of a vector
parameter (FLUX_APER(3): the first three PHOT_APERTURES). Parameters SExtractor knows but this
extraction does not compute are listed once and left out; a name SExtractor does not know, or an
index beyond the apertures configured, is an error naming the file and the line.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from .errors import SExtractorInputError

#: name → (description, FITS type letter, printf format, unit) of SExtractor 2.25 (param.h)
COLUMNS: dict[str, tuple[str, str, str, str]] = {
    "NUMBER": ("Running object number", "J", "%10d", ""),
    "X_IMAGE": ("Object position along x", "E", "%11.4f", "pixel"),
    "Y_IMAGE": ("Object position along y", "E", "%11.4f", "pixel"),
    "XMIN_IMAGE": ("Minimum x-coordinate among detected pixels", "J", "%10d", "pixel"),
    "YMIN_IMAGE": ("Minimum y-coordinate among detected pixels", "J", "%10d", "pixel"),
    "XMAX_IMAGE": ("Maximum x-coordinate among detected pixels", "J", "%10d", "pixel"),
    "YMAX_IMAGE": ("Maximum y-coordinate among detected pixels", "J", "%10d", "pixel"),
    "XPEAK_IMAGE": ("x-coordinate of the brightest pixel", "J", "%10d", "pixel"),
    "YPEAK_IMAGE": ("y-coordinate of the brightest pixel", "J", "%10d", "pixel"),
    "X2_IMAGE": ("Variance along x", "D", "%18.10e", "pixel**2"),
    "Y2_IMAGE": ("Variance along y", "D", "%18.10e", "pixel**2"),
    "XY_IMAGE": ("Covariance between x and y", "D", "%18.10e", "pixel**2"),
    "ERRX2_IMAGE": ("Variance of position along x", "D", "%18.10e", "pixel**2"),
    "ERRY2_IMAGE": ("Variance of position along y", "D", "%18.10e", "pixel**2"),
    "ERRXY_IMAGE": ("Covariance of position between x and y", "D", "%18.10e", "pixel**2"),
    "CXX_IMAGE": ("Cxx object ellipse parameter", "E", "%15.7e", "pixel**(-2)"),
    "CYY_IMAGE": ("Cyy object ellipse parameter", "E", "%15.7e", "pixel**(-2)"),
    "CXY_IMAGE": ("Cxy object ellipse parameter", "E", "%15.7e", "pixel**(-2)"),
    "A_IMAGE": ("Profile RMS along major axis", "E", "%9.3f", "pixel"),
    "B_IMAGE": ("Profile RMS along minor axis", "E", "%9.3f", "pixel"),
    "THETA_IMAGE": ("Position angle (CCW/x)", "E", "%6.2f", "deg"),
    "ELONGATION": ("A_IMAGE/B_IMAGE", "E", "%8.3f", ""),
    "ELLIPTICITY": ("1 - B_IMAGE/A_IMAGE", "E", "%8.3f", ""),
    "ISOAREA_IMAGE": ("Isophotal area above Analysis threshold", "J", "%9d", "pixel**2"),
    "ISOAREAF_IMAGE": ("Isophotal area (filtered) above Detection threshold", "J", "%9d", "pixel**2"),
    "FLUX_ISO": ("Isophotal flux", "E", "%12.7g", "count"),
    "FLUXERR_ISO": ("RMS error for isophotal flux", "E", "%12.7g", "count"),
    "MAG_ISO": ("Isophotal magnitude", "E", "%8.4f", "mag"),
    "MAGERR_ISO": ("RMS error for isophotal magnitude", "E", "%8.4f", "mag"),
    "FLUX_MAX": ("Peak flux above background", "E", "%12.7g", "count"),
    "BACKGROUND": ("Background at centroid position", "E", "%12.7g", "count"),
    "THRESHOLD": ("Detection threshold above background", "E", "%12.7g", "count"),
    "FLUX_APER": ("Flux vector within fixed circular aperture(s)", "E", "%12.7g", "count"),
    "FLUXERR_APER": ("RMS error vector for aperture flux(es)", "E", "%12.7g", "count"),
    "MAG_APER": ("Fixed aperture magnitude vector", "E", "%8.4f", "mag"),
    "MAGERR_APER": ("RMS error vector for fixed aperture mag.", "E", "%8.4f", "mag"),
    "KRON_RADIUS": ("Kron apertures in units of A or B", "E", "%5.2f", ""),
    "FLUX_AUTO": ("Flux within a Kron-like elliptical aperture", "E", "%12.7g", "count"),
    "FLUXERR_AUTO": ("RMS error for AUTO flux", "E", "%12.7g", "count"),
    "MAG_AUTO": ("Kron-like elliptical aperture magnitude", "E", "%8.4f", "mag"),
    "MAGERR_AUTO": ("RMS error for AUTO magnitude", "E", "%8.4f", "mag"),
    "FLUX_RADIUS": ("Fraction-of-light radii", "E", "%10.3f", "pixel"),
    "XWIN_IMAGE": ("Windowed position estimate along x", "D", "%11.4f", "pixel"),
    "YWIN_IMAGE": ("Windowed position estimate along y", "D", "%11.4f", "pixel"),
    "CLASS_STAR": ("S/G classifier output", "E", "%6.3f", ""),
    "FLAGS": ("Extraction flags", "I", "%3d", ""),
    "FLAGS_WEIGHT": ("Weighted extraction flags", "I", "%1d", ""),
    "IMAFLAGS_ISO": ("FLAG-image flags OR'ed over the iso. profile", "J", "%9u", ""),
    "NIMAFLAGS_ISO": ("Number of flagged pixels entering IMAFLAGS_ISO", "J", "%9d", ""),
    "NLOWWEIGHT_ISO": ("Nb of pixels with low weight over the iso. profile", "J", "%9d", ""),
    "NLOWDWEIGHT_ISO": ("Nb of pixels with low det. weight over the iso. profile", "J", "%9d", ""),
    "ALPHA_J2000": ("Right ascension of barycenter (J2000)", "D", "%11.7f", "deg"),
    "DELTA_J2000": ("Declination of barycenter (J2000)", "D", "%+11.7f", "deg"),
}

#: vector parameters and the .sex key whose number of values bounds their index
VECTORS = {"FLUX_APER": "PHOT_APERTURES", "FLUXERR_APER": "PHOT_APERTURES", "MAG_APER": "PHOT_APERTURES",
           "MAGERR_APER": "PHOT_APERTURES", "FLUX_RADIUS": "PHOT_FLUXFRAC", "IMAFLAGS_ISO": "FLAG_IMAGE",
           "NIMAFLAGS_ISO": "FLAG_IMAGE"}

_LINE = re.compile(r"^([A-Z0-9_]+)(?:\((\d+(?:,\d+)*)\))?$")


@dataclasses.dataclass
class ParamList:
    """The columns asked for: (name, vector size or 0 for a scalar), and those left out."""

    path: Path | None
    columns: list[tuple[str, int]]
    left_out: list[str]


def read_param(path, known: set[str], sizes: dict[str, int]) -> ParamList:
    """Read a ``.param`` file. ``known``: every parameter name SExtractor knows (``default.param``
    lists them); ``sizes``: how many values each vector's .sex key has."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SExtractorInputError(f"{path}: cannot read the parameter file ({exc.strerror or exc}); "
                                   "check PARAMETERS_NAME in the .sex file") from None
    columns: list[tuple[str, int]] = []
    left_out: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _LINE.match(line.upper().replace(" ", ""))
        if not m:
            raise SExtractorInputError(f"{path} line {number}: {raw.strip()!r} is not a parameter name "
                                       "(one name per line, e.g. FLUX_APER(3))")
        name, index = m.group(1), m.group(2)
        if name not in COLUMNS and name not in VECTORS and name not in known:
            raise SExtractorInputError(f"{path} line {number}: {name} is not a SExtractor parameter; "
                                       "remove it or correct its spelling (source-extractor -dp lists them)")
        if index is not None and name not in VECTORS and name in COLUMNS:
            raise SExtractorInputError(f"{path} line {number}: {name} is not a vector; write it without ({index})")
        if index is not None and name in VECTORS and "," in index:
            raise SExtractorInputError(f"{path} line {number}: {name}({index}) takes one size, e.g. {name}(3)")
        size = 0
        if name in VECTORS:
            size = int(index) if index is not None else 1
            have = sizes.get(VECTORS[name], 1)
            if size < 1 or size > have:
                raise SExtractorInputError(f"{path} line {number}: {name}({size}) asks for {size} values but "
                                           f"{VECTORS[name]} gives {have}; use {name}({have}) or add values to "
                                           f"{VECTORS[name]}")
        if name not in COLUMNS:
            if name not in left_out:
                left_out.append(name)
            continue
        columns.append((name, size))
    return ParamList(path=path, columns=columns, left_out=left_out)
