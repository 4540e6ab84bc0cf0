"""An RGB composite of three bands of one field: the bands ordered red to blue by their filter (from
the names or FILTER cards), refused on other grids, and offered in napari (Layers ▸ Visualize) as a
lazy RGB layer made of the selected band layers."""
import numpy as np
import pytest
from astropy.wcs import WCS

from napari_galseg.frames.bands import filter_of, rgb_composite, rgb_of_bands, rgb_order
from napari_galseg.synth.bands import make_bands


@pytest.fixture(scope="module")
def bands():
    return make_bands(128, seed=4)


def test_filters_are_read_from_names_and_headers():
    assert [filter_of(n) for n in ("field_g", "calexp-HSC-I", "tile.r.fits", "img", "rms")] == ["g", "i", "r", None, None]
    assert filter_of("img", {"FILTER": "HSC-Z"}) == "z" and filter_of("a_g", {"BAND": "i"}) == "i"  # the card first
    assert rgb_order(["f_g", "f_i", "f_r"]) == [1, 2, 0]  # i red, r green, g blue
    assert rgb_order(["one", "two", "three"]) == [0, 1, 2]  # unknown filters: as given
    with pytest.raises(ValueError, match="three bands"):
        rgb_order(["f_g", "f_r"])


def test_rgb_of_bands_orders_by_filter_and_refuses_other_grids(bands):
    g, r, i = (bands.images[b] for b in "gri")
    rgb, order = rgb_of_bands([g, i, r], ["x_g", "x_i", "x_r"])
    assert order == [1, 2, 0]
    np.testing.assert_array_equal(rgb.compute(), rgb_composite(i, r, g).compute())
    with pytest.raises(ValueError, match="shape"):
        rgb_of_bands([g, i, r[:100]], ["x_g", "x_i", "x_r"])
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    shifted = wcs.deepcopy()
    shifted.wcs.crpix = [3, 0]
    with pytest.raises(ValueError, match="reproject"):
        rgb_of_bands([g, i, r], ["x_g", "x_i", "x_r"], wcs=[wcs, wcs, shifted])


@pytest.mark.gui
def test_the_menu_adds_an_rgb_layer_of_the_selected_bands(make_napari_viewer, bands):
    from test_menus import _menu, _texts

    from napari_galseg.widgets.menu_actions import rgb_composite_from_layers

    viewer = make_napari_viewer()
    for band in "rig":  # any order: the filters decide the colours
        viewer.add_image(bands.images[band], name=f"field_{band}")
    assert any(t.startswith("RGB composite from 3 band layers")
               for t in _texts(_menu(viewer.window._qt_window.menuBar(), "Layers", "Visualize")))
    viewer.layers.selection = set(viewer.layers)
    layer = rgb_composite_from_layers(viewer)
    assert layer.rgb and layer.name == "RGB (field_i, field_r, field_g)" and layer.data.shape == (128, 128, 3)
    g, r, i = (bands.images[b] for b in "gri")
    np.testing.assert_array_equal(np.asarray(layer.data), rgb_composite(i, r, g).compute())
    assert layer.metadata["bands"] == ["field_i", "field_r", "field_g"]
    # one layer selected: the viewer's only three band images (the RGB layer is not a band)
    viewer.layers.selection = {viewer.layers["field_g"]}
    assert rgb_composite_from_layers(viewer).metadata["bands"] == ["field_i", "field_r", "field_g"]
    viewer.layers.remove("field_r")
    viewer.layers.selection = {viewer.layers["field_g"]}
    assert rgb_composite_from_layers(viewer) is None  # two bands: a message, no layer
