"""`galseg evaluate` with survey noise and masks: pixels without data (zero weight, infinite
variance, masked bits, a coadd's planes) are not scored, exactly as a mask of them would not be."""
import json

import numpy as np
import pytest
from astropy.io import fits

from napari_galseg.cli import main
from napari_galseg.frames.layouts import write_coadd
from napari_galseg.metrics import pixel_metrics
from napari_galseg.synth import make_field


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A field, a prediction with a false object and a missed object inside a masked stripe, and the
    noise and mask files of that stripe in every form."""
    root = tmp_path_factory.mktemp("evaluate-no-data")
    f = make_field(128, seed=5)
    bad = np.zeros(f.truth.shape, bool)
    bad[50:70] = True
    pred = f.truth.copy()
    pred[55:62, 10:17] = pred.max() + 1  # a false object where there is no data
    pred[bad & (f.truth == f.truth[bad].max())] = 0  # a true object missed there
    weight = (1 / f.rms.astype(np.float64) ** 2).astype(np.float32)
    weight[bad] = 0
    variance = np.where(bad, np.inf, f.rms.astype(np.float64) ** 2).astype(np.float32)
    for name, data in {"true": f.truth, "pred": pred, "img": f.image, "weight": weight, "variance": variance,
                       "mask": bad.astype(np.int16), "zero": np.zeros_like(weight)}.items():
        fits.writeto(root / f"{name}.fits", data)
    write_coadd(root / "des.fits", f.image, f.rms, "des", bad=bad)
    return root, f, pred, bad


def _json(argv, capsys):
    assert main(["evaluate", *argv, "--json", "--no-coco"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("planes", [["--weight", "weight.fits"], ["--variance", "variance.fits"],
                                    ["--rms", "weight.fits", "--weight-type", "MAP_WEIGHT"],
                                    ["--mask", "mask.fits"], ["--image", "des.fits"],
                                    ["--image", "img.fits", "--mask", "mask.fits:0"]])
def test_pixels_without_data_are_not_scored(files, capsys, planes):
    root, f, pred, bad = files
    argv = [str(root / "pred.fits"), str(root / "true.fits"),
            *[str(root / p) if p.endswith(".fits") or ".fits:" in p else p for p in planes]]
    scored = _json(argv, capsys)
    everything = _json([str(root / "pred.fits"), str(root / "true.fits")], capsys)
    expected = pixel_metrics(pred, f.truth, mask=~bad)
    assert scored["n_pixels"] == expected["n_pixels"] == int((~bad).sum())
    assert scored["iou"] == pytest.approx(expected["iou"]) and scored["iou"] > everything["iou"]
    assert scored["n_pred"] < everything["n_pred"]  # the false object in the stripe is not counted
    assert any("not scored" in note for note in scored["notes"])


def test_a_weight_of_zero_everywhere_is_one_line(files, capsys):
    root, _, _, _ = files
    assert main(["evaluate", str(root / "pred.fits"), str(root / "true.fits"), "--weight", str(root / "zero.fits")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no pixel is left to score" in err and "zero everywhere" in err and len(err.splitlines()) == 1
    assert main(["evaluate", str(root / "pred.fits"), str(root / "true.fits"), "--mask-bits", "0x1"]) == 2
    assert "--mask" in capsys.readouterr().err
