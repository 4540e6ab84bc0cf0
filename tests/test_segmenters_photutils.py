"""The photutils pipeline: tiled == untiled (labels and catalog), agreement with photutils itself,
and clear errors on bad input."""
import dask.array as da
import numpy as np
import pytest

from napari_galseg.background import MeshBackground
from napari_galseg.segmenters import get
from napari_galseg.segmenters.photutils import (
    PhotutilsParams,
    PhotutilsSegmenter,
    gaussian_kernel_1d,
    segment,
)
from napari_galseg.segmenters.photutils.pipeline import Pipeline
from napari_galseg.tiling import canonical_relabel, iter_tiles

TILE = 64  # with box_size 32: tiles are 2×2 boxes


def _gauss(shape, y, x, flux, sigma):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return flux / (2 * np.pi * sigma**2) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))


def _field(shape=(256, 256), seed=0, noise=1.0):
    """Blobs placed across tile borders (64 px grid), blended pairs among them, plus noise and a sky slope."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape)
    # a blended pair straddling the corner of four tiles: one object, deblended into two
    img += _gauss(shape, 62, 60, 900, 2.5) + _gauss(shape, 68, 69, 700, 2.5)
    # a long object crossing three tiles horizontally
    for x in range(100, 215, 3):  # 1.5σ apart: a smooth ridge, no saddle to deblend
        img += _gauss(shape, 128, x, 150, 2.0)
    # a big bright galaxy on a vertical border with a companion
    img += _gauss(shape, 190, 128, 6000, 6.0) + _gauss(shape, 200, 142, 900, 2.0)
    for _ in range(25):  # random small sources
        img += _gauss(shape, rng.uniform(5, shape[0] - 5), rng.uniform(5, shape[1] - 5), rng.uniform(150, 800), rng.uniform(1.2, 3))
    _yy, xx = np.mgrid[: shape[0], : shape[1]]
    img += 20 + 0.01 * xx + rng.normal(0, noise, shape)
    return img.astype(np.float32)


# plain photutils' own settings (contrast 0.001, nothing rejected): the parity tests compare with it
PARAMS = PhotutilsParams(box_size=32, nsigma=3.0, n_pixels=8, contrast=0.001, min_snr=0.0)
UNTILED = 4096  # tile_size larger than every test image


def test_kernel_matches_photutils_make_2dgaussian_kernel():
    from photutils.segmentation import make_2dgaussian_kernel

    k1 = gaussian_kernel_1d(3.0, 5)
    np.testing.assert_allclose(np.outer(k1, k1), make_2dgaussian_kernel(3.0, size=5).array, rtol=1e-6, atol=1e-9)


def test_mesh_background_equals_background2d():
    from photutils.background import Background2D

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :250]
    img = (10 + 0.02 * xx + 0.01 * yy + rng.normal(0, 2 + 0.003 * xx, (300, 250))).astype(np.float32)
    img[100:130, 40:70] = np.nan  # boxes excluded and filled by IDW, as in Background2D
    with pytest.warns(Warning):
        ref = Background2D(img, 32, filter_size=3)
    mesh = MeshBackground(img.shape, 32, 3)
    for tile in iter_tiles(img.shape, 64):
        mesh.add_tile_stats(tile.core, img[tile.core])
    mesh.finalize()
    full = (slice(0, 300), slice(0, 250))
    np.testing.assert_allclose(mesh.evaluate("bkg", full), ref.background, atol=1e-4)
    np.testing.assert_allclose(mesh.evaluate("rms", full), ref.background_rms, atol=1e-4)
    # pointwise evaluation: any window equals the same crop of the full map
    part = (slice(37, 181), slice(90, 250))
    assert np.array_equal(mesh.evaluate("bkg", part), mesh.evaluate("bkg", full)[part])


@pytest.fixture(scope="module")
def field():
    return _field()


@pytest.fixture(scope="module")
def untiled(field):
    return segment(field, params=PARAMS, tile_size=UNTILED)


def test_untiled_run_finds_and_deblends_the_planted_objects(untiled):
    lab = untiled.labels
    assert lab.dtype == np.int32 and lab.shape == (256, 256)
    assert untiled.info["n_tiles"] == 1
    # the blended pair on the tile corner is split, each part at its own peak
    assert lab[62, 60] > 0 and lab[68, 69] > 0 and lab[62, 60] != lab[68, 69]
    # the ridge across three tiles is one detection (its noise peaks may deblend it into parts)
    chain = lab[128, 100:215]
    assert (chain > 0).all()
    parent = dict(zip(untiled.catalog["label"], untiled.catalog["parent"]))
    assert len({parent[v] for v in np.unique(chain)}) == 1
    assert untiled.info["n_deblended_parents"] >= 1
    assert untiled.n_labels == lab.max() == len(untiled.catalog)


@pytest.mark.parametrize("tile_size", [64, 96, 128])
def test_tiled_equals_untiled_labels_and_catalog(field, untiled, tile_size):
    tiled = segment(field, params=PARAMS, tile_size=tile_size)
    assert tiled.info["n_tiles"] > 1
    assert np.array_equal(tiled.labels, untiled.labels)
    a, b = untiled.catalog, tiled.catalog
    assert a.colnames == b.colnames and len(a) == len(b)
    for name in a.colnames:
        np.testing.assert_allclose(np.asarray(b[name], float), np.asarray(a[name], float), rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)


def test_tiled_equals_untiled_full_catalog_with_kron(field):
    """catalog="full" (photutils' SourceCatalog with Kron photometry, in grown windows) is also
    independent of the tiling, and agrees with the basic catalog on the shared columns."""
    untiled_full = segment(field, params=PARAMS, catalog="full", tile_size=UNTILED)
    tiled_full = segment(field, params=PARAMS, catalog="full", tile_size=96)
    basic = segment(field, params=PARAMS, tile_size=96).catalog
    assert "kron_flux" in tiled_full.catalog.colnames and "kron_flux" not in basic.colnames
    for name in untiled_full.catalog.colnames:
        np.testing.assert_allclose(np.asarray(tiled_full.catalog[name], float), np.asarray(untiled_full.catalog[name], float),
                                   rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)
    for name in basic.colnames:
        np.testing.assert_allclose(np.asarray(basic[name], float), np.asarray(untiled_full.catalog[name], float),
                                   rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)


def test_dask_input_gives_lazy_labels_equal_to_untiled(field, untiled):
    res = segment(da.from_array(field, chunks=50), params=PARAMS, tile_size=64, catalog=False)
    assert isinstance(res.labels, da.Array)
    assert np.array_equal(res.labels.compute(), untiled.labels)


def test_dask_input_that_is_not_a_plain_from_array_is_read_through_dask(field, untiled):
    lazy = da.from_array(field, chunks=70) * np.float32(1)  # a computed graph: no direct source
    res = segment(lazy, params=PARAMS, tile_size=64)
    assert isinstance(res.labels, da.Array) and res.labels.chunks[0][0] == 64
    assert np.array_equal(res.labels.compute(), untiled.labels)
    assert len(res.catalog) == len(untiled.catalog)


class _Reader:
    """An array-like that counts what is read (like our FITS reader, h5py or zarr)."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim, self.pixels_read = data, data.shape, data.dtype, data.ndim, 0

    def __getitem__(self, key):
        out = self.data[key]
        self.pixels_read += out.size
        return out


def test_array_likes_behind_from_array_are_read_window_by_window(field, untiled):
    from napari_galseg.background import direct_source as _direct_source

    reader = _Reader(field)
    lazy = da.from_array(reader, chunks=128, asarray=False)
    assert _direct_source(lazy) is reader and _direct_source(lazy + 1) is not reader
    res = segment(lazy, params=PARAMS, tile_size=64, catalog="none")
    assert np.array_equal(res.labels.compute(), untiled.labels)
    # two passes over 64² tiles (+ a 2 px halo) and small windows for border objects: far less
    # than whole 128² chunks for every tile
    assert reader.pixels_read < 4 * field.size


@pytest.mark.parametrize("n_threads", [1, 2])
def test_threads_give_the_same_labels_and_catalog(field, untiled, n_threads):
    res = segment(field, params=PARAMS, tile_size=64, n_threads=n_threads)
    assert np.array_equal(res.labels, untiled.labels)
    for name in untiled.catalog.colnames:
        np.testing.assert_allclose(np.asarray(res.catalog[name], float), np.asarray(untiled.catalog[name], float),
                                   rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)


def test_pipeline_agrees_with_photutils_detect_and_deblend(field, untiled):
    """Given the same smoothed image and threshold, photutils' own detect_sources +
    deblend_sources produce the same segments as our stitched, per-object deblending."""
    from photutils.segmentation import deblend_sources, detect_sources

    pipe = Pipeline(field, None, PARAMS)
    pipe.background()
    full = (slice(0, 256), slice(0, 256))
    _, conv, threshold, _, _ = pipe.prepare(full)
    segm = detect_sources(conv, threshold, n_pixels=PARAMS.n_pixels)
    segm = deblend_sources(conv, segm, PARAMS.n_pixels, progress_bar=False)
    assert np.array_equal(canonical_relabel(segm.data), untiled.labels)


@pytest.mark.parametrize("mode, connectivity, nsigma, contrast", [
    ("exponential", 8, 2.0, 0.001), ("linear", 8, 1.5, 0.001), ("sinh", 4, 2.0, 0.001), ("exponential", 4, 1.5, 0.001),
    ("exponential", 8, 1.5, 0.05),  # the contrast criterion drops faint children
])
def test_deblending_equals_photutils_deblend_sources_on_a_crowded_field(mode, connectivity, nsigma, contrast):
    """Our deblender (all threshold levels of an object labelled at once, objects that cannot
    split skipped) gives exactly photutils' deblend_sources partition, object by object."""
    from photutils.segmentation import deblend_sources, detect_sources

    from napari_galseg.synth import make_field

    img = make_field(size=320, seed=0).image
    params = PhotutilsParams(box_size=32, nsigma=nsigma, n_pixels=6, deblend_mode=mode, connectivity=connectivity,
                             contrast=contrast, catalog="none", min_snr=0.0)
    ours = segment(img, params=params, tile_size=96)
    assert ours.info["n_deblended_parents"] >= 4
    pipe = Pipeline(img, None, params)
    pipe.background()
    _, conv, threshold, _, _ = pipe.prepare((slice(0, 320), slice(0, 320)))
    segm = detect_sources(conv, threshold, n_pixels=params.n_pixels, connectivity=connectivity)
    segm = deblend_sources(conv, segm, params.n_pixels, mode=mode, connectivity=connectivity, contrast=contrast, progress_bar=False)
    assert np.array_equal(canonical_relabel(segm.data), ours.labels)


def test_filtered_threshold_uses_the_smoothed_noise(field):
    pipe = Pipeline(field, None, PARAMS)
    pipe.background()
    win = (slice(100, 110), slice(100, 110))
    _, _, thr, rms, _ = pipe.prepare(win)
    k = gaussian_kernel_1d(3.0, 5)
    np.testing.assert_allclose(thr, 3.0 * rms * np.sqrt((np.outer(k, k) ** 2).sum()), rtol=1e-6)
    # a user rms map: the smoothed noise is sqrt(K² ⋆ σ²), equal to σ·sqrt(ΣK²) for a constant map
    rms_map = np.full(field.shape, 2.0, np.float32)
    pipe = Pipeline(field, rms_map, PARAMS)
    pipe.background()
    _, _, thr, _, _ = pipe.prepare(win)
    np.testing.assert_allclose(thr, 3.0 * 2.0 * np.sqrt((np.outer(k, k) ** 2).sum()), rtol=1e-5)
    study = Pipeline(field, rms_map, PhotutilsParams(box_size=32, nsigma=1.5, threshold_mode="study"))
    study.background()
    np.testing.assert_allclose(study.prepare(win)[2], 1.5 * 2.0, rtol=1e-6)


def test_study_threshold_is_more_conservative(field):
    study = segment(field, params=PARAMS, threshold_mode="study", nsigma=1.5, catalog=False, deblend=False)
    ours = segment(field, params=PARAMS, catalog=False, deblend=False)
    assert 0 < (study.labels > 0).sum() < (ours.labels > 0).sum()


def test_n_pixels_counts_whole_objects_across_tiles():
    shape = (128, 128)
    img = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32) + 5
    img[60:68, 62:66] += 40  # 32 px straddling the 64-px tile borders in both axes
    params = PhotutilsParams(box_size=32, n_pixels=30, deblend=False, catalog=False, fwhm=0)
    tiled = segment(img, params=params, tile_size=64).labels
    untiled = segment(img, params=params, tile_size=4096).labels
    assert np.array_equal(tiled, untiled)
    assert tiled[64, 64] > 0 and (tiled == tiled[64, 64]).sum() == 32


def test_registry_and_predict_keep_catalog(field):
    cls = get("photutils")
    assert cls is PhotutilsSegmenter and not cls.capabilities.trainable
    seg = cls(box_size=32, n_pixels=8)
    result = seg.predict(field)
    labels, catalog = result.labels, result.catalog
    assert labels.max() == len(catalog) and seg.result_.labels is labels
    assert set(catalog["label"]) == set(range(1, labels.max() + 1))
    # each segment is scored by its S/N (what COCO AP ranks by)
    assert len(result.scores) == labels.max() + 1 and np.isnan(result.scores[0])
    flux, err = np.asarray(catalog["segment_flux"]), np.asarray(catalog["segment_flux_err"])
    np.testing.assert_allclose(result.scores[np.asarray(catalog["label"])], flux / err)


def test_params_round_trip_through_model_folder(tmp_path):
    seg = PhotutilsSegmenter(nsigma=2.5, deblend=False)
    seg.save(tmp_path / "m")
    loaded = PhotutilsSegmenter.load(tmp_path / "m")
    assert loaded.params == seg.params


# -- bad input ---------------------------------------------------------------------------------


def test_all_nan_image_is_a_clear_error():
    with pytest.raises(ValueError, match="no background box"):
        segment(np.full((64, 64), np.nan, np.float32), box_size=16)


def test_all_nan_tile_is_masked_and_filled(field, untiled):
    img = field.copy()
    img[:64, 192:] = np.nan  # one whole tile (and its background boxes) missing
    res = segment(img, params=PARAMS, tile_size=64)
    assert (res.labels[:64, 192:] == 0).all()
    assert np.isfinite(res.background.bkg_filled).all()
    assert np.array_equal(res.labels, segment(img, params=PARAMS).labels)


def test_constant_image_is_a_clear_error():
    with pytest.raises(ValueError, match="rms is zero everywhere"):
        segment(np.full((64, 64), 3.0, np.float32), box_size=16)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_rms_with_zeros_negatives_or_nan_is_a_clear_error(field, bad):
    rms = np.ones(field.shape, np.float32)
    rms[10, 20] = bad
    with pytest.raises(ValueError, match=r"rms map has 1 pixel.*y=10, x=20"):
        segment(field, rms=rms, params=PARAMS)


def test_rms_may_be_invalid_where_the_image_is_masked(field):
    img, rms = field.copy(), np.ones(field.shape, np.float32)
    img[:5], rms[:5] = np.nan, 0.0
    assert segment(img, rms=rms, params=PARAMS, catalog=False).labels[:5].max() == 0


def test_mismatched_shapes_and_bad_params_are_clear_errors(field):
    with pytest.raises(ValueError, match="rms map has shape"):
        segment(field, rms=np.ones((10, 10), np.float32))
    with pytest.raises(ValueError, match="2-D image"):
        segment(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="threshold_mode"):
        PhotutilsParams(threshold_mode="median")
    with pytest.raises(ValueError, match="kernel_size"):
        PhotutilsParams(kernel_size=4)


def test_no_detection_gives_empty_labels_and_empty_catalog():
    noise = np.random.default_rng(2).normal(100, 1, (96, 96)).astype(np.float32)
    res = segment(noise, box_size=32, nsigma=50)
    assert res.n_labels == 0 and res.labels.max() == 0
    assert len(res.catalog) == 0 and "x_centroid" in res.catalog.colnames


def test_worker_processes_give_the_same_labels_and_catalog(field, untiled):
    res = segment(field, params=PARAMS, tile_size=64, n_workers=2)
    assert np.array_equal(res.labels, untiled.labels)
    for name in untiled.catalog.colnames:
        np.testing.assert_allclose(np.asarray(res.catalog[name], float), np.asarray(untiled.catalog[name], float),
                                   rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)


def test_progress_reaches_its_total_through_every_phase(field):
    calls = []
    segment(field, params=PARAMS, tile_size=64, progress=lambda done, total, msg: calls.append((done, total, msg)))
    phases = [msg for _, _, msg in calls]
    assert phases[0] == "background" and phases[-1] == "catalog" and "detect" in phases and "deblend" in phases
    done, total, _ = calls[-1]
    assert done == total and all(d <= t for d, t, _ in calls)
    assert [d for d, _, _ in calls if d] == sorted(d for d, _, _ in calls if d)


def test_low_snr_segments_are_rejected_the_same_way_tiled_or_not(field):
    """min_snr drops segments whose flux / error is below it, after deblending: the same labels
    whatever the tiling or the catalog asked for, renumbered 1..n, the catalog's rows those kept."""
    params = PhotutilsParams(box_size=32, nsigma=2.0, n_pixels=8, min_snr=6.0)
    kept = segment(field, params=params, tile_size=UNTILED)
    everything = segment(field, params=params, min_snr=0.0, tile_size=UNTILED)
    assert 0 < kept.n_labels < everything.n_labels == kept.n_labels + kept.info["n_rejected_min_snr"]
    snr = np.asarray(everything.catalog["segment_flux"]) / np.asarray(everything.catalog["segment_flux_err"])
    assert kept.n_labels == int((snr >= 6.0).sum())
    survivors = np.isin(everything.labels, np.asarray(everything.catalog["label"])[snr >= 6.0])
    np.testing.assert_array_equal(kept.labels > 0, survivors)
    assert set(np.unique(kept.labels)) == set(range(kept.n_labels + 1))
    snr_kept = np.asarray(kept.catalog["segment_flux"]) / np.asarray(kept.catalog["segment_flux_err"])
    assert len(kept.catalog) == kept.n_labels and snr_kept.min() >= 6.0
    for tile_size, catalog in ((64, "basic"), (96, "none"), (96, "full")):
        other = segment(field, params=params, tile_size=tile_size, catalog=catalog)
        np.testing.assert_array_equal(other.labels, kept.labels)
    full = segment(field, params=params, tile_size=96, catalog="full").catalog
    np.testing.assert_array_equal(np.asarray(full["label"]), np.arange(1, kept.n_labels + 1))
