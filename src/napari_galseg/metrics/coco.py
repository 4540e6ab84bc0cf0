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

Without ``scores``, :func:`coco_evaluate` ranks detections by area (largest first), a stand-in for
a confidence that keeps AP deterministic.

pycocotools compares every detection with every ground-truth object of an image in Python, which
takes about a minute for 1600 objects in one image. Crowded images are therefore evaluated as
independent groups of overlapping objects (:func:`coco_stats`, ``group="auto"``), which gives the
same AP and AR (for distinct scores) in a fraction of the time.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..io.coco_annotations import labels_to_annotations

STAT_NAMES = (
    "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip

CATEGORY = {"id": 1, "name": "galaxy", "supercategory": "object"}

#: Upper areas (px) of the "small" and "medium" bins. COCO's (32², 96²) put every galaxy of a
#: synthetic deep field in "small" (median area 14 px, 99th percentile ~190 px); these split them
#: into three populated bins: compact (< 4², about half: PSF-sized), resolved (4²..12²) and
#: extended (> 12², a few per cent).
COCO_AREA_BINS = (32 ** 2, 96 ** 2)
GALAXY_AREA_BINS = (4 ** 2, 12 ** 2)


@contextlib.contextmanager
def _quiet():
    """pycocotools prints progress on stdout; keep it out of our CLI output and JSON."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


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


#: Above this many objects in one image, ``coco_stats(group="auto")`` evaluates it in groups.
GROUP_ABOVE = 200


def _boxes(annotations: list[dict]) -> np.ndarray:
    """Inclusive pixel boxes (x0, y0, x1, y1) of COCO ``[x, y, w, h]`` boxes."""
    if not annotations:
        return np.zeros((0, 4), dtype=np.int64)
    xywh = np.array([a["bbox"] for a in annotations], dtype=float)
    x0, y0 = np.floor(xywh[:, 0]), np.floor(xywh[:, 1])
    x1 = np.maximum(np.ceil(xywh[:, 0] + xywh[:, 2]) - 1, x0)
    y1 = np.maximum(np.ceil(xywh[:, 1] + xywh[:, 3]) - 1, y0)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def overlapping_boxes(a: np.ndarray, b: np.ndarray, cell: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of boxes ``a[i]`` and ``b[j]`` (inclusive x0, y0, x1, y1) sharing a pixel.

    Boxes are hashed into square cells; only boxes sharing a cell are compared, so the cost
    grows with the number of boxes, not its square.
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if cell is None:
        sides = np.concatenate([a[:, 2:] - a[:, :2], b[:, 2:] - b[:, :2]]).max(axis=1) + 1
        cell = int(max(16, 2 * np.median(sides)))
    width = int(max(a[:, 2].max(), b[:, 2].max()) // cell + 2)

    def cells(boxes):
        cx0, cy0, cx1, cy1 = (boxes // cell).T
        nx, count = cx1 - cx0 + 1, (cx1 - cx0 + 1) * (cy1 - cy0 + 1)
        owner = np.repeat(np.arange(len(boxes)), count)
        k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        return (cy0[owner] + k // nx[owner]) * width + cx0[owner] + k % nx[owner], owner

    key_a, owner_a = cells(a)
    key_b, owner_b = cells(b)
    order = np.argsort(key_b, kind="stable")
    key_b, owner_b = key_b[order], owner_b[order]
    left = np.searchsorted(key_b, key_a, "left")
    count = np.searchsorted(key_b, key_a, "right") - left
    i = np.repeat(owner_a, count)
    offsets = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    j = owner_b[np.repeat(left, count) + offsets]
    touch = (a[i, 0] <= b[j, 2]) & (b[j, 0] <= a[i, 2]) & (a[i, 1] <= b[j, 3]) & (b[j, 1] <= a[i, 3])
    pairs = np.unique(i[touch] * len(b) + j[touch])
    return pairs // len(b), pairs % len(b)


def _grouped(ground_truth: list[dict], detections: list[dict], images: list[dict], max_objects: int = 64):
    """Split crowded images into COCO images of independent groups of objects.

    Objects whose boxes overlap (directly or through a chain) stay together, and groups are packed
    up to ``max_objects`` per image. A detection can only match a ground-truth object it overlaps,
    so with distinct scores every match, and therefore AP and AR at the largest ``maxDets``, is
    the same as for the whole image, while pycocotools' per-image work (quadratic in the number
    of objects) stays small.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    new_images, new_gt, new_dt = [], [], []
    for image in images:
        gt = [a for a in ground_truth if a["image_id"] == image["id"]]
        dt = [a for a in detections if a["image_id"] == image["id"]]
        i, j = overlapping_boxes(_boxes(gt), _boxes(dt))
        n = len(gt) + len(dt)
        graph = coo_matrix((np.ones(i.size), (i, j + len(gt))), shape=(n, n))
        n_groups, group = connected_components(graph, directed=False)
        sizes = np.bincount(group, minlength=n_groups)
        bin_of_group = np.empty(n_groups, dtype=np.int64)
        current, filled = 0, 0
        for g in range(n_groups):  # groups are numbered in first-object order: deterministic
            if filled and filled + sizes[g] > max_objects:
                current, filled = current + 1, 0
            bin_of_group[g] = current
            filled += sizes[g]
        first_id = len(new_images) + 1
        new_images += [{**image, "id": first_id + k} for k in range(current + 1)]
        image_of = first_id + bin_of_group[group]
        new_gt += [{**a, "image_id": int(k)} for a, k in zip(gt, image_of[: len(gt)])]
        new_dt += [{**a, "image_id": int(k)} for a, k in zip(dt, image_of[len(gt):])]
    return new_gt, new_dt, new_images


def coco_stats(
    ground_truth: list[dict],
    detections: list[dict],
    images: list[dict],
    iou_types: Sequence[str] = ("segm", "bbox"),
    max_dets: Sequence[int] | None = None,
    group: bool | str = "auto",
    area_bins: Sequence[float] | None = None,
) -> dict[str, float | None]:
    """Run ``COCOeval`` for each ``iou_type``; keys ``ap``... for segm, ``bbox_ap``... for bbox.

    ``area_bins = (small_max, medium_max)`` in px sets the size bins of ``ap_small``... (default
    COCO's; :data:`GALAXY_AREA_BINS` for galaxy fields).

    ``group`` (True, False or "auto": above ``GROUP_ABOVE`` objects in an image) evaluates a
    crowded image as independent groups of overlapping objects (see :func:`_grouped`): the same
    AP/AR for distinct scores, in seconds instead of minutes; ``ar1``/``ar10`` (per-image detection
    limits) have no meaning then and are None. Returns an empty dict when there is no ground
    truth and no detection (nothing to score).
    """
    from pycocotools.cocoeval import COCOeval

    if not ground_truth and not detections:
        return {}
    per_image_objects: dict[int, int] = {}
    for annotation in (*ground_truth, *detections):
        per_image_objects[annotation["image_id"]] = per_image_objects.get(annotation["image_id"], 0) + 1
    grouped = group is True or (group == "auto" and max(per_image_objects.values()) > GROUP_ABOVE)
    if grouped:
        ground_truth, detections, images = _grouped(ground_truth, detections, images)
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
            if area_bins is not None:
                small, medium = (float(v) for v in area_bins)
                evaluation.params.areaRng = [[0, 1e10], [0, small], [small, medium], [medium, 1e10]]
            evaluation.evaluate()
            evaluation.accumulate()
        prefix = "" if iou_type == "segm" else "bbox_"
        for name, value in zip(STAT_NAMES, _summary(evaluation)):
            out[prefix + name] = None if value < 0 or (grouped and name in ("ar1", "ar10")) else float(value)
    return out


def coco_evaluate(
    pred: Any,
    true: Any,
    *,
    scores: Any = None,
    iou_types: Sequence[str] = ("segm", "bbox"),
    max_dets: Sequence[int] | None = None,
    group: bool | str = "auto",
    area_bins: Sequence[float] | None = None,
) -> dict[str, float | None]:
    """COCO AP/AR of predicted instance labels against true labels.

    ``pred`` and ``true`` are 2-D label images, or equal-length lists of them (each pair is one COCO
    image, e.g. patches). ``scores`` (per image when lists) maps label id → detection score;
    without scores, detections are ranked by area (largest first, then by label), a stand-in for
    confidence that makes the ranking, and so AP, deterministic. ``group``: see :func:`coco_stats`.
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
        found = labels_to_annotations(p, image_id, scores=s, with_score=True)
        if s is None and found:
            rank = np.lexsort(([a["label"] for a in found], [-a["area"] for a in found]))
            for position, index in enumerate(rank):
                found[index]["score"] = 1.0 - position / len(found)
        detections += found
    return coco_stats(ground_truth, detections, images, iou_types, max_dets, group, area_bins)


__all__ = [
    "COCO_AREA_BINS",
    "GALAXY_AREA_BINS",
    "GROUP_ABOVE",
    "STAT_NAMES",
    "coco_evaluate",
    "coco_stats",
    "labels_to_annotations",
    "masks_to_annotations",
    "overlapping_boxes",
]
