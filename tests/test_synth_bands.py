"""`galseg synth OUT --bands g,r,i`: one truth for every band, galaxies of different colours (red
and blue populations), a PSF and a noise per band; bad band names give one line and no files."""
import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from napari_galseg.cli import main
from napari_galseg.synth.bands import make_band_field


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-bands")
    assert main(["synth", str(out), "--bands", "g,r,i", "--size", "192", "--seed", "3",
                 "--psf-fwhm", "g=3.5,i=1.8"]) == 0
    return out


def test_files_share_one_truth_and_grid(field):
    names = sorted(p.name for p in field.iterdir())
    assert names == ["catalog.ecsv", "img_g.fits", "img_i.fits", "img_r.fits", "rms_g.fits", "rms_i.fits",
                     "rms_r.fits", "true.fits"]
    truth = fits.getdata(field / "true.fits")
    assert truth.shape == (192, 192) and truth.max() > 10
    for b in "gri":
        for kind in ("img", "rms"):
            data, header = fits.getdata(field / f"{kind}_{b}.fits", header=True)
            assert data.shape == truth.shape and data.dtype.kind == "f" and data.dtype.itemsize == 4 and header["FILTER"] == b
    # independent noise and sky per band: the sky rises to the red, and so does its noise
    rms = [float(np.median(fits.getdata(field / f"rms_{b}.fits"))) for b in "gri"]
    assert rms[0] < rms[1] < rms[2]
    sky = [fits.getdata(field / f"img_{b}.fits")[truth == 0] for b in "gr"]
    assert abs(np.corrcoef(sky[0] - np.median(sky[0]), sky[1] - np.median(sky[1]))[0, 1]) < 0.2


def test_psf_widths_are_those_asked(field):
    fwhm = {b: fits.getheader(field / f"img_{b}.fits")["PSFFWHM"] for b in "gri"}
    assert fwhm["g"] == 3.5 and fwhm["i"] == 1.8 and fwhm["r"] == 2.5  # r: the reference band's default
    f = make_band_field(128, seed=1, psf_fwhm={"g": 4.0, "i": 1.8}, galaxy_density=1, star_density=300)
    assert f.psf_fwhm == {"g": 4.0, "r": 2.5, "i": 1.8}
    cat = f.catalog[f.catalog["kind"] == "star"]
    star = cat[np.argmax(cat["flux"])]
    y, x = int(round(star["y"])), int(round(star["x"]))
    widths = []
    for b in "gri":
        img = f.images[b].astype(float)
        cut = img[max(0, y - 8): y + 9, max(0, x - 8): x + 9] - np.median(img)
        widths.append(np.clip(cut, 0, None).sum() / cut.max())  # effective area: grows with the FWHM
    assert widths[0] > widths[1] > widths[2]


def test_galaxies_differ_in_colour_by_population():
    f = make_band_field(256, seed=5)
    cat = f.catalog
    ids, area = np.unique(f.truth, return_counts=True)
    bright = ids[1:][area[1:] >= 40]
    rows = cat[bright - 1]
    gal = rows["kind"] == "galaxy"
    red, blue = rows[gal & (rows["population"] == "red")], rows[gal & (rows["population"] == "blue")]
    assert len(red) >= 3 and len(blue) >= 3
    # catalog colours: red galaxies brighter in i than in g (by > 2x), blue ones the other way
    assert (red["flux_i"] > 2 * red["flux_g"]).all() and (blue["flux_g"] > 1.5 * blue["flux_i"]).all()
    # and the pixels show it: each galaxy's measured colour follows its population
    sky = {b: np.median(f.images[b][f.truth == 0]) for b in f.bands}
    flux = {b: ndimage.sum_labels(f.images[b] - sky[b], f.truth, rows["id"][gal]) for b in "gi"}
    redder = flux["i"] > flux["g"]
    assert (redder == (rows["population"][gal] == "red")).mean() > 0.8
    # every object is at its catalog flux in its brightest band
    np.testing.assert_allclose(np.max([cat[f"flux_{b}"] for b in f.bands], axis=0), cat["flux"])


@pytest.mark.parametrize("argv, message", [
    (["--bands", "g,q,i"], "unknown band(s) q"),
    (["--bands", "g,r,g"], "band(s) g given twice"),
    (["--bands", "g,,i"], "bands must be names separated by commas"),
    (["--bands", "g,r", "--psf-fwhm", "i=2"], "not among g, r"),
    (["--bands", "g,r", "--backend", "galsim"], "drop --backend"),
])
def test_bad_bands_give_one_line_and_no_files(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["synth", str(out), "--size", "64", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
