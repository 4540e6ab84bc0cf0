"""Pyramids and zscale limits that never read the whole image."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import ZScaleInterval

from napari_galseg.io import build_pyramid, contrast_limits_zscale, open_fits, sample_pixels


class CountingArray:
    """An array-like that counts the pixels it hands out (to prove reads are sparse)."""

    def __init__(self, values: np.ndarray):
        self.values, self.shape, self.dtype, self.ndim = values, values.shape, values.dtype, values.ndim
        self.pixels_read = 0

    def __getitem__(self, key):
        out = self.values[key]
        self.pixels_read += out.size
        return out


def noisy(shape=(3000, 2500), seed=0):
    return np.random.default_rng(seed).normal(100.0, 5.0, shape).astype(np.float32)


def test_levels_halve_down_to_min_size():
    levels = build_pyramid(da.zeros((5000, 3000), chunks=1024, dtype=np.float32), min_size=512)
    assert [lvl.shape for lvl in levels] == [(5000, 3000), (2500, 1500), (1250, 750), (625, 375), (312, 187)]
    assert len(build_pyramid(da.zeros((400, 300), chunks=100), min_size=512)) == 1


def test_mean_levels_average_and_labels_stride():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    mean = build_pyramid(da.from_array(image, chunks=2), min_size=1, method="mean")
    np.testing.assert_allclose(mean[1].compute(), [[2.5, 4.5], [10.5, 12.5]])
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]], np.int32)
    levels = build_pyramid(da.from_array(labels, chunks=2), min_size=1, labels=True)
    np.testing.assert_array_equal(levels[1].compute(), [[1, 2], [3, 0]])
    assert levels[1].dtype == np.int32
    with pytest.raises(ValueError, match="invents labels"):
        build_pyramid(da.from_array(labels), labels=True, method="mean")


def test_stride_levels_over_array_like_read_only_their_pixels():
    values = noisy((4096, 4096))
    source = CountingArray(values)
    levels = build_pyramid(source, min_size=512, method="stride", chunks=(1024, 1024))
    assert source.pixels_read == 0  # building is lazy
    coarsest = levels[-1].compute()
    np.testing.assert_array_equal(coarsest, values[::8, ::8])
    assert source.pixels_read == coarsest.size  # 1/64 of the image, not all of it


def test_zscale_from_sparse_sample_matches_full_zscale():
    values = noisy()
    source = CountingArray(values)
    lo, hi = contrast_limits_zscale(source, n_samples=50_000)
    assert source.pixels_read < values.size / 50
    # zscale fits 1000 pixels, so its limits scatter; ours must fall inside that scatter
    rng = np.random.default_rng(1)
    reference = np.array([ZScaleInterval().get_limits(rng.choice(values.ravel(), 1000)) for _ in range(30)])
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    assert abs(lo - mean[0]) < 3 * std[0] and abs(hi - mean[1]) < 3 * std[1]
    assert 75 < lo < 92 and 108 < hi < 125  # around 100 -/+ 3 sigma, as zscale should be
    assert contrast_limits_zscale(source, n_samples=50_000) == (lo, hi)  # reproducible


def test_sample_of_dask_array_touches_few_chunks():
    values = noisy((4000, 4000))
    computed_blocks = []

    def spy(block, block_info=None):
        computed_blocks.append(block_info[0]["chunk-location"])
        return block

    lazy = da.from_array(values, chunks=500).map_blocks(spy, dtype=values.dtype)
    sample = sample_pixels(lazy, n_samples=20_000, max_dask_blocks=4)
    assert sample.size >= 20_000 and len(set(computed_blocks)) <= 4


def test_constant_and_nan_images():
    assert contrast_limits_zscale(np.full((50, 50), 3.0)) == (3.0, 4.0)
    with pytest.raises(ValueError, match="no finite pixels"):
        contrast_limits_zscale(np.full((50, 50), np.nan))


def test_fits_image_pyramid_reuses_base_and_strides_labels(tmp_path):
    labels = (np.arange(600 * 600).reshape(600, 600) // 7).astype(np.int32)
    path = tmp_path / "true.fits"
    fits.PrimaryHDU(labels).writeto(path)
    opened = open_fits(path)
    levels = opened.pyramid(min_size=100)
    assert levels[0] is opened.data and len(levels) == 4
    np.testing.assert_array_equal(levels[2].compute(), labels[::4, ::4])
