"""The scribble-trained Random Forest widget in a real viewer."""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.gui

BLOBS = [(40, 50), (90, 130), (120, 40)]


def _field(shape=(160, 180)):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    for y, x in BLOBS:
        image += 25 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 5.0**2))
    return image.astype(np.float32)


@pytest.fixture
def widget(make_napari_viewer):
    from napari_galseg.widgets.forest_scribbles import ForestScribbleWidget

    viewer = make_napari_viewer()
    viewer.add_image(_field(), name="img")
    w = ForestScribbleWidget(viewer)
    w.n_estimators.value = 10
    w.extra.value = False  # the study's 13 features only: quicker
    return w


def _paint(layer):
    layer.data[5:9, 5:170] = 1  # sky strokes along two edges
    layer.data[150:153, 20:160] = 1
    layer.data[38:43, 47:53] = 2  # a dab on the first blob
    layer.refresh()


def test_train_on_scribbles_shows_prediction_of_the_view(widget, qtbot):
    viewer = widget.viewer
    scribbles = viewer.layers["scribbles"]  # created for the chosen image
    assert scribbles.data.shape == (160, 180) and scribbles.data.max() == 0

    assert widget.train() is None and "paint label 1" in widget.status.value  # nothing painted yet
    _paint(scribbles)
    with qtbot.waitSignal(widget.work_finished, timeout=30000):  # connected before the worker starts
        widget.train()
    prediction = viewer.layers["forest prediction"]
    labels = np.asarray(prediction.data)
    offset = np.round(np.asarray(prediction.translate)).astype(int)
    for y, x in BLOBS:  # every blob found, also the two never painted
        assert labels[y - offset[0], x - offset[1]] > 0
    assert len({labels[y - offset[0], x - offset[1]] for y, x in BLOBS}) == 3  # separate objects
    assert (labels > 0).mean() < 0.15  # the sky stays sky
    assert widget.trainings == 1 and "objects in view" in widget.status.value
    assert viewer.layers[-1].name == "scribbles"  # kept on top for more painting


def test_live_update_retrains_after_a_stroke_and_model_saves(widget, qtbot, tmp_path):
    scribbles = widget.viewer.layers["scribbles"]
    _paint(scribbles)
    widget.live.value = True
    scribbles.paint((125, 40), 2)  # a brush stroke on the third blob emits the paint event
    qtbot.waitUntil(lambda: widget.trainings == 1, timeout=30000)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)
    assert widget.model.provenance["trained_on"] == "scribbles"

    widget.save_dir.value = tmp_path / "rf"
    assert widget.save_model() == tmp_path / "rf"
    config = json.loads((tmp_path / "rf" / "config.json").read_text())
    assert config["method"] == "forest" and config["params"]["n_estimators"] == 10
    # a folder that is not empty is never written into
    assert widget.save_model() is None and "not empty" in widget.status.value


def test_prediction_covers_only_the_visible_field_of_view(make_napari_viewer, qtbot):
    from napari_galseg.widgets._layers import camera
    from napari_galseg.widgets.forest_scribbles import ForestScribbleWidget

    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(_field(), name="img")
    widget = ForestScribbleWidget(viewer)
    widget.n_estimators.value = 10
    widget.extra.value = False
    _paint(viewer.layers["scribbles"])
    camera(viewer).center = (90, 130)  # zoom on the second blob
    camera(viewer).zoom = 8 * camera(viewer).zoom
    qtbot.waitUntil(lambda: np.ptp(np.asarray(image.corner_pixels)[:, 0]) < 100, timeout=30_000)
    with qtbot.waitSignal(widget.work_finished, timeout=30000):  # connected before the worker starts
        widget.train()
    prediction = viewer.layers["forest prediction"]
    offset = np.round(np.asarray(prediction.translate)).astype(int)
    assert prediction.data.shape[0] < 100 and prediction.data.shape[1] < 180 and (offset > 0).all()
    assert prediction.data[90 - offset[0], 130 - offset[1]] > 0  # the blob in view is found
