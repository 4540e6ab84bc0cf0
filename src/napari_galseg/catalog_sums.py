"""Per-segment pixel sums: the vectorised ("basic") catalog's raw material.

Gathered tile by tile during detection and deblending (:func:`segment_sums`), merged across tile
borders (:func:`merge_sums`, second moments with the parallel-axis rule) and turned into the
catalog's columns with SourceCatalog's definitions (:func:`table_from_sums`).
"""
from __future__ import annotations

import numpy as np

#: fields of the per-segment sums (each a 1-D array, one entry per segment)
SUM_FIELDS = ("w", "xc", "yc", "mxx", "myy", "mxy", "n_valid", "flux", "err2", "vmin", "vmax", "y0", "y1", "x0", "x1")


def segment_sums(labels, n, data, convolved, error, valid, origin=(0, 0)) -> dict:
    """Per-segment sums over the pixels of ``labels`` (ids 1..n; row i of each array is label i+1).

    ``w``: Σ of the moment weights (``convolved`` clipped at 0, 0 where invalid, as SourceCatalog's
    moment data); ``xc``/``yc``: weighted centroid (global pixel coordinates, ``origin`` = (y, x) of
    ``labels[0, 0]``); ``mxx``/``myy``/``mxy``: weighted *central* second moments (Σ w·dx²...,
    not normalised); ``n_valid``: unmasked pixels; ``flux``: Σ data; ``err2``: Σ error²;
    ``vmin``/``vmax``: data extremes; ``y0, y1, x0, x1``: bounding box (half-open, global).
    Sums run in float64 in raster order of the pixels, so they do not depend on the window.
    """
    from ._kernels import (
        segment_sums_kernel,  # compiled: no GIL held, one pass + one for moments
    )

    labels = np.ascontiguousarray(labels, dtype=np.int32)
    has_error = error is not None
    sums = segment_sums_kernel(labels, int(n), np.ascontiguousarray(data), np.ascontiguousarray(convolved),
                               np.ascontiguousarray(error) if has_error else np.zeros((1, 1), np.float32),
                               has_error, np.ascontiguousarray(valid, dtype=bool))
    out = dict(zip(SUM_FIELDS[:11], sums[:11]))  # the kernel's rows follow SUM_FIELDS
    out["xc"] = out["xc"] + origin[1]
    out["yc"] = out["yc"] + origin[0]
    bounds = sums[11:].astype(np.int64)
    bounds[bounds > 1 << 62] = np.iinfo(np.int64).max  # labels with no pixel (never in practice)
    out["y0"], out["y1"] = bounds[0] + origin[0], bounds[1] + 1 + origin[0]
    out["x0"], out["x1"] = bounds[2] + origin[1], bounds[3] + 1 + origin[1]
    return out


def concat_sums(parts) -> dict:
    """Concatenate several :func:`segment_sums` results (rows in order)."""
    parts = list(parts)
    if not parts:
        return {k: np.zeros(0, np.int64 if k in ("y0", "y1", "x0", "x1") else np.float64) for k in SUM_FIELDS}
    return {k: np.concatenate([p[k] for p in parts]) for k in SUM_FIELDS}


def take_sums(sums: dict, rows) -> dict:
    return {k: v[rows] for k, v in sums.items()}


def merge_sums(sums: dict, group, n_groups: int) -> dict:
    """Merge rows of per-piece sums into per-object sums (``group[i]`` in 0..n_groups-1 is the
    object of row i; rows with group < 0 are dropped). Centroids are weight-averaged and central
    moments combined with the parallel-axis rule (stable: no large raw moments are formed)."""
    group = np.asarray(group, np.intp)
    keep = group >= 0
    g = group[keep]
    s = take_sums(sums, keep)
    out = {}
    for k in ("n_valid", "flux", "err2", "w"):
        out[k] = np.bincount(g, weights=s[k], minlength=n_groups)
    for k, func, init in (("vmin", np.minimum, np.inf), ("vmax", np.maximum, -np.inf),
                          ("y0", np.minimum, np.iinfo(np.int64).max), ("x0", np.minimum, np.iinfo(np.int64).max),
                          ("y1", np.maximum, -1), ("x1", np.maximum, -1)):
        arr = np.full(n_groups, init, dtype=s[k].dtype)
        func.at(arr, g, s[k])
        out[k] = arr
    w = out["w"]
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in ("xc", "yc"):
            mean = np.bincount(g, weights=s["w"] * s[c], minlength=n_groups) / w
            out[c] = np.where(w > 0, mean, 0.0)
    dx = s["xc"] - out["xc"][g]
    dy = s["yc"] - out["yc"][g]
    out["mxx"] = np.bincount(g, weights=s["mxx"] + s["w"] * dx * dx, minlength=n_groups)
    out["myy"] = np.bincount(g, weights=s["myy"] + s["w"] * dy * dy, minlength=n_groups)
    out["mxy"] = np.bincount(g, weights=s["mxy"] + s["w"] * dx * dy, minlength=n_groups)
    return out


def table_from_sums(labels, parents, sums: dict):
    """The ``"basic"`` catalog (:data:`BASIC_COLUMNS` + ``parent``) from per-segment sums, with
    SourceCatalog's definitions: centroid and shape from the non-negative convolved data,
    covariance diagonal grown by 1/12 while its determinant is below 1/144 (SourceExtractor's
    rule for thin objects), area/flux/min/max over unmasked pixels (NaN when all are masked)."""
    import astropy.units as u
    from astropy.table import QTable

    n = len(labels)
    w = sums["w"]
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(w > 0, sums["xc"], np.nan)
        yc = np.where(w > 0, sums["yc"], np.nan)
        covar = np.empty((n, 2, 2))
        covar[:, 0, 0] = sums["mxx"] / w
        covar[:, 1, 1] = sums["myy"] / w
        covar[:, 0, 1] = covar[:, 1, 0] = sums["mxy"] / w
        det = np.linalg.det(covar) if n else np.zeros(0)
        covar[det < 0] = np.nan
        delta = 1.0 / 12
        grow = np.flatnonzero(det < delta**2)
        while grow.size:
            covar[grow, 0, 0] += delta
            covar[grow, 1, 1] += delta
            det = np.linalg.det(covar[grow])
            grow = grow[det < delta**2]
        eig = np.full((n, 2), np.nan)
        finite = np.isfinite(covar).all(axis=(1, 2))
        if finite.any():
            eig[finite] = np.linalg.eigvalsh(covar[finite])[:, ::-1]
        eig[(eig < 0).any(axis=1)] = np.nan
        a = np.sqrt(eig[:, 0])
        b = np.sqrt(eig[:, 1])
        orientation = np.rad2deg(0.5 * np.arctan2(2.0 * covar[:, 0, 1], covar[:, 0, 0] - covar[:, 1, 1])) % 360
        eccentricity = np.sqrt(1.0 - eig[:, 1] / eig[:, 0])
        ellipticity = 1.0 - b / a
        empty = sums["n_valid"] == 0
        area = np.where(empty, np.nan, sums["n_valid"])
        vmin = np.where(empty, np.nan, sums["vmin"])
        vmax = np.where(empty, np.nan, sums["vmax"])
        flux = np.where(empty, np.nan, sums["flux"])
        err = np.where(empty, np.nan, np.sqrt(sums["err2"]))
    table = QTable()
    table["label"] = np.asarray(labels, np.int64)
    table["parent"] = np.asarray(parents, np.int64)
    table["x_centroid"] = xc
    table["y_centroid"] = yc
    table["bbox_xmin"] = np.asarray(sums["x0"], np.int64)
    table["bbox_xmax"] = np.asarray(sums["x1"], np.int64) - 1
    table["bbox_ymin"] = np.asarray(sums["y0"], np.int64)
    table["bbox_ymax"] = np.asarray(sums["y1"], np.int64) - 1
    table["area"] = area * u.pix**2
    table["semimajor_axis"] = a * u.pix
    table["semiminor_axis"] = b * u.pix
    table["orientation"] = orientation * u.deg
    table["eccentricity"] = eccentricity
    table["ellipticity"] = ellipticity
    table["min_value"] = vmin
    table["max_value"] = vmax
    table["segment_flux"] = flux
    table["segment_flux_err"] = err
    return table
