"""measure_conditions: PSF and noise of fields with known conditions, fallbacks, bad input, lazy frames."""
import json

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.synth import field_header, field_wcs, make_field
from napari_galseg.synth.conditions import FrameConditions, measure_conditions, number_counts

try:
    import galsim
except ImportError:  # the built-in generator's tests still run
    galsim = None
needs_galsim = pytest.mark.skipif(galsim is None, reason="needs GalSim (the galsim extra)")


def make_galsim_field(*args, **kwargs):
    from napari_galseg.synth.galsim_backend import make_galsim_field as make

    return make(*args, **kwargs)

#: enough stars in a 512² field for a stellar locus (a survey frame has them over a larger area)
STARS = 400.0


def _field(backend, psf, fwhm, size=512, seed=5, **kw):
    if backend == "galsim":
        return make_galsim_field(size, seed, psf=psf, psf_fwhm=fwhm, star_density=STARS, **kw)
    return make_field(size, seed, psf=psf, psf_fwhm=fwhm, star_density=STARS, **kw)


@pytest.mark.parametrize("backend, psf, fwhm", [
    pytest.param("galsim", "moffat", 1.5, marks=needs_galsim),
    pytest.param("galsim", "kolmogorov", 2.5, marks=needs_galsim),
    pytest.param("galsim", "moffat", 4.0, marks=needs_galsim),
    pytest.param("galsim", "kolmogorov", 6.0, marks=needs_galsim),
    ("builtin", "moffat", 2.5), ("builtin", "gaussian", 4.0), ("builtin", "moffat", 1.5),
])
def test_psf_and_noise_of_known_fields(backend, psf, fwhm):
    f = _field(backend, psf, fwhm)
    true_noise = float(np.median(f.rms))
    c = measure_conditions(f.image)
    assert c.psf_flag == "stars" and c.psf_n_sources >= 5
    assert abs(c.psf_fwhm_px / fwhm - 1) <= 0.10, c.psf_fwhm_px
    assert abs(c.noise_rms / true_noise - 1) <= 0.05 and not c.noise_from_map
    assert abs(c.sky - 200) < 10  # both generators' sky level is 200 with a gentle gradient
    if backend == "galsim":  # a Moffat of β 3.5 against atmospheric seeing
        assert c.psf_kind == psf
        assert c.psf_ellipticity < 0.15  # round PSFs
    # with the field's own rms map: the noise is the map's median
    m = measure_conditions(f.image, f.rms, psf_fwhm=fwhm)
    assert m.noise_from_map and m.noise_rms == pytest.approx(true_noise, rel=1e-6)
    assert m.psf_flag == "given" and m.psf_fwhm_px == fwhm


def test_a_frame_without_stars_falls_back_to_the_narrowest_sources():
    f = make_field(256, 5, star_density=0.0)
    c = measure_conditions(f.image)
    assert c.psf_flag == "narrowest"
    assert any("--psf-fwhm" in n for n in c.notes)
    assert c.psf_fwhm_px > 0 and np.isfinite(c.psf_fwhm_px)
    given = measure_conditions(f.image, psf_fwhm=2.7)
    assert given.psf_flag == "given" and given.psf_fwhm_px == 2.7
    assert not any("--psf-fwhm" in n for n in given.notes)


def test_an_empty_frame_assumes_a_default_psf():
    rng = np.random.default_rng(0)
    c = measure_conditions(rng.normal(10.0, 2.0, (128, 128)).astype(np.float32))
    assert c.psf_flag in ("default", "narrowest") and c.psf_fwhm_px > 0
    assert c.noise_rms == pytest.approx(2.0, rel=0.05) and c.sky == pytest.approx(10.0, abs=0.2)
    assert c.density_per_mpix < 200  # noise peaks above 5σ over 5 px are rare


def test_pixel_scale_from_the_wcs_or_a_note_and_header_cards():
    f = make_field(256, 1, star_density=STARS)
    bare = measure_conditions(f.image, psf_fwhm=2.5)
    assert bare.pixel_scale_arcsec is None and "no WCS: lengths in pixels" in bare.notes
    header = field_header(f.shape, 1, f.options)
    header["SATURATE"] = 60000.0
    header["MAGZPT"] = 30.5
    c = measure_conditions(f.image, header=header, psf_fwhm=2.5)
    assert c.pixel_scale_arcsec == pytest.approx(f.options.pixel_scale_arcsec, rel=1e-6)
    assert c.saturation == 60000.0 and c.zero_point == 30.5
    assert not any("WCS" in n for n in c.notes)
    w = measure_conditions(f.image, wcs=field_wcs(f.shape, f.options), psf_fwhm=2.5)
    assert w.pixel_scale_arcsec == pytest.approx(c.pixel_scale_arcsec)
    assert w.saturation is None and w.zero_point is None
    # a header without WCS and a card that is not a number
    plain = fits.Header()
    plain["SATURATE"] = "n/a"
    p = measure_conditions(f.image, header=plain, psf_fwhm=2.5)
    assert p.pixel_scale_arcsec is None and p.saturation is None


def test_saturated_stars_are_not_psf_stars():
    f = _field("builtin", "moffat", 3.0)
    clipped = np.minimum(f.image, 1500.0)  # the brightest stars' cores flatten at 1500
    c = measure_conditions(clipped, header=fits.Header({"SATURATE": 1500.0}))
    assert c.saturation == 1500.0 and c.psf_flag == "stars"
    assert abs(c.psf_fwhm_px / 3.0 - 1) <= 0.10
    # without the card the flat tops are recognised as well
    assert abs(measure_conditions(clipped).psf_fwhm_px / 3.0 - 1) <= 0.10


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="too small to measure: 40×200 px"):
        measure_conditions(np.zeros((40, 200), np.float32))
    with pytest.raises(ValueError, match="must be 2-D"):
        measure_conditions(np.zeros((3, 100, 100), np.float32))
    with pytest.raises(ValueError, match="rms map has shape"):
        measure_conditions(np.zeros((100, 100), np.float32), np.ones((100, 99), np.float32))
    with pytest.raises(ValueError, match="psf_fwhm must be a positive"):
        measure_conditions(np.zeros((100, 100), np.float32), psf_fwhm=-1.0)
    with pytest.raises(ValueError, match="too empty"):
        measure_conditions(np.full((100, 100), np.nan, np.float32))


def test_dask_frames_are_measured_on_a_central_window_only():
    da = pytest.importorskip("dask.array")
    f = make_field(512, 2, star_density=STARS)
    lazy = da.from_array(f.image, chunks=128)
    a = measure_conditions(lazy, da.from_array(f.rms, chunks=128))
    b = measure_conditions(f.image, f.rms)
    assert a.to_dict() == b.to_dict()
    # a survey-size lazy frame: only the central window is computed (a whole read would not fit)
    big = da.random.default_rng(3).normal(100.0, 5.0, (30000, 30000), chunks=1000).astype(np.float32)
    c = measure_conditions(big, max_pixels=256**2, psf_fwhm=3.0)
    assert c.shape == (30000, 30000)
    assert c.measured_window == [14872, 15128, 14872, 15128]
    assert any("central 256×256" in n for n in c.notes)
    assert c.noise_rms == pytest.approx(5.0, rel=0.05)


def test_number_counts_fit_the_power_law_slope():
    rng = np.random.default_rng(1)
    flux = 100.0 * (1 - rng.random(4000)) ** (-1 / 1.2)  # dN/dF ∝ F^-2.2 above 100
    faint = rng.uniform(20, 100, 300) * rng.random(300)  # an incomplete faint end
    edges, counts, slope, turnover = number_counts(np.concatenate([flux, faint]))
    assert len(edges) == len(counts) + 1 and sum(counts) == 4300
    assert slope == pytest.approx(2.2, abs=0.1)
    assert 100 <= turnover < 300  # the upper edge of the most populated (log) bin
    assert number_counts([]) == ([], [], None, None)


def test_conditions_round_trip_through_json():
    f = make_field(256, 4, star_density=STARS)
    c = measure_conditions(f.image)
    d = json.loads(c.to_json())
    for key in ("psf_fwhm_px", "psf_flag", "noise_rms", "sky", "pixel_scale_arcsec", "density_per_mpix"):
        assert key in d
    assert FrameConditions.from_dict(d) == c
    assert d["density_per_mpix"] > 0 and d["flux_counts"] and sum(d["flux_counts"]) == d["n_detected"]


@needs_galsim
def test_the_evaluation_script_prints_and_writes_its_table(tmp_path, capsys):
    from script_helpers import load_script

    script = load_script("evaluate_describe")
    out = tmp_path / "eval.json"
    assert script.main(["--size", "512", "--seeds", "5", "--fwhm", "2.5", "--kinds", "kolmogorov",
                        "--star-density", str(STARS), "--cache", str(tmp_path / "cache"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["psf"] == "kolmogorov" and row["psf_flag"] == "stars" and abs(row["fwhm_error"]) <= 0.10
    assert report["summary"]["fwhm_within_10pct"] == 1.0 and report["summary"]["noise_within_5pct"] == 1.0
    assert "FWHM |error|" in capsys.readouterr().out
    assert list((tmp_path / "cache").glob("*.npz"))  # a second run reads the cached field
    assert script.main(["--size", "512", "--seeds", "5", "--fwhm", "2.5", "--kinds", "kolmogorov",
                        "--star-density", str(STARS), "--cache", str(tmp_path / "cache"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["measured_fwhm"] == row["measured_fwhm"]


def test_a_quantity_that_could_not_be_measured_is_null_in_the_json():
    c = FrameConditions(shape=(100, 100), psf_fwhm_px=3.0, psf_ellipticity=float("nan"))
    d = json.loads(c.to_json())
    assert d["psf_ellipticity"] is None and d["psf_fwhm_px"] == 3.0
