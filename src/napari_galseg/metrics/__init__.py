"""Segmentation metrics: pixel, object, COCO and panoptic; chunk-wise on huge (dask) arrays.

Empty cases follow one rule everywhere: a ratio with a zero denominator is 1.0 when prediction
and truth are both empty and 0.0 otherwise, so no metric is NaN (see :mod:`.pixel`).
This package never imports napari or Qt.
"""
from __future__ import annotations

from .coco import coco_evaluate, coco_stats, labels_to_annotations, masks_to_annotations
from .evaluate import Evaluation, carries_instances, evaluate
from .objects import ObjectMatch, OverlapTable, as_instances, match_objects, object_flux, object_metrics, overlap_table
from .panoptic import panoptic_from_table, panoptic_quality
from .pixel import (
    ConfusionCounts,
    binarise,
    confusion_counts,
    metrics_from_counts,
    pixel_metrics,
    pixel_metrics_at_thresholds,
)
from .report import csv_text, format_table, report_figure, to_jsonable, write_csv, write_figure, write_json

__all__ = [
    "ConfusionCounts",
    "Evaluation",
    "ObjectMatch",
    "OverlapTable",
    "as_instances",
    "binarise",
    "carries_instances",
    "coco_evaluate",
    "coco_stats",
    "confusion_counts",
    "csv_text",
    "evaluate",
    "format_table",
    "labels_to_annotations",
    "masks_to_annotations",
    "match_objects",
    "metrics_from_counts",
    "object_flux",
    "object_metrics",
    "overlap_table",
    "panoptic_from_table",
    "panoptic_quality",
    "pixel_metrics",
    "pixel_metrics_at_thresholds",
    "report_figure",
    "to_jsonable",
    "write_csv",
    "write_figure",
    "write_json",
]
