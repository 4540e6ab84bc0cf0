"""DS9 conventions in the viewer: y up, 1-based FITS coordinates and RA/Dec in the status bar,
zscale kept with DS9's stretches as colormaps, outlines for predictions, visible catalogues, and
FITS card warnings said once. Screenshots (Xvfb) check what is drawn, not only the settings."""
from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.io.write import write_labels
from napari_galseg.widgets import display
from napari_galseg.widgets.display import DisplaySettings, fits_position_text, stretched_colormap


def _wcs_header(shape):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], [1.0, 1.0], [-0.0002, 0.0002]
    return wcs.to_header()


def _bottom_bright_field(tmp_path, shape=(200, 300)):
    """Sky noise with a bright band in FITS rows 1-40 (numpy rows 0-39): DS9 shows it at the bottom."""
    rng = np.random.default_rng(0)
    image = rng.normal(100.0, 5.0, shape).astype(np.float32)
    image[:40, :] += 400.0
    fits.writeto(tmp_path / "img.fits", image, header=_wcs_header(shape))
    return tmp_path / "img.fits"


def _shot(viewer, name: str) -> np.ndarray:
    """The canvas as RGB floats; saved as NAME.png under $GALSEG_SHOTS when set (to look at)."""
    shot = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    folder = os.environ.get("GALSEG_SHOTS")
    if folder:
        from PIL import Image

        Image.fromarray(shot).save(os.path.join(folder, f"{name}.png"))
    return shot[..., :3].astype(float)


def _canvas_rows_brightness(viewer, name):
    shot = _shot(viewer, name).mean(axis=-1)
    return shot, shot.mean(axis=1)


# -- pure parts -------------------------------------------------------------------------------------
def test_status_text_is_fits_one_based_with_sky_coordinates():
    from astropy.wcs import WCS

    wcs = WCS(_wcs_header((10, 10)))
    text = fits_position_text(0.0, 0.0, wcs)  # numpy [0, 0] is FITS (1, 1): CRPIX, so CRVAL
    assert text.startswith("x 1  y 1") and "RA 10:00:00" in text and "Dec +02:00:00" in text
    assert fits_position_text(4.4, 9.6).startswith("x 11  y 5")  # the pixel under the cursor
    assert fits_position_text(4.4, 9.6) == "x 11  y 5"  # no WCS: no sky position


def test_stretches_are_ds9s_and_brighten_faint_values():
    linear, asinh = stretched_colormap("gray", "linear"), stretched_colormap("gray", "asinh")
    assert linear.map([0.05])[0, 0] == pytest.approx(0.05, abs=0.01)
    assert asinh.map([0.05])[0, 0] == pytest.approx(np.arcsinh(0.5) / 3, abs=0.01)
    assert asinh.map([1.0])[0, 0] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="stretch must be one of"):
        DisplaySettings(stretch="histeq").check()


def test_card_warnings_are_collected_once_into_the_metadata(tmp_path, capfd):
    from napari.utils.notifications import notification_manager

    from napari_galseg.plugin.reader import read_fits_files

    fits.writeto(tmp_path / "eso.fits", np.zeros((32, 32), np.float32))
    raw = bytearray((tmp_path / "eso.fits").read_bytes())
    cards = [raw[i:i + 80].decode() for i in range(0, 2880, 80)]
    end = next(i for i, card in enumerate(cards) if card.startswith("END"))
    bad = ["ESO.DET.CHIP = 'CCD1'".ljust(80), "tel alt = 45.0".ljust(80)]
    cards = (cards[:end] + bad + cards[end:])[:36]
    (tmp_path / "eso.fits").write_bytes("".join(cards).encode() + bytes(raw[2880:]))
    capfd.readouterr()
    seen = len(notification_manager.records)
    layers = read_fits_files([tmp_path / "eso.fits"])
    said = [str(n.message) for n in notification_manager.records[seen:]]
    assert len(said) == 1 and "do not follow the FITS standard" in said[0]
    assert "TEL ALT" in said[0] and "ESO.DET.CHIP" in said[0]
    notes = layers[0][1]["metadata"]["fits_warnings"]
    assert any("ESO.DET.CHIP" in note for note in notes) and any("TEL ALT" in note for note in notes)
    assert "VerifyWarning" not in capfd.readouterr().err  # nothing printed to the console


# -- in a viewer ------------------------------------------------------------------------------------
@pytest.fixture()
def fresh_settings(monkeypatch):
    settings = DisplaySettings()
    monkeypatch.setattr(display, "SETTINGS", settings)
    return settings


def test_a_fits_file_opens_y_up_with_fits_coordinates(make_napari_viewer, tmp_path, fresh_settings):
    path = _bottom_bright_field(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.open(path, plugin="napari-galseg")
    layer = viewer.layers["img"]
    assert tuple(str(v) for v in display.camera(viewer).orientation2d) == ("up", "right")
    # zscale kept: the reader's limits are untouched by the conventions
    from napari_galseg.io import contrast_limits_zscale, open_fits

    assert layer.contrast_limits == pytest.approx(list(contrast_limits_zscale(open_fits(path).array)), rel=1e-6)
    viewer.mouse_over_canvas = True
    viewer.cursor.position = (10.0, 20.0)  # numpy row 10, column 20
    viewer.update_status_from_cursor()  # what napari's status thread does after a mouse move
    status = viewer.status
    assert isinstance(status, dict), status
    assert status["coordinates"].startswith("x 21  y 11   RA ") and "Dec +02:00:" in status["coordinates"]
    assert status["coordinates"].endswith(f": {status['value']}") and status["value"] != ""
    fresh_settings.fits_status = False  # napari's own [y, x] again, as a setting
    viewer.cursor.position = (12.0, 20.0)
    viewer.update_status_from_cursor()
    assert viewer.status["coordinates"].startswith("[12, 20]")


def test_orientation_screenshot_has_fits_row_1_at_the_bottom(make_napari_viewer, tmp_path, fresh_settings):
    path = _bottom_bright_field(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.open(path, plugin="napari-galseg")
    viewer.reset_view()
    shot, rows = _canvas_rows_brightness(viewer, "orientation_y_up")
    lit = np.flatnonzero(rows > rows.max() * 0.8)
    assert lit.min() > len(rows) / 2, "the bright FITS rows 1-40 must be drawn at the bottom"
    fresh_settings.y_up = False  # napari's own orientation, as a setting
    display.apply_orientation(viewer, fresh_settings)
    _, rows = _canvas_rows_brightness(viewer, "orientation_y_down")
    lit = np.flatnonzero(rows > rows.max() * 0.8)
    assert lit.max() < len(rows) / 2


def _disc_field(tmp_path, shape=(160, 160)):
    """A bright disc on sky, its truth and a galseg prediction (a little smaller), with a WCS."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - 80) ** 2 + (xx - 80) ** 2 < 50 ** 2
    image = (rng.normal(100.0, 5.0, shape) + 60.0 * disc).astype(np.float32)
    header = _wcs_header(shape)
    fits.writeto(tmp_path / "img.fits", image, header=header)
    truth = disc.astype(np.int32)
    fits.writeto(tmp_path / "true.fits", truth, header=fits.Header({"ORIGIN": "napari-galseg synth",
                                                                       "CONTENT": "segmentation"}))
    pred = ((yy - 80) ** 2 + (xx - 80) ** 2 < 45 ** 2).astype(np.int32)
    write_labels(tmp_path / "pred.fits", pred, like=header)
    return tmp_path


def test_outlines_screenshot_leaves_the_image_visible(make_napari_viewer, tmp_path, fresh_settings):
    folder = _disc_field(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.open([folder / "img.fits", folder / "true.fits", folder / "pred.fits"], plugin="napari-galseg")
    pred, truth = viewer.layers["pred"], viewer.layers["true"]
    assert pred.metadata["galseg_role"] == "prediction" and truth.metadata["galseg_role"] == "truth"
    assert pred.contour == 1 and truth.contour == 1
    viewer.reset_view()
    shot = _shot(viewer, "outlines")
    h, w = shot.shape[:2]
    centre = shot[h // 2 - 5: h // 2 + 5, w // 2 - 5: w // 2 + 5]
    # inside the objects the image shows through: grey (r = g = b), not a label colour
    assert np.abs(centre[..., 0] - centre[..., 1]).max() < 8 and np.abs(centre[..., 1] - centre[..., 2]).max() < 8
    coloured = np.abs(shot[..., 0] - shot[..., 1]) + np.abs(shot[..., 1] - shot[..., 2]) > 25
    assert 0.002 < coloured.mean() < 0.1, "outlines: a thin coloured ring, not a filled disc"
    green = (shot[..., 1] > 150) & (shot[..., 0] < 100) & (shot[..., 2] < 100)
    assert green.sum() > 50  # the truth's outline in its one colour (lime)
    fresh_settings.outlines = False  # filled labels, as a setting
    display.style_labels(pred, fresh_settings)
    filled = _shot(viewer, "filled")
    coloured_filled = np.abs(filled[..., 0] - filled[..., 1]) + np.abs(filled[..., 1] - filled[..., 2]) > 25
    assert coloured_filled.mean() > 3 * coloured.mean()


def test_asinh_is_one_click_away_and_zscale_is_kept(make_napari_viewer, tmp_path, fresh_settings, qtbot):
    from qtpy.QtCore import Qt

    from napari_galseg.widgets.display_dock import DisplayWidget

    folder = _disc_field(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.open(folder / "img.fits", plugin="napari-galseg")
    layer = viewer.layers["img"]
    limits = list(layer.contrast_limits)
    viewer.reset_view()
    before = _shot(viewer, "stretch_zscale_linear")
    dock = DisplayWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Display", area="right")
    button = dock.stretch_buttons.button(list(display.STRETCHES).index("asinh"))
    qtbot.mouseClick(button, Qt.LeftButton)  # one click
    assert fresh_settings.stretch == "asinh" and layer.colormap.name == "gray asinh"
    assert list(layer.contrast_limits) == limits  # the zscale limits stay
    after = _shot(viewer, "stretch_zscale_asinh")
    # the sky (between the limits, faint) is brighter under asinh; what was black stays black
    h, w = before.shape[:2]
    sky_before, sky_after = before[h // 2 - 70: h // 2 - 60, w // 2 - 5: w // 2 + 5], after[h // 2 - 70: h // 2 - 60, w // 2 - 5: w // 2 + 5]
    assert sky_after.mean() > sky_before.mean() + 10
    dock.set_colormap("heat")
    assert layer.colormap.name == "heat asinh"
    dock.set_limits("minmax")
    assert layer.contrast_limits[0] < limits[0] and layer.contrast_limits[1] > limits[1]
    dock.y_up.setChecked(False)
    assert tuple(str(v) for v in display.camera(viewer).orientation2d) == ("down", "right")


def test_catalogue_shapes_are_drawn_visibly(make_napari_viewer, tmp_path, fresh_settings):
    from napari_galseg.catalog import basic_catalog
    from napari_galseg.widgets._catalog_layers import CATALOG_STYLE, ellipse_corners

    folder = _disc_field(tmp_path)
    viewer = make_napari_viewer(show=True)
    viewer.open(folder / "img.fits", plugin="napari-galseg")
    labels = fits.getdata(folder / "pred.fits")
    table = basic_catalog(fits.getdata(folder / "img.fits").astype(float) - 100.0, labels)
    # as the segment widgets add it: thin cyan edges; the conventions make it visible
    layer = viewer.add_shapes(list(ellipse_corners(table)), shape_type="ellipse", edge_color="cyan",
                              edge_width=0.8, face_color="transparent", name="photutils catalog")
    assert list(layer.edge_width) == [CATALOG_STYLE["edge_width"]]
    np.testing.assert_allclose(layer.edge_color[0], [1.0, 1.0, 0.0, 1.0])  # yellow
    viewer.reset_view()
    shot = _shot(viewer, "catalogue")
    yellow = (shot[..., 0] > 180) & (shot[..., 1] > 180) & (shot[..., 2] < 90)
    assert yellow.sum() > 200


def test_the_sample_field_gets_the_conventions_too(make_napari_viewer, fresh_settings):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-galseg", "small_field")
    assert display.installed(viewer)
    assert tuple(str(v) for v in display.camera(viewer).orientation2d) == ("up", "right")
    truth = viewer.layers["true"]
    assert truth.contour == 1 and truth.colormap.map([5])[0].tolist() == [0.0, 1.0, 0.0, 1.0]  # lime outlines
