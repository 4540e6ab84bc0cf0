"""Panoptic quality (Kirillov et al. 2019): PQ = SQ × RQ, computed the way panopticapi does.

A predicted and a true segment of the same class match when their IoU is strictly above 0.5 (unique
by construction). Per class:

    SQ = mean IoU of the matched pairs (0 when nothing matched, as panopticapi),
    RQ = TP / (TP + FP/2 + FN/2),   PQ = sum of matched IoU / (TP + FP/2 + FN/2) = SQ × RQ,

and the reported PQ/SQ/RQ are the means over classes that have at least one segment. Void pixels
(``void_mask``, e.g. bad or unobserved pixels) follow panopticapi: they are removed from a pair's
union, and a predicted segment lying more than half on void is not a false positive. Background
(label 0, the sky) is not a class here: the study's "galaxy" class is a *thing* class.
Both images empty → PQ = SQ = RQ = 1.0 (the package-wide empty-case rule).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .objects import OverlapTable, overlap_table


def _class_of(classes: Mapping[int, int] | None, ids: np.ndarray) -> np.ndarray:
    if classes is None:
        return np.ones(ids.size, dtype=np.int64)
    try:
        return np.array([int(classes[int(i)]) for i in ids], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"segment {exc.args[0]} has no class in the class table") from None


def panoptic_quality(
    pred_labels: Any,
    true_labels: Any,
    *,
    pred_classes: Mapping[int, int] | None = None,
    true_classes: Mapping[int, int] | None = None,
    void_mask: Any = None,
) -> dict[str, Any]:
    """PQ, SQ, RQ (means over classes), tp/fp/fn totals and ``per_class`` values.

    ``pred_classes``/``true_classes`` map segment id → class id (default: one class for all).
    """
    if void_mask is not None:
        void = np.asarray(void_mask, dtype=bool)
        true_labels = np.where(void, 0, np.asarray(true_labels))
        void_table = overlap_table(pred_labels, void.astype(np.int8))
        void_on_pred = dict(zip(void_table.pair_pred.tolist(), void_table.pair_count.tolist()))
    else:
        void_on_pred = {}
    table = overlap_table(pred_labels, true_labels)
    return panoptic_from_table(table, pred_classes=pred_classes, true_classes=true_classes, void_on_pred=void_on_pred)


def panoptic_from_table(
    table: OverlapTable,
    *,
    pred_classes: Mapping[int, int] | None = None,
    true_classes: Mapping[int, int] | None = None,
    void_on_pred: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """:func:`panoptic_quality` from an overlap table already computed (e.g. by ``evaluate``).

    ``void_on_pred`` maps a predicted id to its number of void pixels.
    """
    void_on_pred = void_on_pred or {}
    true_class = _class_of(true_classes, table.true_ids)
    pred_class = _class_of(pred_classes, table.pred_ids)
    it, ip, _ = table.pair_iou()
    void_pairs = np.array([void_on_pred.get(int(p), 0) for p in table.pair_pred], dtype=np.int64)
    union = table.true_area[it] + table.pred_area[ip] - table.pair_count - void_pairs
    iou = table.pair_count / np.maximum(union, 1)
    matched = (iou > 0.5) & (true_class[it] == pred_class[ip])

    pred_void = np.array([void_on_pred.get(int(p), 0) for p in table.pred_ids], dtype=np.int64)
    pred_is_void = pred_void > 0.5 * table.pred_area
    true_hit = np.zeros(table.true_ids.size, dtype=bool)
    pred_hit = np.zeros(table.pred_ids.size, dtype=bool)
    true_hit[it[matched]] = True
    pred_hit[ip[matched]] = True

    per_class: dict[int, dict[str, float | int]] = {}
    for cls in np.union1d(true_class, pred_class).tolist():
        in_class = true_class[it[matched]] == cls
        tp = int(in_class.sum())
        iou_sum = float(iou[matched][in_class].sum())
        fn = int(((true_class == cls) & ~true_hit).sum())
        fp = int(((pred_class == cls) & ~pred_hit & ~pred_is_void).sum())
        if tp + fp + fn == 0:
            continue
        denominator = tp + 0.5 * fp + 0.5 * fn
        per_class[int(cls)] = {
            "pq": iou_sum / denominator,
            "sq": iou_sum / tp if tp else 0.0,
            "rq": tp / denominator,
            "tp": tp,
            "fp": fp,
            "fn": fn,
        }
    if per_class:
        summary = {key: float(np.mean([v[key] for v in per_class.values()])) for key in ("pq", "sq", "rq")}
    else:
        summary = {"pq": 1.0, "sq": 1.0, "rq": 1.0}
    for key in ("tp", "fp", "fn"):
        summary[key] = int(sum(v[key] for v in per_class.values()))
    summary["per_class"] = per_class
    return summary


__all__ = ["panoptic_from_table", "panoptic_quality"]
