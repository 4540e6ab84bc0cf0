"""Make the pictures of the docs: docs/images/demo.png and docs/images/viewer.png.

Run under a display (``make docs`` wraps it in xvfb-run):  python docs/make_screenshots.py
``python docs/make_screenshots.py maskrcnn MODEL_DIR FIELD_DIR`` makes docs/images/maskrcnn_widget.png
(a trained model folder, a field folder from ``galseg synth``); ``... export FIELD_DIR OUT.png`` the
export dock. ``python docs/make_screenshots.py docks OUT_DIR`` shows every dock of the plugin, one at a time, in
a 1600×1000 window beside the layer list, and saves one screenshot per dock into OUT_DIR (to check
that every dock fits a laptop screen).
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
        viewer.window.resize(1600, 1000)
        # dropped as three files, as a user selects them (the reader arranges them like a folder)
        viewer.open([Path(tmp) / name for name in ("img.fits", "rms.fits", "true.fits")], plugin="napari-galseg")
        widget = PhotutilsWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Segment: photutils", area="right")
        _wait_for(widget, lambda: widget.run(field_of_view=False))
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


def dock_pictures(out: Path, size: tuple[int, int] = (1600, 1000)) -> list[Path]:
    """Each dock of the manifest opened from its menu name over a field dropped as three files."""
    import napari
    from npe2 import PluginManifest
    from qtpy.QtWidgets import QApplication

    import napari_galseg
    from napari_galseg import synth

    manifest = PluginManifest.from_file(Path(napari_galseg.__file__).parent / "napari.yaml")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        synth.write_field(tmp, size=1024, seed=3)
        viewer = napari.Viewer(show=True)
        viewer.window.resize(*size)
        viewer.open([Path(tmp) / name for name in ("img.fits", "rms.fits", "true.fits")], plugin="napari-galseg")
        for widget in manifest.contributions.widgets:
            viewer.window.resize(*size)  # a dock too tall for the screen grows the window: shown below
            dock, _ = viewer.window.add_plugin_dock_widget("napari-galseg", widget.display_name)
            for _ in range(20):
                QApplication.processEvents()
            path = out / (widget.display_name.lower().replace(": ", "_").replace(" ", "_") + ".png")
            import imageio.v3 as iio

            iio.imwrite(path, np.asarray(viewer.screenshot(canvas_only=False, flash=False)), extension=".png")
            window = viewer.window._qt_window
            print(f"{path.name}: window {window.width()}x{window.height()}, dock {dock.width()}x{dock.height()}, "
                  f"widget wants {dock.widget().sizeHint().width()}x{dock.widget().sizeHint().height()}")
            written.append(path)
            viewer.window.remove_dock_widget(dock)
            for _ in range(20):  # let Qt drop the old dock before the window is resized
                QApplication.processEvents()
        viewer.close()
    return written


def _settle(seconds: float = 0.0) -> None:
    import time

    from qtpy.QtWidgets import QApplication

    deadline = time.time() + seconds
    for _ in range(30):
        QApplication.processEvents()
    while time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)


def _wait_for(widget, start) -> None:
    """Call ``start()`` with the widget's ``work_finished`` connected first, and let the GUI run
    until it is emitted."""
    finished = []
    widget.work_finished.connect(lambda: finished.append(True))  # connected before the worker starts
    start()
    while not finished:
        _settle(0.1)


def _save(viewer, path: Path) -> Path:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.asarray(viewer.screenshot(canvas_only=False, flash=False)), extension=".png")
    return path


def instance_picture(model_dir: Path, field_dir: Path, out: Path = IMAGES / "maskrcnn_widget.png") -> Path:
    """The Mask R-CNN dock with a loaded model folder after a whole-image run on a field folder
    (img.fits, rms.fits): labels, the scored catalog, and the score of the object under the cursor."""
    import napari

    from napari_galseg.widgets._layers import camera
    from napari_galseg.widgets.segment import MaskRCNNWidget

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.open([field_dir / name for name in ("img.fits", "rms.fits")], plugin="napari-galseg")
    _settle()  # napari has drawn before torch is imported, as when a user opens the dock
    widget = MaskRCNNWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment: Mask R-CNN", area="right")
    widget.model_dir.value = str(model_dir)
    widget._load_model()
    widget.run_form.device.value = "auto"  # a folder trained on a GPU runs here too
    _wait_for(widget, lambda: widget.run(field_of_view=False))
    labels = viewer.layers["maskrcnn"]
    ny, nx = labels.data.shape
    camera(viewer).center = (ny / 2, nx / 2)
    camera(viewer).zoom = 1.6
    best = int(labels.features["index"][np.argmax(labels.features["score"])]) if len(labels.features) else 0
    if best:  # point the cursor at the best-scored object: the status bar shows its score
        ys, xs = np.nonzero(labels.data == best)
        viewer.layers.selection.active = labels
        viewer.cursor.position = (float(ys.mean()), float(xs.mean()))
        viewer.update_status_from_cursor()
    _settle(1.0)
    path = _save(viewer, out)
    viewer.close()
    return path


def export_picture(field_dir: Path, out: Path) -> Path:
    """The export dock after writing a COCO-panoptic dataset from the field's image, rms and truth."""
    import napari

    from napari_galseg.widgets.export import ExportWidget

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.open([field_dir / name for name in ("img.fits", "rms.fits", "true.fits")], plugin="napari-galseg")
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Export: COCO / panoptic dataset", area="right")
    widget.kind.value = "panoptic"
    with tempfile.TemporaryDirectory() as tmp:
        widget.output.value = str(Path(tmp) / "panoptic")
        _wait_for(widget, widget.export)
        _settle(0.5)
        path = _save(viewer, out)
    viewer.close()
    return path


def builtin_picture(out: Path = IMAGES / "builtin_unet.png") -> Path:
    """A frame dropped in alone (no rms, no truth), the U-Net dock opened, Run pressed: the labels
    come from the built-in model, the status says the noise was estimated."""
    import napari

    from napari_galseg.synth.galsim_backend import write_galsim_field
    from napari_galseg.widgets.segment import UNetWidget

    with tempfile.TemporaryDirectory() as tmp:
        files = write_galsim_field(tmp, 1024, seed=31, psf="kolmogorov", psf_fwhm=3.0, galaxy_density=900.0,
                                   irregular_fraction=0.3, merger_fraction=0.2)
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1600, 1000)
        viewer.open(files["image"], plugin="napari-galseg")
        widget = UNetWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Segment: unet", area="right")
        _wait_for(widget, lambda: widget.run(field_of_view=False))
        _settle(1.0)
        path = _save(viewer, out)
        viewer.close()
    return path


if __name__ == "__main__":
    which = sys.argv[1:] or ["demo", "viewer"]
    if which[0] == "builtin":  # make_screenshots.py builtin [OUT.png]
        print(builtin_picture(*[Path(p) for p in which[1:2]]))
        sys.exit(0)
    if which[0] == "maskrcnn":  # make_screenshots.py maskrcnn MODEL_DIR FIELD_DIR [OUT.png]
        print(instance_picture(Path(which[1]), Path(which[2]), *[Path(p) for p in which[3:4]]))
        sys.exit(0)
    if which[0] == "export":  # make_screenshots.py export FIELD_DIR OUT.png
        print(export_picture(Path(which[1]), Path(which[2])))
        sys.exit(0)
    if which[0] == "docks":
        dock_pictures(Path(which[1]) if len(which) > 1 else IMAGES / "docks")
        sys.exit(0)
    if "demo" in which:
        demo_picture()
    if "viewer" in which:
        viewer_picture()
    print(f"wrote {IMAGES}")
