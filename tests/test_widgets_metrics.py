"""The metrics dock: default layers, live recomputation after painting, history and CSV export."""
import csv

import numpy as np
import pytest

from napari_galseg.metrics import pixel_metrics

pytestmark = pytest.mark.gui


def _truth(shape=(120, 160)):
    true = np.zeros(shape, np.int32)
    true[10:40, 10:40] = 1
    true[60:100, 50:90] = 2
    true[20:50, 110:150] = 3
    return true


def _dock(viewer, **kwargs):
    from napari_galseg.widgets.metrics import MetricsDock

    dock = MetricsDock(viewer, **kwargs)
    viewer.window.add_dock_widget(dock, name="Metrics")
    return dock


def test_defaults_pick_truth_and_newest_prediction(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    true = _truth()
    viewer.add_image(true.astype(np.float32), name="img")
    viewer.add_labels(true, name="catalogue", metadata={"galseg_kind": "labels", "galseg_role": "truth"})
    viewer.add_labels(np.roll(true, 3, axis=1), name="kmeans")
    viewer.add_labels(np.roll(true, 5, axis=1), name="photutils", metadata={"galseg_role": "prediction"})
    dock = _dock(viewer)
    assert dock.truth_layer.name == "catalogue"
    assert dock.prediction_layer.name == "photutils"
    # a new run appears: it becomes the prediction and is scored
    viewer.add_labels(np.roll(true, 1, axis=0), name="unet", metadata={"galseg_role": "prediction"})
    assert dock.prediction_layer.name == "unet"
    qtbot.waitUntil(lambda: dock.current is not None and not dock.busy, timeout=30_000)
    assert dock.value("iou") == pytest.approx(pixel_metrics(np.roll(true, 1, axis=0), true)["iou"])


@pytest.mark.parametrize("scribbles_first", [True, False])
def test_the_empty_scribbles_layer_is_never_the_prediction(make_napari_viewer, scribbles_first):
    from napari_galseg.widgets.forest_scribbles import ForestScribbleWidget

    viewer = make_napari_viewer()
    true = _truth()
    viewer.add_image(true.astype(np.float32), name="img")
    viewer.add_labels(true, name="true")
    viewer.add_labels(np.roll(true, 3, axis=1), name="pred_kmeans", metadata={"galseg_kind": "labels"})  # a file
    if scribbles_first:  # the scribble widget opened before the metrics dock
        ForestScribbleWidget(viewer).scribbles_layer()
        dock = _dock(viewer)
    else:
        dock = _dock(viewer)
        ForestScribbleWidget(viewer).scribbles_layer()
    assert "scribbles" in viewer.layers
    assert (dock.prediction_layer.name, dock.truth_layer.name) == ("pred_kmeans", "true")


def test_truth_found_by_name(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(_truth(), name="pred")
    viewer.add_labels(_truth(), name="true")
    dock = _dock(viewer)
    assert (dock.prediction_layer.name, dock.truth_layer.name) == ("pred", "true")


def test_painting_the_prediction_updates_iou(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    true = _truth()
    pred = true.copy()
    pred[60:100, 50:90] = 0  # object 2 missed
    viewer.add_labels(true, name="true")
    layer = viewer.add_labels(pred, name="prediction")
    dock = _dock(viewer)
    qtbot.waitUntil(lambda: dock.current is not None and not dock.busy, timeout=30_000)
    before = dock.value("iou")
    assert before == pytest.approx(pixel_metrics(pred, true)["iou"])
    assert dock.value("completeness") == pytest.approx(2 / 3)
    runs = dock.n_computed

    layer.brush_size = 15
    for y in range(64, 100, 6):  # paint object 2 back, stroke by stroke
        for x in range(54, 90, 6):
            layer.paint((y, x), 2)
    qtbot.waitUntil(lambda: dock.n_computed > runs and not dock.busy, timeout=30_000)
    qtbot.waitUntil(lambda: dock.value("iou") == pytest.approx(pixel_metrics(layer.data, true)["iou"]), timeout=30_000)
    assert dock.value("iou") > before
    assert dock.table.rowCount() > 5
    ious = {dock.table.item(r, 0).text(): dock.table.item(r, 1).text() for r in range(dock.table.rowCount())}
    assert float(ious["iou"]) == pytest.approx(dock.value("iou"), abs=1e-4)

    # debouncing: a burst of edits gives one computation, not one per edit
    runs = dock.n_computed
    for x in range(0, 10):
        layer.paint((5, 5 + x), 7)
    qtbot.waitUntil(lambda: dock.n_computed > runs and not dock.busy, timeout=30_000)
    qtbot.wait(3 * dock.DEBOUNCE_MS)
    assert dock.n_computed == runs + 1

    # the same prediction keeps one history row; a data replacement (a new run) updates it
    assert len(dock.history) == 1
    layer.data = np.zeros_like(true)
    qtbot.waitUntil(lambda: dock.value("iou") == 0.0 and not dock.busy, timeout=30_000)
    dock.iou_spin.setValue(0.8)
    qtbot.waitUntil(lambda: len(dock.history) == 2 and not dock.busy, timeout=30_000)

    out = tmp_path / "history.csv"
    dock.export_csv(out)
    rows = list(csv.DictReader(out.open()))
    assert [r["iou_threshold"] for r in rows] == ["0.5", "0.8"]
    assert rows[0]["prediction"] == "prediction" and float(rows[0]["iou"]) == 0.0
    with pytest.raises(FileExistsError):
        dock.export_csv(out)


def test_field_of_view_prediction_is_aligned_with_the_truth(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    true = _truth()
    viewer.add_labels(true, name="true")
    # a prediction made on a field of view: a crop translated onto the image
    viewer.add_labels(true[50:110, 40:100].copy(), name="fov", translate=(50, 40))
    dock = _dock(viewer, synchronous=True)
    dock.compute()
    assert dock.value("iou") == 1.0 and dock.value("n_true") == 1
    viewer.add_labels(true[:10, :10].copy(), name="offgrid", translate=(115, 155))
    dock.set_layers("offgrid", "true")
    dock.compute()
    assert "does not lie on the pixel grid" in dock.status.text()


def test_field_of_view_scope_scores_only_the_visible_part(make_napari_viewer, qtbot):
    from napari_galseg.widgets._layers import camera

    viewer = make_napari_viewer(show=True)
    true = _truth((400, 600))
    viewer.add_labels(true, name="true")
    viewer.add_labels(np.roll(true, 2, axis=1), name="pred")
    dock = _dock(viewer, synchronous=True)
    dock.compute()
    assert dock.value("n_pixels") == true.size
    dock.scope_combo.setCurrentText("Field of view")
    camera(viewer).center = (0, 30, 30)
    camera(viewer).zoom = 8
    qtbot.waitUntil(lambda: dock.value("n_pixels") < true.size // 10, timeout=30_000)
    assert dock.history[-1]["scope"] == "Field of view"
    assert dock.value("n_pixels") > 0

