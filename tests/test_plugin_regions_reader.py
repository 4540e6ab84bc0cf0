"""Region files (our catalog exports, DS9's own) open as a Shapes layer over the image."""
import numpy as np
import pytest

from napari_galseg.catalog import add_sky_coordinates
from napari_galseg.io import open_fits, write_fits
from napari_galseg.io.catalog import write_regions
from napari_galseg.plugin.regions_reader import get_regions_reader, region_layer
from napari_galseg.segmenters import get
from napari_galseg.synth import make_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field_and_catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regions")
    field = make_field(256, seed=5)
    write_fits(folder / "img.fits", field.image, header=field.header())
    catalog = get("photutils")(box_size=32).predict(field.image, field.rms).catalog
    return folder, open_fits(folder / "img.fits"), catalog


def test_image_coordinates_open_as_ellipses_at_the_centroids(field_and_catalog, tmp_path):
    _, _, catalog = field_and_catalog
    path = write_regions(catalog, tmp_path / "cat.reg")
    data, kwargs, kind = region_layer(path)
    assert kind == "shapes" and len(data) == len(catalog) and set(kwargs["shape_type"]) == {"ellipse"}
    centres = np.array([d.mean(axis=0) for d in data])  # (row, col)
    np.testing.assert_allclose(centres[:, 1], np.asarray(catalog["x_centroid"]), atol=1e-3)
    np.testing.assert_allclose(centres[:, 0], np.asarray(catalog["y_centroid"]), atol=1e-3)
    assert kwargs["features"]["text"][0] == str(int(catalog["label"][0]))
    assert get_regions_reader(str(tmp_path / "cat.fits")) is None


def test_sky_regions_open_over_the_image_with_its_wcs(make_napari_viewer, field_and_catalog, tmp_path):
    folder, image, catalog = field_and_catalog
    assert image.wcs is not None
    sky = catalog.copy()
    add_sky_coordinates(sky, image.wcs)
    path = write_regions(sky, tmp_path / "sky.reg", wcs=image.wcs)
    assert "fk5" in path.read_text() or "icrs" in path.read_text()
    viewer = make_napari_viewer()
    viewer.open(str(folder / "img.fits"), plugin="napari-galseg")
    layers = viewer.open(str(path), plugin="napari-galseg")
    shapes = layers[0]
    assert type(shapes).__name__ == "Shapes" and len(shapes.data) == len(catalog)
    np.testing.assert_allclose(shapes.data[0].mean(axis=0), [catalog["y_centroid"][0], catalog["x_centroid"][0]], atol=1e-2)


def test_sky_regions_without_an_image_are_a_notification_not_an_error(field_and_catalog, tmp_path):
    _, image, catalog = field_and_catalog
    path = write_regions(catalog, tmp_path / "sky.reg", wcs=image.wcs)
    assert get_regions_reader(str(path))(str(path)) == [(None,)]
