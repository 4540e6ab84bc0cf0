"""Pixel metrics against independent references: sklearn and the direct IoU/Dice formulas."""
import dask.array as da
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from napari_galseg.metrics import confusion_counts, pixel_metrics, pixel_metrics_at_thresholds
from napari_galseg.metrics import pixel as pixel_module


def _direct(pred, true):
    p, t = pred.ravel() > 0, true.ravel() > 0
    inter, union = np.sum(p & t), np.sum(p | t)
    return inter / union, 2 * inter / (p.sum() + t.sum())


@pytest.mark.parametrize("seed", range(8))
def test_matches_sklearn_and_direct_formulas(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 40, size=2))
    true = rng.integers(0, 4, size=shape) * (rng.random(shape) < rng.random())
    pred = rng.integers(0, 7, size=shape) * (rng.random(shape) < rng.random())
    true[0, 0], pred[0, 1] = 1, 2  # both sides non-empty
    result = pixel_metrics(pred, true)
    y_true, y_pred = true.ravel() > 0, pred.ravel() > 0
    assert result["precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert result["recall"] == pytest.approx(recall_score(y_true, y_pred))
    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["f1"] == pytest.approx(f1_score(y_true, y_pred))
    iou, dice = _direct(pred, true)
    assert result["iou"] == pytest.approx(iou)
    assert result["dice"] == pytest.approx(dice)
    assert result["tp"] + result["fp"] + result["fn"] + result["tn"] == true.size


def test_precision_and_recall_are_not_swapped():
    true = np.zeros((1, 10), int)
    true[0, :8] = 1  # 8 true pixels
    pred = np.zeros((1, 10), int)
    pred[0, :2] = 1  # 2 predicted, both right
    result = pixel_metrics(pred, true)
    assert result["precision"] == 1.0
    assert result["recall"] == 0.25


def test_empty_cases_have_documented_values():
    empty = np.zeros((6, 6), np.int32)
    full = np.ones((6, 6), np.int32)
    both = pixel_metrics(empty, empty)
    assert {k: both[k] for k in ("iou", "dice", "precision", "recall", "f1", "accuracy")} == dict.fromkeys(
        ("iou", "dice", "precision", "recall", "f1", "accuracy"), 1.0
    )
    no_pred = pixel_metrics(empty, full)
    assert (no_pred["iou"], no_pred["precision"], no_pred["recall"], no_pred["f1"], no_pred["accuracy"]) == (0, 0, 0, 0, 0)
    no_true = pixel_metrics(full, empty)
    assert (no_true["iou"], no_true["precision"], no_true["recall"], no_true["f1"]) == (0, 0, 0, 0)
    for result in (both, no_pred, no_true):
        assert not any(isinstance(v, float) and np.isnan(v) for v in result.values())
    # sklearn agrees wherever its value is defined (zero_division=0 is our rule outside "both empty")
    assert no_pred["precision"] == precision_score(full.ravel() > 0, empty.ravel() > 0, zero_division=0)
    assert no_true["recall"] == recall_score(empty.ravel() > 0, full.ravel() > 0, zero_division=0)


def test_threshold_binarises_probability_maps():
    rng = np.random.default_rng(3)
    prob = rng.random((30, 30)).astype(np.float32)
    true = (rng.random((30, 30)) < 0.4).astype(np.int32)
    at = pixel_metrics_at_thresholds(prob, true, (0.3, 0.5))
    for threshold, result in at.items():
        assert result["precision"] == pytest.approx(precision_score(true.ravel() > 0, prob.ravel() >= threshold))
    assert at[0.3]["recall"] > at[0.5]["recall"]


def test_mask_and_region_restrict_the_count():
    rng = np.random.default_rng(4)
    pred = rng.integers(0, 2, (20, 30))
    true = rng.integers(0, 3, (20, 30))
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:25] = True
    masked = pixel_metrics(pred, true, mask=mask)
    cropped = pixel_metrics(pred[5:15, 10:25], true[5:15, 10:25])
    in_region = pixel_metrics(pred, true, region=(slice(5, 15), slice(10, 25)))
    assert masked == cropped == in_region
    assert masked["n_pixels"] == 150


def test_slabs_and_dask_chunks_equal_in_memory(monkeypatch):
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 3, (97, 61)).astype(np.int32)
    true = rng.integers(0, 2, (97, 61)).astype(np.uint16)
    mask = rng.random((97, 61)) > 0.2
    reference = pixel_metrics(pred, true, mask=mask)
    assert pixel_metrics(da.from_array(pred, chunks=(20, 17)), da.from_array(true, chunks=(33, 40)), mask=mask) == reference
    monkeypatch.setattr(pixel_module, "SLAB_PIXELS", 200)  # many slabs of ~3 rows
    assert pixel_metrics(pred, true, mask=mask) == reference


def test_dask_stays_lazy_until_counted():
    big = da.zeros((4096, 4096), dtype=np.int32, chunks=1024)
    counts = confusion_counts(big, big + 1)
    assert counts.fn == 4096 * 4096 and counts.tp == 0


def test_mismatched_shapes_raise_a_clear_error():
    with pytest.raises(ValueError, match="different shapes"):
        pixel_metrics(np.zeros((3, 4)), np.zeros((4, 3)))
