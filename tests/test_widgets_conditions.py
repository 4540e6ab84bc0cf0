"""The "Frame conditions" dock: measures an opened FITS frame in a worker and shows the numbers."""
import numpy as np
import pytest

from napari_galseg.synth import write_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    return write_field(tmp_path_factory.mktemp("cond"), 512, seed=5, star_density=400.0, psf_fwhm=3.0)


def _dock(viewer):
    from napari_galseg.widgets.conditions import ConditionsDock

    dock = ConditionsDock(viewer)
    viewer.window.add_dock_widget(dock, name="Frame conditions")
    return dock


def _value(dock, label):
    for row in range(dock.table.rowCount()):
        if dock.table.item(row, 0).text() == label:
            return dock.table.item(row, 1).text()
    raise KeyError(label)


def test_measures_an_opened_frame_in_a_worker(make_napari_viewer, qtbot, field):
    viewer = make_napari_viewer()
    viewer.open(str(field["image"]), plugin="napari-galseg")
    viewer.open(str(field["rms"]), plugin="napari-galseg")
    dock = _dock(viewer)
    image_name = viewer.layers[0].name
    assert dock.image_combo.currentText() == image_name
    dock.rms_combo.setCurrentText(viewer.layers[1].name)
    with qtbot.waitSignal(dock.measured, timeout=60_000) as blocker:
        dock.measure_button.click()
    c = blocker.args[0]
    assert c.psf_flag == "stars" and abs(c.psf_fwhm_px / 3.0 - 1) <= 0.10
    assert c.noise_from_map and c.pixel_scale_arcsec == pytest.approx(0.2, rel=1e-3)
    qtbot.waitUntil(lambda: not dock.busy, timeout=10_000)
    assert _value(dock, "PSF FWHM").startswith(f"{c.psf_fwhm_px:.3f} px (")
    assert _value(dock, "Noise (1σ)").endswith("(rms layer)")
    assert _value(dock, "PSF measured from") == f"stars ({c.psf_n_sources} sources)"
    assert all(dock.table.item(r, 1).toolTip() for r in range(dock.table.rowCount()))
    assert viewer.layers[image_name].metadata["conditions"]["psf_fwhm_px"] == c.psf_fwhm_px
    assert dock.measure_button.isEnabled()


def test_a_frame_too_small_says_so_in_one_line(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.float32), name="tiny")
    dock = _dock(viewer)
    assert dock.rms_combo.currentText() == "(estimate from the image)"
    with qtbot.waitSignal(dock.failed, timeout=30_000) as blocker:
        dock.measure()
    assert "too small to measure" in blocker.args[0] and "\n" not in blocker.args[0]
    assert dock.status.text().startswith("error: ")
    qtbot.waitUntil(lambda: not dock.busy, timeout=10_000)
    assert dock.conditions is None and dock.measure_button.isEnabled()
