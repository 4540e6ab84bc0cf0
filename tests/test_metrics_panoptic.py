"""Panoptic quality against a hand-computed example."""
import numpy as np
import pytest

from napari_galseg.metrics import panoptic_quality


def test_panoptic_quality_hand_computed():
    true = np.zeros((30, 40), np.int32)
    true[0:10, 0:10] = 1      # A
    true[0:10, 20:30] = 2     # B
    true[20:25, 0:10] = 3     # C, missed
    pred = np.zeros_like(true)
    pred[0:10, 1:11] = 7      # A shifted one column: IoU 90/110
    pred[0:10, 20:30] = 8     # B exactly
    pred[20:30, 30:40] = 9    # spurious
    result = panoptic_quality(pred, true)
    sq = (90 / 110 + 1.0) / 2
    rq = 2 / (2 + 0.5 * 1 + 0.5 * 1)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 1, 1)
    assert result["sq"] == pytest.approx(sq)
    assert result["rq"] == pytest.approx(rq)
    assert result["pq"] == pytest.approx(sq * rq)
    # the spurious segment lies on void (e.g. masked pixels): no longer a false positive
    void = np.zeros(true.shape, bool)
    void[20:30, 30:40] = True
    with_void = panoptic_quality(pred, true, void_mask=void)
    assert with_void["fp"] == 0 and with_void["rq"] == pytest.approx(2 / 2.5)


def test_panoptic_per_class_and_empty():
    true = np.zeros((10, 10), np.int32)
    true[:5, :5] = 1
    true[5:, 5:] = 2
    pred = true.copy()
    perfect = panoptic_quality(pred, true, pred_classes={1: 1, 2: 2}, true_classes={1: 1, 2: 2})
    assert perfect["pq"] == 1.0 and set(perfect["per_class"]) == {1, 2}
    wrong_class = panoptic_quality(pred, true, pred_classes={1: 2, 2: 1}, true_classes={1: 1, 2: 2})
    assert wrong_class["pq"] == 0.0 and wrong_class["tp"] == 0
    empty = np.zeros((4, 4), np.int32)
    assert panoptic_quality(empty, empty)["pq"] == 1.0
