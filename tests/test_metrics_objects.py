"""Object matching: known cases, a brute-force reference, chunked equals in-memory, curves."""
import itertools

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from napari_galseg.metrics import as_instances, match_objects, object_metrics, overlap_table


def _random_labels(seed, shape=(60, 70), level=0.2):
    rng = np.random.default_rng(seed)
    labels, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=shape), 2) > level)
    return labels.astype(np.int32)


def _brute_force_iou(pred, true):
    """Dense IoU matrix, object by object (the obvious, slow way)."""
    t_ids = [i for i in np.unique(true) if i > 0]
    p_ids = [i for i in np.unique(pred) if i > 0]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for a, t in enumerate(t_ids):
        for b, p in enumerate(p_ids):
            inter = np.sum((true == t) & (pred == p))
            iou[a, b] = inter / np.sum((true == t) | (pred == p))
    return t_ids, p_ids, iou


def _max_matching_size(iou, threshold):
    """Largest one-to-one matching among pairs with IoU >= threshold (exhaustive; tiny cases)."""
    edges = [(a, b) for a, b in zip(*np.nonzero(iou >= threshold))]
    best = 0
    for k in range(len(edges), 0, -1):
        for subset in itertools.combinations(edges, k):
            rows, cols = zip(*subset)
            if len(set(rows)) == k and len(set(cols)) == k:
                return k
    return best


def test_known_case_counts_split_and_merge():
    true = np.zeros((20, 40), np.int32)
    true[2:8, 2:8] = 1       # found exactly
    true[2:8, 12:24] = 2     # split into three predictions
    true[12:18, 2:8] = 3     # blended with 4 into one prediction
    true[12:18, 9:15] = 4
    true[12:18, 30:36] = 5   # missed
    pred = np.zeros_like(true)
    pred[2:8, 2:8] = 10
    pred[2:8, 12:16] = 11
    pred[2:8, 16:20] = 12
    pred[2:8, 20:24] = 15
    pred[12:18, 2:15] = 13
    pred[0:2, 35:40] = 14    # spurious
    result = object_metrics(pred, true)
    assert result["n_true"] == 5 and result["n_pred"] == 6
    assert result["n_matched"] == 1
    assert result["completeness"] == pytest.approx(1 / 5)
    assert result["purity"] == pytest.approx(1 / 6)
    assert result["object_f1"] == pytest.approx(2 / 11)
    assert result["mean_matched_iou"] == 1.0
    assert result["n_split"] == 1
    assert result["n_merged"] == 1 and result["n_blended_true"] == 2
    # at a low threshold one third of the split (IoU 1/3) and the blend (IoU 36/78) each match once
    low = object_metrics(pred, true, iou_threshold=0.3)
    assert low["n_matched"] == 3


@pytest.mark.parametrize("seed", range(4))
def test_overlap_table_equals_brute_force(seed):
    true = _random_labels(seed)
    pred = _random_labels(seed + 100)
    table = overlap_table(pred, true)
    t_ids, p_ids, iou = _brute_force_iou(pred, true)
    assert table.true_ids.tolist() == t_ids and table.pred_ids.tolist() == p_ids
    it, ip, pair_iou = table.pair_iou()
    dense = np.zeros_like(iou)
    dense[it, ip] = pair_iou
    np.testing.assert_allclose(dense, iou)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5])
def test_matching_is_maximal_and_one_to_one(threshold):
    # few overlapping objects, so the exhaustive reference is cheap, with many conflicts at low IoU
    true = np.zeros((30, 30), np.int32)
    pred = np.zeros_like(true)
    rng = np.random.default_rng(7)
    for label in range(1, 6):
        y, x = rng.integers(0, 24, 2)
        true[y:y + 6, x:x + 6] = label
    for label in range(1, 7):
        y, x = rng.integers(0, 24, 2)
        pred[y:y + 5, x:x + 7] = label
    match = match_objects(pred, true, threshold)
    _, _, iou = _brute_force_iou(pred, true)
    assert match.n_matched == _max_matching_size(iou, threshold)
    assert len(set(match.matched_true.tolist())) == match.n_matched
    assert len(set(match.matched_pred.tolist())) == match.n_matched
    assert (match.matched_iou >= threshold).all()


def test_tie_at_exactly_half_is_resolved_one_to_one():
    true = np.zeros((4, 8), np.int32)
    true[:, :4] = 1
    pred = np.zeros_like(true)
    pred[:, :2] = 1
    pred[:, 2:4] = 2  # two halves, each IoU exactly 0.5
    result = object_metrics(pred, true, 0.5)
    assert result["n_matched"] == 1 and result["n_split"] == 1


def test_empty_images():
    empty = np.zeros((10, 10), np.int32)
    some = empty.copy()
    some[2:5, 2:5] = 3
    both = object_metrics(empty, empty)
    assert both["completeness"] == both["purity"] == both["object_f1"] == 1.0
    assert both["n_true"] == both["n_pred"] == 0
    missed = object_metrics(empty, some)
    assert missed["completeness"] == 0.0 and missed["purity"] == 0.0 and missed["n_true"] == 1
    spurious = object_metrics(some, empty)
    assert spurious["purity"] == 0.0 and spurious["n_pred"] == 1


def test_dask_chunks_equal_in_memory_with_objects_across_chunks():
    true = _random_labels(11, (90, 110), 0.0)  # big objects crossing chunk borders
    pred = ndimage.shift(true, (1, 2), order=0)
    image = np.random.default_rng(0).random(true.shape)
    mask = np.ones(true.shape, bool)
    mask[:, :7] = False
    reference = match_objects(pred, true, image=image, mask=mask)
    chunked = match_objects(
        da.from_array(pred, chunks=(25, 30)), da.from_array(true, chunks=(40, 33)),
        image=da.from_array(image, chunks=17), mask=da.from_array(mask, chunks=50),
    )
    assert chunked.summary() == reference.summary()
    np.testing.assert_allclose(chunked.true_flux, reference.true_flux)
    np.testing.assert_array_equal(chunked.true_area, reference.true_area)


def test_completeness_curves_by_area_and_flux():
    true = np.zeros((40, 60), np.int32)
    true[1:3, 1:3] = 1        # area 4, missed
    true[5:9, 5:9] = 2        # area 16, found
    true[20:36, 20:36] = 3    # area 256, found
    pred = np.where(true == 1, 0, true)
    image = np.full(true.shape, 2.0)
    match = match_objects(pred, true, image=image)
    np.testing.assert_allclose(match.true_flux, [8.0, 32.0, 512.0])
    curve = match.completeness_curve("area", bins=[1, 10, 100, 1000])
    assert curve["n_true"] == [1, 1, 1] and curve["completeness"] == [0.0, 1.0, 1.0]
    auto = match.completeness_curve("flux", bins=4)
    assert sum(auto["n_true"]) == 3 and auto["n_excluded"] == 0
    assert auto["completeness"][0] == 0.0 and auto["completeness"][-1] == 1.0
    assert None in auto["completeness"]  # an empty middle bin is None, not NaN


def test_semantic_predictions_need_labels_first():
    prob = np.random.default_rng(0).random((8, 8))
    with pytest.raises(ValueError, match="as_instances"):
        object_metrics(prob, np.ones((8, 8), np.int32))
    labels = as_instances(prob, threshold=0.5)
    assert labels.dtype == np.int32 and labels.max() >= 1


def test_ten_thousand_objects_match_exactly():
    # a correctness check at scale (timing lives in benchmarks/bench_metrics.py)
    side = 1200
    true = np.zeros((side, side), np.int32)
    ids = np.arange(1, 100 * 100 + 1, dtype=np.int32).reshape(100, 100)
    true[:1000, :1000] = np.kron(ids, np.ones((10, 10), np.int32))
    true[np.arange(side) % 10 == 0, :] = 0
    pred = true.copy()
    pred[pred % 7 == 0] = 0
    result = object_metrics(pred, true)
    n_true = 100 * 100
    assert result["n_true"] == n_true
    assert result["n_matched"] == n_true - n_true // 7
