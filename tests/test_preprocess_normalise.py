"""Normalisation against astropy.visualization, dask vs numpy, sampling and bad pixels."""
import dask.array as da
import numpy as np
import pytest
from astropy.visualization import (
    AsymmetricPercentileInterval,
    ImageNormalize,
    MinMaxInterval,
    PercentileInterval,
    ZScaleInterval,
)

from napari_galseg.preprocess import (
    NormaliseParams,
    fit_normalise,
    normalise,
    sample_grid,
    strided_sample,
)


def blobs(shape=(60, 80), seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = rng.normal(3.0, 1.0, shape)
    for y, x, f in [(20, 20, 80.0), (40, 60, 30.0), (10, 70, 300.0)]:
        img += f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    return img.astype(np.float32)


CASES = [
    ({"interval": "minmax"}, MinMaxInterval()),
    ({"interval": "percentile", "percentile": 99.0}, PercentileInterval(99.0)),
    ({"interval": "asymmetric_percentile", "lower_percentile": 5, "upper_percentile": 98},
     AsymmetricPercentileInterval(5, 98)),
    ({"interval": "zscale"}, ZScaleInterval()),
]


@pytest.mark.parametrize("kwargs, interval", CASES)
def test_matches_astropy_image_normalize(kwargs, interval):
    img = blobs()
    ours = normalise(img, NormaliseParams(**kwargs))
    norm = ImageNormalize(img, interval=interval, clip=True)
    expected = np.asarray(norm(img), dtype=np.float64)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    lo, hi = interval.get_limits(img)
    fitted = fit_normalise(img, NormaliseParams(**kwargs))
    assert fitted.vmin == pytest.approx(lo) and fitted.vmax == pytest.approx(hi)


def test_no_clip_keeps_values_outside_unit_interval():
    img = blobs()
    out = normalise(img, interval="percentile", percentile=90.0, clip=False)
    assert out.min() < 0 and out.max() > 1


@pytest.mark.parametrize("kwargs, interval", CASES)
def test_dask_chunks_equal_numpy(kwargs, interval):
    img = blobs((70, 90))
    lazy = normalise(da.from_array(img, chunks=(23, 31)), NormaliseParams(**kwargs))
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), normalise(img, NormaliseParams(**kwargs)))


def test_fitted_params_give_same_values_on_a_patch():
    img = blobs((100, 100))
    params = fit_normalise(img, interval="zscale")
    whole = normalise(img, params)
    np.testing.assert_array_equal(normalise(img[30:60, 10:50], params), whole[30:60, 10:50])


def test_nan_and_inf_are_masked_not_propagated():
    img = blobs()
    clean = fit_normalise(img, interval="minmax")
    bad = img.copy()
    bad[5, 5], bad[6, 6], bad[7, 7] = np.nan, np.inf, -np.inf
    fitted = fit_normalise(bad, interval="minmax")
    assert np.isfinite([fitted.vmin, fitted.vmax]).all()
    assert fitted.vmax == clean.vmax
    out = normalise(bad, fitted, fill=0.0)
    assert np.isfinite(out).all()
    assert out[5, 5] == 0 and out[6, 6] == 0 and out[7, 7] == 0


def test_all_nan_image_is_a_clear_error():
    with pytest.raises(ValueError, match="no finite pixels"):
        normalise(np.full((10, 10), np.nan))


def test_constant_image_gives_zeros():
    assert not normalise(np.ones((8, 8)), interval="minmax").any()


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown interval"):
        normalise(blobs(), interval="median")
    with pytest.raises(ValueError, match="2-D"):
        normalise(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="lower_percentile"):
        normalise(blobs(), interval="asymmetric_percentile", lower_percentile=90, upper_percentile=10)


def test_sample_is_bounded_reproducible_and_reads_only_sampled_part():
    _, step = sample_grid((25000, 25000), 1_000_000)
    assert step == 25 and (25000 // step) ** 2 <= 1_000_000
    big = da.random.random((3000, 3000), chunks=500)
    s1, _, sp1 = strided_sample(big, max_pixels=10_000)
    s2, _, _ = strided_sample(big, max_pixels=10_000)
    assert s1.size <= 10_000 and sp1 == 30
    np.testing.assert_array_equal(s1, s2)
    small = blobs()
    assert strided_sample(small)[0].shape == small.shape  # small images are used whole


def test_big_endian_memmap_like_input():
    img = blobs().astype(">f4")
    np.testing.assert_array_equal(normalise(img, interval="minmax"), normalise(img.astype("<f4"), interval="minmax"))
