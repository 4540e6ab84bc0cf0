"""Deblending: photutils' ``deblend_sources`` for one object, and the objects of a group.

Multi-threshold markers, the watershed from them and the contrast criterion run compiled
(:mod:`napari_galseg._kernels`); tests check the whole against
``photutils.segmentation.deblend_sources`` and the markers against a numpy version. An object that
splits becomes a :class:`Split`: its children numbered in raster order of their first pixel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..._kernels import deblend_markers, deblend_watershed, may_split
from ...catalog_sums import segment_sums
from .params import PhotutilsParams

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline


@dataclass
class Split:
    """An object split in two or more children."""

    parent: int  # the detected object's id (a tile-local id until detection maps it)
    bbox: tuple[int, int, int, int]  # y0, y1, x0, x1 in the frame
    child_ids: np.ndarray  # children 1..n_children over the bbox, 0 outside the object
    n_children: int
    first_local: np.ndarray  # flat bbox index of each child's first pixel
    sums: dict | None = None  # the children's catalog sums (catalog="basic")

    @property
    def window(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.bbox
        return slice(y0, y1), slice(x0, x1)

    def first_pixels(self, width: int) -> np.ndarray:
        """Frame-wide flat index of each child's first pixel (the final numbering's sort key)."""
        y0, _, x0, x1 = self.bbox
        ry, rx = np.divmod(self.first_local, x1 - x0)
        return (y0 + ry) * width + (x0 + rx)


def split_object(parent: int, conv: np.ndarray, inside: np.ndarray, bbox, p: PhotutilsParams,
                 data=None, rms=None, valid=None) -> Split | None:
    """Deblend one object (``inside`` its pixels in the cutout ``conv`` at ``bbox``); None if it
    does not split. With ``data``/``rms``/``valid`` cutouts the children's catalog sums come too."""
    cut = deblend_object(conv, inside, p)
    if cut is None:
        return None
    child_ids, n_children, first_local = number_children(cut, inside)
    sums = None
    if data is not None and (p.catalog == "basic" or p.min_snr > 0):
        sums = segment_sums(child_ids, n_children, data, conv, rms, valid, (bbox[0], bbox[2]))
    return Split(int(parent), tuple(int(v) for v in bbox), child_ids, n_children, first_local, sums)


def deblend_group(pipe: Pipeline, parents: np.ndarray, bboxes) -> list[Split]:
    """Deblend the group's objects that cross tile borders (those inside one tile were deblended
    during detection), each in a window of its own bounding box; returns the objects that split.

    Each object goes through :func:`deblend_object`: photutils' multi-threshold + watershed
    algorithm with all threshold levels of the object labelled in a single 3-D call (photutils
    makes 32 Python-level detect_sources calls per object); tests check it against
    photutils.segmentation.deblend_sources.
    """
    p = pipe.p
    splits: list[Split] = []
    parents = parents[~pipe.deblend_handled[parents]]  # objects inside one tile: done during detection
    areas = pipe.stitcher.areas[parents]
    candidates = parents[areas >= 2 * int(p.n_pixels)]  # photutils' own rule: room for two children
    for parent in candidates:
        parent = int(parent)
        y0, y1, x0, x1 = (int(v) for v in bboxes[parent])
        box = (slice(y0, y1), slice(x0, x1))
        inside = pipe.object_mask(parent)
        data, conv, _, rms, valid = pipe.compute_window(box)
        # Most objects cannot split (no threshold gives two pieces of n_pixels): skipping those is
        # exact and saves most of the time.
        if not may_split(conv, inside.astype(np.int32), _ONE_CANDIDATE, int(p.n_pixels), int(p.connectivity))[1]:
            continue
        split = split_object(parent, conv, inside, (y0, y1, x0, x1), p, data, rms, valid)
        if split is not None:
            splits.append(split)
    return splits


_ONE_CANDIDATE = np.array([False, True])


def number_children(cut: np.ndarray, inside: np.ndarray):
    """Children numbered 1..k in raster order of their first pixel inside the bbox (= their global
    order): ``(child_ids, k, flat bbox index of each child's first pixel)``."""
    child_ids = np.zeros(cut.shape, np.int32)
    values = cut[inside]
    uniq, first_idx = np.unique(values, return_index=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.argsort(first_idx, kind="stable")] = np.arange(1, len(uniq) + 1)
    child_ids[inside] = rank[np.searchsorted(uniq, values)]
    first_local = np.flatnonzero(inside.ravel())[np.sort(first_idx)]
    return child_ids, len(uniq), first_local


def deblend_thresholds(values: np.ndarray, n_levels: int, mode: str):
    """``(thresholds, mode)``: the multi-threshold levels photutils' deblender uses for a source
    with these pixel values (the arithmetic and dtypes of
    ``photutils.segmentation.deblend._SingleSourceDeblender.compute_thresholds``) and the mode
    actually used (exponential falls back to linear for a non-positive minimum); None for a flat
    source."""
    source_min, source_max = np.nanmin(values), np.nanmax(values)
    if source_min == source_max:
        return None, mode
    if mode == "exponential" and source_min <= 0:
        mode = "linear"
    linear = np.linspace(source_min, source_max, n_levels + 2)
    if mode == "linear":
        thresholds = linear
    else:
        normalized = (linear - source_min) / (source_max - source_min)
        if mode == "sinh":
            a = 0.25
            thresholds = np.sinh(normalized / a) / np.sinh(1.0 / a)
            thresholds *= source_max - source_min
            thresholds += source_min
        else:
            thresholds = source_min * (source_max / source_min) ** normalized
    return thresholds[1:-1], mode


def deblend_object(conv: np.ndarray, inside: np.ndarray, p: PhotutilsParams):
    """photutils' ``deblend_sources`` for one source (``inside`` its pixels in the cutout ``conv``):
    multi-threshold markers, watershed, the contrast criterion (drop the faintest child until all
    hold >= ``contrast`` of the flux). Returns the children (their marker ids, 0 outside) or None
    (not split).

    Markers and watershed run compiled (:mod:`napari_galseg._kernels`); tests check the whole
    against photutils.segmentation.deblend_sources and the markers against a numpy version.
    """
    values = conv[inside]
    connectivity = int(p.connectivity)
    thresholds, mode = deblend_thresholds(values, int(p.n_levels), p.deblend_mode)
    if thresholds is None:
        return None
    markers, n_markers = deblend_markers(conv, inside, thresholds, int(p.n_pixels), connectivity)
    if not n_markers:
        return None
    if mode != "linear" and n_markers > 200:  # photutils' rule against slow watersheds
        thresholds, mode = deblend_thresholds(values, int(p.n_levels), "linear")
        markers, n_markers = deblend_markers(conv, inside, thresholds, int(p.n_pixels), connectivity)
        if not n_markers:
            return None
    source_sum = float(np.nansum(values))  # float32 (pairwise) as photutils, then exact in float64
    children, n_children = deblend_watershed(conv, inside, markers, float(p.contrast), source_sum, connectivity)
    if n_children <= 1:
        return None
    if not np.array_equal(inside, children > 0):  # pragma: no cover - photutils raises the same
        raise ValueError("deblending failed: the watershed did not cover the source (connectivity mismatch?)")
    return children
