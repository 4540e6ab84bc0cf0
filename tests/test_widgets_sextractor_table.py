"""A .sex run in the photutils widget (SExtractor mode): SExtractor's segmentation, a catalogue Points
layer whose features are the CLI catalogue's .param columns, and a table whose rows select sources."""
from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits
from qtpy.QtCore import Qt

from napari_galseg.synth import make_field
from napari_galseg.widgets._layers import camera, centre_on

pytestmark = pytest.mark.gui

PARAMS = "NUMBER\nX_IMAGE\nY_IMAGE\nA_IMAGE\nFLUX_ISO\nFLUX_APER(2)\nMAG_AUTO\nFLUX_RADIUS\nFLAGS\n"
SEX = ("CATALOG_NAME ignored.cat\nCATALOG_TYPE FITS_1.0\nPARAMETERS_NAME t.param\nDETECT_MINAREA 5\n"
       "DETECT_THRESH 1.5\nFILTER Y\nCLEAN N\nDEBLEND_MINCONT 1\nPHOT_APERTURES 4,8\nGAIN 2.0\nMAG_ZEROPOINT 25\n")
COLUMNS = ["NUMBER", "X_IMAGE", "Y_IMAGE", "A_IMAGE", "FLUX_ISO", "FLUX_APER", "FLUX_APER_1", "MAG_AUTO",
           "FLUX_RADIUS", "FLAGS"]


def _field(tmp_path):
    image = make_field(192, 5, psf_fwhm=3.0, galaxy_density=4000).image.astype(np.float32)
    fits.writeto(tmp_path / "img.fits", image)
    (tmp_path / "t.param").write_text(PARAMS)
    (tmp_path / "t.sex").write_text(SEX)
    return image


def _cli_catalogue(tmp_path):
    """The catalogue ``galseg segment photutils --sextractor-config --catalog`` writes for the frame."""
    from napari_galseg.cli import main

    assert main(["segment", "photutils", str(tmp_path / "img.fits"), "--sextractor-config", str(tmp_path / "t.sex"),
                 "--catalog", str(tmp_path / "cli.cat"), "-o", str(tmp_path / "cli_seg.fits")]) == 0
    return fits.getdata(tmp_path / "cli.cat", 1), fits.getdata(tmp_path / "cli_seg.fits")


def _run(widget, qtbot):
    with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
        widget.run(field_of_view=False)


def _click_row(qtbot, table, row):
    rect = table.view.visualRect(table.model.index(row, 0))
    qtbot.mouseClick(table.view.viewport(), Qt.LeftButton, pos=rect.center())


def test_a_sex_run_gives_labels_a_catalogue_layer_and_a_table(make_napari_viewer, qtbot, tmp_path):
    from napari_galseg.io import contrast_limits_zscale
    from napari_galseg.widgets.catalog_table import DOCK_NAME
    from napari_galseg.widgets.display import install
    from napari_galseg.widgets.segment import PhotutilsWidget

    image = _field(tmp_path)
    viewer = make_napari_viewer(show=True)
    install(viewer)  # the DS9 conventions, as the reader sets them: outlines, yellow catalogues
    viewer.add_image(image, name="img", contrast_limits=contrast_limits_zscale(image))
    widget = PhotutilsWidget(viewer)
    widget.sextractor.file.value = str(tmp_path / "t.sex")
    assert widget.sextractor.mode.enabled and widget.sextractor.active_run() is not None
    assert widget.sextractor.report.value.startswith("t.sex: SExtractor mode, 9 catalogue columns")
    assert not widget.params.enabled  # the photutils form is not used in SExtractor mode
    _run(widget, qtbot)
    assert widget.status.value.startswith("sextractor:"), widget.status.value

    ref, ref_seg = _cli_catalogue(tmp_path)
    labels, points = viewer.layers["sextractor"], viewer.layers["sextractor catalog"]
    np.testing.assert_array_equal(labels.data, ref_seg)  # the CLI's segmentation
    features = points.features
    assert list(features.columns) == COLUMNS
    assert len(features) == len(ref) > 5
    expected = {name: ref[name] for name in COLUMNS if "APER" not in name}
    expected.update(FLUX_APER=ref["FLUX_APER"][:, 0], FLUX_APER_1=ref["FLUX_APER"][:, 1])  # a vector, split
    for name in COLUMNS:  # the catalogue file's values, to the bit
        np.testing.assert_array_equal(features[name].to_numpy(), np.asarray(expected[name]), err_msg=name)
    # at the barycentres (float64; the file's X/Y_IMAGE are float32), 1-based x, y -> 0-based (row, col)
    np.testing.assert_allclose(points.data, np.column_stack([ref["Y_IMAGE"] - 1.0, ref["X_IMAGE"] - 1.0]), atol=1e-4)
    number = labels.data[np.round(points.data[:, 0]).astype(int), np.round(points.data[:, 1]).astype(int)]
    assert np.mean(number == features["NUMBER"].to_numpy()) > 0.8  # the markers sit on their own labels
    assert str(points.metadata["galseg_kind"]) == "catalog"
    np.testing.assert_allclose(points.border_color[0], [1.0, 1.0, 0.0, 1.0])  # DS9's yellow, 1.5 px
    assert not points.border_width_is_relative and points.border_width[0] == 1.5

    table = viewer.window.dock_widgets[DOCK_NAME]
    assert table.model.rowCount() == len(ref) and table.model.columnCount() == len(COLUMNS)
    flux = COLUMNS.index("FLUX_ISO")
    table.view.sortByColumn(flux, Qt.DescendingOrder)  # the brightest first
    brightest = int(np.argmax(features["FLUX_ISO"].to_numpy()))
    assert table.model.index(0, 0).data() == str(features["NUMBER"][brightest])
    _click_row(qtbot, table, 0)
    assert set(points.selected_data) == {brightest}
    np.testing.assert_allclose(camera(viewer).center[-2:], points.data[brightest], atol=1e-6)
    assert camera(viewer).zoom >= 4.0
    _click_row(qtbot, table, 2)
    third = int(table.model.order[2])
    assert set(points.selected_data) == {third} and third != brightest
    np.testing.assert_allclose(camera(viewer).center[-2:], points.data[third], atol=1e-6)
    faintest = int(np.argmin(features["FLUX_ISO"].to_numpy()))
    points.selected_data = {brightest, faintest}  # selected in the image: their rows are selected
    rows = sorted(i.row() for i in table.view.selectionModel().selectedRows())
    assert rows == [0, len(ref) - 1]

    if os.environ.get("GALSEG_SHOTS"):  # the documentation's picture (docs/images/sextractor_table.png)
        viewer.window._qt_window.resize(1400, 900)
        _click_row(qtbot, table, 0)
        qtbot.wait(300)
        viewer.screenshot(os.path.join(os.environ["GALSEG_SHOTS"], "sextractor_table.png"), canvas_only=False,
                          flash=False)

    _run(widget, qtbot)  # the same file again: both layers replaced, one table
    assert [layer.name for layer in viewer.layers] == ["img", "sextractor", "sextractor catalog"]
    assert viewer.window.dock_widgets[DOCK_NAME] is table and table.layer is viewer.layers["sextractor catalog"]
    assert table.model.rowCount() == len(ref)
    assert table.model.index(0, flux).data() == f"{features['FLUX_ISO'].max():.6g}"  # the user's sort kept

    centre_on(viewer, (100.0, 110.0), min_zoom=8.0)  # the field of view: a crop, placed where it was cut
    qtbot.wait(200)
    with qtbot.waitSignal(widget.work_finished, timeout=120000):
        widget.run(field_of_view=True)
    view_labels, view_points = viewer.layers["sextractor [view]"], viewer.layers["sextractor [view] catalog"]
    corner = np.asarray(view_labels.translate)
    assert np.all(corner > 0) and np.all(view_points.translate == corner) and all(np.less(view_labels.data.shape, image.shape))
    assert "X_IMAGE / Y_IMAGE count from the view's corner" in widget.status.value
    world = np.round(view_points.data + corner).astype(int)
    assert len(world) and np.mean(labels.data[world[:, 0], world[:, 1]] > 0) > 0.8  # on the whole frame's sources
    assert viewer.window.dock_widgets[DOCK_NAME].layer is view_points


def test_mode_off_or_unavailable_runs_the_photutils_pipeline(make_napari_viewer, qtbot, tmp_path):
    from napari_galseg.widgets.segment import PhotutilsWidget

    image = _field(tmp_path)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    widget = PhotutilsWidget(viewer)
    widget.sextractor.file.value = str(tmp_path / "t.sex")
    widget.sextractor.mode.value = False
    assert widget.params.enabled and widget.sextractor.report.value.startswith("t.sex: set")
    _run(widget, qtbot)
    assert "photutils" in viewer.layers and "sextractor catalog" not in viewer.layers

    (tmp_path / "t.param").unlink()  # SExtractor mode cannot read the file: the mapping still fills the form
    widget.sextractor.mode.value = True
    widget.sextractor.file.value = str(tmp_path / "none.sex")
    (tmp_path / "none.sex").write_text(SEX)
    widget.sextractor.load(tmp_path / "none.sex")
    assert widget.sextractor.active_run() is None and not widget.sextractor.mode.enabled
    report = widget.sextractor.report.value
    assert "SExtractor mode:" in report and "t.param: no such file" in report and "\n" not in report


def test_the_table_keeps_up_with_a_large_catalogue(make_napari_viewer, qtbot):
    """20 000 sources: sorting, row clicks and point selection map rows and points both ways."""
    import pandas as pd

    from napari_galseg.widgets.catalog_table import DOCK_NAME, show_catalog_table

    rng = np.random.default_rng(1)
    n = 20_000
    features = pd.DataFrame({"NUMBER": np.arange(1, n + 1), "FLUX_AUTO": rng.lognormal(size=n).astype(np.float32),
                             "FLAGS": rng.integers(0, 4, n).astype(np.int16)})
    viewer = make_napari_viewer(show=True)
    points = viewer.add_points(rng.uniform(0, 4000, (n, 2)), features=features, name="big catalog", size=8)
    table = show_catalog_table(viewer, points)
    assert table.model.rowCount() == n and table.title.text() == "big catalog: 20000 sources, 3 columns"
    assert [table.model.index(r, 0).data() for r in (0, 1, n - 1)] == ["1", "2", "20000"]  # the catalogue's order
    table.view.sortByColumn(1, Qt.AscendingOrder)
    np.testing.assert_array_equal(table.model.order, np.argsort(features["FLUX_AUTO"].to_numpy(), kind="stable"))
    table.view.sortByColumn(2, Qt.DescendingOrder)  # integers sort as numbers; ties keep a stable order
    flags = features["FLAGS"].to_numpy()[table.model.order]
    assert np.all(np.diff(flags) <= 0)
    table.view.scrollTo(table.model.index(n - 1, 0))
    qtbot.wait(50)
    _click_row(qtbot, table, n - 1)  # the last row, scrolled to
    last = int(table.model.order[n - 1])
    assert set(points.selected_data) == {last}
    np.testing.assert_allclose(camera(viewer).center[-2:], points.data[last], atol=1e-6)
    points.selected_data = {5, 12_345}
    rows = sorted(i.row() for i in table.view.selectionModel().selectedRows())
    assert rows == sorted(int(table.model.rows_of[i]) for i in (5, 12_345))
    assert int(table.model.order[rows[0]]) in (5, 12_345)

    table_id = id(table)
    viewer.window.remove_dock_widget(table)  # the dock closed: selecting points no longer reaches it
    points.selected_data = {7}
    qtbot.wait(50)
    again = show_catalog_table(viewer, points)  # the next run opens a new one
    assert id(again) != table_id and viewer.window.dock_widgets[DOCK_NAME] is again
    assert [i.row() for i in again.view.selectionModel().selectedRows()] == [7]  # catalogue order, selection shown
    points.selected_data = {9}
    assert [i.row() for i in again.view.selectionModel().selectedRows()] == [9]


def test_the_noise_layer_is_the_weight_map_and_a_run_reports_progress_and_stops(make_napari_viewer, qtbot, tmp_path,
                                                                                monkeypatch):
    """A noise layer is SExtractor's MAP_RMS weight map (the CLI's ``--rms``); the scan reports its
    rows and stops at the next block when cancelled."""
    from napari_galseg.cli import main
    from napari_galseg.widgets import sextractor_mode
    from napari_galseg.widgets.segment import PhotutilsWidget

    image = _field(tmp_path)
    rms = np.full(image.shape, 2.0, np.float32)
    rms[:, image.shape[1] // 2:] = 4.0  # noisier on the right: thresholds follow the map
    fits.writeto(tmp_path / "rms.fits", rms)
    assert main(["segment", "photutils", str(tmp_path / "img.fits"), "--sextractor-config", str(tmp_path / "t.sex"),
                 "--rms", str(tmp_path / "rms.fits"), "--catalog", str(tmp_path / "w.cat"),
                 "-o", str(tmp_path / "w_seg.fits")]) == 0
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    viewer.add_image(rms, name="rms")
    widget = PhotutilsWidget(viewer)
    widget.rms_combo.value = viewer.layers["rms"]
    widget.sextractor.file.value = str(tmp_path / "t.sex")
    seen = []
    widget._relay.progressed.connect(lambda done, total, message: seen.append((done, total, message)))
    _run(widget, qtbot)
    assert "weights: the noise layer, as WEIGHT_TYPE MAP_RMS" in widget.status.value, widget.status.value
    np.testing.assert_array_equal(viewer.layers["sextractor"].data, fits.getdata(tmp_path / "w_seg.fits"))
    assert len(fits.getdata(tmp_path / "w.cat", 1)) == len(viewer.layers["sextractor catalog"].data)
    assert seen and seen[-1][:2] == (image.shape[0], image.shape[0]) and "SExtractor mode: row" in seen[-1][2]

    real = sextractor_mode.run_frame

    def cancelled_meanwhile(*args, **kwargs):  # the user presses cancel while the frame is read
        widget._cancel_event.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(sextractor_mode, "run_frame", cancelled_meanwhile)
    with qtbot.waitSignal(widget.work_finished, timeout=120000):
        widget.run(field_of_view=False)
    assert widget.status.value == "cancelled"
