"""metrics.compare: the pixel outcomes and the matched / missed / spurious markers, on planted objects."""
import numpy as np
import pytest

from napari_galseg.metrics import evaluate
from napari_galseg.metrics.compare import FALSE_NEGATIVE, FALSE_POSITIVE, SKY, TRUE_POSITIVE, compare


def _scene():
    true = np.zeros((60, 80), np.int32)
    true[5:15, 5:15] = 1    # found well
    true[30:40, 30:40] = 2  # found, too small: IoU 0.36, missed at 0.5
    true[45:55, 60:70] = 3  # not found at all
    pred = np.zeros_like(true)
    pred[5:15, 6:16] = 7    # IoU 90/110
    pred[32:38, 32:38] = 8
    pred[2:6, 70:76] = 9    # spurious
    return pred, true


def test_pixels_and_markers():
    pred, true = _scene()
    result = compare(pred, true, iou_threshold=0.5)
    assert result.pixels[0, 0] == SKY and result.pixels[10, 10] == TRUE_POSITIVE
    assert result.pixels[10, 15] == FALSE_POSITIVE and result.pixels[10, 5] == FALSE_NEGATIVE
    assert (result.pixels == FALSE_NEGATIVE).sum() == 10 + 100 - 36 + 100
    kinds = dict(zip(result.ids.tolist(), result.kinds.tolist()))
    assert kinds == {1: "matched", 2: "missed", 3: "missed", 8: "spurious", 9: "spurious"}  # 8: too small a match
    iou = dict(zip(result.ids.tolist(), result.iou.tolist()))
    assert iou[1] == pytest.approx(90 / 110) and iou[2] == pytest.approx(36 / 100) and iou[3] == 0.0
    np.testing.assert_allclose(result.centroids[result.ids.tolist().index(3)], [49.5, 64.5])
    np.testing.assert_allclose(result.centroids[-1], [3.5, 72.5])  # the spurious one, at its own centroid
    assert result.summary() == "1 matched, 2 missed, 2 spurious (IoU > 0.5)"


def test_counts_agree_with_the_object_metrics():
    pred, true = _scene()
    for threshold in (0.3, 0.5):
        result = compare(pred, true, iou_threshold=threshold)
        metrics = evaluate(pred, true, iou_threshold=threshold, coco=False).metrics
        assert result.count("matched") == metrics["n_matched"]
        assert result.count("missed") == metrics["n_true"] - metrics["n_matched"]
        assert result.count("spurious") == metrics["n_pred"] - metrics["n_matched"]
    with pytest.raises(ValueError, match="same shape"):
        compare(pred[:10], true)
