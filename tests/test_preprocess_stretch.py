"""Stretches against astropy.visualization, histogram equalisation, background flattening, dask."""
import dask.array as da
import numpy as np
import pytest
from astropy.visualization import (
    AsinhStretch,
    AsymmetricPercentileInterval,
    HistEqStretch,
    ImageNormalize,
    LinearStretch,
    LogStretch,
    MinMaxInterval,
    PowerStretch,
    SinhStretch,
    SqrtStretch,
    SquaredStretch,
)

from napari_galseg.preprocess import (
    StretchParams,
    estimate_background,
    fit_stretch,
    stretch,
)


def blobs(shape=(60, 80), seed=2, sky=0.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = rng.normal(3.0, 1.0, shape) + sky
    for y, x, f in [(20, 20, 80.0), (40, 60, 30.0), (10, 70, 300.0)]:
        img += f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0)
    return img.astype(np.float32)


STRETCH_CASES = [
    ("linear", None, LinearStretch()),
    ("sqrt", None, SqrtStretch()),
    ("squared", None, SquaredStretch()),
    ("log", None, LogStretch()),
    ("log", 50.0, LogStretch(50.0)),
    ("asinh", None, AsinhStretch()),
    ("asinh", 0.02, AsinhStretch(0.02)),
    ("sinh", None, SinhStretch()),
    ("power", 0.5, PowerStretch(0.5)),
]


@pytest.mark.parametrize("name, a, reference", STRETCH_CASES)
def test_matches_astropy(name, a, reference):
    img = blobs()
    params = StretchParams(stretch=name, a=a, interval="asymmetric_percentile", lower_percentile=10,
                           upper_percentile=99.5)
    ours = stretch(img, params)
    norm = ImageNormalize(img, interval=AsymmetricPercentileInterval(10, 99.5), stretch=reference, clip=True)
    np.testing.assert_allclose(ours, np.asarray(norm(img)), rtol=1e-6, atol=1e-6)
    assert ours.dtype == np.float32 and ours.min() >= 0 and ours.max() <= 1


def test_histogram_equalisation_matches_astropy_on_small_image():
    img = blobs((40, 50))
    ours = stretch(img, stretch="histeq", interval="minmax")
    unit = MinMaxInterval()(img)
    expected = HistEqStretch(unit)(unit)
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    # equalised: the output is roughly uniform
    assert abs(np.median(ours) - 0.5) < 0.02


def test_histogram_levels_are_bounded_for_big_images():
    img = blobs((200, 200))
    params = fit_stretch(img, stretch="histeq", interval="minmax")
    assert len(params.histeq_levels) == 4096
    out = stretch(img, params)
    assert abs(np.median(out) - 0.5) < 0.02


def test_black_and_white_levels_by_hand():
    img = blobs()
    out = stretch(img, stretch="linear", black=3.0, white=13.0)
    expected = np.clip((img.astype(np.float64) - 3.0) / 10.0, 0, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["asinh", "histeq", "log"])
def test_dask_equals_numpy_and_patches_equal_whole(name):
    img = blobs((90, 70))
    params = fit_stretch(img, stretch=name)
    whole = stretch(img, params)
    lazy = stretch(da.from_array(img, chunks=(25, 33)), params)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), whole)
    np.testing.assert_array_equal(stretch(img[10:50, 20:60], params), whole[10:50, 20:60])


def test_background_flattening_removes_a_gradient():
    shape = (192, 192)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gradient = (0.2 * xx + 0.1 * yy).astype(np.float32)
    img = blobs(shape) + gradient
    bkg = estimate_background(img, box_size=24)
    residual = bkg.region(0, 192, 0, 192) - gradient - 3.0
    assert abs(float(np.median(residual))) < 0.3
    assert np.abs(residual[24:-24, 24:-24]).max() < 2.0  # 0.3 ADU/px over 192 px = 57 ADU before
    params = {"stretch": "linear", "interval": "minmax", "background_box": 24}
    flat = stretch(img, flatten_background=True, **params)
    plain = stretch(img, **params)
    # two empty sky patches far apart: equal after flattening, very different without it
    def sky_step(out):
        return abs(float(np.median(out[30:60, 100:130]) - np.median(out[150:180, 150:180])))
    assert sky_step(flat) < 0.2 * sky_step(plain)


def test_background_on_coarse_grid_is_tile_independent_with_dask():
    img = blobs((160, 160)) + np.linspace(0, 20, 160, dtype=np.float32)[None, :]
    params = StretchParams(stretch="asinh", flatten_background=True, background_box=32, background_max_side=40)
    lazy = stretch(da.from_array(img, chunks=48), params)
    np.testing.assert_allclose(lazy.compute(), stretch(img, params), atol=1e-6)


def test_nan_inf_are_filled_and_do_not_move_the_levels():
    img = blobs()
    ref = fit_stretch(img)
    bad = img.copy()
    bad[0, :5] = np.nan
    bad[1, :5] = np.inf
    params = fit_stretch(bad)
    assert params.white == pytest.approx(ref.white, rel=0.02)
    out = stretch(bad, params)
    assert np.isfinite(out).all() and not out[:2, :5].any()


def test_bad_parameters_are_clear():
    with pytest.raises(ValueError, match="unknown stretch"):
        stretch(blobs(), stretch="gamma")
    with pytest.raises(ValueError, match="positive"):
        stretch(blobs(), stretch="asinh", a=-1.0)
