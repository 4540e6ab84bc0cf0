"""`galseg describe` on small FITS files: the JSON keys, the table, --psf-fwhm, one-line errors."""
import json

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main
from napari_galseg.synth import FieldOptions, write_field


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    folder = tmp_path_factory.mktemp("describe")
    paths = write_field(folder, 384, seed=6, star_density=400.0, psf_fwhm=3.0)
    return paths


def test_json_keys_and_values(field, capsys):
    assert main(["describe", str(field["image"]), "--rms", str(field["rms"]), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    for key in ("psf_fwhm_px", "psf_flag", "psf_n_sources", "psf_ellipticity", "psf_kind", "psf_moffat_beta",
                "noise_rms", "noise_from_map", "sky", "pixel_scale_arcsec", "saturation", "zero_point",
                "density_per_mpix", "flux_edges", "flux_counts", "flux_slope", "flux_turnover", "n_detected",
                "measured_window", "notes", "shape"):
        assert key in out, key
    assert out["shape"] == [384, 384] and out["psf_flag"] == "stars"
    assert out["psf_fwhm_px"] == pytest.approx(3.0, rel=0.10)
    assert out["noise_rms"] == pytest.approx(float(np.median(fits.getdata(field["rms"]))), rel=1e-5)
    assert out["noise_from_map"] is True
    assert out["pixel_scale_arcsec"] == pytest.approx(FieldOptions().pixel_scale_arcsec, rel=1e-6)
    assert "no WCS" not in " ".join(out["notes"])
    assert "Traceback" not in captured.err


def test_table_and_given_psf(field, capsys):
    assert main(["describe", str(field["image"]), "--psf-fwhm", "2.2"]) == 0
    out = capsys.readouterr().out
    assert "PSF FWHM            2.200 px" in out and "[given, 0 sources]" in out
    assert "[estimated]" in out and "note: no rms map given" in out
    assert "arcsec/px" in out


def _one_line_error(capsys, argv, text):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("galseg describe: error:"), err
    assert text in err, err


def test_bad_input_is_one_line_exit_2(field, tmp_path, capsys):
    not_fits = tmp_path / "notes.fits"
    not_fits.write_text("this is not a FITS file\n")
    _one_line_error(capsys, ["describe", str(not_fits)], "notes.fits")
    _one_line_error(capsys, ["describe", str(tmp_path / "missing.fits")], "does not exist")
    small = tmp_path / "small.fits"
    fits.writeto(small, np.zeros((32, 300), np.float32))
    _one_line_error(capsys, ["describe", str(small)], "too small to measure")
    other = tmp_path / "other_rms.fits"
    fits.writeto(other, np.ones((100, 100), np.float32))
    _one_line_error(capsys, ["describe", str(field["image"]), "--rms", str(other)], "same pixel grid")
    _one_line_error(capsys, ["describe", str(field["image"]), "--psf-fwhm", "0"], "psf_fwhm must be a positive")


def test_no_wcs_is_said_once(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = tmp_path / "plain.fits"
    fits.writeto(path, rng.normal(50.0, 3.0, (128, 128)).astype(np.float32))
    assert main(["describe", str(path), "--psf-fwhm", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pixel_scale_arcsec"] is None
    assert out["notes"].count("no WCS: lengths in pixels") == 1
    assert out["noise_rms"] == pytest.approx(3.0, rel=0.05)


def test_the_malformed_fits_corpus_ends_in_one_line_each(tmp_path, capsys):
    """Every file of the bad-input corpus (48×64 px: too small even when it opens) is one line, exit 2."""
    from fits_corpus import build_corpus

    failures = []
    for case in build_corpus(tmp_path / "corpus"):
        code = main(["describe", str(case.path), "--json"])
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        if code != 2 or captured.out or "Traceback" in captured.err or "unexpected" in captured.err:
            failures.append(f"{case.name}: exit {code}, {lines[-2:]}")
        elif not lines[-1].startswith("galseg describe: error:"):
            failures.append(f"{case.name}: {lines[-2:]}")
        elif case.expected is not None and "too small to measure" not in lines[-1]:
            failures.append(f"{case.name}: a readable file refused for another reason: {lines[-1]}")
    assert not failures, "\n".join(failures)


def test_hdu_by_name(field, tmp_path, capsys):
    image = fits.getdata(field["image"])
    path = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((70, 70), np.float32), name="WHT"),
                  fits.ImageHDU(image, header=fits.getheader(field["image"]), name="SCI")]).writeto(path)
    assert main(["describe", str(path), "--hdu", "SCI", "--psf-fwhm", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [384, 384]
    _one_line_error(capsys, ["describe", str(path), "--hdu", "NOPE"], "NOPE")
