"""npe2 writers: labels and images from napari layers to FITS, with header and WCS."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from napari_galseg.io import open_fits
from napari_galseg.plugin.reader import get_reader
from napari_galseg.plugin.writer import write_image, write_labels


def source_file(tmp_path):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [210.8, 54.3]
    wcs.wcs.crpix = [32.0, 24.0]
    wcs.wcs.cdelt = [-5e-5, 5e-5]
    header = wcs.to_header()
    header["TELESCOP"] = "HST"
    header["BUNIT"] = "ELECTRONS/S"
    path = tmp_path / "img.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(48, 64)).astype(np.float32), header=header).writeto(path)
    return path


def test_labels_layer_tuple_round_trip_with_wcs(tmp_path):
    src = source_file(tmp_path)
    _, kwargs, _ = get_reader(str(src))(str(src))[0]
    labels = np.zeros((48, 64), np.int64)
    labels[5:15, 10:30] = 4
    out = tmp_path / "pred.fits"
    assert write_labels(str(out), labels, {"name": "pred", "metadata": kwargs["metadata"]}) == [str(out)]
    back = open_fits(out)
    assert back.kind == "labels" and back.dtype == np.int32
    np.testing.assert_array_equal(back.data.compute(), labels)
    assert back.header["TELESCOP"] == "HST" and "BUNIT" not in back.header
    src_wcs = kwargs["metadata"]["wcs"]
    np.testing.assert_allclose(back.wcs.all_pix2world([[7, 9]], 0), src_wcs.all_pix2world([[7, 9]], 0))


def test_multiscale_dask_labels_write_full_resolution(tmp_path):
    labels = da.from_array((np.arange(40 * 30).reshape(40, 30) // 50).astype(np.int32), chunks=16)
    out = tmp_path / "ms.fits"
    write_labels(str(out), [labels, labels[::2, ::2]], {"metadata": {}})
    np.testing.assert_array_equal(open_fits(out).data.compute(), labels.compute())


def test_image_writer_keeps_header(tmp_path):
    src = source_file(tmp_path)
    _, kwargs, _ = get_reader(str(src))(str(src))[0]
    out = tmp_path / "copy.fits"
    write_image(str(out), open_fits(src).data * 2, {"metadata": kwargs["metadata"], "rgb": False})
    back = open_fits(out)
    assert back.header["BUNIT"] == "ELECTRONS/S"
    np.testing.assert_allclose(back.data.compute(), open_fits(src).data.compute() * 2)
    with pytest.raises(ValueError, match="RGB"):
        write_image(str(tmp_path / "rgb.fits"), np.zeros((4, 4, 3)), {"rgb": True})


def test_writer_replaces_a_file_napari_confirmed_atomically(tmp_path):
    out = tmp_path / "pred.fits"
    write_labels(str(out), np.ones((8, 8), np.int32), {"metadata": {}})
    write_labels(str(out), np.full((8, 8), 2, np.int32), {"metadata": {}})  # the dialog asked the user
    assert open_fits(out).data.compute().max() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.fits"]


@pytest.mark.gui
def test_save_labels_layer_from_viewer(make_napari_viewer, tmp_path):
    src = source_file(tmp_path)
    viewer = make_napari_viewer()
    (image,) = viewer.open(src, plugin="napari-galseg")
    labels = np.zeros((48, 64), np.int32)
    labels[20:30, 20:40] = 7
    layer = viewer.add_labels(labels, name="pred", metadata=dict(image.metadata))
    out = tmp_path / "pred.fits"
    saved = layer.save(str(out), plugin="napari-galseg")
    assert saved == [str(out)]
    back = open_fits(out)
    np.testing.assert_array_equal(back.data.compute(), labels)
    assert back.wcs is not None and back.kind == "labels"
