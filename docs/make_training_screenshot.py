"""Make docs/images/training.png: the training widget after a short U-Net run, with its live curves.

Run under a display (``make docs`` wraps it in xvfb-run):  python docs/make_training_screenshot.py
The job runs in a local process (the `process` runner); job and model folders go to a temporary
folder (GALSEG_JOBS / GALSEG_MODELS), so nothing is added to the user's models folder.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
IMAGES = HERE / "images"
#: a small U-Net that learns something in about a minute on two CPU cores
SETTINGS = {"depth": 3, "base_width": 8, "patch_size": 64, "block_size": 64, "epochs": 15, "patches_per_epoch": 32,
            "batch_size": 8, "val_max_patches": 8, "bf16": False, "patience": 0}


def training_picture(out: Path = IMAGES / "training.png") -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="galseg-docs-"))
    os.environ["GALSEG_JOBS"], os.environ["GALSEG_MODELS"] = str(tmp / "jobs"), str(tmp / "models")
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_galseg import synth
    from napari_galseg.widgets.jobs_dock import JobsDock
    from napari_galseg.widgets.segment import UNetWidget
    from napari_galseg.widgets.training import TrainingWidget

    files = synth.write_field(tmp / "field", size=384, seed=4)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.open([files[k] for k in ("image", "rms", "truth")], plugin="napari-galseg")
    widget = TrainingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train: model", area="right")
    widget.method.value = "unet"
    widget.runner.value = "process"
    widget.device.value = "cpu"
    for form in widget.forms:
        for name, value in SETTINGS.items():
            if hasattr(form, name):
                getattr(form, name).value = value
    ended = []
    widget.job_ended.connect(ended.append)  # connected before the job starts
    widget.start()
    deadline = time.time() + 600
    while not ended and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    print(f"job: {ended}, {widget.status.value}", file=sys.stderr)
    jobs = JobsDock(viewer)
    viewer.window.add_dock_widget(jobs, name="Train: jobs", area="right", tabify=True)
    segment = UNetWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment: U-Net", area="right", tabify=True)
    segment.model_choice.value = segment.model_choice.choices[1]
    segment.run(field_of_view=False)
    for _ in range(100):
        QApplication.processEvents()
        time.sleep(0.05)
    widget.parent().raise_()  # the training widget's tab in front
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    import imageio.v3 as iio

    out.parent.mkdir(exist_ok=True)
    iio.imwrite(out, np.asarray(shot), extension=".png")
    viewer.close()
    return out


if __name__ == "__main__":
    print(training_picture())
