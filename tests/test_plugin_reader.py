"""The npe2 FITS reader: which paths it takes, the layers it makes, and what napari shows."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_galseg.plugin.reader import MULTISCALE_ABOVE, get_reader


def galaxies(shape=(128, 160), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(10.0, 1.0, shape)
    for y, x, flux, r in [(30, 40, 400, 5), (90, 120, 900, 8), (64, 80, 250, 4), (100, 30, 600, 6)]:
        image += flux * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * r**2))
    return image.astype(np.float32)


def sky_header(shape=(128, 160)) -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.1 / 3600, 0.1 / 3600]
    return wcs.to_header()


def write_field_folder(folder):
    image = galaxies()
    truth = np.zeros(image.shape, np.int32)
    truth[25:36, 35:46] = 1
    truth[82:99, 112:129] = 2
    folder.mkdir(exist_ok=True)
    fits.PrimaryHDU(truth, header=sky_header()).writeto(folder / "true.fits")
    fits.PrimaryHDU(image, header=sky_header()).writeto(folder / "img.fits")
    fits.PrimaryHDU(np.full(image.shape, 1.0, np.float32), header=sky_header()).writeto(folder / "rms.fits")
    (folder / "catalog.ecsv").write_text("# not a FITS file\n")
    return image, truth


def error_messages():
    from napari.utils.notifications import notification_manager

    return [str(n.message) for n in notification_manager.records]


@pytest.mark.parametrize("name", ["picture.png", "notes.txt", "table.ecsv", "archive.tar.gz"])
def test_unknown_paths_get_no_reader(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"x")
    assert get_reader(str(path)) is None


def test_folder_without_fits_gets_no_reader(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "missing_folder")) is None


def test_single_image_layer(tmp_path):
    image = galaxies()
    path = tmp_path / "deep.fits"
    fits.PrimaryHDU(image, header=sky_header()).writeto(path)
    layers = get_reader(str(path))(str(path))
    assert len(layers) == 1
    data, kwargs, layer_type = layers[0]
    assert layer_type == "image" and kwargs["name"] == "deep" and "multiscale" not in kwargs
    np.testing.assert_array_equal(np.asarray(data), image)
    lo, hi = kwargs["contrast_limits"]
    assert 5 < lo < 10 < hi < 100  # zscale around the sky, far below the galaxy peaks (~900)
    meta = kwargs["metadata"]
    assert meta["galseg_kind"] == "image" and meta["path"] == str(path) and meta["hdu"] == 0
    assert meta["header"]["CTYPE1"] == "RA---TAN" and meta["wcs"].has_celestial


def test_folder_drop_names_types_and_order(tmp_path):
    image, truth = write_field_folder(tmp_path / "field")
    layers = get_reader(str(tmp_path / "field"))(str(tmp_path / "field"))
    assert [(kw["name"], kind) for _, kw, kind in layers] == [
        ("img", "image"), ("rms", "image"), ("true", "labels")]
    assert layers[1][1]["colormap"] == "magma" and layers[1][1]["visible"] is False
    assert layers[1][1]["metadata"]["galseg_kind"] == "rms"
    np.testing.assert_array_equal(np.asarray(layers[2][0]), truth)
    assert "contrast_limits" not in layers[2][1]


def test_multi_extension_file_one_layer_per_image_hdu(tmp_path):
    path = tmp_path / "mef.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(2))])
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(galaxies(), name="SCI"), table,
                  fits.ImageHDU(np.ones((128, 160), np.float32), name="WHT")]).writeto(path)
    layers = get_reader(str(path))(str(path))
    assert [(kw["name"], kw["metadata"]["hdu"]) for _, kw, _ in layers] == [("mef[SCI]", 1), ("mef[WHT]", 3)]


def test_wide_images_and_labels_become_multiscale(tmp_path):
    width = MULTISCALE_ABOVE + 200
    image = np.tile(np.linspace(0, 1, width, dtype=np.float32), (64, 1))
    labels = (np.arange(64 * width).reshape(64, width) // 1000).astype(np.int32)
    fits.PrimaryHDU(image).writeto(tmp_path / "wide.fits")
    fits.PrimaryHDU(labels).writeto(tmp_path / "wide_seg.fits")
    layers = get_reader(str(tmp_path))(str(tmp_path))
    (image_levels, image_kw, image_type), (label_levels, label_kw, label_type) = layers
    assert image_type == "image" and label_type == "labels"
    assert image_kw["multiscale"] and label_kw["multiscale"]
    assert [lvl.shape[1] for lvl in image_levels] == [4296, 2148, 1074, 537, 269]
    np.testing.assert_array_equal(label_levels[2].compute(), labels[::4, ::4])  # strided, never averaged


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"SIMPLE  =                    T" + b" " * 50, "header cannot be read"),
        (b"\x89PNG not really" + bytes(4000), "not a FITS file"),
    ],
)
def test_broken_files_notify_and_add_nothing(tmp_path, content, expected):
    path = tmp_path / "broken.fits"
    path.write_bytes(content)
    reader = get_reader(str(path))
    assert reader is not None  # a .fits name: we take it, and explain what is wrong
    before = len(error_messages())
    assert reader(str(path)) == [(None,)]  # npe2's "read, no layers": napari raises nothing more
    new = error_messages()[before:]
    assert len(new) == 1 and expected in new[0]


def test_cube_notification_names_the_extra_axis(tmp_path):
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((4, 8, 8), np.float32)).writeto(path)
    before = len(error_messages())
    assert get_reader(str(path))(str(path)) == [(None,)]
    assert "NAXIS3 (numpy axis 0, length 4) is extra" in error_messages()[before:][0]


def test_npe2_finds_our_reader_by_manifest(tmp_path):
    import npe2

    npe2.PluginManager.instance().discover()  # napari does this on start-up
    path = tmp_path / "img.fits"
    fits.PrimaryHDU(galaxies()).writeto(path)
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-galseg")
    assert layers[0][1]["name"] == "img" and layers[0][2] == "image"


@pytest.mark.gui
def test_viewer_open_shows_the_galaxies(make_napari_viewer, tmp_path):
    write_field_folder(tmp_path / "field")
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(tmp_path / "field" / "img.fits", plugin="napari-galseg")
    assert [layer.name for layer in layers] == ["img"]
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    gray = shot[..., :3].mean(axis=-1)
    assert gray.std() > 10  # bright galaxies on a dark sky, not a blank canvas
    assert gray.max() > 200 and np.median(gray) < 100


@pytest.mark.gui
def test_viewer_open_folder_and_broken_file(make_napari_viewer, tmp_path):
    write_field_folder(tmp_path / "field")
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "field", plugin="napari-galseg")
    assert [(layer.name, type(layer).__name__) for layer in viewer.layers] == [
        ("img", "Image"), ("rms", "Image"), ("true", "Labels")]
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"not fits at all" * 300)
    viewer.open(broken, plugin="napari-galseg")  # no exception reaches napari
    assert len(viewer.layers) == 3


def _screenshot(viewer) -> np.ndarray:
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)


@pytest.mark.gui
@pytest.mark.parametrize("order", [("img", "rms", "true"), ("true", "rms", "img")])
def test_files_dropped_together_leave_the_image_visible(make_napari_viewer, tmp_path, order):
    """A multi-file drop reaches the reader one file at a time; it must look like a folder drop."""
    _, truth = write_field_folder(tmp_path / "field")
    viewer = make_napari_viewer(show=True)
    viewer.open([tmp_path / "field" / f"{name}.fits" for name in order], plugin="napari-galseg")
    kinds = {layer.name: (type(layer).__name__, layer.visible) for layer in viewer.layers}
    assert kinds == {"img": ("Image", True), "rms": ("Image", False), "true": ("Labels", True)}
    assert [layer.name for layer in viewer.layers].index("img") < [layer.name for layer in viewer.layers].index("true")
    viewer.reset_view()
    shot = _screenshot(viewer)
    for layer in viewer.layers:
        layer.visible = layer.name == "img"
    image_only = _screenshot(viewer)
    # the labels tint their ~2 % of the field; everywhere else the canvas shows the image itself
    same = (np.abs(shot - image_only).max(axis=-1) <= 2).mean()
    assert same > 0.9, f"only {same:.0%} of the canvas shows the image"
    assert image_only.std() > 10 and (np.abs(shot - image_only).max(axis=-1) > 20).any()  # labels drawn too
    gray = image_only.mean(axis=-1)
    assert gray.max() > 200 and np.median(gray) < 100  # the galaxies, not an rms map or a grey sheet


@pytest.mark.gui
def test_demo_folder_opens_predictions_as_labels(make_napari_viewer, tmp_path):
    from napari_galseg import cli

    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--size", "256", "--methods", "kmeans", "--no-screenshot"]) == 0
    assert fits.getheader(out / "pred_kmeans.fits")["EXTNAME"] == "LABELS"  # as `galseg segment` writes
    viewer = make_napari_viewer()
    viewer.open(out, plugin="napari-galseg")
    assert [(layer.name, type(layer).__name__, layer.visible) for layer in viewer.layers] == [
        ("img", "Image", True), ("rms", "Image", False), ("pred_kmeans", "Labels", True), ("true", "Labels", True)]


def test_prediction_without_extname_is_labels_by_content(tmp_path):
    _, truth = write_field_folder(tmp_path / "field")
    fits.PrimaryHDU(truth).writeto(tmp_path / "field" / "pred_sep.fits")  # another tool's output
    layers = get_reader(str(tmp_path / "field" / "pred_sep.fits"))(str(tmp_path / "field" / "pred_sep.fits"))
    assert layers[0][2] == "labels" and layers[0][1]["metadata"]["galseg_kind"] == "labels"
