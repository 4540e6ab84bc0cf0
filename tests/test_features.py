"""Per-pixel features of the Random Forest: Haralick statistics against mahotas and scikit-image."""
import math

import dask.array as da
import mahotas
import numpy as np
import pytest
from skimage.feature import graycomatrix, graycoprops

from napari_galseg.segmenters.features import (
    HARALICK_NAMES,
    FeatureSpec,
    feature_halo,
    feature_names,
    fit_value_range,
    haralick_image,
    pixel_features,
    pixel_features_lazy,
    quantize,
)


def window_patch(q, y, x, window):
    h = window // 2
    return q[max(0, y - h) : y + h + 1, max(0, x - h) : x + h + 1]


@pytest.fixture(scope="module")
def textured_levels():
    rng = np.random.default_rng(3)
    q = rng.integers(0, 8, size=(20, 23)).astype(np.int16)
    q[4:9, 5:12] = 3  # a flat patch
    q[12:18, 2:20] = np.arange(18) % 8  # a ramp
    return q


@pytest.mark.parametrize("window", [3, 5, 7])
def test_haralick_matches_mahotas_on_every_kind_of_window(textured_levels, window):
    q = textured_levels
    feats = haralick_image(q, 8, window)
    assert feats.shape == (9, *q.shape) and feats.dtype == np.float32
    # interior, corners, edges, the flat patch and the ramp
    for y, x in [(10, 11), (0, 0), (0, 22), (19, 0), (19, 22), (6, 8), (15, 10), (2, 15)]:
        patch = window_patch(q, y, x, window).astype(np.uint8)
        reference = mahotas.features.haralick(patch, return_mean=True)[:9]
        np.testing.assert_allclose(feats[:, y, x], reference, rtol=1e-5, atol=1e-5,
                                   err_msg=f"pixel {(y, x)} window {window}")


def test_haralick_matches_skimage_graycoprops(textured_levels):
    q = textured_levels
    feats = dict(zip(HARALICK_NAMES, haralick_image(q, 8, 5)))
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    for y, x in [(10, 11), (1, 1), (6, 8), (15, 20)]:
        glcm = graycomatrix(window_patch(q, y, x, 5).astype(np.uint8), [1], angles, levels=8,
                            symmetric=True, normed=True)
        for ours, theirs in [("asm", "ASM"), ("contrast", "contrast"), ("correlation", "correlation"),
                             ("idm", "homogeneity")]:
            assert feats[ours][y, x] == pytest.approx(graycoprops(glcm, theirs).mean(), abs=1e-5), (ours, y, x)


def test_haralick_by_hand_on_a_two_level_window():
    # 3x3 window of [[0,1,0],[1,0,1],[0,1,0]]: horizontal and vertical pairs always differ,
    # diagonal pairs never do. Hand-counted symmetric GLCMs:
    q = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.int16)
    f = dict(zip(HARALICK_NAMES, haralick_image(q, 2, 3)[:, 1, 1]))
    # 0 and 90 degrees: p = [[0, .5], [.5, 0]];  45 and 135: 2 pairs (0,0) and 2 pairs (1,1)? count them
    # 45 degrees pairs (u, u+(1,1)): (0,0)->(1,1): 0,0 ; (0,1)->(1,2): 1,1 ; (1,0)->(2,1): 1,1 ; (1,1)->(2,2): 0,0
    # so p = [[.5, 0], [0, .5]] for both diagonals.
    assert f["contrast"] == pytest.approx((1.0 + 1.0 + 0.0 + 0.0) / 4)
    assert f["asm"] == pytest.approx(0.5)  # every direction: two cells of 0.5
    assert f["entropy"] == pytest.approx(1.0)  # one bit in every direction
    assert f["idm"] == pytest.approx((0.5 + 0.5 + 1 + 1) / 4)
    assert f["correlation"] == pytest.approx((-1 - 1 + 1 + 1) / 4)
    assert f["sum_average"] == pytest.approx(1.0)  # i + j = 1 always (0/90) or 0/2 evenly (diagonals)
    assert f["sum_variance"] == pytest.approx((0 + 0 + 1 + 1) / 4)
    assert f["sum_entropy"] == pytest.approx((0 + 0 + 1 + 1) / 4)
    assert f["variance"] == pytest.approx(0.25)


def test_constant_window_correlation_is_one_and_missing_pixels_are_left_out():
    q = np.full((9, 9), 2, dtype=np.int16)
    q[:, 6:] = -1  # missing (NaN) pixels
    f = dict(zip(HARALICK_NAMES, haralick_image(q, 4, 3)))
    assert f["correlation"][4, 2] == 1.0 and f["asm"][4, 2] == pytest.approx(1.0)
    assert f["entropy"][4, 2] == pytest.approx(0.0) and f["contrast"][4, 2] == 0.0
    # the window at column 5 still has valid pairs among its own columns 4-5 only: all level 2
    assert f["asm"][4, 5] == pytest.approx(1.0)
    # windows with no valid pair give 0, never NaN
    assert np.all(f["asm"][:, 7:] == 0) and np.isfinite(np.stack(list(f.values()))).all()


def test_haralick_rejects_levels_out_of_range():
    with pytest.raises(ValueError, match="levels"):
        haralick_image(np.full((5, 5), 9, np.int16), 8, 3)


def test_quantize_uses_a_fixed_range_and_marks_nan():
    x = np.array([[-1.0, 0.0, 0.49, 0.5, 0.99, 1.0, 5.0, np.nan]])
    q = quantize(x, 4, (0.0, 1.0))
    assert q.tolist() == [[0, 0, 1, 2, 3, 3, 3, -1]]


def test_feature_stack_names_and_tiled_equals_untiled():
    rng = np.random.default_rng(0)
    channels = rng.normal(size=(3, 70, 61)).astype(np.float32)
    channels[:, 10:14, 20:30] = np.nan
    spec = FeatureSpec(window=5, levels=8, texture_channel=1, value_range=(-2.0, 2.0), extra_sigmas=(1.0,))
    names = feature_names(3, spec)
    assert len(feature_names(3, FeatureSpec())) == 13  # the study's set
    feats = pixel_features(channels, spec)
    assert feats.shape == (len(names), 70, 61) and np.isfinite(feats).all()
    lazy = pixel_features_lazy(da.from_array(channels, chunks=(1, 25, 20)), spec)
    assert lazy.shape == feats.shape and lazy.numblocks[1:] == (3, 4)
    np.testing.assert_array_equal(lazy.compute(), feats)
    assert feature_halo(spec) >= spec.window // 2 + 1


def test_lbp_is_the_uniform_pattern_of_the_texture_channel():
    channels = np.zeros((1, 7, 7), np.float32)
    channels[0, 3, 3] = 1.0  # a single bright pixel: its neighbours are all darker -> pattern 0
    feats = pixel_features(channels, FeatureSpec(window=3, texture_channel=0, value_range=(0.0, 1.0)))
    lbp = feats[1]
    assert lbp[3, 3] == 0  # no neighbour >= centre
    assert lbp[0, 0] == 8  # flat sky: every neighbour >= centre
    assert lbp.max() <= 9


def test_spec_and_range_errors_are_clear():
    with pytest.raises(ValueError, match="odd"):
        FeatureSpec(window=4)
    with pytest.raises(ValueError, match="constant"):
        fit_value_range([np.ones((5, 5))])
    with pytest.raises(ValueError, match="no finite"):
        fit_value_range([np.full((5, 5), np.nan)])
    with pytest.raises(ValueError, match="texture_channel"):
        pixel_features(np.zeros((2, 5, 5), np.float32), FeatureSpec(texture_channel=2))
    lo, hi = fit_value_range([np.linspace(0, 1, 1001)])
    assert math.isclose(lo, 0.005) and math.isclose(hi, 0.995)
