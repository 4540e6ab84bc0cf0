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


def main(out: Path) -> None:
    import napari

    from napari_galseg import synth
    from napari_galseg.io import open_fits, write_labels
    from napari_galseg.segmenters import get
    from napari_galseg.widgets._layers import camera
    from napari_galseg.widgets.display_dock import DisplayWidget

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth.write_field(tmp, size=512, seed=4)
        image = open_fits(tmp / "img.fits")
        rms = open_fits(tmp / "rms.fits").data.compute()
        result = get("photutils")().predict(image.data.compute(), rms)
        write_labels(tmp / "photutils.fits", result.labels, like=image)
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1400, 900)
        viewer.open([tmp / "img.fits", tmp / "rms.fits", tmp / "true.fits", tmp / "photutils.fits"],
                    plugin="napari-galseg")
        dock = DisplayWidget(viewer)
        viewer.window.add_dock_widget(dock, name="Display", area="right")
        viewer.reset_view()
        camera(viewer).center = (140, 380)
        camera(viewer).zoom *= 2.5
        _settle(viewer)
        viewer.screenshot(str(out / "viewer_outlines.png"), canvas_only=False, flash=False)
        for name in ("true", "photutils"):
            viewer.layers[name].visible = False
        viewer.reset_view()
        _settle(viewer)
        viewer.screenshot(str(out / "viewer_zscale.png"), canvas_only=True, flash=False)
        dock.set_stretch("asinh")
        _settle(viewer)
        viewer.screenshot(str(out / "viewer_asinh.png"), canvas_only=True, flash=False)
        dock.set_stretch("linear")
        viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "images")
