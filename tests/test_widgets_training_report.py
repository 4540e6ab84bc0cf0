"""Training that reports (issue 29): the widget opens on a method a CPU trains in minutes, a time
budget gives the curves >= 10 points, the axes read plain steps, the bar ends at 100 %, the held-out
scores and the limit that stopped the run are shown and kept with the model, one preview layer
named after its job. A screenshot of the finished run (Xvfb) checks what is drawn."""
from __future__ import annotations

import os

import numpy as np
import pytest

from napari_galseg.synth import write_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("field"), size=128, seed=5)


def test_the_widget_opens_on_a_method_that_trains_on_a_cpu(make_napari_viewer):
    from napari_galseg.widgets.training import TrainingWidget, default_method, trainable_methods

    widget = TrainingWidget(make_napari_viewer())
    assert widget.method.value in ("unet", "forest") and widget.method.value == default_method(trainable_methods())
    assert default_method(["detr", "maskrcnn", "forest"]) == "forest"
    assert default_method(["detr", "unet", "forest"]) == "unet"
    assert widget.jobs_dir.label == "jobs folder" and widget.jobs_dir.native.parent() is not None
    # axes in plain numbers: no "(x0.001)" SI prefix on a short run
    for plot in (widget.curves.loss_plot, widget.curves.iou_plot):
        assert not plot.getAxis("bottom").autoSIPrefix and plot.getAxis("bottom").labelText == "optimiser steps"


def _bar_filled_to_the_end(bar) -> bool:
    """The progress bar as drawn: its last tenth coloured like its first (filled), not like an empty groove."""
    image = bar.grab().toImage()
    w, h = image.width(), image.height()
    pixels = np.array([[image.pixelColor(x, h // 2).getRgb()[:3] for x in range(w)]], float)[0]
    first, last = pixels[w // 20: w // 10].mean(0), pixels[int(w * 0.85): int(w * 0.9)].mean(0)
    return float(np.abs(first - last).max()) < 20 and bar.value() == bar.maximum() > 0


def test_a_finished_run_shows_100_percent_its_scores_and_why_it_stopped(make_napari_viewer, qtbot, field):
    pytest.importorskip("torch")
    from astropy.io import fits
    from jobs_helpers import TINY_UNET

    from napari_galseg.model_registry import list_models
    from napari_galseg.widgets.training import TrainingWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # the laptop screen of issue 29
    viewer.add_image(fits.getdata(field["image"]).astype(np.float32), name="img")
    viewer.add_labels(fits.getdata(field["truth"]).astype(np.int32), name="truth")
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train", area="right")
    # a local process, the default runner: in a thread the GUI's drawing would share the GIL with training
    widget.method.value, widget.runner.value, widget.device.value = "unet", "process", "cpu"
    # 45 s: room for 12 validations even when a step and a validation take seconds (a loaded CI machine)
    settings = {**TINY_UNET, "epochs": 400, "max_minutes": 0.75, "patches_per_epoch": 256}
    for form in widget.forms:
        for name, value in settings.items():
            if hasattr(form, name):
                getattr(form, name).value = value
    widget.inputs["rms"].file.value = str(field["rms"])
    widget.preview_box.value = False  # (previews: tests/test_widgets_training.py) here, every second goes to training
    with qtbot.waitSignal(widget.job_ended, timeout=180000) as ended:
        widget.start()
    assert ended.args == ["finished"], widget.status.value
    # the budget, not the cap, ended it, cut in epochs so the curves have >= 10 points; on a machine so
    # loaded that a few steps and a validation outlast a twelfth of the budget, fewer, but every epoch
    # after the first is still cut to a few steps (uncut, an epoch is 64 steps: 1-3 points)
    steps = [e["global_step"] for e in widget.watcher.state.epochs]
    per_epoch = np.diff([0, *steps])
    assert widget.curves.n_points >= 10 or (len(steps) >= 5 and per_epoch[1:].max() <= 8), list(per_epoch)
    assert "stopped by the time budget (45 s)" in widget.scores.value
    assert widget.scores.value.startswith("validation: IoU ") and "test: IoU " in widget.scores.value
    assert widget.progress.isVisible() and _bar_filled_to_the_end(widget.progress)
    qtbot.wait(50)
    for label in (widget.status.native, widget.scores.native):  # every line of the outcome shows
        assert label.isVisible() and label.height() >= label.heightForWidth(label.width()), label.text()
    # the scores are kept with the model's entry in the models folder
    entry = list_models()[0]
    assert entry.path == widget.registered.path and entry.metrics["validation"]["iou"] is not None
    assert "test" in entry.metrics
    # the preview: one layer, named after this job
    viewer.layers.selection.active = viewer.layers["img"]
    shot = np.asarray(viewer.screenshot(canvas_only=False, flash=False))
    folder = os.environ.get("GALSEG_SHOTS")
    if folder:
        from PIL import Image

        Image.fromarray(shot).save(os.path.join(folder, "training_finished.png"))
    assert shot.shape[0] > 400 and shot[..., :3].std() > 10  # a window was drawn, not a blank


def test_previews_of_a_second_job_replace_the_first_jobs_layer(make_napari_viewer):
    from napari_galseg.widgets._training_preview import FieldOfViewPreview

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    preview = FieldOfViewPreview(viewer)
    for job, epoch in (("unet-a", 1), ("unet-a", 2), ("unet-b", 1)):
        preview.follow(f"/tmp/jobs/{job}")
        preview._show({"window": (0, 32, 0, 32), "labels": np.full((32, 32), epoch, np.int32), "epoch": epoch}, image)
    previews = [layer for layer in viewer.layers if layer.metadata.get("galseg_role") == "preview"]
    assert [p.name for p in previews] == ["training preview: unet-b"] and previews[0].metadata["epoch"] == 1
