"""A prediction compared with the truth, as pictures rather than numbers.

:func:`compare` gives what the viewer draws so that a prediction can be judged at a glance:

- a pixel map of the four outcomes: 0 sky in both, 1 true positive (labelled in both), 2 false
  positive (only predicted), 3 false negative (only true);
- one marker per object: each true object *matched* (IoU above the threshold, one-to-one, the
  same matching as the object metrics) or *missed*, and each unmatched prediction *spurious*,
  at the object's centroid with its id and best IoU.

It runs on arrays that fit in memory (the field of view of a huge frame is the way to look at one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .objects import as_instances, match_table, overlap_table

#: values of :attr:`Comparison.pixels`
SKY, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = 0, 1, 2, 3
PIXEL_CLASSES = {TRUE_POSITIVE: "TP", FALSE_POSITIVE: "FP", FALSE_NEGATIVE: "FN"}
#: kinds of :attr:`Comparison.objects`
OBJECT_KINDS = ("matched", "missed", "spurious")


@dataclass
class Comparison:
    """Pixel outcomes and object markers of one prediction against the truth."""

    pixels: np.ndarray          # uint8: SKY, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE
    centroids: np.ndarray       # (n, 2) rows and columns of the markers
    kinds: np.ndarray           # "matched", "missed" or "spurious" per marker
    ids: np.ndarray             # the true id (matched, missed) or the predicted id (spurious)
    iou: np.ndarray             # the matched IoU, or the best IoU of an unmatched object (0 without overlap)
    iou_threshold: float

    def count(self, kind: str) -> int:
        return int(np.count_nonzero(self.kinds == kind))

    def summary(self) -> str:
        """``412 matched, 57 missed, 23 spurious (IoU > 0.5)`` — the line the dock shows."""
        return (f"{self.count('matched')} matched, {self.count('missed')} missed, {self.count('spurious')} spurious "
                f"(IoU > {self.iou_threshold:g})")


def _centroids(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    if not len(ids):
        return np.zeros((0, 2))
    return np.asarray(ndimage.center_of_mass(np.ones(labels.shape), labels, ids), float).reshape(-1, 2)


def compare(pred: Any, true: Any, iou_threshold: float = 0.5) -> Comparison:
    """Compare a prediction (instance labels, or a 0/1 mask split into components) with the
    truth on the same grid; see the module docstring."""
    pred = as_instances(np.asarray(pred.compute() if hasattr(pred, "compute") else pred))
    true = as_instances(np.asarray(true.compute() if hasattr(true, "compute") else true))
    if pred.shape != true.shape:
        raise ValueError(f"the prediction {pred.shape} and the truth {true.shape} must have the same shape")
    predicted, labelled = pred > 0, true > 0
    pixels = np.zeros(pred.shape, np.uint8)
    pixels[predicted & labelled] = TRUE_POSITIVE
    pixels[predicted & ~labelled] = FALSE_POSITIVE
    pixels[~predicted & labelled] = FALSE_NEGATIVE

    table = overlap_table(pred, true)
    match = match_table(table, iou_threshold)
    it, ip, pair_iou = table.pair_iou()  # indices into true_ids / pred_ids
    true_iou = np.zeros(len(match.true_ids))
    pred_iou = np.zeros(len(match.pred_ids))
    np.maximum.at(true_iou, it, pair_iou)  # the best IoU; for a matched object, its match's
    np.maximum.at(pred_iou, ip, pair_iou)
    true_iou[np.searchsorted(match.true_ids, match.matched_true)] = match.matched_iou
    spurious_index = np.flatnonzero(~np.isin(match.pred_ids, match.matched_pred))
    spurious = np.asarray(match.pred_ids)[spurious_index]
    spurious_iou = pred_iou[spurious_index]

    centroids = np.concatenate([_centroids(true, match.true_ids), _centroids(pred, spurious)])
    kinds = np.concatenate([np.where(match.true_matched, "matched", "missed"), np.full(len(spurious), "spurious")])
    ids = np.concatenate([np.asarray(match.true_ids, np.int64), np.asarray(spurious, np.int64)])
    iou = np.concatenate([true_iou, spurious_iou])
    return Comparison(pixels=pixels, centroids=centroids, kinds=kinds.astype(str), ids=ids, iou=iou,
                      iou_threshold=float(iou_threshold))


__all__ = ["FALSE_NEGATIVE", "FALSE_POSITIVE", "OBJECT_KINDS", "PIXEL_CLASSES", "SKY", "TRUE_POSITIVE", "Comparison",
           "compare"]
