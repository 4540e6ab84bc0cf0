"""`galseg preprocess`: cube on disk equals the in-memory recipe; refusals and clear errors."""
import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main
from napari_galseg.preprocess import Recipe, default_recipe, image_only_recipe


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:70, :90]
    rms = (2.0 + 0.01 * xx).astype(np.float32)
    img = (100 + rng.normal(0, 1, (70, 90)) * rms + 300 * np.exp(-((yy - 30) ** 2 + (xx - 40) ** 2) / 12)).astype(np.float32)
    fits.writeto(tmp_path / "img.fits", img.astype(">f4"))
    fits.writeto(tmp_path / "rms.fits", rms)
    return tmp_path, img, rms


def test_writes_the_cube_the_recipe_gives(files, capsys):
    d, img, rms = files
    out = d / "pre.fits"
    rc = main(["preprocess", str(d / "img.fits"), "--rms", str(d / "rms.fits"), "-o", str(out),
               "--save-recipe", str(d / "fitted.yaml"), "--chunk", "32"])
    assert rc == 0
    data = fits.getdata(out)
    header = fits.getheader(out)
    assert data.shape == (3, 70, 90) and data.dtype.kind == "f" and data.dtype.itemsize == 4
    assert header["CHNAME1"] == "normalised" and header["NCHAN"] == 3
    np.testing.assert_array_equal(data, default_recipe().apply(img, rms))
    fitted = Recipe.load(d / "fitted.yaml")
    assert fitted.is_fitted
    np.testing.assert_array_equal(data, fitted.apply(img, rms))
    assert str(out) in capsys.readouterr().out


def test_custom_recipe_file_and_image_only_default(files):
    d, img, _ = files
    recipe = Recipe([{"step": "stretch", "params": {"stretch": "sqrt", "interval": "zscale"}}])
    recipe.save(d / "r.json")
    assert main(["preprocess", str(d / "img.fits"), "--recipe", str(d / "r.json"), "-o", str(d / "a.fits")]) == 0
    np.testing.assert_array_equal(fits.getdata(d / "a.fits")[0], recipe.apply(img)[0])
    assert main(["preprocess", str(d / "img.fits"), "-o", str(d / "b.fits")]) == 0
    assert fits.getdata(d / "b.fits").shape == (image_only_recipe().n_channels, 70, 90)


def test_refuses_to_overwrite(files, capsys):
    d, _, _ = files
    out = d / "pre.fits"
    out.write_bytes(b"precious")
    assert main(["preprocess", str(d / "img.fits"), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["preprocess", str(d / "img.fits"), "-o", str(out), "--overwrite"]) == 0
    assert fits.getdata(out).shape[0] == 2


def test_clear_errors(files, capsys):
    d, _, _ = files
    fits.writeto(d / "small_rms.fits", np.ones((10, 10), np.float32))
    cases = [
        (["--recipe", "default"], "needs an rms map"),
        (["--rms", str(d / "small_rms.fits")], "shape"),
        (["--rms", str(d / "missing.fits")], "missing.fits"),
    ]
    for extra, message in cases:
        assert main(["preprocess", str(d / "img.fits"), "-o", str(d / "x.fits"), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (d / "x.fits").exists()
