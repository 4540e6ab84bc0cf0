"""GalSim evaluation fields: deterministic, exact truth, both PSFs, blends, the same files as synth."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

galsim = pytest.importorskip("galsim")

from napari_galseg.cli import main
from napari_galseg.synth.galsim_backend import make_galsim_field


@pytest.fixture(scope="module")
def field():
    return make_galsim_field(256, seed=3, galaxy_density=1500.0)


def test_deterministic_with_exact_truth(field):
    again = make_galsim_field(256, seed=3, galaxy_density=1500.0)
    np.testing.assert_array_equal(again.image, field.image)
    np.testing.assert_array_equal(again.truth, field.truth)
    assert field.image.dtype == np.float32 and field.truth.dtype == np.int32
    # truth: the brightest object's noiseless flux > 0.5 rms; the sum of all objects bounds it
    assert not (field.truth > 0)[field.noiseless <= 0.5 * field.rms].any()
    cat = field.catalog
    area = np.bincount(field.truth.ravel(), minlength=len(cat) + 1)[1:]
    np.testing.assert_array_equal(np.asarray(cat["truth_area"]), area)
    assert set(cat["kind"]) == {"galaxy", "star"} and cat.meta["backend"] == "galsim"
    galaxies = cat[cat["kind"] == "galaxy"]
    assert 0 < np.median(galaxies["bulge_fraction"]) < 0.5 and (galaxies["q"] < 1).all()
    # noise: the sky-subtracted image scatters as the rms map says where there is no object
    sky = field.noiseless < 0.01 * field.rms
    resid = (field.image - np.median(field.image[sky]))[sky] / field.rms[sky]
    assert 0.9 < np.std(resid) < 1.2


def test_blends_and_psfs():
    f = make_galsim_field(256, seed=4, galaxy_density=1500.0, blend_fraction=0.5, psf="kolmogorov")
    gal = f.catalog[f.catalog["kind"] == "galaxy"]
    xy = np.column_stack([gal["x"], gal["y"]])
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert (d.min(axis=1) < 3 * (gal["r_eff"] + 3)).mean() > 0.3  # many close pairs
    moffat = make_galsim_field(256, seed=4, galaxy_density=1500.0, blend_fraction=0.5, psf="moffat")
    assert not np.array_equal(moffat.noiseless, f.noiseless)
    with pytest.raises(ValueError, match="psf must be one of"):
        make_galsim_field(64, psf="gaussian")


def test_cli_backend_writes_the_same_files(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "g"), "--backend", "galsim", "--size", "96", "--seed", "2",
                 "--psf", "kolmogorov", "--psf-fwhm", "3.5"]) == 0
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == ["catalog.ecsv", "img.fits", "rms.fits", "true.fits"]
    header = fits.getheader(tmp_path / "g" / "img.fits")
    assert header["SYNBACK"] == "galsim" and header["PSFTYPE"] == "kolmogorov" and header["PSFFWHM"] == 3.5
    assert fits.getdata(tmp_path / "g" / "true.fits").dtype.kind == "i"
    assert len(Table.read(tmp_path / "g" / "catalog.ecsv")) > 0
    assert main(["synth", str(tmp_path / "b"), "--size", "64", "--psf", "kolmogorov"]) == 2
    assert "try --backend galsim" in capsys.readouterr().err
