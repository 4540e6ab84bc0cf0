"""Bands as channels of the U-Net and the forest: `galseg train METHOD --bands ...` and
`galseg segment METHOD B1 B2 B3 --bands --model M` round trip on a small 3-band field; the model
folder keeps the bands and their order and refuses one image, other bands, another order, or bands
given to a model of one image — each in one line, with no output written."""
import json

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main
from napari_galseg.frames.bands import BandStack
from napari_galseg.preprocess import snr_only_recipe
from napari_galseg.preprocess.bands import BandRecipe
from napari_galseg.training.patches import dihedral

TINY_UNET = ["--epochs", "1", "--patch-size", "48", "--set", "depth=2", "--set", "base_width=4",
             "--set", "patches_per_epoch=8", "--set", "block_size=48", "--device", "cpu"]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    root = tmp_path_factory.mktemp("bands-models")
    assert main(["synth", str(root), "--bands", "g,r,i", "--size", "192", "--seed", "1"]) == 0
    return root


def _bands(root, order="gri"):
    return [str(root / f"img_{b}.fits") for b in order]


def _rms(root, order="gri"):
    return [a for b in order for a in ("--rms", str(root / f"rms_{b}.fits"))]


@pytest.fixture(scope="module", params=["unet", "forest"])
def model(request, field, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "model"
    extra = TINY_UNET if request.param == "unet" else ["--set", "n_estimators=3"]
    assert main(["train", request.param, "--bands", *_bands(field), "--rms", *(str(field / f"rms_{b}.fits") for b in "gri"),
                 "--truth", str(field / "true.fits"), "-o", str(out), *extra]) == 0
    return request.param, out


def test_the_model_keeps_its_bands_and_segments_them(model, field, tmp_path):
    method, folder = model
    config = json.loads((folder / "config.json").read_text())
    assert config["bands"] == ["g", "r", "i"]
    if method == "unet":  # one S/N channel per band, each fitted on its own band
        assert config["recipe"]["bands"] == ["g", "r", "i"] and config["architecture"]["in_channels"] == 3
    else:  # each band's features, named after it
        assert config["features"][0].startswith("g:") and config["features"][-1].startswith("i:")
        assert len(config["features"]) % 3 == 0
    out = tmp_path / "labels.fits"
    assert main(["segment", method, *_bands(field), "--bands", *_rms(field), "--model", str(folder),
                 "-o", str(out)]) == 0
    labels = fits.getdata(out)
    assert labels.shape == (192, 192)
    if method == "forest":  # a forest learns this field well enough to find its galaxies
        truth = fits.getdata(field / "true.fits")
        assert ((labels > 0) & (truth > 0)).sum() > 0.5 * (truth > 0).sum()


@pytest.mark.parametrize("inputs, message", [
    ("one", "was trained on 3 bands (g, r, i, in that order) but got one image"),
    ("order", "was trained on bands g, r, i (in that order) but got g, i, r"),
    ("two", "was trained on bands g, r, i (in that order) but got g, r"),
])
def test_other_bands_are_refused_in_one_line(model, field, tmp_path, capsys, inputs, message):
    method, folder = model
    out = tmp_path / "labels.fits"
    files = {"one": [str(field / "img_g.fits")], "order": [*_bands(field, "gir"), "--bands"],
             "two": [*_bands(field, "gr"), "--bands"]}[inputs]
    assert main(["segment", method, *files, "--model", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_model_of_one_image_refuses_bands(field, tmp_path, capsys):
    folder = tmp_path / "forest-r"
    assert main(["train", "forest", "--image", str(field / "img_r.fits"), "--rms", str(field / "rms_r.fits"),
                 "--truth", str(field / "true.fits"), "-o", str(folder), "--set", "n_estimators=2"]) == 0
    capsys.readouterr()
    assert "bands" not in json.loads((folder / "config.json").read_text())  # the single-band folder as before
    out = tmp_path / "labels.fits"
    assert main(["segment", "forest", *_bands(field), "--bands", "--model", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "was trained on one image, not on bands" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_train_band_options_are_checked_in_one_line(field, tmp_path, capsys):
    for argv, message in (
        (["--bands", *_bands(field), "--rms", str(field / "rms_g.fits")], "3 bands but 1 --rms map(s)"),
        (["--bands", *_bands(field, "gg")], "two bands have the same name"),
        (["--image", str(field / "img_g.fits"), "--rms", str(field / "rms_g.fits"), str(field / "rms_r.fits")],
         "one image takes one --rms map, got 2"),
    ):
        out = tmp_path / "m"
        assert main(["train", "forest", *argv, "--truth", str(field / "true.fits"), "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()


def test_the_band_recipe_is_each_bands_recipe_in_order():
    rng = np.random.default_rng(0)
    planes = [rng.normal(b * 10.0, 1.0 + b, (40, 40)).astype(np.float32) for b in range(3)]
    sigmas = [np.full((40, 40), 1.0 + b, np.float32) for b in range(3)]
    recipe = BandRecipe.per_band("gri", snr_only_recipe()).fit(BandStack(planes, "gri"), BandStack(sigmas, "gri"))
    assert recipe.channel_names == ["g:snr", "r:snr", "i:snr"]
    out = recipe.apply(np.stack(planes), np.stack(sigmas))
    for b in range(3):  # band b's channel is that band's own recipe, fitted on it alone
        alone = snr_only_recipe().fit(planes[b], sigmas[b]).apply(planes[b], sigmas[b])
        np.testing.assert_array_equal(out[b], alone[0])
    assert BandRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    with pytest.raises(ValueError, match="takes 3 bands"):
        recipe.apply(planes[0], sigmas[0])


def test_patch_flips_act_on_every_band_alike():
    a = np.arange(3 * 5 * 5, dtype=np.float32).reshape(3, 5, 5)
    for t in range(8):
        np.testing.assert_array_equal(dihedral(a, t), np.stack([dihedral(p, t) for p in a]))


def test_bands_without_data_are_filled_per_band_and_unlabelled_where_no_band_has_data(model, field, tmp_path):
    """A stripe missing in one band is still segmented from the others; a stripe missing in every
    band is never labelled; the network input fills only the band that has no data."""
    method, folder = model
    if method != "unet":
        pytest.skip("the U-Net's network input and its no-data rows")
    files = {}
    for b in "gri":
        data = fits.getdata(field / f"img_{b}.fits").astype(np.float32)
        data[20:40] = np.nan  # every band
        if b == "g":
            data[100:120] = np.nan  # g only
        files[b] = tmp_path / f"img_{b}.fits"
        fits.writeto(files[b], data, fits.getheader(field / f"img_{b}.fits"))
    out = tmp_path / "labels.fits"
    assert main(["segment", "unet", *(str(files[b]) for b in "gri"), "--bands", *_rms(field), "--model", str(folder),
                 "-o", str(out)]) == 0
    labels = fits.getdata(out)
    assert not labels[20:40].any()

    recipe = BandRecipe.per_band("gri", snr_only_recipe())
    stack = np.stack([fits.getdata(files[b]) for b in "gri"]).astype(np.float32)
    rms = np.stack([fits.getdata(field / f"rms_{b}.fits") for b in "gri"]).astype(np.float32)
    x = recipe.network_input(stack, rms)
    assert x.shape == (3, 192, 192) and np.isfinite(x).all()
    assert np.array_equal(x[0, 100:120], np.full((20, 192), recipe.fills[0], np.float32))
    assert not np.array_equal(x[1, 100:120], np.full((20, 192), recipe.fills[1], np.float32))
