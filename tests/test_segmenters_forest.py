"""Random Forest pixel classifier: training from truth and scribbles, tiling, save/load, bad input."""
import copy
import json

import dask.array as da
import numpy as np
import pytest

from napari_galseg.segmenters import ModelFolderError, Segmenter, get
from napari_galseg.segmenters.forest import STUDY_PRESET, ForestSegmenter

TINY = dict(n_estimators=12, max_depth=8, window=5, min_area=5, max_train_pixels=6000)


def blob_field(shape=(96, 96), seed=0, n=7, noise=0.08):
    """Gaussian blobs of random size on a noisy sky, with an rms map; truth = blob above 0.15."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = np.zeros(shape)
    for _ in range(n):
        y, x = rng.uniform(8, shape[0] - 8), rng.uniform(8, shape[1] - 8)
        clean += rng.uniform(0.6, 1.2) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * rng.uniform(2.5, 5) ** 2))
    rms = np.full(shape, noise, np.float32)
    image = (clean + 0.2 + rng.normal(0, noise, shape)).astype(np.float32)
    return image, rms, (clean > 0.15).astype(np.int32)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.fixture(scope="module", params=["galaxy", "study"])
def trained(request):
    image, rms, truth = blob_field(seed=0)
    return ForestSegmenter(**TINY, features=request.param).fit(image, truth, rms)


def test_registered_with_galaxy_features_and_the_study_as_a_preset():
    assert get("forest") is ForestSegmenter and ForestSegmenter.capabilities.trainable
    p = ForestSegmenter().params
    assert (p.features, p.n_estimators, p.max_depth, p.class_balance) == ("galaxy", 6, 6, None)
    assert ForestSegmenter().run_options.n_threads == 2
    p = ForestSegmenter(**STUDY_PRESET).params
    assert (p.features, p.n_estimators, p.max_depth, p.class_balance) == ("study", 250, 12, True)
    with pytest.raises(ValueError, match="features must be"):
        ForestSegmenter(features="colour")


def test_fit_predict_beats_trivial_baselines(trained):
    image, rms, truth = blob_field(seed=1)
    labels = trained.predict(image, rms).labels
    assert labels.dtype == np.int32 and labels.shape == image.shape and labels.max() >= 3
    truth_mask = truth > 0
    score = iou(labels > 0, truth_mask)
    everything_galaxy = truth_mask.mean()  # IoU of calling every pixel galaxy
    assert score > 0.6 and score > everything_galaxy + 0.3
    assert trained.provenance["training_pixels"]["sky"] > 3000  # dense truth: natural proportions
    if trained.study:
        assert len(trained.feature_names) == 13  # 3 recipe channels + LBP + 9 Haralick
    else:
        assert len(trained.feature_names) == 17 and trained.feature_names[:3] == ["snr", "rel_rms", "snr_1"]
    image, rms, truth = blob_field(seed=0)
    balanced = ForestSegmenter(**TINY, features=trained.params.features, class_balance=True).fit(image, truth, rms)
    assert balanced.provenance["training_pixels"]["sky"] <= 3000  # balanced: half of the cap


def test_scribbles_separate_a_bright_blob_from_sky():
    image, rms, truth = blob_field(seed=2)
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[2:6, 2:40] = 1  # a sky stroke along the top
    scribbles[90:93, 50:90] = 1
    bright = np.argmax(image * truth)
    by, bx = np.unravel_index(bright, image.shape)
    scribbles[by - 1 : by + 2, bx - 1 : bx + 2] = 2  # a dab on the brightest blob
    seg = ForestSegmenter(**TINY).fit_scribbles(image, scribbles, rms)
    assert seg.provenance["trained_on"] == "scribbles" and seg.provenance["labelled_pixels"]["galaxy"] == 9
    proba = seg.predict_proba(image, rms)
    assert proba[by, bx] > 0.5 and np.nanmedian(proba[truth == 0]) < 0.5


def test_tiled_dask_prediction_equals_in_memory(trained):
    image, rms, _ = blob_field(seed=3)
    expected = trained.predict(image, rms).labels
    calls = []
    trained = copy.copy(trained)
    trained.configure(tile_size=40)  # dask inputs are re-tiled to `tile_size`
    lazy = trained.predict(da.from_array(image, chunks=40), da.from_array(rms, chunks=40),
                           progress=lambda done, total, msg: calls.append((done, total))).labels
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), expected)
    assert calls and calls[-1] == (9, 9)  # one report per tile of the 3 x 3 grid
    region = (slice(30, 70), slice(5, 50))
    np.testing.assert_array_equal(trained.predict_region(image, region, rms), trained.predict_proba(image, rms)[region])


def test_save_load_round_trip_and_config(trained, tmp_path):
    image, rms, _ = blob_field(seed=4)
    trained.save(tmp_path / "rf")
    config = json.loads((tmp_path / "rf" / "config.json").read_text())
    assert config["method"] == "forest" and config["features"] == trained.feature_names
    if trained.study:
        assert config["recipe"]["channels"][0]["params"]["vmin"] is not None  # fitted recipe stored
    loaded = Segmenter.load(tmp_path / "rf")
    assert isinstance(loaded, ForestSegmenter)
    np.testing.assert_array_equal(loaded.predict(image, rms).labels, trained.predict(image, rms).labels)


def test_same_seed_same_forest():
    image, rms, truth = blob_field(seed=5)
    a = ForestSegmenter(**TINY, seed=3).fit(image, truth, rms)
    b = ForestSegmenter(**TINY, seed=3).fit(image, truth, rms)
    np.testing.assert_array_equal(a.predict_proba(image, rms), b.predict_proba(image, rms))


def test_folders_with_other_features_or_foreign_files_are_refused(trained, tmp_path):
    trained.save(tmp_path / "rf")
    cfg_path = tmp_path / "rf" / "config.json"
    config = json.loads(cfg_path.read_text())
    config["features"] = config["features"][:-1] + ["gabor_3"]
    cfg_path.write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="features"):
        ForestSegmenter.load(tmp_path / "rf")
    trained.save(tmp_path / "rf2")
    (tmp_path / "rf2" / "forest.npz").write_bytes(b"\x00\x01 definitely not an array file")
    with pytest.raises(ModelFolderError, match="damaged"):
        ForestSegmenter.load(tmp_path / "rf2")
    with pytest.raises(ModelFolderError, match="not 'forest'|'kmeans'"):
        from napari_galseg.segmenters.kmeans import KMeansSegmenter

        KMeansSegmenter.load(tmp_path / "rf2")


def test_bad_input_gives_clear_errors(trained):
    image, rms, truth = blob_field(seed=6)
    seg = ForestSegmenter(**TINY)
    with pytest.raises(ValueError, match="not been trained"):
        seg.predict(image, rms)
    with pytest.raises(ValueError, match="constant"):
        seg.fit(np.full((40, 40), 1.0, np.float32), np.zeros((40, 40), np.int32))
    with pytest.raises(ValueError, match="no finite pixels"):
        trained.predict(np.full((40, 40), np.nan, np.float32), np.ones((40, 40), np.float32))
    with pytest.raises(ValueError, match="shape"):
        seg.fit(image, truth[:50], rms)
    with pytest.raises(ValueError, match="shape"):
        trained.predict(image, rms[:, :50])
    with pytest.raises(ValueError, match="no galaxy pixels"):
        seg.fit(image, np.zeros_like(truth), rms)
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[:3] = 1
    with pytest.raises(ValueError, match="paint some pixels"):
        seg.fit_scribbles(image, scribbles, rms)
    scribbles[50, 50] = 7
    with pytest.raises(ValueError, match="only hold 0"):
        seg.fit_scribbles(image, scribbles, rms)
    if trained.study:
        with pytest.raises(ValueError, match="rms"):
            trained.predict(image)  # trained with an rms channel
    else:
        assert trained.predict(image).labels.max() > 0  # the galaxy features take the noise from the sky mesh
    with pytest.raises(ValueError, match="window"):
        ForestSegmenter(window=4)


def test_images_too_big_for_memory_are_processed_in_tiles(trained):
    image, rms, _ = blob_field(seed=7)
    expected = trained.predict(image, rms).labels
    tiled = copy.copy(trained).configure(tile_size=32)  # 96 x 96 is more than 2 x 2 tiles of 32²
    labels = tiled.predict(image, rms).labels
    assert isinstance(labels, np.ndarray)  # numpy in, numpy out
    np.testing.assert_array_equal(labels, expected)


def test_training_on_several_images_pools_their_pixels():
    fields = [blob_field(seed=s) for s in (8, 9)]
    seg = ForestSegmenter(**TINY).fit([f[0] for f in fields], [f[2] for f in fields], [f[1] for f in fields])
    assert seg.provenance["n_images"] == 2
    labelled = seg.provenance["labelled_pixels"]
    assert labelled["galaxy"] == sum(int((f[2] > 0).sum()) for f in fields)
    image, rms, truth = blob_field(seed=10)
    assert iou(seg.predict(image, rms).labels > 0, truth > 0) > 0.6
    with pytest.raises(ValueError, match="pair up"):
        ForestSegmenter(**TINY).fit([fields[0][0]], [f[2] for f in fields])


def test_a_study_forest_saved_before_the_galaxy_features_still_loads(tmp_path):
    image, rms, truth = blob_field(seed=11)
    study = ForestSegmenter(**TINY, features="study").fit(image, truth, rms)
    study.save(tmp_path / "old")
    cfg_path = tmp_path / "old" / "config.json"
    config = json.loads(cfg_path.read_text())
    for key in ("features", "scales", "background_box", "sky_gate"):  # what an older version wrote
        del config["params"][key]
    config["params"]["class_balance"] = True
    cfg_path.write_text(json.dumps(config))
    loaded = ForestSegmenter.load(tmp_path / "old")
    assert loaded.params.features == "study" and len(loaded.feature_names) == 13
    np.testing.assert_array_equal(loaded.predict_proba(image, rms), study.predict_proba(image, rms))


def test_compiled_prediction_equals_scikit_learn(trained):
    from napari_galseg.segmenters.tree_predict import flatten_forest, forest_proba

    image, rms, _ = blob_field(seed=12)
    stack, _ = trained._prepare(image, rms)
    feats = trained._features(stack)
    planes = feats.reshape(feats.shape[0], -1)
    expected = trained.model.predict_proba(planes.T)[:, 1]
    got = forest_proba(flatten_forest(trained.model), planes, n_threads=2)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    some = np.arange(0, planes.shape[1], 7)
    part = forest_proba(flatten_forest(trained.model), planes, index=some, fill=-1.0)
    np.testing.assert_allclose(part[some], expected[some], atol=1e-6)
    assert np.all(np.delete(part, some) == -1.0)


def test_galaxy_features_generalise_to_another_psf_depth_and_density():
    """Trained on one field, scored on a field of another seed, PSF, depth and density: the galaxy
    features find what the photutils pipeline finds; the study's features do not (IoU ~0.05).
    (The issue's IoU >= 0.65 target is on 2048² fields: benchmarks/bench_quality.py.)"""
    from napari_galseg.segmenters.photutils import segment
    from napari_galseg.synth import make_field

    train = make_field(512, seed=1)
    test = make_field(384, seed=7, psf="gaussian", psf_fwhm=3.5, galaxy_density=1200.0, sky_level=120.0)
    galaxy = ForestSegmenter(max_train_pixels=80_000).fit(train.image, train.truth, train.rms)
    study = ForestSegmenter(**{**STUDY_PRESET, "n_estimators": 10}, max_train_pixels=40_000).fit(train.image, train.truth, train.rms)
    scores = {name: iou(seg.predict(test.image, test.rms).labels > 0, test.truth > 0) for name, seg in (("galaxy", galaxy), ("study", study))}
    scores["photutils"] = iou(segment(test.image, rms=test.rms, catalog="none").labels > 0, test.truth > 0)
    assert scores["galaxy"] > 0.6 and scores["galaxy"] > scores["photutils"] - 0.02, scores
    assert scores["galaxy"] > scores["study"] + 0.3, scores
