"""SExtractor mode against the real SExtractor (source-extractor 2.25, installed by the Makefile).

Each field is made here, run through the real program and through napari_galseg.sextractor with
the same .sex/.param files (deblending and CLEAN off: SExtractor's deblending draws random
numbers), and compared object by object. The tolerances are the ones measured, with headroom of
about 2x, so a change that moves a column is caught.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy.spatial import cKDTree

from napari_galseg.cli import main
from napari_galseg.sextractor import SExtractorInputError, extract, read_sex
from napari_galseg.synth import make_field

SEX = shutil.which("source-extractor") or shutil.which("sex")
SHARE = Path("/usr/share/source-extractor")
needs_sex = pytest.mark.skipif(SEX is None, reason="the real SExtractor is not installed (apt-get install source-extractor; `make` does it)")

PARAMS = """NUMBER
X_IMAGE
Y_IMAGE
X2_IMAGE
Y2_IMAGE
XY_IMAGE
ERRX2_IMAGE
A_IMAGE
B_IMAGE
THETA_IMAGE
ISOAREA_IMAGE
FLUX_ISO
FLUXERR_ISO
FLUX_MAX
BACKGROUND
FLUX_APER(3)
FLUXERR_APER(3)
MAG_APER(3)
KRON_RADIUS
FLUX_AUTO
FLUXERR_AUTO
MAG_AUTO
FLUX_RADIUS(2)
XWIN_IMAGE
YWIN_IMAGE
CLASS_STAR
FLAGS
"""


def _sex_text(catalog_type="FITS_1.0", extra="", clean="N", mincont="1"):
    return (f"CATALOG_NAME ref.cat\nCATALOG_TYPE {catalog_type}\nPARAMETERS_NAME t.param\nDETECT_MINAREA 5\n"
            "DETECT_THRESH 1.5\nANALYSIS_THRESH 1.5\nFILTER Y\nFILTER_NAME default.conv\n"
            f"DEBLEND_MINCONT {mincont}\n"
            f"CLEAN {clean}\nPHOT_APERTURES 3,6,12\nPHOT_FLUXFRAC 0.5,0.9\nPHOT_AUTOPARAMS 2.5,3.5\nGAIN 2.0\nMAG_ZEROPOINT 25\n"
            "SATUR_LEVEL 20000\nCHECKIMAGE_TYPE BACKGROUND,SEGMENTATION\nCHECKIMAGE_NAME back.fits,seg.fits\n"
            "VERBOSE_TYPE QUIET\n" + extra)


def _field_dir(tmp_path, size, seed, fwhm, density, clean="N", mincont="1", extra=""):
    f = make_field(size, seed, psf_fwhm=fwhm, galaxy_density=density)
    fits.writeto(tmp_path / "img.fits", f.image.astype(np.float32))
    shutil.copy(SHARE / "default.conv", tmp_path / "default.conv")
    shutil.copy(SHARE / "default.nnw", tmp_path / "default.nnw")
    (tmp_path / "t.param").write_text(PARAMS)
    (tmp_path / "t.sex").write_text(_sex_text(clean=clean, mincont=mincont, extra=extra))
    return f.image.astype(np.float32)


def _run_sex(tmp_path):
    subprocess.run([SEX, "img.fits", "-c", "t.sex"], cwd=tmp_path, check=True, capture_output=True)
    return fits.getdata(tmp_path / "ref.cat", 1)


def _match(ref, cols):
    tree = cKDTree(np.c_[ref["X_IMAGE"], ref["Y_IMAGE"]])
    d, j = tree.query(np.c_[cols["X_IMAGE"], cols["Y_IMAGE"]])
    ok = d < 0.5
    assert len(np.unique(j[ok])) == ok.sum()  # one to one
    return ok, j, d


@needs_sex
@pytest.mark.parametrize("size,seed,fwhm,density,clean,mincont,extra", [
    (512, 1, 2.5, 1500, "N", "1", ""), (384, 2, 4.0, 3000, "N", "1", ""), (512, 3, 3.0, 2500, "Y", "1", ""),
    (512, 4, 2.5, 3000, "Y", "0.005", ""), (512, 5, 4.0, 3000, "N", "0.005", ""),
    # a frame taller than the image buffer: objects written while the strip scrolls, apertures clipped
    (512, 6, 3.0, 3000, "Y", "0.005", "MEMORY_BUFSIZE 96\nMEMORY_OBJSTACK 60\n")])
def test_catalogue_matches_the_real_sextractor(tmp_path, monkeypatch, size, seed, fwhm, density, clean, mincont,
                                               extra):
    image = _field_dir(tmp_path, size, seed, fwhm, density, clean, mincont, extra)
    ref = _run_sex(tmp_path)
    monkeypatch.chdir(tmp_path)
    run = read_sex(tmp_path / "t.sex")
    res = extract(image, run.settings)
    c = res.columns
    n = len(c["NUMBER"])
    assert n > 50
    assert abs(n - len(ref)) <= 0.01 * len(ref)
    ok, j, d = _match(ref, c)
    assert ok.mean() >= 0.99 and ok.sum() >= 0.99 * len(ref)
    # the background map and the segmentation (same NUMBER for the same pixels)
    back = fits.getdata(tmp_path / "back.fits")
    assert np.abs(res.back_level - back).max() <= 1e-4 * np.abs(back).max()
    seg = fits.getdata(tmp_path / "seg.fits")
    assert np.array_equal(res.segmentation > 0, seg > 0)  # the same detected pixels
    r = ref[j[ok]]

    def rel(name, k=None):
        ours = c[name][ok] if k is None else c[name][ok][:, k]
        theirs = r[name] if k is None else r[name][:, k]
        return np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-3)

    assert d[ok].max() < 0.01  # positions
    for name in ("X2_IMAGE", "Y2_IMAGE", "XY_IMAGE"):
        assert np.abs(c[name][ok] - r[name]).max() < 1e-3
    for name in ("FLUX_ISO", "FLUX_MAX", "BACKGROUND"):
        assert rel(name).max() < 1e-3, name
    for k in range(3):
        assert rel("FLUX_APER", k).max() < 1e-3
        assert rel("FLUXERR_APER", k).max() < 1e-3
    assert (rel("FLUX_AUTO") < 0.01).mean() >= 0.99
    assert (rel("KRON_RADIUS") < 0.01).mean() >= 0.99
    assert (rel("FLUXERR_AUTO") < 0.01).mean() >= 0.99
    # half-light radius; 98 % with the 96-row buffer, where growth curves are clipped by the strip
    assert (rel("FLUX_RADIUS", 0) < 1e-3).mean() >= 0.98 and (rel("FLUX_RADIUS", 0) < 0.02).mean() >= 0.99
    assert (rel("FLUX_RADIUS", 1) < 0.02).mean() >= 0.99  # 90 % of the light: the curve's flat end
    dw = np.hypot(c["XWIN_IMAGE"][ok] - r["XWIN_IMAGE"], c["YWIN_IMAGE"][ok] - r["YWIN_IMAGE"])
    assert dw.max() < 0.01 and (dw < 1e-4).mean() >= 0.98  # follows the half-light radius
    assert (c["ISOAREA_IMAGE"][ok] == r["ISOAREA_IMAGE"]).mean() >= 0.99
    assert (c["FLAGS"][ok] == r["FLAGS"]).mean() >= 0.99
    assert np.abs(c["CLASS_STAR"][ok] - r["CLASS_STAR"]).max() < 0.01
    # NUMBER: SExtractor's write order, replayed from its scan and object list (frames up to
    # MEMORY_BUFSIZE rows), so the segmentation maps are the same arrays
    assert (c["NUMBER"][ok] == r["NUMBER"]).all()
    assert np.array_equal(res.segmentation, seg)


@needs_sex
@pytest.mark.parametrize("catalog_type", ["ASCII_HEAD", "FITS_1.0", "FITS_LDAC"])
def test_cli_writes_the_catalog_type_of_the_sex_file(tmp_path, monkeypatch, catalog_type):
    _field_dir(tmp_path, 256, 3, 3.0, 1500)
    (tmp_path / "t.sex").write_text(_sex_text(catalog_type))
    subprocess.run([SEX, "img.fits", "-c", "t.sex"], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "photutils", "img.fits", "--sextractor-config", "t.sex", "-o", "labels.fits",
                 "--catalog", "ours.cat"]) == 0
    assert np.array_equal(fits.getdata("labels.fits"), fits.getdata("seg.fits"))
    if catalog_type == "ASCII_HEAD":
        ref, ours = (tmp_path / "ref.cat").read_text(), (tmp_path / "ours.cat").read_text()
        header = [line for line in ref.splitlines() if line.startswith("#")]
        assert [line for line in ours.splitlines() if line.startswith("#")] == header
        a = np.loadtxt(tmp_path / "ref.cat")
        b = np.loadtxt(tmp_path / "ours.cat")
        assert a.shape == b.shape
        np.testing.assert_allclose(b[:, :3], a[:, :3], atol=2e-4)  # NUMBER, X_IMAGE, Y_IMAGE
        return
    ext = 2 if catalog_type == "FITS_LDAC" else 1
    with fits.open(tmp_path / "ref.cat") as ref, fits.open(tmp_path / "ours.cat") as ours:
        assert [h.name for h in ours] == [h.name for h in ref]
        assert ours[ext].columns.names == ref[ext].columns.names
        assert [c.format for c in ours[ext].columns] == [c.format for c in ref[ext].columns]
        assert [c.unit for c in ours[ext].columns] == [c.unit for c in ref[ext].columns]
        np.testing.assert_allclose(ours[ext].data["X_IMAGE"], ref[ext].data["X_IMAGE"], atol=2e-3)
        if catalog_type == "FITS_LDAC":  # SExtractor's own ldactoasc reads it
            ldactoasc = shutil.which("ldactoasc")
            if ldactoasc:
                out = subprocess.run([ldactoasc, str(tmp_path / "ours.cat")], capture_output=True, text=True, check=True)
                assert "FLUX_AUTO" in out.stdout


@needs_sex
def test_sky_coordinates_and_header_gain_and_saturation(tmp_path, monkeypatch):
    """ALPHA/DELTA_J2000 from the frame's WCS (zeros without one, as SExtractor writes), and GAIN /
    SATURATE read from the header over the .sex values (GAIN_KEY, SATUR_KEY)."""
    f = make_field(320, 9, psf_fwhm=3.0, galaxy_density=2000)
    h = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 160.5, "CRPIX2": 140.0,
                     "CRVAL1": 150.1, "CRVAL2": 2.2, "CD1_1": -7.3e-5, "CD1_2": 1e-6, "CD2_1": 1.2e-6,
                     "CD2_2": 7.3e-5, "EQUINOX": 2000.0, "RADESYS": "FK5", "SATURATE": 3000.0, "GAIN": 4.0})
    fits.writeto(tmp_path / "img.fits", f.image.astype(np.float32), h)
    fits.writeto(tmp_path / "nowcs.fits", f.image.astype(np.float32))
    shutil.copy(SHARE / "default.conv", tmp_path / "default.conv")
    shutil.copy(SHARE / "default.nnw", tmp_path / "default.nnw")
    (tmp_path / "t.param").write_text("NUMBER\nX_IMAGE\nALPHA_J2000\nDELTA_J2000\nFLUXERR_AUTO\nFLAGS\n")
    (tmp_path / "t.sex").write_text(_sex_text().replace("CHECKIMAGE_TYPE BACKGROUND,SEGMENTATION", "CHECKIMAGE_TYPE NONE"))
    monkeypatch.chdir(tmp_path)
    for name in ("img", "nowcs"):
        subprocess.run([SEX, f"{name}.fits", "-c", "t.sex", "-CATALOG_NAME", f"{name}_ref.cat"], check=True,
                       capture_output=True)
        assert main(["segment", "photutils", f"{name}.fits", "--sextractor-config", "t.sex", "-o",
                     f"{name}_labels.fits", "--catalog", f"{name}.cat"]) == 0
        ref, ours = fits.getdata(f"{name}_ref.cat", 1), fits.getdata(f"{name}.cat", 1)
        assert len(ours) == len(ref) > 20
        np.testing.assert_allclose(ours["ALPHA_J2000"], ref["ALPHA_J2000"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours["DELTA_J2000"], ref["DELTA_J2000"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours["FLUXERR_AUTO"], ref["FLUXERR_AUTO"], rtol=1e-4)
        assert np.array_equal(ours["FLAGS"], ref["FLAGS"])
    assert (fits.getdata("img.cat", 1)["FLAGS"] & 4).any()  # SATURATE 3000 from the header flags some


def _bad(tmp_path, sex, param=PARAMS):
    (tmp_path / "t.param").write_text(param)
    (tmp_path / "t.sex").write_text(sex)
    with pytest.raises(SExtractorInputError) as info:
        read_sex(tmp_path / "t.sex")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_input_is_one_line_naming_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = "PARAMETERS_NAME t.param\nFILTER N\n"
    m = _bad(tmp_path, base + "DETECT_THRESH abc\n")
    assert "t.sex line 3" in m and "DETECT_THRESH" in m and "not a number" in m
    m = _bad(tmp_path, base + "DETECT_TRESH 1.5\n")
    assert "line 3" in m and "not a SExtractor keyword" in m
    m = _bad(tmp_path, "PARAMETERS_NAME missing.param\n")
    assert "line 1" in m and "missing.param" in m and "no such file" in m
    m = _bad(tmp_path, "PARAMETERS_NAME t.param\nFILTER_NAME nope.conv\n")
    assert "line 2" in m and "nope.conv" in m and "give its path" in m
    m = _bad(tmp_path, base + "PHOT_APERTURES 3,6,12\n", "NUMBER\nFLUX_APER(9)\n")
    assert "t.param line 2" in m and "FLUX_APER(9)" in m and "FLUX_APER(3)" in m
    m = _bad(tmp_path, base, "NUMBER\nFLUX_AUT0\n")
    assert "t.param line 2" in m and "FLUX_AUT0" in m
    m = _bad(tmp_path, base + "CATALOG_TYPE FITS_2.0\n")
    assert "line 3" in m and "FITS_LDAC" in m
    m = _bad(tmp_path, base + "BACK_SIZE 0\n")
    assert "line 3" in m and "> 0" in m
    m = _bad(tmp_path, base + "STARNNW_NAME gone.nnw\n", "NUMBER\nCLASS_STAR\n")
    assert "line 3" in m and "gone.nnw" in m and "no such file" in m
    m = _bad(tmp_path, base, "NUMBER\nX_IMAGE(2)\n")
    assert "t.param line 2" in m and "not a vector" in m
    m = _bad(tmp_path, base, "#NUMBER\n#X_IMAGE\n")  # like SExtractor's default.param
    assert "t.param" in m and "no catalogue parameter" in m


def test_unknown_parameters_are_listed_once_and_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.param").write_text("NUMBER\nFLUX_PETRO\nVIGNET(5,5)\nFLUX_PETRO\nX_IMAGE\n")
    (tmp_path / "t.sex").write_text("PARAMETERS_NAME t.param\nFILTER N\nBACKPHOTO_TYPE LOCAL\n")
    run = read_sex(tmp_path / "t.sex")
    assert [name for name, _ in run.params.columns] == ["NUMBER", "X_IMAGE"]
    assert run.params.left_out == ["FLUX_PETRO", "VIGNET"]
    report = run.report()
    assert "FLUX_PETRO, VIGNET" in report and "not reproduced BACKPHOTO_TYPE" in report
