"""Every registered segmenter through the same checks: a new method gets them for free.

Small settings per method keep this fast; a method missing here runs with its defaults.
"""
import subprocess
import sys
import threading

import numpy as np
import pytest

from napari_galseg import segmenters
from napari_galseg.progress import Cancelled
from napari_galseg.segmenters import Segmentation
from napari_galseg.synth import make_field

#: settings that make each method quick on a 128² field
QUICK = {
    "photutils": {"box_size": 32},
    "kmeans": {"sample_size": 5000},
    "forest": {"n_estimators": 5, "max_train_pixels": 5000},
    "unet": {"depth": 2, "base_width": 4, "patch_size": 32, "block_size": 32, "epochs": 1, "patches_per_epoch": 8, "batch_size": 8,
             "val_max_patches": 2, "device": "cpu", "tile_size": 64, "tile_overlap": 16, "halo": 16, "bf16": False},
    "maskrcnn": {"widths": [8, 16, 32, 64], "fpn_channels": 16, "rois_per_image": 64, "epochs": 1, "patches_per_epoch": 2,
                 "batch_size": 2, "patch_size": 64, "block_size": 32, "val_max_patches": 2, "tile_size": 64,
                 "tile_overlap": 16, "subtract_background": False, "score_threshold": 0.0, "device": "cpu"},
    "detr": {"d_model": 32, "heads": 8, "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 64,
             "backbone_widths": [8, 16, 32, 64], "epochs": 1, "patches_per_epoch": 2, "batch_size": 2, "patch_size": 64,
             "block_size": 32, "val_max_patches": 2, "tile_size": 64, "tile_overlap": 16, "subtract_background": False,
             "score_threshold": 0.0, "device": "cpu"},
}
METHODS = [name for name in segmenters.available() if not name.startswith("test-")]


@pytest.fixture(scope="module")
def fields():
    return make_field(128, seed=1), make_field(128, seed=2)


@pytest.fixture(scope="module")
def ready(fields):
    """One ready-to-predict segmenter per method (trained on the first field where it learns)."""
    train, _ = fields
    out = {}
    for name in METHODS:
        segmenter = segmenters.get(name)(**QUICK.get(name, {}))
        if segmenter.capabilities.trainable:
            segmenter.fit(train.image, train.truth, train.rms)
        out[name] = segmenter
    return out


@pytest.mark.parametrize("name", METHODS)
def test_predict_returns_int32_labels_of_the_image(ready, fields, name):
    _, test = fields
    result = ready[name].predict(test.image, test.rms)
    assert isinstance(result, Segmentation)
    labels = np.asarray(result.labels)
    assert labels.dtype == np.int32 and labels.shape == test.image.shape and labels.min() >= 0
    n = int(labels.max())
    cls = type(ready[name])
    if cls.capabilities.scored:
        assert result.scores is not None and len(result.scores) == n + 1
    if cls.capabilities.catalog:
        assert result.catalog is not None and len(result.catalog) == n
    for per_id in (result.scores, result.classes):
        assert per_id is None or len(per_id) == n + 1


@pytest.mark.parametrize("name", METHODS)
def test_region_prediction(ready, fields, name):
    """A region gives labels of the region's shape (scores aligned with them); where the method
    promises it, exactly the crop of the whole-image result."""
    _, test = fields
    segmenter = ready[name]
    region = (16, 96, 40, 120)
    part = segmenter.predict(test.image, test.rms, region=region)
    assert part.labels.shape == (80, 80)
    if part.scores is not None:
        assert len(part.scores) == int(np.max(part.labels)) + 1
    if segmenter.capabilities.region_equals_crop:
        whole = np.asarray(segmenter.predict(test.image, test.rms).labels)[16:96, 40:120]
        np.testing.assert_array_equal(part.labels > 0, whole > 0)


@pytest.mark.parametrize("name", METHODS)
def test_model_folder_round_trip_gives_identical_output(ready, fields, tmp_path, name):
    _, test = fields
    segmenter = ready[name]
    if name == "kmeans":
        segmenter.fit(test.image, rms=test.rms)  # unsupervised: saves the clusters it found
    segmenter.save(tmp_path / name)
    loaded = segmenters.Segmenter.load(tmp_path / name)
    assert type(loaded) is type(segmenter) and loaded.params == segmenter.params
    assert loaded.run_options == segmenter.run_options and loaded.train_config == segmenter.train_config
    np.testing.assert_array_equal(np.asarray(loaded.predict(test.image, test.rms).labels),
                                  np.asarray(segmenter.predict(test.image, test.rms).labels))


@pytest.mark.parametrize("name", METHODS)
def test_progress_is_reported_and_cancel_is_honoured(ready, fields, name):
    _, test = fields
    calls = []
    ready[name].predict(test.image, test.rms, progress=lambda done, total, msg: calls.append((done, total)))
    assert calls and all(0 <= done <= total for done, total in calls if total)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        ready[name].predict(test.image, test.rms, cancel=cancel)


@pytest.mark.parametrize("name", METHODS)
def test_bad_inputs_give_the_documented_errors(ready, fields, name):
    _, test = fields
    with pytest.raises(ValueError):
        ready[name].predict(test.image, test.rms[:64])  # rms on another pixel grid
    with pytest.raises(ValueError):
        ready[name].predict(np.zeros((2, 32, 32), np.float32))  # not a 2-D image
    with pytest.raises(ValueError, match="unknown setting"):
        segmenters.get(name)(no_such_setting=1)


@pytest.mark.parametrize("name", METHODS)
def test_capabilities_and_settings_are_declared(name):
    cls = segmenters.get(name)
    segmenter = cls()
    layers = segmenter.settings()
    assert (layers["train"] is not None) == (cls.capabilities.trainable and cls.train_fields != ())
    assert set(layers["run"]) == set(cls.run_fields)
    # run options a method does not read are refused, not silently ignored
    unused = {"tile_size", "tile_overlap", "halo", "device", "n_workers"} - set(cls.run_fields)
    for option in unused:
        with pytest.raises(ValueError, match="unknown setting"):
            cls(**{option: 1})


def test_the_registry_imports_a_method_only_when_asked_for():
    """`galseg segment photutils` must never pay for torch (~700 MiB, seconds of start-up)."""
    code = (
        "import sys, numpy as np\n"
        "from astropy.io import fits\n"
        "from napari_galseg.cli import main\n"
        "from napari_galseg.synth import make_field\n"
        "import tempfile, pathlib\n"
        "d = pathlib.Path(tempfile.mkdtemp())\n"
        "fits.writeto(d / 'img.fits', make_field(128, seed=0).image)\n"
        "assert main(['segment', 'photutils', str(d / 'img.fits'), '-o', str(d / 'out.fits'), '--set', 'box_size=32']) == 0\n"
        "import napari_galseg.segmenters as s\n"
        "assert 'photutils' in s.available()\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'sklearn', 'napari', 'qtpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_methods_from_other_packages_come_through_the_entry_point_group(monkeypatch):
    from napari_galseg.segmenters import registry

    class FakeEntryPoint:
        name, value = "plugin-method", "napari_galseg.segmenters.kmeans:KMeansSegmenter"

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == registry.ENTRY_POINT_GROUP else [])
    assert "plugin-method" in segmenters.available()
    assert segmenters.get("plugin-method").name == "kmeans"
    with pytest.raises(KeyError, match="unknown segmenter 'nope'"):
        segmenters.get("nope")
