"""One call that scores a prediction every way we know: pixel, object, COCO and completeness curves.

Used by ``galseg evaluate``, the metrics dock and scripts, so all three report the same numbers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .coco import coco_evaluate
from .objects import as_instances, match_table, object_flux, overlap_table
from .panoptic import panoptic_from_table
from .pixel import _as_array, _crop, check_same_shape, is_dask, pixel_metrics

#: Above this many pixels the optional steps that need the whole image in memory (connected
#: components of a semantic prediction, COCO RLE masks) are skipped in ``coco="auto"`` mode.
IN_MEMORY_PIXELS = 1 << 26
#: ``coco="auto"`` also skips COCO above this many objects (true + predicted): pycocotools needs
#: about 1 ms per object even when grouped (see napari_galseg.metrics.coco)
COCO_MAX_OBJECTS = 20_000


@dataclass
class Evaluation:
    """Scores of one prediction: flat ``metrics``, completeness ``curves`` and ``notes``."""

    name: str
    metrics: dict[str, Any]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """``{"name": ..., **metrics}``: one row of the report table."""
        return {"name": self.name, **self.metrics}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.metrics, "curves": self.curves, "notes": list(self.notes)}


def carries_instances(pred: Any) -> bool:
    """True for integer label images with more than one label value (not a 0/1 mask)."""
    if pred.dtype.kind not in "iu":
        return False
    top = pred.max()
    return int(top.compute() if is_dask(top) else top) > 1


def check_label_map(array: Any, role: str = "the label map") -> None:
    """Refuse integer images that cannot be label maps: negative ids, or the texture of an
    integer science image (neighbouring pixels that differ like noise), judged as the reader
    judges a file's kind (:mod:`napari_galseg.io.label_map`). A wrong map would otherwise be
    scored without a word, with hundreds of "objects". Lazy maps are judged on a grid of windows."""
    from ..io.label_map import MAX_MIXED_BOUNDARIES, MIN_SAME_NEIGHBOUR, label_map_texture

    if array.dtype.kind not in "iu" or array.size == 0:
        return
    texture = label_map_texture(array)
    low = texture["min"] if is_dask(array) else float(np.min(array))
    if low < 0:
        raise ValueError(f"{role} holds negative values (down to {low:g}); label ids are 0 (sky) or positive. "
                         "Give a label image (e.g. from `galseg segment`), not a science image")
    same, mixed = texture["same_neighbour"], texture["mixed_boundaries"]
    if same < MIN_SAME_NEIGHBOUR or mixed > MAX_MIXED_BOUNDARIES:
        why = (f"only {same:.0%} of its labelled pixels have a neighbour with the same label"
               if same < MIN_SAME_NEIGHBOUR else f"{mixed:.0%} of its neighbouring labelled pixels differ")
        raise ValueError(
            f"{role} does not look like a label map: {why} (a label map is flat inside each object). "
            "Is it an integer science image? Give a label image (0 = sky, 1..N = objects)")


#: below this share of sky (0) pixels, or above this share for one label, a file given as labels
#: is doubted: a segmentation of a sky frame leaves most of it as sky
MIN_SKY_FRACTION = 0.02
MAX_ONE_LABEL_FRACTION = 0.9


def segmentation_doubts(array: Any) -> list[str]:
    """Why an integer image given as labels may not be a segmentation, as note fragments (none when
    it looks like one): no sky at all (a rounded noise or science map) or one label over most of
    the frame (a mask of the whole frame). Such files pass :func:`check_label_map` (they are flat)
    and would be scored without a word. Huge maps are judged on a grid of windows."""
    from ..io.label_map import _windows

    if array.dtype.kind not in "iub" or array.size == 0:
        return []
    blocks = _windows(array, 4, 128) if is_dask(array) else [np.asarray(array)]
    values, counts = np.unique(np.concatenate([np.ravel(b) for b in blocks]), return_counts=True)
    total = int(counts.sum())
    sky = int(counts[values == 0].sum()) / total
    if sky == 1.0:
        return []
    labelled = values != 0
    top = int(np.argmax(np.where(labelled, counts, -1)))
    share = int(counts[top]) / total
    if share >= MAX_ONE_LABEL_FRACTION:
        return [f"does not look like a segmentation: one label ({values[top]}) covers {share:.0%} of the frame"
                + (" and no pixel is sky (0)" if sky == 0 else "")
                + " (a constant or rounded noise map, or a mask of the whole frame?)"]
    if sky < MIN_SKY_FRACTION:
        return [f"does not look like a segmentation: only {sky:.1%} of its pixels are sky (0), with "
                f"{int(labelled.sum())} label values (a rounded noise or science map?)"]
    return []


def _scalar(value: Any) -> Any:
    return value.compute() if is_dask(value) else value


def _in_memory(array: Any) -> np.ndarray:
    return np.asarray(array.compute() if is_dask(array) else array)


def _without_no_data(image: Any, mask: Any, notes: list[str]) -> Any:
    """``mask`` less the image's NaN pixels (no data), with a note saying how many (in-memory images)."""
    if image is None or image.dtype.kind != "f":
        return mask
    if is_dask(image):
        import dask.array as da

        data = da.isfinite(image)
    else:
        data = np.isfinite(np.asarray(image))
        if data.all():
            return mask
        notes.append(f"{int(data.size - data.sum())} pixels without data (NaN in the image) are not scored")
    return data if mask is None else mask & data


def evaluate(
    pred: Any,
    true: Any,
    *,
    image: Any = None,
    iou_threshold: float = 0.5,
    threshold: float | None = None,
    mask: Any = None,
    region: Sequence[slice] | None = None,
    name: str = "prediction",
    scores: Any = None,
    coco: bool | str = "auto",
    curve_bins: int = 10,
    check_prediction: bool = True,
) -> Evaluation:
    """Pixel metrics, object metrics (and completeness vs area / flux), panoptic quality (one
    "galaxy" class), and COCO AP when ``pred`` carries instances.

    ``pred`` may be instance labels, a binary mask or a probability map (binarised at
    ``threshold``; its connected components are the objects). ``true`` is instance labels (a 0/1
    mask is split into connected components). ``image`` adds completeness vs flux, and its NaN
    pixels (no data: zero weight, masked bits — see :mod:`napari_galseg.frames`) are not scored. ``mask``
    (bool, True = evaluate) and ``region`` (slices) restrict everything. ``coco``: True, False or
    ``"auto"`` (only when the image fits in memory and has at most ``COCO_MAX_OBJECTS`` objects).
    ``check_prediction=False`` skips the "does it look like a label map?" test of ``pred`` (for
    labels a segmenter has just made, which are label maps by construction, however fragmented).
    """
    pred, true = _as_array(pred), _as_array(true)
    check_same_shape(pred, true)
    if image is not None:
        image = _as_array(image)
        check_same_shape(image, true, "image and truth")
    if mask is not None:
        mask = _as_array(mask)
        check_same_shape(mask, true, "mask and truth")
    if true.dtype.kind not in "iub":
        raise ValueError(f"the truth must be integer labels or a boolean mask, got dtype {true.dtype}")
    pred, true, image, mask = _crop((pred, true, image, mask), region)
    notes: list[str] = []
    mask = _without_no_data(image, mask, notes)
    check_label_map(true, "the truth")
    if threshold is None and check_prediction:
        check_label_map(pred, "the prediction")
    if mask is not None and not bool(_scalar(mask.any())):
        raise ValueError("no pixel is left to score: the mask (finite, positive rms; pixels with data) excludes every "
                         "pixel. Check the rms map and the image: zero, negative or NaN everywhere")
    metrics: dict[str, Any] = dict(pixel_metrics(pred, true, threshold=threshold, mask=mask))

    instances = threshold is None and carries_instances(pred)
    small = pred.size <= IN_MEMORY_PIXELS
    pred_objects = true_objects = None
    if instances:
        pred_objects = pred
    elif small or not is_dask(pred):
        pred_objects = as_instances(_in_memory(pred), threshold)
        notes.append("objects of the prediction are its connected components")
    else:
        notes.append("object metrics skipped: a huge semantic prediction needs tiled labelling first")
    if carries_instances(true):
        true_objects = true
    elif small or not is_dask(true):
        true_objects = as_instances(_in_memory(true))
        notes.append("objects of the truth are its connected components (it is a 0/1 mask)")
    else:
        notes.append("object metrics skipped: a huge 0/1 truth mask needs tiled labelling first")

    curves: dict[str, dict[str, Any]] = {}
    if pred_objects is not None and true_objects is not None:
        table = overlap_table(pred_objects, true_objects, mask=mask)
        match = match_table(table, iou_threshold)
        if image is not None:
            _, match.true_flux = object_flux(true_objects, image, table.true_ids, mask=mask)
        summary = match.summary()
        metrics.update({k: v for k, v in summary.items() if k != "iou_threshold"})
        metrics["iou_threshold"] = summary["iou_threshold"]
        panoptic = panoptic_from_table(table)
        metrics.update({k: panoptic[k] for k in ("pq", "sq", "rq")})
        curves["area"] = match.completeness_curve("area", curve_bins)
        if image is not None:
            curves["flux"] = match.completeness_curve("flux", curve_bins)

    n_objects = metrics.get("n_true", 0) + metrics.get("n_pred", 0)
    want_coco = coco is True or (coco == "auto" and small and n_objects <= COCO_MAX_OBJECTS)
    if instances and coco == "auto" and small and n_objects > COCO_MAX_OBJECTS:
        notes.append(f"COCO AP skipped: {n_objects} objects > {COCO_MAX_OBJECTS} (pass coco=True to force)")
    if instances and want_coco and pred.ndim == 2:
        p, t = _in_memory(pred_objects), _in_memory(true_objects)
        if mask is not None:
            keep = _in_memory(mask).astype(bool)
            p, t = np.where(keep, p, 0), np.where(keep, t, 0)
        metrics.update(coco_evaluate(p, t, scores=scores))
    elif instances and coco == "auto" and not small:
        notes.append(f"COCO AP skipped: more than {IN_MEMORY_PIXELS} pixels (pass coco=True to force)")
    return Evaluation(name=name, metrics=metrics, curves=curves, notes=notes)


__all__ = ["COCO_MAX_OBJECTS", "Evaluation", "IN_MEMORY_PIXELS", "carries_instances", "check_label_map", "evaluate",
           "segmentation_doubts"]
