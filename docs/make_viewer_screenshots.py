"""Make the pictures of docs/viewer.md: DS9 conventions in the viewer (y up, zscale and asinh,
outlines, catalogue, the compare layers). Run under a display (xvfb-run):
``python docs/make_viewer_screenshots.py [OUT_DIR]`` (default docs/images)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def _settle(viewer, rounds: int = 30) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()


def _side_by_side(shots, path: Path, width: int = 520) -> None:
    """Canvas screenshots next to each other, each ``width`` px wide (a small PNG for the docs)."""
    from PIL import Image

    images = [Image.fromarray(shot).convert("RGB") for shot in shots]
    images = [im.resize((width, round(im.height * width / im.width))) for im in images]
    out = Image.new("RGB", (width * len(images) + 10 * (len(images) - 1), max(im.height for im in images)), "white")
    for i, im in enumerate(images):
        out.paste(im, (i * (width + 10), 0))
    out.save(path, optimize=True)


def _status_at(viewer, row: float, col: float) -> None:
    """What the status bar says with the mouse at (row, col): FITS x, y and RA/Dec."""
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (row, col)
    viewer.update_status_from_cursor()


def main(out: Path) -> None:
    import napari

    from napari_galseg import synth
    from napari_galseg.io import open_fits, write_labels
    from napari_galseg.segmenters import get
    from napari_galseg.widgets._layers import camera
    from napari_galseg.widgets.display_dock import DisplayWidget
    from napari_galseg.widgets.metrics import MetricsDock

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth.write_field(tmp, size=512, seed=4)
        image = open_fits(tmp / "img.fits")
        rms = open_fits(tmp / "rms.fits").data.compute()
        result = get("photutils")().predict(image.data.compute(), rms)
        write_labels(tmp / "photutils.fits", result.labels, like=image)  # as `galseg segment` writes it
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1400, 900)
        viewer.open([tmp / "img.fits", tmp / "rms.fits", tmp / "true.fits", tmp / "photutils.fits"],
                    plugin="napari-galseg")
        dock = DisplayWidget(viewer)
        viewer.window.add_dock_widget(dock, name="Display", area="right")
        # 1. outlines over the image, y up, the status bar in FITS terms
        camera(viewer).center = (395, 365)
        camera(viewer).zoom = 4.5
        _status_at(viewer, 399.0, 367.0)
        _settle(viewer)
        viewer.screenshot(str(out / "viewer_outlines.png"), canvas_only=False, flash=False)
        # 2. the stretch: zscale (the default) and asinh (one click)
        for name in ("true", "photutils"):
            viewer.layers[name].visible = False
        viewer.reset_view()
        _settle(viewer)
        zscale = viewer.screenshot(canvas_only=True, flash=False)
        dock.set_stretch("asinh")
        dock.set_limits("99.5%")
        _settle(viewer)
        _side_by_side([zscale, viewer.screenshot(canvas_only=True, flash=False)], out / "viewer_stretch.png")
        dock.set_stretch("linear")
        dock.set_limits("zscale")
        # 3. compare: TP / FP / FN pixels and matched / missed / spurious objects
        viewer.window.remove_dock_widget("all")
        metrics = MetricsDock(viewer, synchronous=True)
        viewer.window.add_dock_widget(metrics, name="Metrics", area="right")
        metrics.set_layers("photutils", "true")
        metrics.compare.run()
        viewer.reset_view()
        camera(viewer).center = (300, 300)
        camera(viewer).zoom *= 1.6
        metrics.compare.go_to_row(0)
        camera(viewer).zoom = 2.0
        _settle(viewer)
        viewer.screenshot(str(out / "viewer_compare.png"), canvas_only=False, flash=False)
        print(metrics.compare.summary.text())
        viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "images")
