"""Make the pictures of the docs: docs/images/demo.png and docs/images/viewer.png.

Run under a display (``make docs`` wraps it in xvfb-run):  python docs/make_screenshots.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
IMAGES = HERE / "images"


def demo_picture() -> None:
    from napari_galseg.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        assert main(["demo", "--out", tmp]) == 0
        IMAGES.mkdir(exist_ok=True)
        (IMAGES / "demo.png").write_bytes((Path(tmp) / "screenshot.png").read_bytes())


def viewer_picture() -> None:
    """The viewer as a user sees it: a dropped field folder, a photutils run, the metrics dock."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_galseg import synth
    from napari_galseg.widgets._layers import camera
    from napari_galseg.widgets.metrics import MetricsDock
    from napari_galseg.widgets.segment import PhotutilsWidget

    with tempfile.TemporaryDirectory() as tmp:
        synth.write_field(tmp, size=2048, seed=1)
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1500, 950)
        viewer.open(tmp, plugin="napari-galseg")
        widget = PhotutilsWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Segment: photutils", area="right")
        worker = widget.run(field_of_view=False)
        while worker is not None and worker.is_running:
            QApplication.processEvents()
        dock = MetricsDock(viewer)
        viewer.window.add_dock_widget(dock, name="Metrics", area="right")
        camera(viewer).center = (1024, 1024)
        camera(viewer).zoom = 1.2
        for _ in range(50):
            QApplication.processEvents()
        import time

        deadline = time.time() + 30  # let the dock's worker finish its first computation
        while time.time() < deadline:
            QApplication.processEvents()
            time.sleep(0.05)
        shot = viewer.screenshot(canvas_only=False, flash=False)
        import imageio.v3 as iio

        iio.imwrite(IMAGES / "viewer.png", np.asarray(shot), extension=".png")
        viewer.close()


if __name__ == "__main__":
    which = sys.argv[1:] or ["demo", "viewer"]
    if "demo" in which:
        demo_picture()
    if "viewer" in which:
        viewer_picture()
    print(f"wrote {IMAGES}")
