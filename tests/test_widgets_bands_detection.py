"""Several bands in the photutils dock: image layers of one field detected on their combined image
give the labels of `galseg segment photutils g r i --bands`; bands of another shape are refused."""
import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def band_files(tmp_path_factory):
    from napari_galseg.synth.bands import write_band_field

    return write_band_field(tmp_path_factory.mktemp("bands"), size=160, seed=3)


def _labels(viewer):
    from napari.layers import Labels

    return [layer for layer in viewer.layers if isinstance(layer, Labels) and layer.metadata.get("method")]


@pytest.mark.parametrize("combination", ["snr", "chi2"])
def test_bands_in_the_dock_give_the_clis_labels(make_napari_viewer, qtbot, band_files, tmp_path, combination):
    from napari_galseg.widgets.segment import PhotutilsWidget

    out = tmp_path / "cli.fits"
    bands = [str(band_files[f"image_{b}"]) for b in "gri"]
    assert main(["segment", "photutils", *bands, "--bands", "--detection", combination, "-o", str(out)]) == 0
    expected = fits.getdata(out)

    viewer = make_napari_viewer()
    for b in "gri":
        viewer.add_image(fits.getdata(band_files[f"image_{b}"]).astype(np.float32), name=b)
    widget = PhotutilsWidget(viewer)
    widget.image_combo.value = viewer.layers["g"]
    widget.rms_combo.value = None
    widget.form.reset_choices()
    assert [name for name, _ in widget._band_choices()] == ["r", "i"]
    widget.bands_select.value = [viewer.layers["r"], viewer.layers["i"]]
    widget.detection.value = combination
    with qtbot.waitSignal(widget.work_finished, timeout=120000):  # connected before the worker starts
        assert widget.run(field_of_view=False) is not None
    got = np.asarray(_labels(viewer)[-1].data)
    assert got.max() >= 5, widget.status.value
    np.testing.assert_array_equal(got, expected)
    assert f"detected on the {combination} image of g, r, i" in widget.status.value

    # one band alone again: a new layer, not a replacement of the bands' one
    widget.bands_select.value = []
    with qtbot.waitSignal(widget.work_finished, timeout=120000):
        widget.run(field_of_view=False)
    assert len(_labels(viewer)) == 2 and "detected on" not in widget.status.value


def test_a_band_of_another_shape_is_refused_in_one_line(make_napari_viewer, band_files):
    from napari_galseg.widgets.segment import PhotutilsWidget

    viewer = make_napari_viewer()
    viewer.add_image(fits.getdata(band_files["image_g"]).astype(np.float32), name="g")
    viewer.add_image(np.zeros((100, 100), np.float32), name="small")
    widget = PhotutilsWidget(viewer)
    widget.image_combo.value = viewer.layers["g"]
    widget.form.reset_choices()
    widget.bands_select.value = [viewer.layers["small"]]
    assert widget.run(field_of_view=False) is None
    assert "band layer 'small' has shape (100, 100)" in widget.status.value
    assert "reproject" in widget.status.value and not _labels(viewer)
