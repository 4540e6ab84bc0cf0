"""A SExtractor catalogue as a viewer's flat table: the names astropy gives the catalogue file's
columns, and 0-based (row, col) positions."""
from __future__ import annotations

import numpy as np
from astropy.io import ascii as astropy_ascii

from napari_galseg.sextractor import ExtractSettings, catalog_columns, extract
from napari_galseg.sextractor.catalog import ascii_text
from napari_galseg.sextractor.params import ParamList
from napari_galseg.sextractor.table import flat_columns, source_positions
from napari_galseg.synth import make_field


def test_flat_columns_are_the_catalogue_file_as_astropy_reads_it():
    image = make_field(160, 5, psf_fwhm=3.0, galaxy_density=4000).image.astype(np.float32)
    result = extract(image, ExtractSettings(apertures=(3.0, 6.0, 12.0), fluxfrac=(0.5, 0.9)))
    n = len(result.columns["NUMBER"])
    assert n > 3
    params = ParamList(None, [("NUMBER", 0), ("X_IMAGE", 0), ("FLUX_APER", 3), ("FLUX_RADIUS", 2), ("FLAGS", 0)], [])
    cols = catalog_columns(result.columns, params)
    flat = flat_columns(cols)
    read = astropy_ascii.read(ascii_text(cols), format="sextractor")
    assert list(flat) == read.colnames == ["NUMBER", "X_IMAGE", "FLUX_APER", "FLUX_APER_1", "FLUX_APER_2",
                                           "FLUX_RADIUS", "FLUX_RADIUS_1", "FLAGS"]
    for name in flat:
        assert flat[name].shape == (n,)
        np.testing.assert_allclose(flat[name], read[name], rtol=1e-6, atol=1e-3)  # the file's printf rounding
    np.testing.assert_array_equal(flat["FLUX_APER_2"], np.asarray(result.columns["FLUX_APER"])[:, 2].astype(np.float32))

    rc = source_positions(result.columns)
    assert rc.shape == (n, 2)
    np.testing.assert_array_equal(rc[:, 0], np.asarray(result.columns["Y_IMAGE"]) - 1.0)  # 1-based x, y -> (row, col)
    np.testing.assert_array_equal(rc[:, 1], np.asarray(result.columns["X_IMAGE"]) - 1.0)
    peak = np.asarray(result.columns["YPEAK_IMAGE"]) - 1, np.asarray(result.columns["XPEAK_IMAGE"]) - 1
    assert np.all(result.segmentation[peak] == result.columns["NUMBER"])  # the same pixel grid as the labels
    assert np.all(np.abs(rc - np.column_stack(peak)) < 3.0)
    assert source_positions({}).shape == (0, 2)
