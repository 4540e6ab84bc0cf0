"""write_fits / write_labels: round trips, streaming of dask arrays, atomicity, no overwrite."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_galseg._atomic import FileExistsClearError
from napari_galseg.io import open_fits, write_fits, write_labels


def sky_wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.16, -27.78]
    wcs.wcs.crpix = [40.0, 30.0]
    wcs.wcs.cd = [[-1.0e-5, 2.0e-6], [2.0e-6, 1.0e-5]]
    return wcs


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_numpy_round_trip_with_wcs_and_header(tmp_path):
    image = np.random.default_rng(0).normal(size=(60, 80)).astype(np.float32)
    header = fits.Header({"OBJECT": "GOODS-S", "EXPTIME": 1200.0})
    header["HISTORY"] = "made in a test"
    path = write_fits(tmp_path / "out.fits", image, header=header, wcs=sky_wcs())
    back = open_fits(path)
    np.testing.assert_array_equal(back.data.compute(), image)
    assert back.header["OBJECT"] == "GOODS-S" and back.header["EXPTIME"] == 1200.0
    assert "made in a test" in str(back.header["HISTORY"])
    np.testing.assert_allclose(back.wcs.all_pix2world([[5, 7]], 0), sky_wcs().all_pix2world([[5, 7]], 0))
    with fits.open(path) as hdul:  # a valid file astropy verifies without complaint
        hdul.verify("exception")


def test_dask_labels_streamed_block_rows_as_int32(tmp_path):
    labels = np.arange(300 * 200, dtype=np.int64).reshape(300, 200) % 5000
    lazy = da.from_array(labels, chunks=(64, 50))
    path = write_labels(tmp_path / "seg.fits", lazy)
    with fits.open(path) as hdul:
        assert hdul[0].header["BITPIX"] == 32 and hdul[0].header["EXTNAME"] == "LABELS"
    back = open_fits(path)
    assert back.kind == "labels" and back.dtype == np.int32  # reopens as labels whatever the name
    np.testing.assert_array_equal(back.data.compute(), labels)


def test_write_labels_copies_source_header_and_wcs(tmp_path):
    source = tmp_path / "img.fits"
    hdr = sky_wcs().to_header()
    hdr["BUNIT"] = "electrons/s"
    hdr["FILTER"] = "F160W"
    fits.PrimaryHDU(np.ones((60, 80), np.float32), header=hdr).writeto(source)
    image = open_fits(source)
    labels = np.zeros((60, 80), np.uint16)
    labels[10:20, 30:40] = 3
    out = write_labels(tmp_path / "labels.fits", labels, like=image)
    back = open_fits(out)
    assert back.header["FILTER"] == "F160W" and "BUNIT" not in back.header
    np.testing.assert_allclose(back.wcs.all_pix2world([[3, 4]], 0), image.wcs.all_pix2world([[3, 4]], 0))
    np.testing.assert_array_equal(back.data.compute(), labels)


def test_header_from_a_compressed_or_extension_hdu_is_cleaned(tmp_path):
    src = tmp_path / "c.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.ones((16, 16), np.float32), name="SCI")]).writeto(src)
    image = open_fits(src)
    path = write_fits(tmp_path / "plain.fits", image.data, header=image.header)
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert "XTENSION" not in hdul[0].header and "ZCMPTYPE" not in hdul[0].header


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "keep.fits"
    write_fits(path, np.zeros((4, 4), np.float32))
    before = path.read_bytes()
    with pytest.raises(FileExistsClearError, match="overwrite=True"):
        write_fits(path, np.ones((4, 4), np.float32))
    assert path.read_bytes() == before
    write_fits(path, np.ones((4, 4), np.float32), overwrite=True)
    assert open_fits(path).data.compute().sum() == 16


def test_failure_mid_write_keeps_original_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "labels.fits"
    write_labels(path, np.full((40, 40), 9, np.int32))
    before = path.read_bytes()

    def explode_on_third_row(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise RuntimeError("segmenter crashed")
        return block

    failing = da.ones((40, 40), dtype=np.int32, chunks=10).map_blocks(explode_on_third_row, dtype=np.int32)
    with pytest.raises(RuntimeError, match="segmenter crashed"):
        write_labels(path, failing, overwrite=True)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_labels_too_large_for_int32_are_refused(tmp_path):
    labels = np.array([[0, 2**40]], dtype=np.int64)
    with pytest.raises(OverflowError, match="do not fit"):
        write_labels(tmp_path / "big.fits", labels)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("dtype", "bitpix"), [(np.bool_, 8), (np.uint16, 32), (np.int8, 16), (np.float64, -64)])
def test_types_without_a_fits_equivalent_are_widened(tmp_path, dtype, bitpix):
    data = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
    path = write_fits(tmp_path / "t.fits", data)
    with fits.open(path) as hdul:
        assert hdul[0].header["BITPIX"] == bitpix
        np.testing.assert_array_equal(hdul[0].data, data)


def test_rejects_non_2d(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        write_fits(tmp_path / "cube.fits", np.zeros((2, 3, 4)))


def test_gzip_output_and_fits_image_input(tmp_path):
    image = np.random.default_rng(2).normal(size=(30, 40)).astype(np.float32)
    src = tmp_path / "src.fits"
    fits.PrimaryHDU(image, header=fits.Header({"OBJECT": "M51"})).writeto(src)
    out = write_fits(tmp_path / "copy.fits.gz", open_fits(src))
    with open(out, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    back = open_fits(out)
    np.testing.assert_array_equal(back.data.compute(), image)
    assert back.header["OBJECT"] == "M51"
    with pytest.raises(ValueError, match="fpack"):
        write_fits(tmp_path / "x.fits.fz", image)
