"""The log-stretched rms channel, bad rms pixels, composites."""
import warnings

import dask.array as da
import numpy as np
import pytest
from astropy.visualization import ImageNormalize, LogStretch, MinMaxInterval

from napari_galseg.preprocess import (
    BadRmsWarning,
    RmsParams,
    composite,
    fit_rms_channel,
    rms_channel,
)


def rms_map(shape=(50, 70), seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (1.0 + 0.02 * xx + 0.01 * yy + 0.05 * rng.random(shape)).astype(np.float32)


def test_matches_astropy_log_stretch_minmax():
    rms = rms_map()
    ours = rms_channel(rms)
    expected = ImageNormalize(rms, interval=MinMaxInterval(), stretch=LogStretch(), clip=True)(rms)
    np.testing.assert_allclose(ours, np.asarray(expected), rtol=1e-6, atol=1e-6)
    assert ours.min() == 0.0 and ours.max() == pytest.approx(1.0)


def test_dask_equals_numpy():
    rms = rms_map((64, 64))
    params = fit_rms_channel(rms)
    np.testing.assert_array_equal(rms_channel(da.from_array(rms, chunks=20), params).compute(),
                                  rms_channel(rms, params))


def test_zero_negative_and_nan_rms_are_masked_with_a_warning():
    rms = rms_map()
    clean = fit_rms_channel(rms)
    bad = rms.copy()
    bad[0, 0], bad[0, 1], bad[0, 2] = 0.0, -1.0, np.nan
    with pytest.warns(BadRmsWarning, match="3 of"):
        params = fit_rms_channel(bad)
    assert params.black > 0 and params.white == clean.white
    with pytest.warns(BadRmsWarning):
        out = rms_channel(bad, params)
    assert np.isfinite(out).all() and not out[0, :3].any()


def test_bad_rms_error_policy():
    bad = rms_map()
    bad[3, 3] = 0.0
    with pytest.raises(ValueError, match="zero, negative or not finite"):
        rms_channel(bad, bad_rms="error")
    # fitted on a clean map, a bad pixel inside a lazily computed block is still caught
    params = fit_rms_channel(rms_map(), bad_rms="error")
    with pytest.raises(ValueError, match="zero, negative"):
        rms_channel(da.from_array(bad, chunks=10), params).compute()


def test_all_bad_rms_is_a_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadRmsWarning)
        with pytest.raises(ValueError, match="no positive finite"):
            rms_channel(np.zeros((10, 10), np.float32))


def test_rms_params_validate():
    with pytest.raises(ValueError, match="bad_rms"):
        rms_channel(rms_map(), RmsParams(bad_rms="ignore"))


def test_composite_stacks_numpy_and_dask():
    a, b = np.zeros((10, 12)), np.ones((10, 12))
    stacked = composite(a, b)
    assert stacked.shape == (2, 10, 12) and stacked.dtype == np.float32
    lazy = composite([da.from_array(a, chunks=5), b])
    assert isinstance(lazy, da.Array) and lazy.chunks[1:] == ((5, 5), (5, 5, 2))
    np.testing.assert_array_equal(lazy.compute(), stacked)
    with pytest.raises(ValueError, match="same shape"):
        composite(a, np.ones((10, 11)))
