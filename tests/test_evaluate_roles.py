"""`galseg evaluate` tells a swapped argument order from the files' SEGROLE card (exit 2, one line),
takes named --truth/--pred, and notes files given as labels that are not segmentations."""
from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from napari_galseg.cli import main
from napari_galseg.io import open_fits
from napari_galseg.io.write import label_role, labels_header, write_labels
from napari_galseg.metrics.evaluate import segmentation_doubts


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(1)
    true, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(80, 90)), 2) > 0.3)
    true = true.astype(np.int32)
    pred = true.copy()
    pred[:, :45] = 0  # finds the left half's objects only: completeness < purity
    paths = {"true": tmp_path / "true.fits", "pred": tmp_path / "pred.fits"}
    fits.writeto(paths["true"], true)  # a truth from elsewhere: no SEGROLE card
    write_labels(paths["pred"], pred)  # what galseg writes: SEGROLE = 'prediction'
    return paths


def test_written_labels_say_they_are_predictions(files):
    header = open_fits(files["pred"]).header
    assert header["SEGROLE"] == "prediction" and label_role(header) == "prediction"
    assert label_role(open_fits(files["true"]).header) is None
    # a role copied from another file is never kept; a truth can say so
    assert "SEGROLE" not in labels_header(header, role=None)
    assert label_role(labels_header(header, role="truth")) == "truth"
    synthetic = fits.Header({"ORIGIN": "napari-galseg synth", "CONTENT": "segmentation"})
    assert label_role(synthetic) == "truth"


def test_swapped_order_exits_2_with_one_line(files, capsys):
    assert main(["evaluate", str(files["true"]), str(files["pred"])]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert "is a prediction" in lines[0] and "--truth" in lines[0]


def test_a_synthetic_truth_given_as_prediction_is_refused(files, tmp_path, capsys):
    truth = fits.getdata(files["true"])
    fits.writeto(tmp_path / "synth_true.fits", truth,
                 header=fits.Header({"ORIGIN": "napari-galseg synth", "CONTENT": "segmentation"}))
    other = tmp_path / "other.fits"
    fits.writeto(other, fits.getdata(files["pred"]))
    assert main(["evaluate", str(tmp_path / "synth_true.fits"), str(other)]) == 2
    assert "is a true segmentation" in capsys.readouterr().err


def test_right_order_and_named_options_agree(files, capsys):
    assert main(["evaluate", str(files["pred"]), str(files["true"]), "--json"]) == 0
    positional = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--truth", str(files["true"]), "--pred", str(files["pred"]), "--json"]) == 0
    named = json.loads(capsys.readouterr().out)
    assert named == positional
    assert positional["completeness"] < positional["purity"] == pytest.approx(1.0)
    # named files are taken as given, with a note that says what the truth is
    assert main(["evaluate", "--truth", str(files["pred"]), "--pred", str(files["true"]), "--json"]) == 0
    swapped = json.loads(capsys.readouterr().out)
    assert swapped["purity"] == pytest.approx(positional["completeness"])
    assert any("itself a prediction" in note for note in swapped["notes"])


def test_named_options_misused_are_one_line(files, capsys):
    assert main(["evaluate", "--truth", str(files["true"])]) == 2
    assert main(["evaluate", str(files["pred"]), "--pred", str(files["pred"]), "--truth", str(files["true"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("galseg evaluate: error:") for line in err)


def test_labels_that_are_not_segmentations_get_a_note(files, tmp_path, capsys):
    rng = np.random.default_rng(2)
    shape = fits.getdata(files["true"]).shape
    smooth_noise = ndimage.gaussian_filter(rng.normal(3.0, 1.0, shape), 8)
    rounded = np.round(smooth_noise * 4).astype(np.int32)  # a rounded noise map: flat, no sky
    fits.writeto(tmp_path / "rms_int.fits", rounded)
    whole = np.ones(shape, np.int32)  # one label over the whole frame
    fits.writeto(tmp_path / "whole.fits", whole)
    assert segmentation_doubts(fits.getdata(files["true"])) == []
    assert "covers 100%" in segmentation_doubts(whole)[0]
    assert "sky" in segmentation_doubts(rounded)[0]

    assert main(["evaluate", str(tmp_path / "whole.fits"), str(files["true"])]) == 0
    table = capsys.readouterr().out
    assert "note (whole): the prediction whole.fits does not look like a segmentation" in table
    assert main(["evaluate", str(files["pred"]), str(tmp_path / "rms_int.fits"), "--json"]) == 0
    captured = capsys.readouterr()
    notes = json.loads(captured.out)["notes"]
    assert any(note.startswith("the truth rms_int.fits does not look like a segmentation") for note in notes)
