"""open_fits on every FITS flavour we meet in surveys, and clear errors for broken files."""
from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_galseg.io import (
    FitsReadError,
    FitsReadWarning,
    fits_stem,
    guess_kind,
    open_fits,
    open_fits_all,
    open_fits_array,
)


def blobs(shape=(96, 128), seed=0) -> np.ndarray:
    """A few Gaussian galaxies on noise: values that differ everywhere, so slicing bugs show."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(0.0, 1.0, shape)
    for y, x, flux, r in [(20, 30, 50, 4), (60, 90, 80, 6), (40, 60, 30, 3)]:
        image += flux * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * r**2))
    return image.astype(np.float32)


def sky_wcs(shape=(96, 128)) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.2 / 3600, 0.2 / 3600]
    return wcs


def test_float32_values_wcs_and_lazy_dask(tmp_path):
    image = blobs()
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(image, header=sky_wcs().to_header()).writeto(path)
    opened = open_fits(path)
    assert isinstance(opened.data, da.Array)
    assert opened.name == "field" and opened.kind == "image" and opened.hdu == 0
    assert opened.array.mode == "plain"
    np.testing.assert_array_equal(opened.data.compute(), image)
    np.testing.assert_array_equal(opened.data[5:40:3, 7:90:5].compute(), image[5:40:3, 7:90:5])
    assert opened.wcs is not None and opened.wcs.has_celestial
    ra, dec = opened.wcs.all_pix2world([[64, 48]], 0)[0]
    assert ra == pytest.approx(150.1, abs=1e-3) and dec == pytest.approx(2.2, abs=1e-3)
    assert opened.header["CTYPE1"] == "RA---TAN"


def test_big_endian_chunks_come_back_native(tmp_path):
    image = blobs((300, 250))
    path = tmp_path / "be.fits"
    fits.PrimaryHDU(image.astype(">f8")).writeto(path)
    opened = open_fits(path, chunks=128)
    assert opened.data.chunks == ((128, 128, 44), (128, 122))
    assert opened.dtype == np.dtype("float64") and opened.dtype.isnative
    block = opened.data.blocks[1, 1].compute()
    assert block.dtype.isnative
    np.testing.assert_array_equal(block, image[128:256, 128:].astype(np.float64))
    # the raw array-like hands back native order too, for any slice
    assert opened.array[3:9, ::7].dtype.isnative


def test_open_fits_array_is_open_fits_without_dask(tmp_path):
    """The bare plane SExtractor mode reads in strips: the same HDU choice, pixels and checks."""
    image = blobs((120, 90))
    path = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image.astype(">f4"), name="SCI")]).writeto(path)
    array, header = open_fits_array(path)
    assert array.hdu == 1 and header["EXTNAME"] == "SCI" and array.shape == (120, 90)
    np.testing.assert_array_equal(array[:, :], image)
    np.testing.assert_array_equal(array[40:47, :], open_fits(path).data[40:47].compute())
    with pytest.raises(FitsReadError, match="no HDU"):
        open_fits_array(path, hdu=5)
    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 8, 8), np.float32)).writeto(cube)
    with pytest.raises(FitsReadError, match="cube"):
        open_fits_array(cube)
    with pytest.raises(FitsReadError, match="folder"):
        open_fits_array(tmp_path)


def test_int16_with_bscale_bzero_reads_physical_values(tmp_path):
    raw = (np.arange(96 * 128) % 2000 - 1000).astype(np.int16).reshape(96, 128)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 0.25
    hdu.header["BZERO"] = 100.0
    path = tmp_path / "scaled.fits"
    hdu.writeto(path)
    opened = open_fits(path, chunks=50)
    assert opened.array.mode == "section"  # astropy cannot memory-map scaled data
    assert opened.dtype == np.float32
    np.testing.assert_allclose(opened.data.compute(), raw * 0.25 + 100.0)
    np.testing.assert_allclose(opened.array[10:90:9, 3], raw[10:90:9, 3] * 0.25 + 100.0)


def test_unsigned_int16_convention(tmp_path):
    values = (np.arange(40, dtype=np.uint16) * 1500).reshape(5, 8)
    path = tmp_path / "u16.fits"
    fits.PrimaryHDU(values).writeto(path)  # astropy stores uint16 as int16 + BZERO=32768
    opened = open_fits(path)
    assert opened.dtype == np.uint16
    np.testing.assert_array_equal(opened.data.compute(), values)


@pytest.mark.parametrize("suffix", [".fz", ".fits.fz"])
def test_rice_compressed(tmp_path, suffix):
    image = blobs((200, 150))
    path = tmp_path / f"comp{suffix}"
    comp = fits.CompImageHDU(image, header=sky_wcs((200, 150)).to_header(), compression_type="RICE_1",
                             quantize_level=64)
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(path)
    opened = open_fits(path, chunks=64)
    assert opened.hdu == 1 and opened.name == "comp" and opened.array.mode == "section"
    assert opened.wcs is not None
    data = opened.data.compute()
    assert data.dtype == np.float32 and data.shape == (200, 150)
    # RICE quantises floats: close to the original, not equal
    np.testing.assert_allclose(data, image, atol=0.2)
    np.testing.assert_allclose(opened.array[::16, 10:40:3], data[::16, 10:40:3])


def test_rice_compressed_integer_labels(tmp_path):
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20] = 1
    labels[40:50, 30:60] = 7
    path = tmp_path / "seg.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(labels, compression_type="RICE_1")]).writeto(path)
    opened = open_fits(path)
    assert opened.kind == "labels" and opened.dtype == np.int32
    np.testing.assert_array_equal(opened.data.compute(), labels)


def test_gzip_file_read_whole_with_size_limit(tmp_path):
    image = blobs()
    path = tmp_path / "img.fits.gz"
    fits.PrimaryHDU(image).writeto(path)
    opened = open_fits(path)
    assert opened.name == "img" and opened.array.mode == "memory"
    np.testing.assert_array_equal(opened.data.compute(), image)
    with pytest.raises(FitsReadError, match=r"gunzip -k img.fits.gz"):
        open_fits(path, max_gzip_bytes=1000)


def test_multi_extension_every_image_hdu(tmp_path):
    sci, err = blobs(seed=1), np.full((96, 128), 0.5, np.float32)
    table = fits.BinTableHDU.from_columns([fits.Column(name="id", format="J", array=np.arange(3))])
    path = tmp_path / "exposure.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"), table,
                  fits.ImageHDU(err, name="ERR")]).writeto(path)
    images = open_fits_all(path)
    assert [(im.hdu, im.name, im.kind) for im in images] == [
        (1, "exposure[SCI]", "image"), (3, "exposure[ERR]", "rms")]
    np.testing.assert_array_equal(images[0].data.compute(), sci)
    assert open_fits(path).hdu == 1  # first image HDU with data
    assert open_fits(path, hdu="ERR").kind == "rms"
    with pytest.raises(FitsReadError, match="BinTableHDU, not an image"):
        open_fits(path, hdu=2)
    with pytest.raises(FitsReadError, match="no HDU 'NOPE'"):
        open_fits(path, hdu="NOPE")


def test_cube_says_which_axis_is_extra(tmp_path):
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((3, 20, 30), np.float32)).writeto(path)
    with pytest.raises(FitsReadError) as info:
        open_fits(path)
    message = str(info.value)
    assert "3-D cube" in message and "NAXIS3 (numpy axis 0, length 3) is extra" in message
    assert "2-D images" in message and "plane" in message


def test_degenerate_third_axis_is_squeezed(tmp_path):
    image = blobs((20, 30))
    path = tmp_path / "radio.fits"
    fits.PrimaryHDU(image[np.newaxis]).writeto(path)
    opened = open_fits(path)
    assert opened.shape == (20, 30)
    np.testing.assert_array_equal(opened.data.compute(), image)


def test_cube_extension_skipped_with_warning_beside_an_image(tmp_path):
    path = tmp_path / "mixed.fits"
    fits.HDUList([fits.PrimaryHDU(blobs((20, 30))), fits.ImageHDU(np.ones((2, 4, 4), np.float32))]).writeto(path)
    with pytest.warns(FitsReadWarning, match="cube"):
        images = open_fits_all(path)
    assert [im.hdu for im in images] == [0]


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.fits"
    fits.PrimaryHDU(blobs((200, 200))).writeto(path)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(FitsReadError, match=r"truncated.*fetch the file again"):
        open_fits(path)
    path.write_bytes(content[:1000])  # cut inside the header
    with pytest.raises(FitsReadError, match="header cannot be read"):
        open_fits(path)


def test_not_fits_and_empty_files(tmp_path):
    fake = tmp_path / "photo.fits"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(3000))
    with pytest.raises(FitsReadError, match="not a FITS file"):
        open_fits(fake)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    with pytest.raises(FitsReadError, match="empty"):
        open_fits(empty)
    with pytest.raises(FileNotFoundError):
        open_fits(tmp_path / "missing.fits")
    assert issubclass(FitsReadError, ValueError)


def test_no_image_and_empty_hdus(tmp_path):
    table_only = tmp_path / "catalog.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="E", array=np.zeros(3))])]).writeto(table_only)
    with pytest.raises(FitsReadError, match="no image HDU.*tables only"):
        open_fits(table_only)
    header_only = tmp_path / "header.fits"
    fits.PrimaryHDU().writeto(header_only)
    with pytest.raises(FitsReadError, match="no image data"):
        open_fits(header_only)
    with pytest.raises(FitsReadError, match="HDU 0 .* is empty"):
        open_fits(table_only, hdu=0)


def test_all_nan_image(tmp_path):
    path = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.full((300, 300), np.nan, np.float32)).writeto(path)
    with pytest.raises(FitsReadError, match="no finite pixels"):
        open_fits(path)
    # one finite pixel somewhere the sparse sample misses is enough to open
    data = np.full((600, 600), np.nan, np.float32)
    data[599, 3] = 1.0
    fits.PrimaryHDU(data).writeto(tmp_path / "almost.fits")
    assert open_fits(tmp_path / "almost.fits").shape == (600, 600)


@pytest.mark.parametrize(
    ("file_name", "header", "dtype", "kind"),
    [
        ("true.fits", {}, np.int32, "labels"),
        ("field_segm.fits", {}, np.int16, "labels"),
        ("mask1.fits", {}, np.uint8, "labels"),
        ("field.fits", {"EXTNAME": "SEGMENTATION"}, np.int32, "labels"),
        ("field.fits", {"CONTENT": "object labels"}, np.int64, "labels"),
        ("true.fits", {}, np.float32, "image"),  # a float "truth" is not a label map
        ("rms.fits", {}, np.float32, "rms"),
        ("field_wht.fits", {}, np.float32, "rms"),
        ("img.fits", {"EXTNAME": "ERR"}, np.float32, "rms"),
        ("img.fits", {"BUNIT": "electrons/s"}, np.float32, "image"),
        ("segue.fits", {}, np.int32, "image"),  # whole words only
    ],
)
def test_guess_kind(file_name, header, dtype, kind):
    assert guess_kind(fits.Header(header), file_name, np.dtype(dtype)) == kind


def test_names_strip_all_fits_endings():
    assert fits_stem("a/b/img.fits.gz") == "img"
    assert fits_stem("deep.fits.fz") == "deep"
    assert fits_stem("x.FTS") == "x"


def test_dask_graph_pickles_for_distributed_workers(tmp_path):
    import pickle

    image = blobs()
    path = tmp_path / "p.fits"
    fits.PrimaryHDU(image).writeto(path)
    opened = open_fits(path)
    opened.data[:10, :10].compute()  # opens the memory map
    clone = pickle.loads(pickle.dumps(opened.data))
    np.testing.assert_array_equal(clone.compute(), image)


def test_threads_read_sections_safely(tmp_path):
    raw = np.random.default_rng(3).integers(-3000, 3000, (512, 512)).astype(np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 1.0
    path = tmp_path / "s.fits"
    hdu.writeto(path)
    opened = open_fits(path, chunks=32)  # 256 chunks read by the threaded scheduler
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = opened.data.compute(scheduler="threads", num_workers=4)
    np.testing.assert_allclose(result, raw * 2.0 + 1.0)


def _label_map(shape=(300, 260), seed=0) -> np.ndarray:
    """Sky zeros with blobs of one id each, some touching (a deblended segmentation)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i in range(1, 40):
        y, x, r = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(2, 9)
        labels[((yy - y) ** 2 + (xx - x) ** 2 < r * r) & (labels == 0)] = i
    return labels


@pytest.mark.parametrize("name", ["pred_unet.fits", "field.fits"])  # names that say nothing
def test_integer_maps_are_labels_by_their_pixels(tmp_path, name):
    labels = _label_map()
    fits.PrimaryHDU(labels).writeto(tmp_path / name)
    assert open_fits(tmp_path / name).kind == "labels"
    fits.PrimaryHDU(np.zeros((64, 64), np.int16)).writeto(tmp_path / "empty.fits")
    assert open_fits(tmp_path / "empty.fits").kind == "labels"  # an empty prediction covers nothing


def test_integer_images_stay_images(tmp_path):
    rng = np.random.default_rng(1)
    smooth = blobs()
    # raw CCD frame: int16 with BZERO=32768 (read as uint16), bias level plus noise and sources
    raw = (1000 + rng.normal(0, 5, smooth.shape) + 50 * smooth / smooth.max()).astype(np.uint16)
    fits.PrimaryHDU(raw).writeto(tmp_path / "raw.fits")
    with fits.open(tmp_path / "raw.fits") as hdul:
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768
    # a CCD frame that happens to look like a mask is still kept as an image when scaled
    fits.PrimaryHDU((_label_map() > 0).astype(np.uint16)).writeto(tmp_path / "flat.fits")
    # an 8-bit rendering with the sky clipped to 0, and a sparse photon-count image
    eight_bit = (np.clip((smooth - np.median(smooth)) / np.ptp(smooth), 0, 1) * 255).astype(np.uint8)
    fits.PrimaryHDU(eight_bit).writeto(tmp_path / "render.fits")
    fits.PrimaryHDU(rng.poisson(0.2, (200, 200)).astype(np.int32)).writeto(tmp_path / "counts.fits")
    for name in ("raw", "flat", "render", "counts"):
        assert open_fits(tmp_path / f"{name}.fits").kind == "image", name


def test_label_map_check_reads_only_windows_of_a_big_image():
    from napari_galseg.io.label_map import label_map_texture, looks_like_label_map

    class Counting:
        def __init__(self, array):
            self.array, self.shape, self.dtype, self.read = array, array.shape, array.dtype, 0

        def __getitem__(self, key):
            out = self.array[key]
            self.read += out.size
            return out

    big = Counting(np.tile(_label_map((256, 256)), (8, 8)))  # 2048²
    assert looks_like_label_map(big)
    assert big.read <= 16 * 128 * 128
    texture = label_map_texture(_label_map())
    assert texture["zero_fraction"] > 0.5 and texture["same_neighbour"] > 0.8
    assert not looks_like_label_map(np.ones((10, 10), np.float32))  # floats never are


def test_in_a_multi_extension_file_the_name_does_not_decide_each_extension(tmp_path):
    """Issue 12: "…_err_…" in the file name made a science extension a noise map."""
    from astropy.io import fits

    from napari_galseg.io import open_fits_all

    rng = np.random.default_rng(0)
    sci = fits.ImageHDU(rng.normal(10, 1, (64, 64)).astype(np.float32), name="SCI")
    err = fits.ImageHDU(np.ones((64, 64), np.float32), name="ERR")
    path = tmp_path / "frame_err_v2.fits"
    fits.HDUList([fits.PrimaryHDU(), sci, err]).writeto(path)
    kinds = {im.header["EXTNAME"]: im.kind for im in open_fits_all(path)}
    assert kinds == {"SCI": "image", "ERR": "rms"}
    # a file of one image is still typed by its name when nothing else says
    single = tmp_path / "field_rms.fits"
    fits.writeto(single, np.ones((32, 32), np.float32))
    assert open_fits_all(single)[0].kind == "rms"


def test_image_shape_reads_the_hdu_open_fits_reads_from_headers_alone(tmp_path):
    from astropy.io import fits

    from napari_galseg.io import image_shape, open_fits

    path = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((30, 40), np.float32))]).writeto(path)
    assert image_shape(path) == (30, 40) == tuple(open_fits(path).shape)
