"""Layer arrays become FITS files in the job folder: equal pixels, truth as int32, dask block by block."""
import dask.array as da
import numpy as np
from astropy.io import fits

from napari_galseg.jobs.inputs import save_inputs


def test_arrays_are_written_into_the_job_folder_as_fits(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.normal(size=(300, 200)).astype(np.float32)
    truth = (rng.random((300, 200)) > 0.9).astype(np.int64) * 7
    header = fits.Header({"OBJECT": "field-1"})
    calls = []
    paths = save_inputs(tmp_path, {"image": da.from_array(image, chunks=64), "truth": truth}, {"image": header},
                        progress=lambda *a: calls.append(a))
    assert paths == {"image": str(tmp_path / "inputs" / "image.fits"), "truth": str(tmp_path / "inputs" / "truth.fits")}
    with fits.open(paths["image"]) as hdul:
        np.testing.assert_array_equal(hdul[0].data, image)
        assert hdul[0].header["OBJECT"] == "field-1"
    with fits.open(paths["truth"]) as hdul:
        assert hdul[0].data.dtype.kind == "i" and hdul[0].data.dtype.itemsize == 4
        np.testing.assert_array_equal(hdul[0].data, truth)
    assert calls[-1] == (2, 2, "inputs saved")
