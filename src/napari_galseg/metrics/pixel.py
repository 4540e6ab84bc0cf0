"""Pixel (semantic) metrics: a prediction and a truth binarised, compared pixel by pixel.

Everything is derived from the four confusion counts, which add up over pieces of the image; so
numpy arrays are counted in slabs of rows (bounded memory, works on ``np.memmap``) and dask arrays
chunk by chunk (one fused counting task per chunk, then a sum; a 25000² frame is never in memory).

Conventions (the same everywhere in :mod:`napari_galseg.metrics`):

* positive = ``label > 0`` for label images and booleans, ``value >= threshold`` for a
  probability map when a ``threshold`` is given;
* precision = TP / (TP + FP) and recall = TP / (TP + FN) (the study passed a confusion matrix's
  arguments backwards and swapped the two; these match ``sklearn.metrics``);
* a ratio whose denominator is zero is **1.0 when prediction and truth are both empty** (there was
  nothing to find and nothing was claimed) and **0.0 otherwise** (e.g. precision of an empty
  prediction against a non-empty truth). No metric is ever NaN.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..arrays import is_dask

#: Pixels handled per slab when counting numpy arrays (bounds the temporaries to a few MB).
SLAB_PIXELS = 1 << 22

PIXEL_METRIC_KEYS = ("iou", "dice", "precision", "recall", "accuracy", "f1")


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel confusion counts; they add up over tiles (``a + b``)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def n_pixels(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def metrics(self) -> dict[str, Any]:
        """IoU, Dice, precision, recall, accuracy, F1 and the counts, as plain Python numbers."""
        return metrics_from_counts(self.tp, self.fp, self.fn, self.tn)


def safe_ratio(numerator: float, denominator: float, both_empty: bool) -> float:
    """``numerator / denominator``; 1.0 if the denominator is 0 and both sides are empty, else 0.0."""
    if denominator:
        return float(numerator) / float(denominator)
    return 1.0 if both_empty else 0.0


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, Any]:
    """The pixel metrics from confusion counts, with the documented empty-case values."""
    tp, fp, fn, tn = int(tp), int(fp), int(fn), int(tn)
    both_empty = tp + fp + fn == 0
    precision = safe_ratio(tp, tp + fp, both_empty)
    recall = safe_ratio(tp, tp + fn, both_empty)
    return {
        "iou": safe_ratio(tp, tp + fp + fn, both_empty),
        "dice": safe_ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "precision": precision,
        "recall": recall,
        "accuracy": safe_ratio(tp + tn, tp + fp + fn + tn, True),
        # F1 = harmonic mean of precision and recall = Dice for a binary problem.
        "f1": safe_ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n_pixels": tp + fp + fn + tn,
    }


def _as_array(array: Any) -> Any:
    """numpy/dask arrays pass through; lists, napari layers' data etc. become numpy."""
    if is_dask(array) or isinstance(array, np.ndarray):
        return array
    return np.asarray(array)


def binarise(array: Any, threshold: float | None = None) -> Any:
    """Foreground mask: ``array > 0`` (labels, booleans) or ``array >= threshold`` (probabilities).

    Works on numpy and dask arrays alike (dask stays lazy).
    """
    array = _as_array(array)
    if array.dtype == bool:
        return array if threshold is None else array >= threshold
    if threshold is None:
        return array > 0
    return array >= threshold


def check_same_shape(pred: Any, true: Any, what: str = "prediction and truth") -> None:
    """Raise a one-line ValueError when two images do not line up pixel for pixel."""
    if tuple(pred.shape) != tuple(true.shape):
        raise ValueError(
            f"{what} have different shapes {tuple(pred.shape)} and {tuple(true.shape)}; "
            "evaluate images of the same field on the same pixel grid"
        )


def _crop(arrays: Sequence[Any], region: Sequence[slice] | None) -> list[Any]:
    if region is None:
        return list(arrays)
    region = tuple(region)
    return [None if a is None else a[region] for a in arrays]


def _slabs(shape: tuple[int, ...], slab_pixels: int = SLAB_PIXELS):
    """Index tuples cutting an array into slabs along its first axis."""
    if len(shape) == 0:
        yield ()
        return
    row = int(np.prod(shape[1:], dtype=np.int64)) or 1
    step = max(1, slab_pixels // row)
    for start in range(0, shape[0], step):
        yield (slice(start, min(start + step, shape[0])),)


def _counts_numpy(pred: np.ndarray, true: np.ndarray, mask: np.ndarray | None, threshold: float | None) -> ConfusionCounts:
    tp = n_pred = n_true = n = 0
    for index in _slabs(pred.shape):
        p = binarise(pred[index], threshold)
        t = binarise(true[index])
        if mask is not None:
            m = np.asarray(mask[index], dtype=bool)
            p = p & m
            t = t & m
            n += int(np.count_nonzero(m))
        else:
            n += p.size
        tp += int(np.count_nonzero(p & t))
        n_pred += int(np.count_nonzero(p))
        n_true += int(np.count_nonzero(t))
    return ConfusionCounts(tp, n_pred - tp, n_true - tp, n - n_pred - n_true + tp)


def _counts_dask(pred: Any, true: Any, mask: Any, threshold: float | None) -> ConfusionCounts:
    """One fused task per chunk (the numpy slab counter), then a sum of 4-int results."""
    import dask
    import dask.array as da

    true = da.asarray(true)
    blocks_t = true.to_delayed().ravel()
    blocks_p = da.asarray(pred).rechunk(true.chunks).to_delayed().ravel()
    if mask is None:
        blocks_m = [None] * len(blocks_t)
    else:
        blocks_m = da.asarray(mask).rechunk(true.chunks).to_delayed().ravel()
    count = dask.delayed(_counts_numpy, pure=True)
    parts = dask.compute(*[count(p, t, m, threshold) for p, t, m in zip(blocks_p, blocks_t, blocks_m)])
    total = ConfusionCounts()
    for part in parts:
        total = total + part
    return total


def confusion_counts(
    pred: Any,
    true: Any,
    *,
    threshold: float | None = None,
    mask: Any = None,
    region: Sequence[slice] | None = None,
) -> ConfusionCounts:
    """Count TP/FP/FN/TN of ``pred`` against ``true``.

    Parameters
    ----------
    pred, true
        Same-shape numpy or dask arrays (labels, booleans or, for ``pred``, probabilities).
    threshold
        Binarise ``pred`` as ``pred >= threshold`` (probability maps); default ``pred > 0``.
        The truth is always ``true > 0``.
    mask
        Boolean array: only pixels where it is True count (e.g. ``np.isfinite(rms)``).
    region
        Tuple of slices: count only this part (e.g. the current field of view).
    """
    pred, true = _as_array(pred), _as_array(true)
    check_same_shape(pred, true)
    if mask is not None:
        mask = _as_array(mask)
        check_same_shape(mask, true, "mask and truth")
    pred, true, mask = _crop((pred, true, mask), region)
    if is_dask(pred) or is_dask(true) or is_dask(mask):
        return _counts_dask(pred, true, mask, threshold)
    return _counts_numpy(pred, true, mask, threshold)


def pixel_metrics(
    pred: Any,
    true: Any,
    *,
    threshold: float | None = None,
    mask: Any = None,
    region: Sequence[slice] | None = None,
) -> dict[str, Any]:
    """IoU, Dice, precision, recall, accuracy, F1 and the confusion counts (tp, fp, fn, tn, n_pixels).

    See :func:`confusion_counts` for the arguments and the module docstring for the empty cases.
    """
    return confusion_counts(pred, true, threshold=threshold, mask=mask, region=region).metrics()


def pixel_metrics_at_thresholds(
    probability: Any, true: Any, thresholds: Sequence[float] = (0.3, 0.5), **kwargs: Any
) -> dict[float, dict[str, Any]]:
    """:func:`pixel_metrics` of a probability map at several thresholds (the study used 0.3 and 0.5)."""
    return {float(t): pixel_metrics(probability, true, threshold=t, **kwargs) for t in thresholds}


__all__ = [
    "ConfusionCounts",
    "PIXEL_METRIC_KEYS",
    "binarise",
    "check_same_shape",
    "confusion_counts",
    "metrics_from_counts",
    "pixel_metrics",
    "pixel_metrics_at_thresholds",
    "safe_ratio",
]

