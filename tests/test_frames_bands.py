"""Several bands of one field: `--bands` detects on a combined image (S/N-weighted sum or χ²),
finds more galaxies than the best single band on a field where colours differ, writes a flux per
band, and refuses bands of different grids in one line."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

from napari_galseg.cli import main
from napari_galseg.frames.bands import DetectionImage
from napari_galseg.metrics.evaluate import evaluate
from napari_galseg.synth.bands import make_bands

SETS = ["--set", "box_size=32", "--set", "tile_size=64"]


@pytest.fixture(scope="module")
def bands(tmp_path_factory):
    """g, r, i of one 256² field: each galaxy bright in one band, a quarter as bright in the others."""
    root = tmp_path_factory.mktemp("bands")
    f = make_bands(256, seed=4)
    for name in f.bands:
        fits.writeto(root / f"{name}.fits", f.images[name])
        fits.writeto(root / f"{name}.rms.fits", f.rms[name])
    return root, f


def test_bands_share_galaxies_of_different_colours():
    f = make_bands(256, seed=2, psf_fwhm={"i": 4.0})
    ids, area = np.unique(f.truth, return_counts=True)
    ids = ids[1:][area[1:] >= 60]  # galaxies bright enough that their colour beats the noise
    flux = np.array([ndimage.sum_labels(f.images[b] - 10.0, f.truth, ids) for b in f.bands])
    brightest = np.argmax(flux, axis=0)
    assert len(ids) >= 5 and (brightest == f.favourite[ids]).mean() > 0.8
    assert len(set(f.favourite[ids])) == 3  # every band is some galaxy's brightest


def _rms(root):
    return [a for b in "gri" for a in ("--rms", str(root / f"{b}.rms.fits"))]


def test_the_detection_image_is_the_same_by_windows_and_whole():
    rng = np.random.default_rng(1)
    fluxes = [rng.normal(0, 2, (40, 50)).astype(np.float32) for _ in range(3)]
    sigmas = [np.full((40, 50), 2.0, np.float32) for _ in range(3)]
    sigmas[1][5:9] = np.nan  # no data in one band: the others still count
    for combination in ("snr", "chi2"):
        image = DetectionImage(fluxes, sigmas, combination)
        whole = image[:, :]
        np.testing.assert_array_equal(image[7:31, 3:44], whole[7:31, 3:44])
        assert np.isfinite(whole).all()
    noise = [rng.normal(0, 1, (300, 300)) for _ in range(3)]
    z = DetectionImage(noise, [np.ones((300, 300))] * 3, "chi2")[:, :]
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02  # pure noise: χ² made N(0, 1)
    same = DetectionImage([fluxes[0]] * 3, [sigmas[0]] * 3, "snr")[:, :]
    np.testing.assert_allclose(same, np.sqrt(3) * fluxes[0] / 2.0, rtol=1e-6)  # three copies: √3 × the S/N


def test_bands_find_more_galaxies_than_the_best_single_band(bands, tmp_path):
    root, f = bands
    scores = {}
    for name in "gri":
        out = tmp_path / f"{name}.fits"
        assert main(["segment", "photutils", str(root / f"{name}.fits"), "--rms", str(root / f"{name}.rms.fits"),
                     "-o", str(out), *SETS]) == 0
        scores[name] = evaluate(fits.getdata(out), f.truth, coco=False).metrics
    for combination in ("snr", "chi2"):
        out = tmp_path / f"{combination}.fits"
        assert main(["segment", "photutils", *(str(root / f"{b}.fits") for b in "gri"), "--bands", "--detection",
                     combination, *_rms(root), "-o", str(out), "--catalog", str(tmp_path / f"{combination}.ecsv"),
                     *SETS]) == 0
        scores[combination] = evaluate(fits.getdata(out), f.truth, coco=False).metrics
    found = {k: round(v["completeness"] * v["n_true"]) for k, v in scores.items()}  # true galaxies matched
    false = {k: v["n_pred"] - found[k] for k, v in scores.items()}
    best = max("gri", key=found.get)
    assert found["snr"] > found[best] and false["snr"] <= false[best] + 2  # more galaxies at about the same purity
    catalog = Table.read(tmp_path / "snr.ecsv")
    assert {"flux_g", "flux_r", "flux_i"} <= set(catalog.colnames) and len(catalog) == fits.getdata(tmp_path / "snr.fits").max()


def test_a_coadd_per_band_gives_the_labels_of_the_band_files(bands, tmp_path, capsys):
    from napari_galseg.frames.layouts import write_coadd

    root, f = bands
    for name in f.bands:
        write_coadd(tmp_path / f"{name}.fits", f.images[name], f.rms[name], "des")
    files = [str(root / f"{b}.fits") for b in "gri"]
    assert main(["segment", "photutils", *files, "--bands", *_rms(root), "-o", str(tmp_path / "a.fits"), *SETS]) == 0
    code = main(["segment", "photutils", *(str(tmp_path / f"{b}.fits") for b in "gri"), "--bands",
                 "-o", str(tmp_path / "b.fits"), *SETS])
    assert code == 0 and "band g: noise from" in capsys.readouterr().err
    np.testing.assert_array_equal(fits.getdata(tmp_path / "a.fits"), fits.getdata(tmp_path / "b.fits"))


@pytest.mark.parametrize("change, message", [
    ("shape", "bands must share one pixel grid: reproject them first"),
    ("wcs", "WCS differs from band g's"),
    ("rms", "3 bands but 2 --rms/--variance/--weight map(s)"),
    ("method", "does not take one"),
])
def test_bands_of_different_grids_are_refused_in_one_line(bands, tmp_path, capsys, change, message):
    root, _ = bands
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 128, "CRPIX2": 128, "CRVAL1": 150.0,
                          "CRVAL2": 2.0, "CDELT1": -5.6e-5, "CDELT2": 5.6e-5})
    g = fits.getdata(root / "g.fits")
    fits.writeto(tmp_path / "g.fits", g, header)
    other = g[:200] if change == "shape" else g
    header2 = header.copy()
    if change == "wcs":
        header2["CRPIX1"] = 130
    fits.writeto(tmp_path / "r.fits", other, header2)
    fits.writeto(tmp_path / "i.fits", g, header)
    method = "kmeans" if change == "method" else "photutils"
    rms = _rms(root)[:4] if change == "rms" else []
    out = tmp_path / "out.fits"
    assert main(["segment", method, *(str(tmp_path / f"{b}.fits") for b in "gri"), "--bands", *rms,
                 "-o", str(out), *(SETS if method == "photutils" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_the_rgb_composite_is_the_same_by_blocks_and_whole():
    import dask.array as da

    from napari_galseg.frames.bands import rgb_composite

    f = make_bands(512, seed=4)
    i, r, g = (f.images[b] for b in "irg")
    lazy = rgb_composite(*(da.from_array(x, chunks=200) for x in (i, r, g)))
    whole = rgb_composite(i, r, g, stretch=None)
    assert lazy.shape == (*i.shape, 3) and lazy.dtype == np.uint8
    np.testing.assert_array_equal(lazy.compute(), whole.compute())
    rgb = whole.compute().astype(float)
    ids, area = np.unique(f.truth, return_counts=True)
    ids = ids[1:][area[1:] >= 40]  # galaxies bright enough for their colour to beat the noise
    ids = ids[f.favourite[ids] != 1]  # brightest in g (shown blue) or in i (shown red)
    red, blue = (ndimage.mean(rgb[..., c], f.truth, ids) for c in (0, 2))
    assert len(ids) >= 3 and ((red > blue) == (f.favourite[ids] == 2)).mean() >= 0.8
