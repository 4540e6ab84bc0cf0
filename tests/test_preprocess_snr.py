"""The signal-to-noise channel: values, fitting, recipes, errors."""
import numpy as np
import pytest

from napari_galseg.preprocess import (
    Channel,
    Recipe,
    SnrParams,
    as_recipe,
    fit_snr,
    snr_block,
    snr_recipe,
)


def test_snr_block_is_asinh_of_the_noise_units():
    img = np.array([[10.0, 13.0, 110.0, np.nan]], np.float32)
    rms = np.array([[2.0, 2.0, 2.0, 2.0]], np.float32)
    out = snr_block(img, rms, SnrParams(sky=10.0, softening=1.5))
    np.testing.assert_allclose(out[0, :3], np.arcsinh([0.0, 1.0, 100 / 3.0]), rtol=1e-6)
    assert out[0, 3] == 0.0  # NaN pixel -> fill
    bad = snr_block(img, np.array([[0.0, -1.0, np.inf, 2.0]], np.float32), SnrParams(sky=10.0))
    assert np.all(bad == 0.0)


def test_fit_snr_finds_the_sky_under_sources():
    rng = np.random.default_rng(0)
    img = rng.normal(100, 5, (400, 400)).astype(np.float32)
    img[50:120, 50:120] += 300
    assert fit_snr(img).sky == pytest.approx(100, abs=0.5)
    with pytest.raises(ValueError, match="no finite pixel"):
        fit_snr(np.full((10, 10), np.nan))
    with pytest.raises(ValueError, match="softening"):
        fit_snr(img, SnrParams(softening=0))


def test_snr_recipe_needs_rms_round_trips_and_is_pointwise():
    rng = np.random.default_rng(1)
    img = rng.normal(50, 3, (128, 96)).astype(np.float32)
    rms = np.full_like(img, 3.0)
    recipe = snr_recipe()
    assert recipe.needs_rms and recipe.channel_names[-1] == "snr" and as_recipe("default+snr") == recipe
    with pytest.raises(ValueError, match="snr"):
        recipe.fit(img)
    fitted = recipe.fit(img, rms)
    again = Recipe.from_json(fitted.to_json())
    assert again == fitted
    whole = fitted.apply(img, rms)
    assert np.array_equal(fitted.apply(img[10:60, 20:90], rms[10:60, 20:90]), whole[:, 10:60, 20:90])
    assert abs(float(np.median(whole[3]))) < 0.1  # sky -> 0, noise -> ~asinh(N(0, 1))
    with pytest.raises(ValueError, match="source must be 'image'"):
        Channel("snr", source="rms")
