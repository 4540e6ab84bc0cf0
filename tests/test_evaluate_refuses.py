"""`evaluate` never scores what cannot be scored: negative ids, integer science images, an rms
map that leaves no pixel; its notes reach --json too."""
from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
from astropy.io import fits

from napari_galseg import cli
from napari_galseg.metrics import evaluate
from napari_galseg.metrics.evaluate import check_label_map


def _labels(shape=(64, 64)):
    out = np.zeros(shape, np.int32)
    out[5:15, 5:20] = 1
    out[30:45, 30:40] = 2
    return out


def test_label_maps_pass_and_science_images_do_not():
    check_label_map(_labels())
    check_label_map((_labels() > 0).astype(np.uint8))
    check_label_map(da.from_array(_labels(), chunks=16))
    counts = np.random.default_rng(0).poisson(200, (64, 64)).astype(np.int16)
    with pytest.raises(ValueError, match="does not look like a label map"):
        check_label_map(counts, "the prediction")
    negative = _labels()
    negative[negative == 2] = -2
    with pytest.raises(ValueError, match="negative"):
        check_label_map(negative)


def test_evaluate_refuses_instead_of_scoring():
    labels = _labels()
    with pytest.raises(ValueError, match="no pixel is left to score"):
        evaluate(labels, labels, mask=np.zeros(labels.shape, bool))
    with pytest.raises(ValueError, match="negative"):
        evaluate(labels, -labels)
    # a float prediction with a threshold is a probability map: not checked as labels
    result = evaluate(labels.astype(np.float32) / 2, labels, threshold=0.25)
    assert result.metrics["iou"] == pytest.approx(1.0)


def test_rms_of_zeros_is_an_error_not_perfect_scores(tmp_path, capsys):
    labels = _labels()
    fits.writeto(tmp_path / "true.fits", labels)
    fits.writeto(tmp_path / "rms.fits", np.zeros(labels.shape, np.float32))
    code = cli.main(["evaluate", str(tmp_path / "true.fits"), str(tmp_path / "true.fits"), "--rms",
                     str(tmp_path / "rms.fits"), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "no pixel is left to score" in captured.err


def test_notes_are_in_the_json(tmp_path, capsys):
    labels = _labels()
    fits.writeto(tmp_path / "true.fits", labels)
    fits.writeto(tmp_path / "mask.fits", (labels > 0).astype(np.uint8))
    assert cli.main(["evaluate", str(tmp_path / "mask.fits"), str(tmp_path / "true.fits"), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert any("connected components" in note for note in out["notes"])
    assert "note (mask)" in captured.err


def test_an_unexpected_error_is_one_line(monkeypatch, tmp_path, capsys):
    from napari_galseg.commands import synth

    def broken(args):
        raise RuntimeError("something\nwent wrong")

    monkeypatch.setattr(synth, "run", broken)  # a fault injected where a bug would be
    assert cli.main(["synth", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected RuntimeError: something went wrong" in err[0] and "GALSEG_DEBUG" in err[0]
