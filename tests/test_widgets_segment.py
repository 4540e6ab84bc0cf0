"""The generic segmenter widget: parameters from the dataclass, FOV and whole-image runs, layers out."""
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import ndimage

from napari_galseg import segmenters
from napari_galseg.segmenters import Segmentation, Segmenter, register

pytestmark = pytest.mark.gui


@dataclass
class ThresholdParams:
    nsigma: float = 3.0
    min_area: int = 4


@register
class ThresholdSegmenter(Segmenter):
    """A real (if simple) segmenter for exercising the widget: threshold at nsigma x rms, label."""

    name = "test-threshold"
    Params = ThresholdParams

    def _predict(self, image, rms, region, progress):
        image = np.asarray(image, float)
        sky = np.median(image)
        noise = np.asarray(rms) if rms is not None else 1.4826 * np.median(np.abs(image - sky))
        if progress:
            progress(1, 2, "thresholding")
        labels, _ = ndimage.label(image - sky > self.params.nsigma * noise)
        areas = np.bincount(labels.ravel())
        labels[areas[labels] < self.params.min_area] = 0
        if progress:
            progress(2, 2, "done")
        return Segmentation(labels.astype(np.int32))


def _blobs(shape=(200, 300)):
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for y, x in [(50, 60), (120, 200), (160, 40)]:
        img += 30 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 20.0)
    return img.astype(np.float32)


def test_widget_runs_segmenter_into_labels_layer(make_napari_viewer, qtbot):
    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="img")
    widget = SegmenterWidget(viewer, method="test-threshold")
    assert [w.name for w in widget.params] == ["nsigma", "min_area"]
    assert widget.image_combo.value.name == "img"
    widget.params.nsigma.value = 5.0

    with qtbot.waitSignal(widget.work_finished, timeout=60000):  # connected before the worker starts
        widget.run(field_of_view=False)
    layer = viewer.layers["test-threshold"]  # a short name; the parameters are in the metadata
    assert layer.data.max() == 3
    assert layer.metadata["galseg_role"] == "prediction" and layer.metadata["params"]["nsigma"] == 5.0

    # running again with the same parameters replaces the layer's data instead of stacking layers
    assert "new layer 'test-threshold'" in widget.status.value and not widget.undo_button.enabled
    n_layers = len(viewer.layers)
    first = layer.data
    with qtbot.waitSignal(widget.work_finished, timeout=60000):  # connected before the worker starts
        widget.run(field_of_view=False)
    assert len(viewer.layers) == n_layers
    # ... and says so, with an undo that brings the replaced labels back
    assert "replaced 'test-threshold'" in widget.status.value and widget.undo_button.enabled
    assert layer.data is not first
    assert widget.undo_replace() and layer.data is first and not widget.undo_button.enabled
    assert "previous labels are back" in widget.status.value and not widget.undo_replace()
    # other parameters: a second layer beside the first, for comparison
    widget.params.nsigma.value = 4.0
    with qtbot.waitSignal(widget.work_finished, timeout=60000):
        widget.run(field_of_view=False)
    assert len(viewer.layers) == n_layers + 1
    assert viewer.layers[-1].name.startswith("test-threshold") and viewer.layers[-1].metadata["params"]["nsigma"] == 4.0


def test_field_of_view_run_is_placed_where_it_was_cut(make_napari_viewer, qtbot, monkeypatch):
    from napari_galseg.widgets import segment

    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="img")
    widget = segment.SegmenterWidget(viewer, method="test-threshold")
    monkeypatch.setattr(segment, "visible_region", lambda layer: (slice(100, 200), slice(150, 300)))
    with qtbot.waitSignal(widget.work_finished, timeout=60000):  # connected before the worker starts
        widget.run(field_of_view=True)
    layer = viewer.layers["test-threshold [view]"]
    assert layer.data.shape == (100, 150)
    np.testing.assert_allclose(layer.translate, [100, 150])
    # the blob at (120, 200) is found at the same world position
    assert layer.data[120 - 100, 200 - 150] > 0


def test_errors_are_reported_not_raised(make_napari_viewer):
    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="img")
    viewer.add_image(np.ones((10, 10), np.float32), name="rms-small")
    widget = SegmenterWidget(viewer, method="test-threshold")
    widget.rms_combo.value = viewer.layers["rms-small"]
    assert widget.run(field_of_view=False) is None
    assert "shape" in widget.status.value


def test_error_notification_names_the_method_once(make_napari_viewer):
    from napari.utils.notifications import notification_manager

    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="img")
    widget = SegmenterWidget(viewer, method="unet")
    widget.model_choice.value = ""  # no model chosen (not even the built-in): nothing to run
    before = len(notification_manager.records)
    assert widget.run(field_of_view=False) is None
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert messages == ["unet: choose a model, load a model folder or train on a truth layer first"]


def test_the_unet_runs_its_built_in_model_on_a_frame_with_no_rms(make_napari_viewer, qtbot):
    """A frame dropped in with no rms and no truth: the U-Net widget's Run gives labels from the
    built-in model, and says the noise was estimated."""
    from napari_galseg.builtin_models import DEFAULTS
    from napari_galseg.synth import make_field
    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer()
    viewer.add_image(make_field(256, seed=4).image, name="frame")
    widget = SegmenterWidget(viewer, method="unet")
    assert widget.model_choice.value.endswith(DEFAULTS["unet"])  # the built-in first, chosen
    assert "(built-in)" in widget.model_choice.native.currentText()
    with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
        widget.run(field_of_view=False)
    labels = [layer for layer in viewer.layers if layer.metadata.get("galseg_role") == "prediction"]
    assert labels and labels[0].data.max() > 0
    assert "objects" in widget.status.value and "noise was estimated" in widget.status.value


def test_every_registered_method_gets_a_widget(make_napari_viewer):
    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="img")
    for name in segmenters.available():
        widget = SegmenterWidget(viewer, method=name)
        assert len(list(widget.params)) > 0
        # the form shows every default exactly (no rounding of small floats such as contrast=0.001)
        assert widget.current_params() == widget.segmenter_cls.Params(), name
        assert widget.layer_name() == name and widget.layer_name(field_of_view=True) == f"{name} [view]"


def test_unet_widget_loads_a_model_and_predicts_the_view_with_context(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    from napari_galseg.segmenters.unet import UNetSegmenter
    from napari_galseg.synth import make_field
    from napari_galseg.widgets import segment

    field = make_field(256, seed=0)
    model = UNetSegmenter(depth=2, base_width=4, patch_size=64, epochs=1, patches_per_epoch=8, batch_size=8,
                          val_max_patches=2, device="cpu", tile_size=128, tile_overlap=32, halo=32, bf16=False)
    model.fit(field.image, field.truth, field.rms)
    model.save(tmp_path / "unet")

    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="img")
    viewer.add_image(field.rms, name="rms")
    widget = segment.UNetWidget(viewer)
    widget.rms_combo.value = viewer.layers["rms"]
    widget.model_dir.value = str(tmp_path / "unet")
    widget._load_model()
    assert widget.model is not None
    import dataclasses
    shown, loaded = dataclasses.asdict(widget.current_params()), dataclasses.asdict(widget.model.params)
    assert {k: v for k, v in shown.items() if loaded[k] != v} == {}

    monkeypatch.setattr(segment, "visible_region", lambda layer: (slice(64, 192), slice(32, 160)))
    with qtbot.waitSignal(widget.work_finished, timeout=60000):  # connected before the worker starts
        widget.run(field_of_view=True)
    layer = viewer.layers[-1]
    assert layer.name == "unet [view]" and layer.metadata["params"]["depth"] == 2
    expected = UNetSegmenter.load(tmp_path / "unet").predict(field.image, rms=field.rms, region=(64, 192, 32, 160))
    np.testing.assert_array_equal(layer.data > 0, expected.labels > 0)
    np.testing.assert_allclose(layer.translate, [64, 32])


def test_image_and_rms_are_preselected_from_the_reader_metadata(make_napari_viewer):
    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer()
    viewer.add_image(_blobs(), name="img", metadata={"galseg_kind": "image"})
    viewer.add_image(np.ones((200, 300), np.float32), name="rms", metadata={"galseg_kind": "rms"})
    widget = SegmenterWidget(viewer, method="test-threshold")
    assert widget.image_combo.value.name == "img" and widget.rms_combo.value.name == "rms"


def test_photutils_runs_compiled_kernels_in_a_viewer_that_has_drawn(make_napari_viewer, qtbot):
    """numba's LLVM beside Mesa's (llvmpipe draws the canvas under Xvfb): the compiled kernels
    must load and run after the viewer has rendered, and the viewer must keep drawing."""
    from napari_galseg.widgets.segment import SegmenterWidget

    viewer = make_napari_viewer(show=True)
    viewer.add_image(_blobs(), name="img")
    assert viewer.screenshot(canvas_only=True).any()  # the canvas has been drawn
    widget = SegmenterWidget(viewer, method="photutils")
    with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
        widget.run(field_of_view=False)
    labels = [layer for layer in viewer.layers if layer.name.startswith("photutils")]
    assert labels and labels[0].data.max() == 3
    assert viewer.screenshot(canvas_only=True).any()
    assert "scores" in widget.status.value and "(signal-to-noise of each object" in widget.status.value  # explained
