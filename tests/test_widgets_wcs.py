"""Coordinates-and-header dock: RA/Dec under the cursor and a filterable FITS header."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_galseg.io import pixel_to_sky

pytestmark = pytest.mark.gui


def sky_wcs():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1166, 2.2058]
    wcs.wcs.crpix = [50.0, 40.0]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    return wcs


def write_image(path):
    header = sky_wcs().to_header()
    header["FILTER"] = "F814W"
    header["EXPTIME"] = 2028.0
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(80, 100)).astype(np.float32), header=header).writeto(path)


def test_pixel_to_sky_formats_like_ds9():
    sky = pixel_to_sky(sky_wcs(), 49.0, 39.0)  # 0-based pixel of CRPIX
    assert sky.lon_deg == pytest.approx(150.1166) and sky.lat_deg == pytest.approx(2.2058)
    assert sky.lon_text == "10:00:27.984" and sky.lat_text == "+02:12:20.88"
    assert (sky.lon_name, sky.lat_name) == ("RA", "Dec")
    galactic = WCS(naxis=2)
    galactic.wcs.ctype = ["GLON-CAR", "GLAT-CAR"]
    assert pixel_to_sky(galactic, 0, 0).lon_name == "l"
    assert pixel_to_sky(None, 0, 0) is None


def test_cursor_shows_sky_position_and_header(make_napari_viewer, tmp_path):
    from napari_galseg.widgets.wcs_info import WcsInfoWidget

    path = tmp_path / "cosmos.fits"
    write_image(path)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-galseg")
    viewer.add_points([[1, 1]], name="marks")  # the active layer has no WCS: the image's is used
    widget = WcsInfoWidget(viewer)
    assert "cosmos" in widget.layer_label.text()

    viewer.cursor.position = (39.0, 49.0)  # (row, col) = CRPIX, 0-based
    sky = widget.last_position
    assert sky.lon_deg == pytest.approx(150.1166) and sky.lat_deg == pytest.approx(2.2058)
    assert "10:00:27.984" in widget.coords_label.text() and "+02:12:20.88" in widget.coords_label.text()
    overlay = viewer.canvas.overlays.text
    assert overlay.visible and "10:00:27.984" in overlay.text

    viewer.cursor.position = (10.0, 70.0)
    expected = sky_wcs().pixel_to_world(70.0, 10.0)
    assert widget.last_position.lon_deg == pytest.approx(expected.ra.deg)
    assert widget.last_position.lat_deg == pytest.approx(expected.dec.deg)

    widget.overlay_box.setChecked(False)
    assert not overlay.visible

    text = widget.header_view.toPlainText()
    assert "FILTER  = 'F814W" in text and "CTYPE1" in text
    widget.filter_edit.setText("exptime")
    assert widget.header_view.toPlainText().strip().startswith("EXPTIME =")
    assert "FILTER" not in widget.header_view.toPlainText()


def test_no_wcs_layers(make_napari_viewer):
    from napari_galseg.widgets.wcs_info import WcsInfoWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((10, 10)))
    widget = WcsInfoWidget(viewer)
    viewer.cursor.position = (3.0, 3.0)
    assert widget.last_position is None
    assert widget.layer_label.text() == "No layer with a WCS"
    assert widget.header_view.toPlainText() == ""


def test_the_header_follows_a_catalogue_or_prediction_to_its_image(make_napari_viewer, tmp_path):
    """Right after a run the catalogue layer is selected: the dock shows the header of the image the
    catalogue (through its labels layer) came from, not nothing."""
    from napari_galseg.widgets.wcs_info import WcsInfoWidget

    write_image(tmp_path / "img.fits")
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "img.fits"), plugin="napari-galseg")
    image = viewer.layers[0]
    viewer.add_labels(np.zeros((80, 100), np.int32), name="photutils", metadata={"source_layer": image.name})
    viewer.add_points([[10, 10]], name="photutils catalog", metadata={"galseg_kind": "catalog", "source_layer": "photutils"})
    viewer.add_image(np.zeros((80, 100), np.float32), name="other")  # no header: not the one shown
    widget = WcsInfoWidget(viewer)
    viewer.layers.selection.active = viewer.layers["photutils catalog"]
    assert widget.header_layer is image and "FILTER" in widget.header_view.toPlainText()
    assert f"header of {image.name!r}, where 'photutils catalog' came from" in widget.layer_label.text()
    viewer.layers.selection.active = viewer.layers["photutils"]
    assert widget.header_layer is image and widget.wcs_layer() is image
