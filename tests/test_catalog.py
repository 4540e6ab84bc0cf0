"""Catalog contents (against planted sources and a direct computation) and safe exports."""
import numpy as np
import pytest
from astropy.table import Table

from napari_galseg.catalog import BASIC_COLUMNS, CATALOG_COLUMNS, basic_catalog, source_catalog
from napari_galseg.io.catalog import read_regions, write_catalog, write_regions
from napari_galseg.segmenters.photutils import segment


def _blobs():
    shape = (120, 160)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape)
    sources = [(30.0, 40.0, 3000.0, 2.0), (80.0, 110.0, 5000.0, 3.0), (90.0, 30.0, 2000.0, 1.5)]
    for y, x, flux, s in sources:
        img += flux / (2 * np.pi * s**2) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s**2))
    img += 10 + np.random.default_rng(0).normal(0, 0.5, shape)
    return img.astype(np.float32), sources


@pytest.fixture(scope="module")
def result():
    img, sources = _blobs()
    return segment(img, box_size=40, deblend=False, catalog="full"), sources


def test_catalog_rows_match_planted_sources(result):
    res, sources = result
    table = res.catalog
    assert list(table.colnames[:2]) == ["label", "parent"] and set(CATALOG_COLUMNS) <= set(table.colnames)
    assert len(table) == 3 and list(table["label"]) == [1, 2, 3]
    for y, x, flux, _ in sources:
        d = np.hypot(table["x_centroid"] - x, table["y_centroid"] - y)
        row = table[int(np.argmin(d))]
        assert d.min() < 0.2
        assert row["kron_flux"] == pytest.approx(flux, rel=0.05)  # Kron aperture holds ~all the flux
        assert row["segment_flux"] < row["kron_flux"] * 1.02
        assert row["area"].value == (res.labels == row["label"]).sum()
        assert row["bbox_xmin"] <= x <= row["bbox_xmax"] and row["bbox_ymin"] <= y <= row["bbox_ymax"]
    # round sources: semimajor ≈ semiminor
    assert np.all(table["semiminor_axis"] / table["semimajor_axis"] > 0.8)


def test_pipeline_catalog_equals_direct_sourcecatalog(result):
    """The windowed catalog of the pipeline equals photutils' SourceCatalog on the whole frame."""
    from napari_galseg.segmenters.photutils import PhotutilsParams
    from napari_galseg.segmenters.photutils.pipeline import Pipeline

    res, _ = result
    img, _ = _blobs()
    pipe = Pipeline(img, None, PhotutilsParams(box_size=40, deblend=False, catalog="full"))
    pipe.background()
    data, conv, _, rms, valid = pipe.prepare((slice(0, 120), slice(0, 160)))
    direct = source_catalog(data, res.labels, convolved=conv, error=rms, mask=~valid)
    for name in direct.colnames:
        np.testing.assert_allclose(np.asarray(res.catalog[name], float), np.asarray(direct[name], float), rtol=1e-6, err_msg=name)


def test_source_catalog_of_empty_labels_is_an_empty_table():
    table = source_catalog(np.zeros((5, 5)), np.zeros((5, 5), int))
    assert len(table) == 0 and "x_centroid" in table.colnames


@pytest.mark.parametrize("suffix", [".ecsv", ".fits"])
def test_write_and_read_back(result, tmp_path, suffix):
    res, _ = result
    path = write_catalog(res.catalog, tmp_path / f"cat{suffix}")
    back = Table.read(path)
    assert len(back) == len(res.catalog)
    # files follow the FITS 1-based convention (DS9, SExtractor); the table in memory stays 0-based
    np.testing.assert_allclose(back["x_centroid"], res.catalog["x_centroid"] + 1)
    np.testing.assert_array_equal(back["bbox_ymin"], res.catalog["bbox_ymin"] + 1)
    assert str(back["orientation"].unit) == "deg" and str(back["x_centroid"].unit) == "pix"
    assert "1-based" in back["x_centroid"].description


def test_file_positions_are_those_ds9_and_the_wcs_give_with_origin_1(tmp_path):
    """A one-pixel object at numpy [row 4, column 9] is at x = 10, y = 5 in the file, where
    DS9 shows it, and the file's ra/dec are the WCS's at those 1-based coordinates."""
    from astropy.wcs import WCS

    from napari_galseg.catalog import add_sky_coordinates
    from napari_galseg.io.catalog import PIXEL_CONVENTION

    data, labels = np.zeros((12, 16)), np.zeros((12, 16), np.int32)
    labels[4, 9], data[4, 9] = 1, 5.0
    table = basic_catalog(data, labels)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix, wcs.wcs.cdelt = [150.0, 2.0], [3.0, 7.0], [-0.001, 0.001]
    add_sky_coordinates(table, wcs)
    for suffix in (".ecsv", ".fits"):
        back = Table.read(write_catalog(table, tmp_path / f"one{suffix}"))
        assert (back["x_centroid"][0], back["y_centroid"][0]) == (10.0, 5.0)
        assert (back["bbox_xmin"][0], back["bbox_ymax"][0]) == (10, 5)
        ra, dec = wcs.all_pix2world(back["x_centroid"][0], back["y_centroid"][0], 1)
        assert back["ra"][0] == pytest.approx(float(ra)) and back["dec"][0] == pytest.approx(float(dec))
        assert str(back["ra"].unit) == "deg" and str(back["area"].unit) == "pix2"
        convention = back.meta.get("pixel_convention", back.meta.get("PIXCONV"))
        assert convention == PIXEL_CONVENTION


def test_ds9_regions_are_one_based_ellipses(result, tmp_path):
    res, _ = result
    path = write_catalog(res.catalog, tmp_path / "cat.reg")
    lines = path.read_text().splitlines()
    ellipses = [line for line in lines if line.startswith("ellipse(")]
    assert len(ellipses) == len(res.catalog) and "image" in lines
    x = float(ellipses[0].split("(")[1].split(",")[0])
    assert x == pytest.approx(res.catalog["x_centroid"][0] + 1, abs=1e-3)
    assert "text={1}" in ellipses[0]
    # read back (astropy regions) as pixel ellipses at the centroids, 2 × the semimajor axis
    back = read_regions(path)
    assert len(back) == len(res.catalog)
    assert back[0].center.x == pytest.approx(res.catalog["x_centroid"][0], abs=1e-3)
    assert back[0].width == pytest.approx(4 * float(res.catalog["semimajor_axis"][0].value), rel=1e-3)


def _wcs():
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.cdelt = [-0.0001, 0.0001]
    return wcs


def test_regions_in_sky_coordinates_with_a_wcs(result, tmp_path):
    res, _ = result
    path = write_catalog(res.catalog, tmp_path / "sky.reg", wcs=_wcs())
    text = path.read_text()
    assert "fk5" in text or "icrs" in text
    back = read_regions(path, wcs=_wcs())  # converted back to pixels through the same WCS
    assert back[0].center.x == pytest.approx(res.catalog["x_centroid"][0], abs=1e-3)
    assert back[0].center.y == pytest.approx(res.catalog["y_centroid"][0], abs=1e-3)
    with pytest.raises(ValueError, match="WCS"):
        read_regions(path)


def test_exports_refuse_to_overwrite_and_unknown_suffix(result, tmp_path):
    res, _ = result
    target = tmp_path / "cat.ecsv"
    target.write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        write_catalog(res.catalog, target)
    with pytest.raises(FileExistsError):
        write_regions(res.catalog, target)
    assert target.read_text() == "mine"
    write_catalog(res.catalog, target, overwrite=True)
    assert len(Table.read(target)) == len(res.catalog)
    with pytest.raises(ValueError, match=".ecsv, .fits or .reg"):
        write_catalog(res.catalog, tmp_path / "cat.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.ecsv"]  # no partial files left


def test_sky_coordinates_from_wcs(result):
    from astropy.wcs import WCS

    from napari_galseg.catalog import add_sky_coordinates

    res, _ = result
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.cdelt = [-0.0001, 0.0001]
    table = res.catalog.copy()
    add_sky_coordinates(table, wcs)
    sky = wcs.pixel_to_world(table["x_centroid"][0], table["y_centroid"][0])
    assert table["ra"][0] == pytest.approx(sky.ra.deg) and table["dec"][0] == pytest.approx(sky.dec.deg)


def test_points_and_ellipse_shapes_for_viewers(result):
    from napari_galseg.widgets._catalog_layers import ellipse_corners, points_data

    res, _sources = result
    coords, props = points_data(res.catalog)
    assert coords.shape == (3, 2) and props["label"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(coords[:, 1], res.catalog["x_centroid"])
    corners = ellipse_corners(res.catalog, scale=1.0)
    assert corners.shape == (3, 4, 2)
    # the corners' centre is the centroid; half-diagonal = sqrt(a² + b²)
    np.testing.assert_allclose(corners.mean(axis=1), coords, atol=1e-9)
    a, b = res.catalog["semimajor_axis"].value, res.catalog["semiminor_axis"].value
    np.testing.assert_allclose(np.hypot(*(corners[:, 0] - coords).T), np.hypot(a, b), rtol=1e-9)


# -- the vectorised "basic" catalog ------------------------------------------------------------


def _photutils_segments():
    """A realistic synthetic field segmented and deblended by photutils itself, with masked pixels."""
    import warnings

    from astropy.convolution import convolve
    from photutils.background import Background2D
    from photutils.segmentation import (
        deblend_sources,
        detect_sources,
        make_2dgaussian_kernel,
    )

    from napari_galseg.synth import make_field

    img = make_field(size=256, seed=1).image.astype(np.float32)
    img[10:20, 30:200] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bkg = Background2D(img, 32)
    data = (img - bkg.background).astype(np.float32)
    conv = convolve(np.nan_to_num(data), make_2dgaussian_kernel(3.0, size=5).array).astype(np.float32)
    segm = detect_sources(conv, 0.5 * bkg.background_rms, n_pixels=10)
    segm = deblend_sources(conv, segm, 10, progress_bar=False)
    return data, conv, bkg.background_rms, ~np.isfinite(img), segm.data


def test_basic_catalog_equals_photutils_sourcecatalog():
    data, conv, rms, mask, labels = _photutils_segments()
    assert labels.max() > 20 and (labels[10:20] > 0).any()  # masked pixels inside segments
    ref = source_catalog(data, labels, convolved=conv, error=rms, mask=mask)
    got = basic_catalog(data, labels, convolved=conv, error=rms, mask=mask)
    assert got.colnames == ["label", "parent", *BASIC_COLUMNS[1:]] and len(got) == len(ref)
    for name in got.colnames:
        a, b = np.asarray(getattr(ref[name], "value", ref[name]), float), np.asarray(getattr(got[name], "value", got[name]), float)
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9, equal_nan=True, err_msg=name)  # photutils sums float32 data in float32
    assert got["orientation"].unit == "deg" and got["area"].unit == "pix2"


def test_basic_catalog_of_the_pipeline_equals_photutils_on_its_labels(result):
    """The pipeline's basic catalog (sums merged across tiles, deblended children) agrees with
    SourceCatalog on the final label image."""
    from napari_galseg.segmenters.photutils import PhotutilsParams
    from napari_galseg.segmenters.photutils.pipeline import Pipeline
    from napari_galseg.synth import make_field

    img = make_field(size=256, seed=0).image
    params = PhotutilsParams(box_size=32)
    res = segment(img, params=params, tile_size=64)
    assert res.info["n_tiles"] == 16 and res.info["n_deblended_parents"] >= 1 and res.catalog.meta["catalog"] == "basic"
    pipe = Pipeline(img, None, params)
    pipe.background()
    data, conv, _, rms, valid = pipe.prepare((slice(0, 256), slice(0, 256)))
    ref = source_catalog(data, res.labels, convolved=conv, error=rms, mask=~valid)
    assert len(res.catalog) == len(ref) == res.labels.max()
    for name in [c for c in res.catalog.colnames if c != "parent"]:
        np.testing.assert_allclose(np.asarray(getattr(res.catalog[name], "value", res.catalog[name]), float),
                                   np.asarray(getattr(ref[name], "value", ref[name]), float), rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=name)
    # the parent column names the detection each deblended child came from
    parent_of = dict(zip(ref["label"].tolist(), res.catalog["parent"].tolist()))
    assert len(set(parent_of.values())) < len(parent_of)


def test_basic_catalog_of_empty_labels_and_catalog_choices():
    assert len(basic_catalog(np.zeros((5, 5)), np.zeros((5, 5), int))) == 0
    img, _ = _blobs()
    res = segment(img, box_size=40, catalog="none")
    assert res.catalog is None
    with pytest.raises(ValueError, match="catalog must be"):
        segment(img, box_size=40, catalog="kron")
    assert segment(img, box_size=40, catalog=True).catalog.meta["catalog"] == "basic"
