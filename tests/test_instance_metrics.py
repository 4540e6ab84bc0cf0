"""COCO AP of scored instances: a perfect prediction scores 1.0, caps above 100, galaxy size bins."""
import numpy as np
import pytest

from napari_galseg.metrics.coco import COCO_AREA_BINS, GALAXY_AREA_BINS, coco_evaluate
from napari_galseg.metrics.panoptic import panoptic_quality
from napari_galseg.synth import make_field


@pytest.fixture(scope="module")
def truth():
    t = make_field(512, seed=7).truth
    assert t.max() > 150  # more objects than COCO's 100 detections per image
    return t


def test_perfect_prediction_scores_one_with_more_than_100_objects(truth):
    scores = np.linspace(1, 0.5, truth.max() + 1)
    stats = coco_evaluate(truth, truth, scores=scores, area_bins=GALAXY_AREA_BINS)
    for key in ("ap", "ap50", "ap75", "ar", "bbox_ap", "bbox_ap50"):
        assert stats[key] == pytest.approx(1.0), key
    assert panoptic_quality(truth, truth)["pq"] == pytest.approx(1.0)


def test_galaxy_size_bins_are_all_populated_where_coco_bins_are_not(truth):
    areas = np.bincount(truth.ravel())[1:]
    coco_small = np.mean(areas < COCO_AREA_BINS[0])
    assert coco_small > 0.9  # COCO's "small" holds nearly every galaxy
    stats = coco_evaluate(truth, truth, area_bins=GALAXY_AREA_BINS, iou_types=("segm",))
    assert all(stats[k] is not None for k in ("ap_small", "ap_medium", "ap_large"))


def test_half_the_objects_missing_lowers_ap_and_recall(truth):
    pred = np.where(truth % 2 == 0, truth, 0)
    stats = coco_evaluate(pred, truth, area_bins=GALAXY_AREA_BINS, iou_types=("segm",))
    assert 0.3 < stats["ar"] < 0.7 and stats["ap"] < 0.7
