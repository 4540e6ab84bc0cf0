"""COCO metrics (AP, AP50, AP75, AP small/medium/large, AR) through pycocotools.

Label images become COCO instances with RLE masks: the run lengths are computed straight from the
column-major pixel positions of each object (O(object pixels), not one full-size mask per object)
and compressed by ``pycocotools.mask``. Evaluation is pycocotools' own ``COCOeval`` with its
printing silenced, so the numbers are pycocotools' numbers.

Two deliberate differences from pycocotools' defaults, both because a survey field holds thousands
of galaxies in one "image":

* ``maxDets`` is ``[1, 10, max(100, most detections in one image)]``: the default cap of 100
  detections per image would silently cut AP and AR on a crowded field. ``ar`` is AR at that
  last value (pycocotools' ``AR@100`` when there are at most 100 detections). The twelve numbers
  are summarised from ``COCOeval.eval`` with ``summarize``'s formula (see :func:`_summary`),
  because ``summarize`` itself only works with the default ``maxDets``.
* values pycocotools reports as -1 (no ground truth in that size range) are returned as ``None``.

Without ``scores`` every detection scores 1.0; pycocotools then ranks them in a stable order, so AP
is deterministic but reflects only which objects were found, not a confidence ranking.
"""
from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Sequence

import numpy as np

STAT_NAMES = (
    "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip

CATEGORY = {"id": 1, "name": "galaxy", "supercategory": "object"}


@contextlib.contextmanager
def _quiet():
    """pycocotools prints progress on stdout; keep it out of our CLI output and JSON."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


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


def masks_to_annotations(
    masks: Sequence[np.ndarray] | np.ndarray, scores: Sequence[float], image_id: int = 1, category_id: int = 1
) -> list[dict[str, Any]]:
    """Detections that may overlap (e.g. Mask R-CNN output: N boolean masks and N scores)."""
    from pycocotools import mask as mask_utils

    out = []
    for index, (mask, score) in enumerate(zip(masks, scores)):
        rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({
            "image_id": int(image_id),
            "category_id": int(category_id),
            "segmentation": rle,
            "area": float(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
            "score": float(score),
            "label": index + 1,
        })
    return out


def _coco(images: list[dict], annotations: list[dict]):
    from pycocotools.coco import COCO

    with _quiet():
        coco = COCO()
        anns = []
        for number, ann in enumerate(annotations, start=1):
            ann = dict(ann)
            ann["id"] = number
            anns.append(ann)
        coco.dataset = {"images": images, "annotations": anns, "categories": [dict(CATEGORY)]}
        coco.createIndex()
    return coco


def _detections_for(iou_type: str, detections: list[dict]) -> list[dict]:
    """Detections as ``COCO.loadRes`` would store them for this ``iou_type`` (areas differ)."""
    out = []
    for det in detections:
        det = dict(det)
        if iou_type == "bbox":
            det["area"] = det["bbox"][2] * det["bbox"][3]
        out.append(det)
    return out


def _summary(evaluation) -> np.ndarray:
    """The 12 numbers of ``COCOeval.summarize`` for the evaluation's own ``maxDets``.

    pycocotools' ``summarize`` hard-codes ``maxDets=100`` for its first number (AP@[.5:.95]) and
    returns -1 for it with any other ``maxDets``; this recomputes all twelve with the same formula
    (mean of the defined entries of ``eval['precision']``/``eval['recall']``) from the last
    ``maxDets``, and equals ``summarize`` under the default ``[1, 10, 100]``.
    """
    params = evaluation.params
    precision, recall = evaluation.eval["precision"], evaluation.eval["recall"]

    def mean(ap: bool, iou: float | None = None, area: str = "all", max_index: int = -1) -> float:
        a = params.areaRngLbl.index(area)
        values = precision[..., a, max_index] if ap else recall[..., a, max_index]
        if iou is not None:
            values = values[np.flatnonzero(np.isclose(params.iouThrs, iou))]
        defined = values[values > -1]
        return float(defined.mean()) if defined.size else -1.0

    return np.array([
        mean(True), mean(True, 0.5), mean(True, 0.75),
        mean(True, area="small"), mean(True, area="medium"), mean(True, area="large"),
        mean(False, max_index=0), mean(False, max_index=1), mean(False),
        mean(False, area="small"), mean(False, area="medium"), mean(False, area="large"),
    ])  # fmt: skip


def coco_stats(
    ground_truth: list[dict],
    detections: list[dict],
    images: list[dict],
    iou_types: Sequence[str] = ("segm", "bbox"),
    max_dets: Sequence[int] | None = None,
) -> dict[str, float | None]:
    """Run ``COCOeval`` for each ``iou_type``; keys ``ap``... for segm, ``bbox_ap``... for bbox.

    Returns an empty dict when there is no ground truth and no detection (nothing to score).
    """
    from pycocotools.cocoeval import COCOeval

    if not ground_truth and not detections:
        return {}
    if max_dets is None:
        per_image: dict[int, int] = {}
        for det in detections:
            per_image[det["image_id"]] = per_image.get(det["image_id"], 0) + 1
        max_dets = [1, 10, max([100, *per_image.values()])]
    gt = _coco(images, ground_truth)
    out: dict[str, float | None] = {}
    for iou_type in iou_types:
        if iou_type not in ("segm", "bbox"):
            raise ValueError(f"iou_type {iou_type!r}: use 'segm' or 'bbox'")
        dt = _coco(images, _detections_for(iou_type, detections))
        with _quiet():
            evaluation = COCOeval(gt, dt, iouType=iou_type)
            evaluation.params.maxDets = list(max_dets)
            evaluation.evaluate()
            evaluation.accumulate()
        prefix = "" if iou_type == "segm" else "bbox_"
        for name, value in zip(STAT_NAMES, _summary(evaluation)):
            out[prefix + name] = None if value < 0 else float(value)
    return out


def coco_evaluate(
    pred: Any,
    true: Any,
    *,
    scores: Any = None,
    iou_types: Sequence[str] = ("segm", "bbox"),
    max_dets: Sequence[int] | None = None,
) -> dict[str, float | None]:
    """COCO AP/AR of predicted instance labels against true labels.

    ``pred`` and ``true`` are 2-D label images, or equal-length lists of them (each pair is one COCO
    image, e.g. patches). ``scores`` (per image when lists) maps label id → detection score.
    Keys: ``ap, ap50, ap75, ap_small, ap_medium, ap_large, ar1, ar10, ar, ar_small, ar_medium,
    ar_large`` for masks and the same with a ``bbox_`` prefix for boxes (see the module docstring).
    """
    single = not isinstance(pred, (list, tuple))
    preds = [pred] if single else list(pred)
    trues = [true] if single else list(true)
    score_list = [scores] if single else list(scores or [None] * len(preds))
    if len(preds) != len(trues) or len(score_list) != len(preds):
        raise ValueError("give as many truth images (and score tables) as predictions")
    images, ground_truth, detections = [], [], []
    for image_id, (p, t, s) in enumerate(zip(preds, trues, score_list), start=1):
        p, t = np.asarray(p), np.asarray(t)
        if p.shape != t.shape:
            raise ValueError(f"prediction and truth have different shapes {p.shape} and {t.shape}")
        images.append({"id": image_id, "height": int(t.shape[0]), "width": int(t.shape[1])})
        ground_truth += labels_to_annotations(t, image_id)
        detections += labels_to_annotations(p, image_id, scores=s, with_score=True)
    return coco_stats(ground_truth, detections, images, iou_types, max_dets)


__all__ = [
    "STAT_NAMES",
    "coco_evaluate",
    "coco_stats",
    "labels_to_annotations",
    "masks_to_annotations",
]
