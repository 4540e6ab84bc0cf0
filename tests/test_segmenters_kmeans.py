"""KMeans segmenter: cluster order and choice, instances, tiling, save/load and bad input."""
import dask.array as da
import numpy as np
import pytest

from napari_galseg.segmenters import ModelFolderError, Segmenter, get
from napari_galseg.segmenters.kmeans import STUDY_PRESET, KMeansSegmenter

CENTRES = [(20, 25), (30, 90), (75, 40), (95, 100)]


def blob_image(shape=(128, 128), seed=0, noise=0.05):
    """Bright Gaussian blobs (sigma 4 px, peak 1) on a flat sky with noise; truth = blob > 0.2."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = np.zeros(shape)
    for y, x in CENTRES:
        clean += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 4.0**2))
    rng = np.random.default_rng(seed)
    image = (clean + 0.1 + rng.normal(0, noise, shape)).astype(np.float32)
    return image, clean > 0.2


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_registered_and_brightest_cluster_is_galaxy():
    assert get("kmeans") is KMeansSegmenter
    image, truth = blob_image()
    seg = KMeansSegmenter(**STUDY_PRESET, min_area=5)
    labels = seg.predict(image).labels  # fits on its own input
    assert labels.dtype == np.int32 and labels.shape == image.shape
    assert seg.galaxy_clusters == [1]
    assert seg.centroids[1, 0] > seg.centroids[0, 0]  # ordered faint to bright
    # four separate instances, one per blob, and the sky stays sky
    assert labels.max() == len(CENTRES)
    assert len({labels[y, x] for y, x in CENTRES}) == len(CENTRES) and all(labels[y, x] for y, x in CENTRES)
    assert labels[0, 0] == 0 and labels[-1, 60] == 0
    assert iou(labels > 0, truth) > 0.6


def test_galaxy_clusters_can_be_chosen():
    image, _ = blob_image()
    bright = KMeansSegmenter(channels="recipe", n_clusters=3, min_area=0).fit(image)
    both = KMeansSegmenter(channels="recipe", n_clusters=3, min_area=0, galaxy_clusters=[1, 2]).fit(image)
    m_bright, m_both = bright.predict_mask(image), both.predict_mask(image)
    assert m_bright.sum() < m_both.sum() and not (m_bright & ~m_both).any()
    clusters = bright.cluster_map(image)
    assert set(np.unique(clusters)) == {0, 1, 2}
    np.testing.assert_array_equal(m_bright, clusters == 2)
    with pytest.raises(ValueError, match="galaxy_clusters"):
        KMeansSegmenter(n_clusters=2, galaxy_clusters=[2])


def test_same_seed_same_clusters_and_fit_ignores_truth():
    image, truth = blob_image()
    a = KMeansSegmenter(sample_size=2000, seed=4).fit(image, truth)
    b = KMeansSegmenter(sample_size=2000, seed=4).fit(image)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert a.provenance["sample_pixels"] == 2000


def test_dask_input_gives_the_same_labels_lazily():
    image, _ = blob_image()
    seg = KMeansSegmenter(min_area=5).fit(image)
    labels = seg.predict(image).labels
    lazy = seg.predict(da.from_array(image, chunks=40)).labels
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), labels)


def test_rms_channel_only_with_a_recipe_that_asks_for_it():
    from napari_galseg.preprocess import default_recipe

    image, truth = blob_image()
    rms = np.full_like(image, 0.05)
    rms[:, 64:] = 0.07
    plain = KMeansSegmenter(**STUDY_PRESET, min_area=5).fit(image, rms=rms)
    assert plain.centroids.shape == (2, 2)  # image channels only by default
    with_rms = KMeansSegmenter(**STUDY_PRESET, min_area=5)
    with_rms.recipe = default_recipe()
    with_rms.fit(image, rms=rms)
    assert with_rms.centroids.shape == (2, 3) and with_rms.recipe["channels"][-1]["name"] == "rms"
    with pytest.raises(ValueError, match="rms"):
        with_rms.predict(image)  # its recipe needs the rms map
    assert iou(plain.predict(image, rms).labels > 0, truth) > 0.6


def test_nan_pixels_are_sky(tmp_path):
    image, _ = blob_image()
    image[18:23, 20:30] = np.nan  # inside the first blob
    labels = KMeansSegmenter(min_area=0).predict(image).labels
    assert (labels[18:23, 20:30] == 0).all() and labels[25, 25] > 0


def test_save_load_round_trip(tmp_path):
    image, _ = blob_image()
    seg = KMeansSegmenter(n_clusters=3, galaxy_clusters=[2], min_area=4).fit(image)
    seg.save(tmp_path / "km")
    loaded = Segmenter.load(tmp_path / "km")
    assert isinstance(loaded, KMeansSegmenter) and loaded.params == seg.params
    np.testing.assert_array_equal(loaded.predict(image).labels, seg.predict(image).labels)
    # the recipe was fitted once and stored: a different image is normalised the same way
    other, _ = blob_image(seed=5)
    np.testing.assert_array_equal(loaded.predict_mask(other * 2), seg.predict_mask(other * 2))


def test_broken_model_folders_are_refused(tmp_path):
    image, _ = blob_image()
    seg = KMeansSegmenter().fit(image)
    seg.save(tmp_path / "km")
    (tmp_path / "km" / "kmeans.npz").write_text("not an array file")
    with pytest.raises(ModelFolderError, match="damaged"):
        KMeansSegmenter.load(tmp_path / "km")
    (tmp_path / "km" / "kmeans.npz").unlink()
    with pytest.raises(ModelFolderError, match="kmeans.npz"):
        KMeansSegmenter.load(tmp_path / "km")
    with pytest.raises(ValueError, match="not been fitted"):
        KMeansSegmenter().save(tmp_path / "empty")


def test_bad_input_gives_clear_errors():
    image, _ = blob_image()
    seg = KMeansSegmenter()
    with pytest.raises(ValueError, match="constant"):
        seg.fit(np.full((32, 32), 3.0, np.float32))
    with pytest.raises(ValueError, match="no finite pixels"):
        seg.predict(np.full((32, 32), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        seg.fit(image, rms=np.ones((10, 10), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        seg.fit(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="n_clusters"):
        KMeansSegmenter(n_clusters=1)


def test_images_too_big_for_memory_are_processed_in_tiles():
    image, _ = blob_image()
    seg = KMeansSegmenter(min_area=5).fit(image)
    expected = seg.predict(image).labels
    seg.configure(tile_size=32)  # the image is larger than 2 x 2 tiles: clustered tile by tile
    labels = seg.predict(image).labels
    assert isinstance(labels, np.ndarray)
    np.testing.assert_array_equal(labels, expected)


def test_snr_channels_find_galaxies_where_the_depth_varies():
    """A field six times noisier on one side, truth to 0.5 sigma as in the synthetic fields: the
    study's 2 clusters of brightness cut the noise into fragments, the S/N channels do not care
    where the noise is."""
    image, _ = blob_image(noise=0.02)
    rms = np.full_like(image, 0.02)
    rms[:, 64:] = 0.12
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    clean = sum(np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 4.0**2)) for y, x in CENTRES)
    truth = clean > 0.5 * rms
    noisy = image + np.random.default_rng(1).normal(0, np.sqrt(0.12**2 - 0.02**2), image.shape).astype(np.float32) * (rms > 0.05)
    seg = KMeansSegmenter(min_area=5)
    assert seg.params.channels == "snr" and seg.params.n_clusters == 24
    labels = seg.predict(noisy, rms).labels
    assert seg.centroids.shape == (24, 3)  # asinh(S/N) at 3 scales
    assert seg.galaxy_clusters == sorted(seg.galaxy_clusters) and 23 in seg.galaxy_clusters
    study = KMeansSegmenter(**STUDY_PRESET, min_area=5).predict(noisy, rms).labels
    assert labels.max() == len(CENTRES) and study.max() > len(CENTRES)
    assert iou(labels > 0, truth) > 0.75 and iou(labels > 0, truth) > iou(study > 0, truth) + 0.2
    lazy = seg.predict(da.from_array(noisy, chunks=48), da.from_array(rms, chunks=48)).labels
    np.testing.assert_array_equal(lazy.compute(), labels)  # tiles with the smoothing's halo
    seg.recipe = {"channels": []}
    with pytest.raises(ValueError, match="channels=recipe"):
        seg.predict(noisy, rms)


def test_a_model_saved_before_the_snr_channels_loads_as_the_study_variant(tmp_path):
    import json

    image, _ = blob_image()
    old = KMeansSegmenter(**STUDY_PRESET, min_area=4).fit(image)
    old.save(tmp_path / "km")
    cfg = tmp_path / "km" / "config.json"
    config = json.loads(cfg.read_text())
    for key in ("channels", "scales", "softening", "galaxy_snr", "background_box"):
        del config["params"][key]
    cfg.write_text(json.dumps(config))
    loaded = KMeansSegmenter.load(tmp_path / "km")
    assert loaded.params.channels == "recipe"
    np.testing.assert_array_equal(loaded.predict(image).labels, old.predict(image).labels)
