"""Noise maps of every kind: --variance, --weight and --weight-type give the labels of --rms; zero
weight is "no data" (never detected, never scored); bad noise maps stop with one line and no output."""
import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main
from napari_galseg.frames import NoiseMap, open_frame, to_rms
from napari_galseg.synth import make_field

SETS = ["--set", "box_size=32", "--set", "tile_size=64"]


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A 192² field and its noise as rms, variance and inverse-variance weight files."""
    root = tmp_path_factory.mktemp("noise")
    f = make_field(192, seed=5)
    rms = f.rms.astype(np.float64)
    fits.writeto(root / "img.fits", f.image)
    fits.writeto(root / "rms.fits", f.rms)
    fits.writeto(root / "var.fits", (rms ** 2).astype(np.float32))
    fits.writeto(root / "wht.fits", (1 / rms ** 2).astype(np.float32))
    return root, f


def _segment(root, out, *noise):
    assert main(["segment", "photutils", str(root / "img.fits"), *noise, "-o", str(out), *SETS]) == 0
    return fits.getdata(out)


def test_variance_and_weight_give_the_labels_of_the_rms_map(field, tmp_path):
    root, _ = field
    reference = _segment(root, tmp_path / "rms.fits", "--rms", str(root / "rms.fits"))
    assert reference.max() > 5
    for noise in (["--variance", str(root / "var.fits")], ["--weight", str(root / "wht.fits")],
                  ["--rms", str(root / "wht.fits"), "--weight-type", "MAP_WEIGHT"],
                  ["--rms", str(root / "var.fits"), "--weight-type", "MAP_VAR"]):
        np.testing.assert_array_equal(_segment(root, tmp_path / "x.fits", *noise, "--overwrite"), reference)


def test_an_exposure_time_weight_with_its_scale_gives_the_same_labels(field, tmp_path):
    root, f = field
    exposure = (1000.0 / f.rms.astype(np.float64) ** 2).astype(np.float32)  # weight × 1000 s
    fits.writeto(tmp_path / "exptime.fits", exposure)
    reference = _segment(root, tmp_path / "rms.fits", "--rms", str(root / "rms.fits"))
    scaled = _segment(root, tmp_path / "x.fits", "--weight", str(tmp_path / "exptime.fits"), "--weight-scale", "0.001")
    assert (scaled != reference).mean() < 1e-3  # float rounding of the scale may move a boundary pixel
    unscaled = _segment(root, tmp_path / "y.fits", "--weight", str(tmp_path / "exptime.fits"))
    assert unscaled.max() > reference.max()  # taken as inverse variance, the noise looks 30× lower


@pytest.mark.parametrize("argv, says", [
    (["--rms", "wht.fits"], "thresholds will be far too low; it looks like a weight map (--weight)"),
    (["--rms", "var.fits"], "thresholds will be far too high; it looks like a variance map (--variance)"),
    (["--weight", "rms.fits"], "it looks like an rms map (--rms)"),
])
def test_a_noise_map_of_another_kind_is_named_in_a_warning(field, tmp_path, capsys, argv, says):
    root, _ = field
    _segment(root, tmp_path / "x.fits", argv[0], str(root / argv[1]))
    assert says in capsys.readouterr().err


def test_a_noise_map_of_its_own_kind_gets_no_warning(field, tmp_path, capsys):
    root, _ = field
    for argv in (["--rms", "rms.fits"], ["--variance", "var.fits"], ["--weight", "wht.fits"]):
        _segment(root, tmp_path / "x.fits", *argv[:1], str(root / argv[1]), "--overwrite")
        assert "warning" not in capsys.readouterr().err


def test_conversion_gives_back_the_float32_rms_exactly(field):
    _, f = field
    rms = f.rms.astype(np.float64)
    np.testing.assert_array_equal(to_rms((rms ** 2).astype(np.float32), "variance"), f.rms)
    np.testing.assert_array_equal(to_rms((1 / rms ** 2).astype(np.float32), "weight"), f.rms)


def test_a_noise_map_converts_each_window_alone():
    weight = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    weight[3, 4] = 0
    noise = NoiseMap(weight, "weight")
    whole = noise[:, :]
    assert np.isnan(whole[3, 4]) and np.isfinite(np.delete(whole.ravel(), 34)).all()
    np.testing.assert_array_equal(noise[2:7, 3:9], whole[2:7, 3:9])
    np.testing.assert_array_equal(noise[::3, 1::2], whole[::3, 1::2])


def test_zero_weight_is_never_detected_and_never_scored(field, tmp_path):
    root, f = field
    weight = (1 / f.rms.astype(np.float64) ** 2).astype(np.float32)
    # the brightest true galaxy's box and everything around it carries no data
    ids, counts = np.unique(f.truth[f.truth > 0], return_counts=True)
    ys, xs = np.nonzero(f.truth == ids[np.argmax(counts)])
    hole = (slice(max(0, ys.min() - 4), ys.max() + 5), slice(max(0, xs.min() - 4), xs.max() + 5))
    weight[hole] = 0
    fits.writeto(tmp_path / "wht0.fits", weight)
    labels = _segment(root, tmp_path / "out.fits", "--weight", str(tmp_path / "wht0.fits"))
    full = _segment(root, tmp_path / "full.fits", "--weight", str(root / "wht.fits"))
    assert full[hole].any() and not labels[hole].any()
    assert labels.max() >= 3  # the rest of the field is still segmented

    from napari_galseg.metrics.evaluate import evaluate

    frame = open_frame(root / "img.fits", noise=tmp_path / "wht0.fits", noise_kind_name="MAP_WEIGHT")
    valid = np.asarray(frame.valid)
    assert not valid[hole].any() and valid.sum() == valid.size - valid[hole].size
    scored = evaluate(labels, f.truth, mask=valid, coco=False)
    truth_outside = np.where(valid, f.truth, 0)
    assert scored.metrics["n_true"] == len(np.unique(truth_outside)) - 1 < len(ids)


@pytest.mark.parametrize("make, argv, message", [
    (lambda f: -np.ones_like(f.rms), ["--weight"], "negative value"),
    (lambda f: np.zeros_like(f.rms), ["--weight"], "every pixel of the frame is undefined (the weight map"),
    (lambda f: np.full_like(f.rms, np.inf), ["--variance"], "every pixel of the frame is undefined"),
    (lambda f: f.rms[:100], ["--variance"], "same pixel grid"),
    (lambda f: f.rms, ["--weight-type", "MAP_INVERSE", "--rms"], "unknown weight type 'MAP_INVERSE'"),
    (lambda f: f.rms, ["--weight-type", "MAP_VAR", "--weight"], "disagree"),
])
def test_bad_noise_maps_stop_with_one_line_and_no_output(field, tmp_path, capsys, make, argv, message):
    root, f = field
    fits.writeto(tmp_path / "noise.fits", make(f).astype(np.float32))
    out = tmp_path / "out.fits"
    assert main(["segment", "photutils", str(root / "img.fits"), *argv, str(tmp_path / "noise.fits"),
                 "-o", str(out), *SETS]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.part*"))


def test_a_negative_pixel_missed_by_the_sample_still_stops_the_run_before_any_output(field, tmp_path, capsys):
    root, f = field
    variance = (f.rms.astype(np.float64) ** 2).astype(np.float32)
    variance[150, 17] = -1.0
    fits.writeto(tmp_path / "var.fits", variance)
    out = tmp_path / "out.fits"
    code = main(["segment", "photutils", str(root / "img.fits"), "--variance", str(tmp_path / "var.fits"),
                 "-o", str(out), *SETS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "negative value" in err[-1]
    assert not out.exists()


def test_a_frame_of_blank_pixels_says_so(tmp_path, capsys):
    header = fits.Header()
    header["BLANK"] = -32768
    fits.writeto(tmp_path / "blank.fits", np.full((64, 64), -32768, np.int16), header)
    assert main(["segment", "photutils", str(tmp_path / "blank.fits"), "-o", str(tmp_path / "o.fits"), *SETS]) == 2
    assert "has no finite pixels" in capsys.readouterr().err
    assert not (tmp_path / "o.fits").exists()


def test_nan_where_the_weight_is_set_and_zero_weight_elsewhere_is_an_undefined_frame(field, tmp_path, capsys):
    _, f = field
    image = f.image.copy()
    image[:96] = np.nan
    weight = (1 / f.rms.astype(np.float64) ** 2).astype(np.float32)
    weight[96:] = 0
    fits.writeto(tmp_path / "img.fits", image)
    fits.writeto(tmp_path / "wht.fits", weight)
    for method in ("photutils", "kmeans"):
        assert main(["segment", method, str(tmp_path / "img.fits"), "--weight", str(tmp_path / "wht.fits"),
                     "-o", str(tmp_path / "o.fits")]) == 2
        assert "every pixel of the frame is undefined" in capsys.readouterr().err
    assert not (tmp_path / "o.fits").exists()


def test_metrics_do_not_score_pixels_without_data(field):
    """A frame's image (NaN at no data) given to evaluate() drops those pixels, and the true
    galaxies inside them, without a mask: missed objects there are not counted as misses."""
    import dask.array as da

    from napari_galseg.metrics.evaluate import evaluate

    _, f = field
    image = f.image.copy()
    image[:, :96] = np.nan
    inside = np.unique(f.truth[:, :96])
    outside = set(np.unique(f.truth[:, 96:])) - {0}
    only_inside = len(set(inside) - outside - {0})
    assert only_inside > 0
    pred = np.where(np.isfinite(image), f.truth, 0)  # perfect where there is data, nothing elsewhere
    for img in (image, da.from_array(image, chunks=64)):
        scored = evaluate(pred, f.truth, image=img, coco=False)
        assert scored.metrics["n_true"] == len(outside)
        assert scored.metrics["completeness"] == 1.0
    assert "96" not in "".join(evaluate(pred, f.truth, coco=False).notes)
    assert any("not scored" in n for n in evaluate(pred, f.truth, image=image, coco=False).notes)
