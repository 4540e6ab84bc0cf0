"""The forest's galaxy features: each plane against a direct computation, and tiles equal the whole."""
import numpy as np
import pytest

from napari_galseg.segmenters.snr_features import (
    TRUNCATE,
    SnrFeatureSpec,
    snr_feature_halo,
    snr_feature_names,
    snr_features,
)


def _stack(shape=(96, 100), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    snr = rng.normal(0, 1, shape) + 12 * np.exp(-((yy - 45) ** 2 + (xx - 52) ** 2) / (2 * 4.0**2))
    rel = 1 + 0.1 * np.sin(xx / 20.0)
    return np.stack([snr, rel]).astype(np.float32)


def _gauss2d(sigma):
    r = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    return np.outer(k, k), r


def _smoothed_at(img, y, x, sigma):
    k, r = _gauss2d(sigma)
    return float((img[y - r : y + r + 1, x - r : x + r + 1].astype(np.float64) * k).sum())


def test_every_plane_against_a_direct_computation():
    spec = SnrFeatureSpec(scales=(1.0, 2.0, 4.0), texture_window=5)
    stack = _stack()
    feats = snr_features(stack, spec)
    names = snr_feature_names(spec)
    assert feats.shape == (len(names),) + stack.shape[1:] and feats.dtype == np.float32
    plane = dict(zip(names, feats))
    snr = stack[0]
    for y, x in [(45, 52), (41, 57), (30, 30), (60, 70)]:
        assert plane["snr"][y, x] == snr[y, x] and plane["rel_rms"][y, x] == stack[1, y, x]
        window = snr[y - 2 : y + 3, x - 2 : x + 3].astype(np.float64)
        assert plane["local_std"][y, x] == pytest.approx(window.std(), rel=1e-4, abs=1e-4)
        for i, s in enumerate(spec.scales):
            k, _ = _gauss2d(s)
            g = {(dy, dx): _smoothed_at(snr, y + dy, x + dx, s) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
            # S/N of the smoothed map: divided by the noise of unit white noise after the kernel
            assert plane[f"snr_{s:g}"][y, x] == pytest.approx(g[0, 0] / np.sqrt((k**2).sum()), rel=1e-4)
            if i + 1 < len(spec.scales):
                nxt = _smoothed_at(snr, y, x, spec.scales[i + 1])
                assert plane[f"dog_{s:g}"][y, x] == pytest.approx(g[0, 0] - nxt, rel=1e-4, abs=1e-5)
            hyy = g[1, 0] - 2 * g[0, 0] + g[-1, 0]
            hxx = g[0, 1] - 2 * g[0, 0] + g[0, -1]
            hxy = 0.25 * (g[1, 1] - g[1, -1] - g[-1, 1] + g[-1, -1])
            low, high = np.linalg.eigvalsh([[hyy, hxy], [hxy, hxx]]) * s * s
            assert plane[f"hess_max_{s:g}"][y, x] == pytest.approx(high, rel=1e-3, abs=1e-4)
            assert plane[f"hess_min_{s:g}"][y, x] == pytest.approx(low, rel=1e-3, abs=1e-4)
            grad = np.hypot(0.5 * (g[1, 0] - g[-1, 0]), 0.5 * (g[0, 1] - g[0, -1])) * s
            assert plane[f"grad_{s:g}"][y, x] == pytest.approx(grad, rel=1e-3, abs=1e-4)
    # a galaxy's centre: strong, curved down in both directions; the sky: neither
    assert plane["snr_4"][45, 52] > 20 and plane["hess_max_4"][45, 52] < 0
    assert abs(plane["snr_4"][10, 10]) < 5


def test_a_tile_with_its_halo_equals_the_whole_image():
    spec = SnrFeatureSpec()
    stack = _stack((150, 140), seed=1)
    whole = snr_features(stack, spec)
    h = snr_feature_halo(spec)
    y0, y1, x0, x1 = 40, 90, 50, 100
    tile = snr_features(stack[:, y0 - h : y1 + h, x0 - h : x1 + h], spec)
    np.testing.assert_allclose(tile[:, h:-h, h:-h], whole[:, y0:y1, x0:x1], rtol=1e-5, atol=1e-5)


def test_nan_is_sky_and_bad_specs_are_refused():
    stack = _stack((64, 64))
    stack[0, 10, 10] = np.nan
    feats = snr_features(stack, SnrFeatureSpec(scales=(1.0, 2.0)))
    assert np.isfinite(feats).all() and feats[0, 10, 10] == 0
    with pytest.raises(ValueError, match="scales"):
        SnrFeatureSpec(scales=(0.0,))
    with pytest.raises(ValueError, match="texture_window"):
        SnrFeatureSpec(texture_window=4)
    with pytest.raises(ValueError, match="stack"):
        snr_features(stack[:1], SnrFeatureSpec())
