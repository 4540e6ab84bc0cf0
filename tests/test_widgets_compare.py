"""The metrics dock's "compare" action: a TP / FP / FN pixel layer and matched / missed / spurious
markers over the image, whose table rows centre the view; checked on a screenshot (Xvfb)."""
from __future__ import annotations

import os

import numpy as np
from qtpy.QtCore import Qt

from napari_galseg.widgets._layers import camera
from napari_galseg.widgets.metrics import MetricsDock


def _scene():
    yy, xx = np.mgrid[:200, :300]
    image = np.random.default_rng(0).normal(0.0, 1.0, (200, 300)).astype(np.float32)
    true = np.zeros((200, 300), np.int32)
    pred = np.zeros_like(true)
    for i, (y, x) in enumerate([(50, 60), (140, 150)], start=1):
        disc = (yy - y) ** 2 + (xx - x) ** 2 < 25 ** 2
        true[disc] = i
        image[disc] += 5.0
    pred[(yy - 50) ** 2 + (xx - 64) ** 2 < 25 ** 2] = 4  # matched, shifted: FP on its right, FN on its left
    pred[(yy - 60) ** 2 + (xx - 240) ** 2 < 20 ** 2] = 5  # spurious; truth 2 is missed
    return image, true, pred


def test_compare_draws_outcomes_and_rows_jump_to_objects(make_napari_viewer, qtbot):
    image, true, pred = _scene()
    viewer = make_napari_viewer(show=True)
    viewer.add_image(image, name="img", contrast_limits=(-3, 8))
    viewer.add_labels(true, name="true", metadata={"galseg_role": "truth"})
    viewer.add_labels(pred, name="unet", metadata={"galseg_role": "prediction"})
    dock = MetricsDock(viewer, synchronous=True)
    viewer.window.add_dock_widget(dock, name="Metrics", area="right")
    dock.set_layers("unet", "true")
    viewer.layers["true"].visible = viewer.layers["unet"].visible = False
    qtbot.mouseClick(dock.compare.button, Qt.LeftButton)
    result = dock.compare.result
    assert result is not None and dock.compare.summary.text() == "1 matched, 1 missed, 1 spurious (IoU > 0.5)"
    pixels = viewer.layers["compare unet vs true"]
    points = viewer.layers["compare objects unet vs true"]
    assert pixels.data[50, 86] == 2 and pixels.data[50, 38] == 3 and pixels.data[50, 60] == 1  # FP, FN, TP
    assert sorted(points.features["object"]) == ["matched", "missed", "spurious"]
    assert dock.pred_combo.currentText() == "unet"  # the comparison layers are never scored
    assert "compare unet vs true" not in [dock.pred_combo.itemText(i) for i in range(dock.pred_combo.count())]

    viewer.reset_view()
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    if os.environ.get("GALSEG_SHOTS"):
        from PIL import Image

        Image.fromarray(shot).save(os.path.join(os.environ["GALSEG_SHOTS"], "compare.png"))
    r, g, b = (shot[..., i].astype(int) for i in range(3))
    assert ((g > r + 60) & (g > b + 60)).sum() > 500   # TP green
    assert ((r > g + 60) & (r > b + 60)).sum() > 200   # FP and the spurious marker red
    assert ((b > r + 60) & (b > g + 30)).sum() > 500   # FN and the missed object blue

    rows = [dock.compare.table.item(i, 0).text() for i in range(dock.compare.table.rowCount())]
    assert rows == ["missed", "spurious", "matched"]  # what needs looking at first
    qtbot.mouseClick(dock.compare.table.viewport(), Qt.LeftButton,
                     pos=dock.compare.table.visualItemRect(dock.compare.table.item(0, 1)).center())
    np.testing.assert_allclose(camera(viewer).center[-2:], [140.0, 150.0], atol=0.5)  # the missed one
    dock.compare.go_to_row(1)
    np.testing.assert_allclose(camera(viewer).center[-2:], [60.0, 240.0], atol=0.5)  # the spurious one
    dock.compare.run()  # again: the layers are replaced, not stacked
    assert sum(layer.name.startswith("compare") for layer in viewer.layers) == 2
