"""COCO annotations of a label image (compressed RLE masks, boxes, areas): what a COCO dataset
stores (:mod:`.coco_export`) and what COCO AP is computed from (:mod:`napari_galseg.metrics.coco`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _score_of(scores: Any, label: int) -> float:
    if scores is None:
        return 1.0
    if isinstance(scores, Mapping):
        return float(scores[label])
    return float(np.asarray(scores)[label])



def labels_to_annotations(
    labels: Any,
    image_id: int = 1,
    *,
    scores: Mapping[int, float] | Sequence[float] | np.ndarray | None = None,
    category_id: int = 1,
    with_score: bool = False,
) -> list[dict[str, Any]]:
    """COCO annotations (compressed RLE ``segmentation``, ``bbox``, ``area``) of a 2-D label image.

    ``scores`` maps a label id to a detection score (a dict, or an array indexed by label); any
    score given, or ``with_score=True``, adds a ``score`` key (detections need one).
    """
    from pycocotools import mask as mask_utils

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"COCO masks are 2-D; got a label image of shape {labels.shape}")
    if labels.dtype.kind not in "iub":
        raise ValueError(f"COCO instances need integer labels, got dtype {labels.dtype}")
    height, width = labels.shape
    flat = labels.ravel(order="F")  # COCO RLE runs down the columns
    positions = np.flatnonzero(flat > 0)
    if positions.size == 0:
        return []
    ids = flat[positions]
    order = np.argsort(ids, kind="stable")  # grouped by label, positions still increasing
    ids, positions = ids[order], positions[order]
    new_object = np.empty(ids.size, dtype=bool)
    new_object[0] = True
    new_object[1:] = ids[1:] != ids[:-1]
    new_run = new_object.copy()
    new_run[1:] |= positions[1:] != positions[:-1] + 1
    run_starts = np.flatnonzero(new_run)
    run_lengths = np.diff(np.append(run_starts, ids.size))
    run_begin = positions[run_starts]
    run_object = np.cumsum(new_object)[run_starts] - 1
    object_first_run = np.searchsorted(run_object, np.arange(run_object[-1] + 1))
    object_first_run = np.append(object_first_run, run_starts.size)
    object_start = np.flatnonzero(new_object)
    object_end = np.append(object_start[1:], ids.size)
    total = height * width
    annotations = []
    for k, (first, last) in enumerate(zip(object_first_run[:-1], object_first_run[1:])):
        begins = run_begin[first:last]
        lengths = run_lengths[first:last]
        ends = begins + lengths
        gaps = np.empty(begins.size + 1, dtype=np.int64)
        gaps[0] = begins[0]
        gaps[1:-1] = begins[1:] - ends[:-1]
        gaps[-1] = total - ends[-1]
        counts = np.empty(2 * begins.size + 1, dtype=np.int64)
        counts[0::2] = gaps
        counts[1::2] = lengths
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
        rle["counts"] = rle["counts"].decode("ascii")
        pixels = positions[object_start[k]:object_end[k]]
        cols, rows = np.divmod(pixels, height)
        x0, y0 = int(cols.min()), int(rows.min())
        label = int(ids[object_start[k]])
        annotation = {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "segmentation": rle,
            "area": float(pixels.size),
            "bbox": [float(x0), float(y0), float(cols.max() - x0 + 1), float(rows.max() - y0 + 1)],
            "iscrowd": 0,
            "label": label,
        }
        if scores is not None or with_score:
            annotation["score"] = _score_of(scores, label)
        annotations.append(annotation)
    return annotations
