"""Compiled inner loops (numba, ``nogil``: they run in parallel in the tile threads).

Only loops that numpy cannot vectorise live here: sorting and sigma-clipping the background
boxes, the background spline's row pass, labelling tiles and summarising their labels, the
per-segment catalog sums, and photutils' deblender (the "may split" test, the multi-level markers,
scikit-image's watershed with the contrast step). Each gives exactly what the numpy / photutils /
scikit-image code it replaces gives (tests compare them). numba compiles them once per machine
(~15–30 s) and caches the machine code beside this file (``cache=True``); :func:`load` loads them
all up front (~1 s).
"""
from __future__ import annotations

import numpy as np

from .background import clip_sorted_rows, sort_rows_nan_last, spline_rows
from .deblending import deblend_markers, deblend_watershed, may_split, watershed_flood
from .labelling import label_mask, label_summary
from .sums import segment_sums_kernel

__all__ = ["clip_sorted_rows", "deblend_markers", "deblend_watershed", "label_mask", "label_summary", "load",
           "may_split", "segment_sums_kernel", "sort_rows_nan_last", "spline_rows", "watershed_flood"]


def load() -> None:
    """Load (or, the very first time on a machine, compile) every kernel with the argument types
    the pipeline uses, by calling each on a tiny input. Numba otherwise does this on the first
    call of each, inside the first run (~1 s from its cache: scanning the installed packages for
    numba extensions is most of it; ~30 s the very first time)."""
    img = np.zeros((4, 4), np.float32)
    labels = np.zeros((4, 4), np.int32)
    srt, good = sort_rows_nan_last(img)
    clip_sorted_rows(srt, good, 3.0, 10)
    may_split(img, labels, np.zeros(1, np.bool_), 10, 8)
    spline_rows(img, np.zeros((4, 4), np.int64), img, 0.0, 1.0)
    inside = np.ones((4, 4), np.bool_)
    for thresholds in (np.zeros(2, np.float32), np.zeros(2, np.float64)):
        deblend_markers(img, inside, thresholds, 10, 8)
    watershed_flood(np.zeros(9, np.float64), np.zeros(9, np.int32), np.zeros(9, np.int8), np.zeros(1, np.int64))
    deblend_watershed(img, inside, labels, 0.001, 1.0, 8)
    found, n = label_mask(inside, 8)
    label_summary(found, n)
    for error in (img, np.zeros((1, 1), np.float32)):
        segment_sums_kernel(labels, 1, img, img, error, True, inside)
