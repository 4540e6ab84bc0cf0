"""The shared background model: compiled clipping equals photutils', estimate_mesh equals the
box-by-box mesh, and SkySubtracted windows equal the whole-frame subtraction."""
import dask.array as da
import numpy as np
import pytest

from napari_galseg.background import (
    MeshBackground,
    SkySubtracted,
    clipped_box_statistics,
    estimate_mesh,
)
from napari_galseg.tiling import iter_tiles


def _sky(shape=(300, 260), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = 50 + 0.05 * xx - 0.02 * yy + rng.normal(0, 3, shape)
    img[120:140, 30:60] += 400  # a bright source the clipping must reject
    return img.astype(np.float32)


def test_clipped_box_statistics_equal_photutils_sigma_clip_and_sextractor():
    from astropy.stats import SigmaClip
    from photutils.background import SExtractorBackground, StdBackgroundRMS

    rng = np.random.default_rng(1)
    boxes = rng.normal(10, 2, (6, 1024)).astype(np.float32)
    boxes[1, :100] += 50  # outliers clipped away
    boxes[2, ::7] = np.nan  # bad pixels ignored
    boxes[3] = 5.0  # constant: std 0 -> the mean
    boxes[4, :] = np.nan  # nothing left -> NaN
    boxes[5] = rng.exponential(3, 1024)  # skewed: the SExtractor mode estimate
    bkg, std, kept = clipped_box_statistics(boxes)
    clip = SigmaClip(sigma=3.0, maxiters=10)
    for i in range(4):
        ref_bkg = SExtractorBackground(sigma_clip=clip).calc_background(boxes[i])
        ref_std = StdBackgroundRMS(sigma_clip=clip).calc_background_rms(boxes[i])
        assert bkg[i] == pytest.approx(float(ref_bkg), rel=1e-5, abs=1e-5)
        assert std[i] == pytest.approx(float(ref_std), rel=1e-5, abs=1e-6)
    assert np.isnan(bkg[4]) and np.isnan(std[4]) and kept[4] == 0
    assert kept[1] <= 924 and 860 < kept[2] <= 1024 - len(range(0, 1024, 7))  # NaN never counted
    ref5 = SExtractorBackground(sigma_clip=clip).calc_background(boxes[5])
    assert bkg[5] == pytest.approx(float(ref5), rel=1e-5)


def test_estimate_mesh_equals_box_by_box_mesh_and_accepts_dask():
    img = _sky()
    mesh = MeshBackground(img.shape, 32, 3)
    for tile in iter_tiles(img.shape, 64):
        mesh.add_tile_stats(tile.core, img[tile.core])
    mesh.finalize()
    full = (slice(0, img.shape[0]), slice(0, img.shape[1]))
    for source, threads in ((img, 1), (da.from_array(img, chunks=100), 2)):
        got = estimate_mesh(source, 32, 3, n_threads=threads)
        assert np.array_equal(got.evaluate("bkg", full), mesh.evaluate("bkg", full))
        assert np.array_equal(got.evaluate("rms", full), mesh.evaluate("rms", full))


def test_strided_evaluation_is_the_same_pixels():
    img = _sky()
    mesh = estimate_mesh(img, 32)
    full = mesh.evaluate("bkg", (slice(0, 300), slice(0, 260)))
    assert np.array_equal(mesh.evaluate("bkg", (slice(5, 290), slice(3, 260)), step=(7, 4)), full[5:290:7, 3:260:4])


def test_sky_subtracted_windows_equal_the_whole_frame():
    img = _sky()
    mesh = estimate_mesh(img, 32)
    sky = SkySubtracted(img, mesh)
    whole = np.asarray(sky)
    assert whole.dtype == np.float32 and whole.shape == img.shape
    assert abs(float(np.median(whole))) < 0.5  # the sky is gone, the noise (σ=3) remains
    assert np.array_equal(sky[17:211, 40:77], whole[17:211, 40:77])
    assert np.array_equal(sky[3::9, ::5], whole[3::9, ::5])
    # the lazy FITS-style source is read window by window
    lazy = SkySubtracted(da.from_array(img, chunks=64), mesh)
    assert np.array_equal(lazy[100:164, 0:260], whole[100:164])


def test_sky_subtracted_refuses_what_it_cannot_do():
    img = _sky()
    mesh = estimate_mesh(img, 32)
    with pytest.raises(ValueError, match="shape"):
        SkySubtracted(img[:200], mesh)
    sky = SkySubtracted(img, mesh)
    with pytest.raises(TypeError, match="2-D slicing"):
        sky[5]
    with pytest.raises(ValueError, match="negative steps"):
        sky[::-1, :]
