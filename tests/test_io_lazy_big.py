"""A 16384² float32 FITS file (1 GiB) opens, gets contrast limits and a zoomed-out view
without being read whole: peak memory grows by far less than the file's size."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits

SIDE = 16384


def make_sparse_fits(path, side=SIDE):
    """Header, then a sparse data area (zeros cost no disk), then a few bright blobs."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = side
    header["NAXIS2"] = side
    header_bytes = header.tostring().encode("ascii")
    data_bytes = side * side * 4
    with open(path, "wb") as fh:
        fh.write(header_bytes)
        fh.truncate(len(header_bytes) + data_bytes + (-data_bytes % 2880))
    image = np.memmap(path, dtype=">f4", mode="r+", offset=len(header_bytes), shape=(side, side))
    yy, xx = np.mgrid[-20:21, -20:21]
    blob = (1000 * np.exp(-(yy**2 + xx**2) / 50.0)).astype(">f4")
    for y, x in [(1000, 2000), (8000, 8000), (15000, 3000)]:
        image[y - 20:y + 21, x - 20:x + 21] = blob
    image.flush()
    del image


SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from napari_galseg.io import open_fits, contrast_limits_zscale
    from napari_galseg.plugin.reader import read_fits_files

    def status_mib(field):
        with open("/proc/self/status") as fh:
            line = next(line for line in fh if line.startswith(field + ":"))
        return int(line.split()[1]) / 1024

    # ru_maxrss would carry pytest's peak over the fork: reset the kernel's high-water mark
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    path = sys.argv[1]
    base = status_mib("VmRSS")
    t0 = time.perf_counter()
    image = open_fits(path)
    limits = contrast_limits_zscale(image.array)
    layers = read_fits_files([path])
    data, kwargs, layer_type = layers[0]
    coarsest = np.asarray(data[-1].compute())        # what napari shows zoomed out
    corner = np.asarray(data[0][7990:8010, 7990:8010].compute())  # a zoomed-in view
    print(json.dumps({
        "growth_mib": status_mib("VmHWM") - base, "seconds": time.perf_counter() - t0,
        "multiscale": kwargs.get("multiscale", False), "levels": [list(d.shape) for d in data],
        "layer_type": layer_type, "coarsest_max": float(coarsest.max()),
        "corner_max": float(corner.max()), "limits": list(limits),
        "contrast_limits": kwargs["contrast_limits"]}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory read from /proc")
def test_open_16k_image_without_reading_it(tmp_path):
    path = tmp_path / "huge.fits"
    make_sparse_fits(path)
    size_mib = path.stat().st_size / 2**20
    assert size_mib > 1000
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(report)
    assert report["growth_mib"] < 300, report  # the file is 1024 MiB
    assert report["multiscale"] and report["layer_type"] == "image"
    assert report["levels"][0] == [SIDE, SIDE] and report["levels"][-1] == [512, 512]
    assert report["corner_max"] == 1000.0  # the blob at (8000, 8000) is read correctly
    assert report["coarsest_max"] == 1000.0  # stride 32 hits the blob centres (multiples of 1000/8000)
    lo, hi = report["contrast_limits"]
    assert lo <= 0.0 < hi
