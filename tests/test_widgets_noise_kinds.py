"""The noise-kind choice and the mask in the widgets (the CLI's --rms/--variance/--weight and
--mask FILE:BITS): a weight layer gives the labels of the equivalent rms layer, a masked stripe is
never labelled, and the training widget hands its job the converted image and 1σ map."""
import numpy as np
import pytest

from napari_galseg.synth import make_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field():
    f = make_field(192, seed=7)
    stripe = np.zeros(f.image.shape, bool)
    stripe[100:112] = True
    weight = (1 / f.rms.astype(np.float64) ** 2).astype(np.float32)  # as DES WGT / HST WHT are written
    variance = (f.rms.astype(np.float64) ** 2).astype(np.float32)
    return f, stripe, weight, variance


def _viewer(make_napari_viewer, field):
    f, stripe, weight, variance = field
    viewer = make_napari_viewer()
    viewer.add_image(f.image, name="img")
    viewer.add_image(f.rms, name="rms")
    viewer.add_image(weight, name="wgt")
    viewer.add_image(variance, name="var")
    viewer.add_labels(np.where(stripe, 4, 0).astype(np.int16), name="msk")  # bit 2 set in the stripe
    return viewer


def _run(widget, qtbot):
    with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
        assert widget.run(field_of_view=False) is not None
    return np.array(_last_labels(widget.viewer))


def _last_labels(viewer):
    from napari.layers import Labels

    return [layer for layer in viewer.layers if isinstance(layer, Labels) and layer.metadata.get("method")][-1].data


def test_a_weight_layer_gives_the_labels_of_the_rms_layer_and_a_mask_is_never_labelled(make_napari_viewer, qtbot, field):
    from napari_galseg.widgets.segment import PhotutilsWidget

    f, stripe, _, _ = field
    viewer = _viewer(make_napari_viewer, field)
    widget = PhotutilsWidget(viewer)
    widget.params.box_size.value = 32
    widget.image_combo.value = viewer.layers["img"]
    assert set(widget.noise_kind.choices) == {"rms", "variance", "weight"}
    widget.rms_combo.value = viewer.layers["rms"]
    widget.noise_kind.value = "rms"
    by_rms = _run(widget, qtbot)
    assert by_rms.max() >= 5 and by_rms[stripe].any(), widget.status.value

    widget.rms_combo.value = viewer.layers["wgt"]
    widget.noise_kind.value = "weight"
    np.testing.assert_array_equal(_run(widget, qtbot), by_rms)
    widget.rms_combo.value = viewer.layers["var"]
    widget.noise_kind.value = "variance"
    np.testing.assert_array_equal(_run(widget, qtbot), by_rms)
    # the weight read as an rms map: a different (wrong) answer, so the choice matters
    widget.rms_combo.value = viewer.layers["wgt"]
    widget.noise_kind.value = "rms"
    assert not np.array_equal(_run(widget, qtbot), by_rms)

    widget.noise_kind.value = "weight"
    widget.mask_combo.value = viewer.layers["msk"]
    widget.mask_bits.value = "0"  # bit 0 is never set: nothing masked
    np.testing.assert_array_equal(_run(widget, qtbot), by_rms)
    widget.mask_bits.value = "2"
    masked = _run(widget, qtbot)
    assert not masked[stripe].any() and masked.max() >= 5
    widget.mask_bits.value = "BAD"  # a name the mask's (absent) header does not give: one line, no crash
    assert widget.run(field_of_view=False) is None and "not named" in widget.status.value


def test_the_training_widget_gives_its_job_the_converted_image_and_rms(make_napari_viewer, field):
    from napari_galseg.widgets.training import TrainingWidget

    f, stripe, _, _ = field
    viewer = _viewer(make_napari_viewer, field)
    viewer.add_labels(f.truth, name="truth")
    widget = TrainingWidget(viewer)
    widget.inputs["truth"].layer.value = viewer.layers["truth"]
    widget.inputs["image"].layer.value = viewer.layers["img"]
    widget.inputs["rms"].layer.value = viewer.layers["wgt"]
    widget.noise_kind.value = "weight"
    widget.mask.layer.value = viewer.layers["msk"]
    files, arrays, _ = widget._sources()
    assert not files
    rms, image = np.asarray(arrays["rms"]), np.asarray(arrays["image"])
    np.testing.assert_array_equal(rms, f.rms)
    assert np.isnan(image[stripe]).all() and np.array_equal(image[~stripe], f.image[~stripe])
    widget.noise_kind.value = "rms"
    widget.mask.layer.value = None
    files, arrays, _ = widget._sources()
    assert arrays["rms"] is viewer.layers["wgt"].data  # a 1σ map goes to the job as it is


def test_the_scribbles_forest_never_labels_the_masked_stripe(make_napari_viewer, qtbot, field):
    from napari_galseg.widgets.forest_scribbles import ForestScribbleWidget

    f, stripe, _, _ = field
    viewer = _viewer(make_napari_viewer, field)
    widget = ForestScribbleWidget(viewer)
    widget.image_combo.value = viewer.layers["img"]
    widget.n_estimators.value = 10
    widget.extra.value = False
    scribbles = widget.scribbles_layer()
    every = np.zeros(f.truth.shape, bool)
    every[::7, ::7] = True
    scribbles.data = np.where(every & (f.truth > 0), 2, np.where(every & (f.truth == 0), 1, 0)).astype(np.uint8)
    widget.rms_combo.value = viewer.layers["wgt"]
    widget.noise_kind.value = "weight"

    def predicted():
        with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
            assert widget.train() is not None
        return np.array(viewer.layers["forest prediction"].data)

    assert predicted()[stripe].any()
    widget.mask_combo.value = viewer.layers["msk"]
    labels = predicted()
    assert not labels[stripe].any() and labels.max() > 0
