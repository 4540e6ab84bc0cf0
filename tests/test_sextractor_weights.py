"""SExtractor mode's weight maps and flag maps against the real SExtractor (source-extractor 2.25).

Each field has a noise rms that doubles on its right half and a weight map of the kind under test
(with zero-weight strips, a block and scattered pixels where asked); the real program and
napari_galseg.sextractor run with the same .sex/.param files and are compared object by object and
on the segmentation map. The weighted paths were measured equal to SExtractor's to float rounding,
so the tolerances are those of the unweighted parity tests.
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from astropy.io import fits
from test_sextractor_parity import PARAMS, SEX, SHARE, _match, _sex_text, needs_sex

from napari_galseg.cli import main
from napari_galseg.sextractor import SExtractorInputError, extract, read_sex
from napari_galseg.synth import make_field

WPARAMS = PARAMS + "THRESHOLD\nFLAGS_WEIGHT\nNLOWWEIGHT_ISO\nNLOWDWEIGHT_ISO\n"


def _field(tmp_path, wtype, seed=1, size=512, holes=False, flags=False):
    """A field whose noise doubles on the right half, its weight map of ``wtype`` (as w.fits) and
    flag maps; returns the image and the background σ of the left half."""
    f = make_field(size, seed, psf_fwhm=3.0, galaxy_density=3000)
    img = f.image.astype(np.float32)
    rng = np.random.default_rng(seed)
    sig = float(np.median(np.abs(img - np.median(img)))) * 1.4826
    rms = np.full(img.shape, sig, np.float32)
    rms[:, size // 2:] = 2 * sig
    img[:, size // 2:] += (rng.normal(size=(size, size - size // 2)) * sig * np.sqrt(3)).astype(np.float32)
    fits.writeto(tmp_path / "img.fits", img)
    maps = {"MAP_RMS": rms, "MAP_VAR": 3.0 * rms**2, "MAP_WEIGHT": 0.2 / rms**2}
    if wtype in maps:
        w = maps[wtype].astype(np.float32)
        if holes:  # no data: zero weight, or an rms/variance above SExtractor's BIG
            bad = np.float32(0.0 if wtype == "MAP_WEIGHT" else 1e31)
            w[100:140, 60:70] = bad
            w[200:260, 250:330] = bad
            w[rng.random(w.shape) < 0.002] = bad
        fits.writeto(tmp_path / "w.fits", w)
    if flags:
        fl = np.zeros(img.shape, np.int32)
        fl[:, : size // 3] |= 1
        fl[size // 4: size // 2, :] |= 4
        fl[rng.random(fl.shape) < 0.05] |= 8
        fits.writeto(tmp_path / "flag.fits", fl)
        fits.writeto(tmp_path / "flag2.fits", (fl * 3 % 7).astype(np.int16))
    shutil.copy(SHARE / "default.conv", tmp_path / "default.conv")
    shutil.copy(SHARE / "default.nnw", tmp_path / "default.nnw")
    return img, sig


def _compare(tmp_path, image):
    """Run both on the field; the real catalogue, ours, and the matched rows."""
    subprocess.run([SEX, "img.fits", "-c", "t.sex"], cwd=tmp_path, check=True, capture_output=True)
    ref = fits.getdata(tmp_path / "ref.cat", 1)
    res = extract(image, read_sex(tmp_path / "t.sex").settings)
    c = res.columns
    n = len(c["NUMBER"])
    assert n > 40 and abs(n - len(ref)) <= 0.01 * len(ref)
    ok, j, d = _match(ref, c)
    assert ok.mean() >= 0.99 and ok.sum() >= 0.99 * len(ref)
    r = ref[j[ok]]

    def rel(name, k=None):
        ours = np.asarray(c[name])[ok] if k is None else np.asarray(c[name])[ok][:, k]
        theirs = r[name] if k is None else r[name][:, k]
        return np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-3)

    assert d[ok].max() < 0.01
    for name in ("X2_IMAGE", "Y2_IMAGE", "XY_IMAGE"):
        assert np.abs(c[name][ok] - r[name]).max() < 1e-3
    for name in ("FLUX_ISO", "FLUXERR_ISO", "FLUX_MAX", "BACKGROUND", "THRESHOLD"):
        assert rel(name).max() < 1e-3, name
    for k in range(3):
        assert rel("FLUX_APER", k).max() < 1e-3
        # a streak left by the interpolation down a zero-weight block can have its centroid on a
        # whole pixel, where SExtractor's aperture box (and so which pixels add photon noise) turns on
        # the last bit of the position: 1.1e-3 on one object of ~100
        assert (rel("FLUXERR_APER", k) < 1e-3).mean() >= 0.99 and rel("FLUXERR_APER", k).max() < 1e-2
    for name in ("FLUX_AUTO", "FLUXERR_AUTO", "KRON_RADIUS"):
        assert (rel(name) < 0.01).mean() >= 0.99, name
    assert (rel("FLUX_RADIUS", 0) < 0.02).mean() >= 0.98
    for name in ("ISOAREA_IMAGE", "FLAGS", "FLAGS_WEIGHT", "NLOWWEIGHT_ISO", "NLOWDWEIGHT_ISO"):
        assert (np.asarray(c[name])[ok] == r[name]).mean() >= 0.99, name
    assert (c["NUMBER"][ok] == r["NUMBER"]).all()
    assert np.array_equal(res.segmentation, fits.getdata(tmp_path / "seg.fits"))
    return res, r, ok


@needs_sex
@pytest.mark.parametrize("wtype,holes,extra,mincont,clean", [
    ("MAP_RMS", True, "", "1", "N"),
    ("MAP_VAR", False, "", "1", "N"),
    ("MAP_VAR", False, "RESCALE_WEIGHTS N\nWEIGHT_GAIN N\n", "1", "N"),
    ("MAP_WEIGHT", True, "", "1", "N"),                      # zero weights, interpolated (INTERP_TYPE ALL)
    ("MAP_WEIGHT", True, "INTERP_TYPE NONE\n", "1", "Y"),
    ("MAP_WEIGHT", True, "", "0.005", "Y"),                  # deblending and CLEAN with per-pixel thresholds
    ("BACKGROUND", False, "", "0.005", "Y"),
])
def test_weight_maps_match_the_real_sextractor(tmp_path, monkeypatch, wtype, holes, extra, mincont, clean):
    image, _sig = _field(tmp_path, wtype, holes=holes)
    weight = f"WEIGHT_TYPE {wtype}\n" + ("WEIGHT_IMAGE w.fits\n" if wtype != "BACKGROUND" else "")
    (tmp_path / "t.param").write_text(WPARAMS)
    (tmp_path / "t.sex").write_text(_sex_text(clean=clean, mincont=mincont, extra=weight + extra))
    monkeypatch.chdir(tmp_path)
    res, _r, _ok = _compare(tmp_path, image)
    assert res.variance is not None
    if wtype in ("MAP_VAR", "MAP_WEIGHT"):
        assert 0.1 < res.sigfac < 1.0  # the maps are off by a factor: RESCALE_WEIGHTS found it


@needs_sex
def test_low_weight_pixels_are_flagged_and_counted(tmp_path, monkeypatch):
    """WEIGHT_THRESH between the two halves' weights: the noisier half is "low weight" (detected on
    its own threshold, masked in the photometry, counted in NLOWWEIGHT_ISO), interpolated over
    INTERP_MAXXLAG/MAXYLAG pixels; RESCALE_WEIGHTS N keeps the threshold in the map's units."""
    image, sig = _field(tmp_path, "MAP_WEIGHT", seed=2, holes=True)
    extra = (f"WEIGHT_TYPE MAP_WEIGHT\nWEIGHT_IMAGE w.fits\nWEIGHT_THRESH {0.1 / sig**2:.6g}\nRESCALE_WEIGHTS N\n"
             "INTERP_MAXXLAG 4\nINTERP_MAXYLAG 3\n")
    (tmp_path / "t.param").write_text(WPARAMS)
    (tmp_path / "t.sex").write_text(_sex_text(extra=extra))
    monkeypatch.chdir(tmp_path)
    _res, r, _ok = _compare(tmp_path, image)
    assert (r["NLOWWEIGHT_ISO"] > 0).sum() >= 5 and (r["FLAGS_WEIGHT"] & 1).sum() >= 5


@needs_sex
@pytest.mark.parametrize("types,clean", [("OR,MOST", "N"), ("MIN,MAX", "N"), ("AND,OR", "Y")])
def test_flag_images_match_the_real_sextractor(tmp_path, monkeypatch, types, clean):
    image, _sig = _field(tmp_path, "MAP_RMS", seed=3, flags=True)
    params = WPARAMS + "IMAFLAGS_ISO(2)\nNIMAFLAGS_ISO(2)\n"
    extra = f"WEIGHT_TYPE MAP_RMS\nWEIGHT_IMAGE w.fits\nFLAG_IMAGE flag.fits,flag2.fits\nFLAG_TYPE {types}\n"
    (tmp_path / "t.param").write_text(params)
    (tmp_path / "t.sex").write_text(_sex_text(clean=clean, extra=extra))
    monkeypatch.chdir(tmp_path)
    res, r, ok = _compare(tmp_path, image)
    for name in ("IMAFLAGS_ISO", "NIMAFLAGS_ISO"):
        assert np.array_equal(np.asarray(res.columns[name])[ok], r[name]), name
    assert (r["NIMAFLAGS_ISO"] > 0).any()


@needs_sex
@pytest.mark.parametrize("option,wtype", [("--rms", "MAP_RMS"), ("--variance", "MAP_VAR"), ("--weight", "MAP_WEIGHT")])
def test_cli_noise_options_are_the_weight_image(tmp_path, monkeypatch, capsys, option, wtype):
    """--rms/--variance/--weight give SExtractor mode its WEIGHT_IMAGE with the matching WEIGHT_TYPE:
    the same labels and catalogue as SExtractor run with that WEIGHT_TYPE, and one line says so."""
    _field(tmp_path, wtype, seed=4, size=256)
    (tmp_path / "t.param").write_text(WPARAMS)
    (tmp_path / "t.sex").write_text(_sex_text(extra=f"WEIGHT_TYPE {wtype}\nWEIGHT_IMAGE w.fits\n"))
    subprocess.run([SEX, "img.fits", "-c", "t.sex"], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "plain.sex").write_text(_sex_text())
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "photutils", "img.fits", "--sextractor-config", "plain.sex", option, "w.fits",
                 "-o", "labels.fits", "--catalog", "ours.cat"]) == 0
    assert f"weights: WEIGHT_TYPE {wtype} from {option} w.fits" in capsys.readouterr().err
    assert np.array_equal(fits.getdata("labels.fits"), fits.getdata("seg.fits"))
    ours, ref = fits.getdata("ours.cat", 1), fits.getdata("ref.cat", 1)
    assert len(ours) == len(ref) > 10
    np.testing.assert_allclose(ours["FLUXERR_AUTO"], ref["FLUXERR_AUTO"], rtol=1e-4)
    # both the option and the .sex's WEIGHT_TYPE: one line, no traceback
    assert main(["segment", "photutils", "img.fits", "--sextractor-config", "t.sex", option, "w.fits",
                 "-o", "l2.fits", "--catalog", "o2.cat"]) != 0
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "keep one" in err and "Traceback" not in err


def test_bad_weight_and_flag_input_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.param").write_text("NUMBER\nX_IMAGE\nIMAFLAGS_ISO\n")
    fits.writeto(tmp_path / "small.fits", np.ones((10, 12), np.float32))
    image = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    cases = [
        ("WEIGHT_TYPE MAP_WEIGHT\nWEIGHT_IMAGE small.fits\nFLAG_IMAGE small.fits\n",
         ("small.fits", "WEIGHT_IMAGE", "(10, 12)", "(32, 32)")),
        ("FLAG_IMAGE small.fits\n", ("small.fits", "FLAG_IMAGE", "(10, 12)", "(32, 32)")),
    ]
    for sex, words in cases:
        (tmp_path / "t.sex").write_text("PARAMETERS_NAME t.param\nFILTER N\n" + sex)
        with pytest.raises(SExtractorInputError) as info:
            extract(image, read_sex(tmp_path / "t.sex").settings)
        assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), str(info.value)
    for sex, words in [("WEIGHT_TYPE MAP_WEIGHT\nWEIGHT_IMAGE gone.fits\n", ("line 4", "gone.fits", "no such file")),
                       ("WEIGHT_TYPE MAP_WEIHT\n", ("line 3", "WEIGHT_TYPE", "MAP_WEIHT", "MAP_WEIGHT")),
                       ("WEIGHT_TYPE MAP_RMS\n", ("WEIGHT_IMAGE", "weight.fits", "no such file")),
                       ("FLAG_IMAGE f.fits\nFLAG_TYPE SUM\n", ("FLAG_TYPE", "SUM", "MOST"))]:
        (tmp_path / "t.sex").write_text("PARAMETERS_NAME t.param\nFILTER N\n" + sex)
        with pytest.raises(SExtractorInputError) as info:
            read_sex(tmp_path / "t.sex")
        assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), str(info.value)
