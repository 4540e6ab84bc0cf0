"""COCO AP/AR: hand-built cases with known values, and equality with a plain pycocotools run."""
import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from napari_galseg.metrics import coco_evaluate, labels_to_annotations, masks_to_annotations

KNOWN = ("ap", "ap50", "ap75", "bbox_ap", "bbox_ap50", "bbox_ap75")


def _grid_labels(n_side=3, box=6, gap=4, shape=None):
    side = n_side * (box + gap)
    labels = np.zeros(shape or (side, side), np.int32)
    label = 0
    for r in range(n_side):
        for c in range(n_side):
            label += 1
            labels[r * (box + gap):r * (box + gap) + box, c * (box + gap):c * (box + gap) + box] = label
    return labels


def test_rle_of_each_object_decodes_to_its_mask():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (23, 17)).astype(np.int32)
    annotations = labels_to_annotations(labels)
    assert [a["label"] for a in annotations] == [1, 2, 3, 4]
    for ann in annotations:
        mask = labels == ann["label"]
        np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), mask)
        assert ann["area"] == mask.sum()
        assert ann["bbox"] == [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]


def test_perfect_prediction_scores_one():
    true = _grid_labels()
    result = coco_evaluate(true, true)
    for key in (*KNOWN, "ar", "bbox_ar"):
        assert result[key] == 1.0
    assert result["ap_medium"] is None and result["ap_large"] is None  # no such objects: not -1


def test_half_the_objects_found():
    true = _grid_labels(n_side=2)
    pred = np.where(np.isin(true, [1, 2]), true, 0)
    result = coco_evaluate(pred, true)
    # precision 1 up to recall 0.5, nothing beyond: 51 of the 101 recall thresholds
    for key in KNOWN:
        assert result[key] == pytest.approx(51 / 101)
    assert result["ar"] == pytest.approx(0.5)


def test_false_positive_ranked_first_halves_precision():
    true = _grid_labels(n_side=2)
    true = np.where(np.isin(true, [1, 2]), true, 0)
    pred = np.zeros_like(true)
    pred[true == 1] = 1
    pred[14:18, 14:18] = 2  # nothing there
    result = coco_evaluate(pred, true, scores={1: 0.8, 2: 0.9})
    # ranked: FP then TP -> precision 0.5 at recall 0.5
    for key in KNOWN:
        assert result[key] == pytest.approx(0.5 * 51 / 101)


def _reference(pred, true, scores, iou_type):
    """The textbook pycocotools run: full masks encoded one by one, COCO.loadRes, summarize()."""
    def encode(mask):
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        return rle

    gt_anns = []
    for i, label in enumerate(np.unique(true[true > 0]), start=1):
        rle = encode(true == label)
        gt_anns.append({"id": i, "image_id": 1, "category_id": 1, "segmentation": rle, "iscrowd": 0,
                        "area": float(mask_utils.area(rle)), "bbox": list(mask_utils.toBbox(rle))})
    dets = []
    for label in np.unique(pred[pred > 0]):
        rle = encode(pred == label)
        det = {"image_id": 1, "category_id": 1, "score": float(scores[label])}
        if iou_type == "segm":
            det["segmentation"] = rle
        else:
            det["bbox"] = list(mask_utils.toBbox(rle))
        dets.append(det)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": [{"id": 1, "height": true.shape[0], "width": true.shape[1]}],
                      "annotations": gt_anns, "categories": [{"id": 1, "name": "galaxy"}]}
        gt.createIndex()
        dt = gt.loadRes(dets)
        evaluation = COCOeval(gt, dt, iouType=iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


@pytest.mark.parametrize("seed", range(3))
def test_equals_plain_pycocotools(seed):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    true, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(120, 110)), 2.5) > 0.1)
    pred, n_pred = ndimage.label(ndimage.binary_dilation(np.roll(true > 0, seed, axis=0), iterations=seed % 2))
    scores = dict(zip(range(1, n_pred + 1), rng.random(n_pred)))
    ours = coco_evaluate(pred, true, scores=scores)
    names = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
             "ar1", "ar10", "ar", "ar_small", "ar_medium", "ar_large")
    for iou_type, prefix in (("segm", ""), ("bbox", "bbox_")):
        reference = _reference(pred, true, scores, iou_type)
        for name, value in zip(names, reference):
            expected = None if value < 0 else pytest.approx(value, abs=1e-12)
            assert ours[prefix + name] == expected, (iou_type, name)


def test_crowded_field_is_not_capped_at_100_detections():
    true = _grid_labels(n_side=12, box=4, gap=2)  # 144 objects
    result = coco_evaluate(true, true)
    assert result["ap"] == 1.0 and result["ar"] == 1.0


def test_overlapping_detections_from_masks():
    true = _grid_labels(n_side=2)
    masks = [true == 1, true == 1, true == 2]  # a duplicate detection of object 1
    anns = masks_to_annotations(masks, [0.9, 0.5, 0.8])
    assert len(anns) == 3 and anns[1]["area"] == 36
    from napari_galseg.metrics import coco_stats

    gt = labels_to_annotations(true)
    result = coco_stats(gt, anns, [{"id": 1, "height": true.shape[0], "width": true.shape[1]}])
    # ranked 1 (TP), 2 (TP), duplicate (FP): recall reaches 0.5 at precision 1
    assert result["ap50"] == pytest.approx(51 / 101)


def test_nothing_to_score_gives_no_numbers():
    empty = np.zeros((8, 8), np.int32)
    assert coco_evaluate(empty, empty) == {}
    with pytest.raises(ValueError, match="different shapes"):
        coco_evaluate(empty, np.zeros((8, 9), np.int32))


def test_overlapping_boxes_equals_brute_force():
    from napari_galseg.metrics.coco import overlapping_boxes

    rng = np.random.default_rng(5)

    def boxes(n):
        x0, y0 = rng.integers(0, 300, (2, n))
        w, h = rng.integers(0, 40, (2, n))
        return np.stack([x0, y0, x0 + w, y0 + h], axis=1)

    a, b = boxes(300), boxes(250)
    i, j = overlapping_boxes(a, b)
    brute = {(p, q) for p in range(len(a)) for q in range(len(b))
             if a[p, 0] <= b[q, 2] and b[q, 0] <= a[p, 2] and a[p, 1] <= b[q, 3] and b[q, 1] <= a[p, 3]}
    assert set(zip(i.tolist(), j.tolist())) == brute


def test_grouped_evaluation_equals_whole_image():
    from scipy import ndimage

    rng = np.random.default_rng(8)
    true, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(150, 150)), 1.5) > 0.2)
    pred, n_pred = ndimage.label(np.roll(true > 0, 1, axis=1))
    scores = dict(zip(range(1, n_pred + 1), rng.random(n_pred)))
    whole = coco_evaluate(pred, true, scores=scores, group=False)
    grouped = coco_evaluate(pred, true, scores=scores, group=True)
    assert whole["ap50"] > 0.05
    for key, value in whole.items():
        if key.endswith(("ar1", "ar10")):
            assert grouped[key] is None  # per-image detection limits mean nothing for groups
        else:
            assert grouped[key] == value, key
