"""A newcomer's first session, scripted against a real viewer on a 1600×1000 screen (issue 29):
drop a field (the reader), segment it (Layers ▸ Segment), compare with the truth (metrics dock),
train a U-Net for a short time budget in the training dock, segment with the new model, export a
COCO dataset. Every dock is opened from the plugin's menu entries, as a user opens them; at each
step the test checks what the user would look at: layer names, status lines, the window's size."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = pytest.mark.gui

PLUGIN = "napari-galseg"
#: a U-Net that learns something in seconds on two busy CPU cores (the newcomer's default is 25 min)
TINY_UNET = {"depth": 2, "base_width": 4, "patch_size": 32, "block_size": 32, "patches_per_epoch": 32, "batch_size": 8,
             "val_max_patches": 4, "bf16": False, "max_minutes": 0.4}


def _set(forms, **settings):
    for form in forms:
        for name, value in settings.items():
            if hasattr(form, name):
                getattr(form, name).value = value


def _fits_the_screen(window):
    screen = window.screen().availableGeometry()
    return window.width() <= screen.width() and window.height() <= screen.height()


def test_a_newcomer_segments_compares_trains_segments_again_and_exports(make_napari_viewer, qtbot, tmp_path):
    pytest.importorskip("torch")
    from napari_galseg.synth import write_field
    from napari_galseg.widgets.menu_actions import segment_selected_image

    field = write_field(tmp_path / "field", size=192, seed=11)
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1600, 1000)

    # 1. drop the field: the reader types the layers (image, its rms map, the truth)
    viewer.open([str(field["image"]), str(field["rms"]), str(field["truth"])], plugin=PLUGIN)
    kinds = {layer.name: layer.metadata.get("galseg_kind") for layer in viewer.layers}
    image = next(layer for layer in viewer.layers if layer.metadata.get("galseg_kind") == "image")
    truth = next(layer for layer in viewer.layers if type(layer).__name__ == "Labels")
    assert "rms" in kinds.values(), kinds

    # 2. segment: Layers ▸ Segment ▸ "Segment the selected image" (the photutils dock opens and runs)
    viewer.layers.selection.active = image
    _, photutils = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment: photutils")
    with qtbot.waitSignal(photutils.work_finished, timeout=120000):
        assert segment_selected_image(viewer) is not None
    assert "photutils" in viewer.layers and "new layer 'photutils'" in photutils.status.value
    assert viewer.layers["photutils"].data.max() > 3

    # 3. compare with the truth: the metrics dock's compare action
    _, metrics = viewer.window.add_plugin_dock_widget(PLUGIN, "Measure: metrics")
    metrics.set_layers("photutils", truth.name)
    result = metrics.compare.run()
    assert result is not None and "matched" in metrics.compare.summary.text()
    assert f"compare photutils vs {truth.name}" in viewer.layers

    # 4. train a U-Net (the training dock opens on it) for a short time budget
    _, training = viewer.window.add_plugin_dock_widget(PLUGIN, "Train: model")
    assert training.method.value == "unet"  # trains in minutes on a CPU; detr/maskrcnn want a GPU
    assert training.inputs["image"].layer.value is image and training.inputs["truth"].layer.value is truth
    training.device.value = "cpu"
    _set(training.forms, **TINY_UNET)
    with qtbot.waitSignal(training.job_ended, timeout=300000) as ended:
        training.start()
    assert ended.args == ["finished"], training.status.value
    assert training.progress.value() == training.progress.maximum() > 0  # 100 %
    assert training.scores.value.startswith("validation: IoU") and "stopped by the time budget" in training.scores.value
    assert training.curves.n_points >= 3  # curves, not a point (>= 10: tests/test_widgets_training_report.py)

    # 5. segment with the new model: the U-Net dock lists it
    _, unet = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment: U-Net")
    model = str(training.registered.path)
    assert model in unet.model_choice.choices
    unet.model_choice.value = model
    unet.image_combo.value = image
    with qtbot.waitSignal(unet.work_finished, timeout=120000):
        unet.run(field_of_view=False)
    assert "unet" in viewer.layers and "new layer 'unet'" in unet.status.value, unet.status.value

    # 6. export the U-Net's labels as a COCO dataset
    _, export = viewer.window.add_plugin_dock_widget(PLUGIN, "Export: COCO / panoptic dataset")
    export.image_combo.value = image
    export.labels_combo.value = viewer.layers["unet"]
    export.patch.value = 96
    export.output.value = str(tmp_path / "dataset")
    with qtbot.waitSignal(export.work_finished, timeout=60000):
        assert export.export() is not None
    assert export.status.value.startswith("wrote 4 patches"), export.status.value
    assert (tmp_path / "dataset" / "annotations" / "instances.json").exists()

    # five docks later the window still fits the screen
    qtbot.waitUntil(lambda: _fits_the_screen(window), timeout=3000)
    viewer.layers.selection.active = image
    folder = os.environ.get("GALSEG_SHOTS")
    if folder:
        from PIL import Image

        Image.fromarray(np.asarray(viewer.screenshot(canvas_only=False, flash=False))).save(
            os.path.join(folder, "walkthrough.png"))
