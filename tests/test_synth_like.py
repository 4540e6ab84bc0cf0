"""Fields like a frame: the frame's PSF, noise and sky in its own units, exact truth, one-line refusals."""
import json

import numpy as np
import pytest
from astropy.io import fits

pytest.importorskip("galsim")

from napari_galseg.cli import main
from napari_galseg.synth.conditions import FrameConditions
from napari_galseg.synth.galsim_backend import write_galsim_field
from napari_galseg.synth.like import like_settings, make_like_field


def conditions(**kw):
    base = dict(shape=(512, 512), psf_fwhm_px=3.0, psf_kind="kolmogorov", sky=1000.0, noise_rms=0.02,
                density_per_mpix=0.0, flux_slope=1.7, pixel_scale_arcsec=0.1)
    return FrameConditions(**{**base, **kw})


def test_a_like_field_has_the_frames_units_psf_and_exact_truth():
    cond = conditions()
    f = make_like_field(cond, 256, seed=1, calibrate=False)
    meta = f.catalog.meta["like"]
    assert meta["options"]["psf"] == "kolmogorov" and meta["options"]["psf_fwhm"] == 3.0
    assert meta["options"]["flux_slope"] == 1.7 and meta["options"]["size_pivot"] == pytest.approx(4.0)
    assert abs(np.median(f.rms) / 0.02 - 1) < 0.1
    sky = f.noiseless < 0.01 * f.rms
    assert abs(np.median(f.image[sky]) - 1000.0) < 0.01 and abs(np.std(f.image[sky]) / np.median(f.rms) - 1) < 0.1
    assert not (f.truth > 0)[f.noiseless <= 0.5 * f.rms].any() and f.truth.max() > 5
    galaxies = f.catalog[f.catalog["kind"] == "galaxy"]
    assert set(galaxies["morphology"]) == {"bulge_disk", "knotty", "irregular", "merger"}


def test_the_frames_noise_map_becomes_the_fields_noise():
    rms = np.full((300, 300), 0.05, np.float32)
    rms[:150] = 0.1
    f = make_like_field(conditions(noise_rms=0.07), 200, seed=2, rms_map=rms, calibrate=False)
    np.testing.assert_allclose(f.rms, rms[50:250, 50:250], rtol=1e-5)


def test_conditions_the_generator_cannot_draw_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"PSF FWHM is 40 px.*--psf-fwhm"):
        like_settings(conditions(psf_fwhm_px=40.0))
    with pytest.raises(ValueError, match="not a positive number"):
        like_settings(conditions(noise_rms=0.0))


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return write_galsim_field(tmp_path_factory.mktemp("frame"), 512, seed=9, psf="moffat", psf_fwhm=3.0,
                              star_density=120.0)


def test_synth_like_writes_a_field_and_the_conditions(frame, tmp_path, capsys):
    out = tmp_path / "like"
    assert main(["synth", str(out), "--like", str(frame["image"]), "--size", "256", "--seed", "4"]) == 0
    err = capsys.readouterr().err
    assert "like" in err and "PSF" in err
    image = fits.getdata(out / "img.fits")
    truth = fits.getdata(out / "true.fits")
    assert image.shape == truth.shape == (256, 256) and truth.max() > 0
    saved = json.loads((out / "conditions.json").read_text())
    assert saved["conditions"]["psf_flag"] in ("stars", "narrowest") and "psf_fwhm_px" in saved["conditions"]
    # the user's files are never overwritten without --overwrite
    assert main(["synth", str(out), "--like", str(frame["image"]), "--size", "256"]) == 2
    assert "already exist" in capsys.readouterr().err


def test_synth_like_refuses_settings_it_takes_from_the_frame(frame, tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--like", str(frame["image"]), "--psf-fwhm", "3"]) == 2
    assert "--like takes the PSF" in capsys.readouterr().err
    assert main(["synth", str(tmp_path / "y"), "--rms", str(frame["rms"])]) == 2
    assert "give --like IMG" in capsys.readouterr().err


TINY = ["--set", "depth=2", "--set", "base_width=4", "--set", "patches_per_epoch=16", "--set", "val_max_patches=4",
        "--set", "bf16=false", "--patch-size", "64", "--device", "cpu", "--epochs", "1"]


def test_train_like_a_frame_needs_no_truth_and_records_the_conditions(frame, tmp_path, capsys):
    out = tmp_path / "unet-like"
    assert main(["train", "unet", "--like", str(frame["image"]), "--like-size", "256", "-o", str(out), *TINY]) == 0
    err = capsys.readouterr().err
    assert "simulating a 256² field" in err
    config = json.loads((out / "config.json").read_text())
    prov = config["provenance"]
    assert prov["conditions"]["psf_fwhm_px"] > 0 and prov["training"]["like"]["frame"]["path"].endswith("img.fits")
    lo, hi = prov["valid_range"]["psf_fwhm_px"]
    assert lo < prov["conditions"]["psf_fwhm_px"] < hi
    assert [c["step"] for c in config["recipe"]["channels"]] == ["snr"]  # in noise units: any frame units
    # the model segments the frame itself, without an rms map (estimated, and said)
    pred = tmp_path / "pred.fits"
    assert main(["segment", "unet", str(frame["image"]), "--model", str(out), "-o", str(pred)]) == 0
    assert "noise was estimated" in capsys.readouterr().err and fits.getdata(pred).shape == (512, 512)


def test_train_like_the_forest_and_refusals(frame, tmp_path, capsys):
    out = tmp_path / "forest-like"
    assert main(["train", "forest", "--like", str(frame["image"]), "--like-size", "256", "-o", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["provenance"]["conditions"]["noise_rms"] > 0
    capsys.readouterr()
    assert main(["train", "unet", "--like", str(frame["image"]), "--truth", str(frame["truth"]), "-o",
                 str(tmp_path / "m")]) == 2
    assert "drop --image/--truth" in capsys.readouterr().err
