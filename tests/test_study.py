"""`galseg study`: the grid runs end to end on tiny fields, its tables have the study's structure, a
perfect prediction scores 1.0 and a rerun skips the finished cells."""
import csv
import json

import numpy as np
import pytest

from napari_galseg.cli import main
from napari_galseg.segmenters import Segmentation
from napari_galseg.study.cell import score
from napari_galseg.study.tables import COLUMNS
from napari_galseg.synth import make_field, write_field


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields")
    write_field(root / "train", size=128, seed=1)
    write_field(root / "test", size=128, seed=2)
    return root


def test_a_perfect_prediction_scores_one():
    field = make_field(128, seed=3)
    truth = field.truth.astype(np.int32)
    n = int(truth.max())
    perfect = Segmentation(truth, scores=np.r_[np.nan, np.ones(n)], maps={"probability": (truth > 0).astype(np.float32)})
    row = score(perfect, {"image": field.image, "truth": truth})
    for key in ("iou", "dice", "precision", "recall", "accuracy", "f1", "completeness", "purity", "ap", "ap50", "pq",
                "iou_p03", "iou_p05"):
        assert row[key] == pytest.approx(1.0), key


def test_study_runs_writes_the_tables_and_resumes(fields, tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["study", "--train", str(fields / "train"), "--test", str(fields / "test"), "--methods", "photutils", "kmeans",
            "--variants", "default", "stretched", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| method | variant | iou |" in printed and "its \"recall\" column is precision" in printed
    rows = list(csv.DictReader((out / "results.csv").open()))
    # photutils reads no recipe: one cell; kmeans: one per variant
    assert sorted((r["method"], r["variant"]) for r in rows) == [("kmeans", "default"), ("kmeans", "stretched"),
                                                                  ("photutils", "default")]
    header = list(rows[0])
    assert header == [c for c in COLUMNS if c in header] and {"iou", "dice", "precision", "recall", "accuracy", "f1",
                                                              "completeness", "purity", "ap", "ap50", "ap75", "ar", "pq",
                                                              "train_s", "predict_s", "peak_mb"} <= set(header)
    for row in rows:
        assert 0.0 <= float(row["iou"]) <= 1.0 and float(row["peak_mb"]) > 0
    assert (out / "results.png").stat().st_size > 0 and (out / "panel.png").stat().st_size > 0
    done = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}
    assert len(done) == 3
    # a rerun runs nothing again: every result stays as it was
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")} == done
    assert json.loads((out / "cells" / "photutils__default" / "result.json").read_text())["n_pred"] > 0


def test_bad_study_arguments_are_one_line(fields, tmp_path, capsys):
    assert main(["study", "--train", str(tmp_path), "--test", str(fields / "test"), "-o", str(tmp_path / "o")]) == 2
    assert "galseg synth" in capsys.readouterr().err
    assert main(["study", "--train", str(fields / "train"), "--test", str(fields / "test"), "--variants", "sharp",
                 "-o", str(tmp_path / "o")]) == 2
    assert "unknown variant" in capsys.readouterr().err
    for bad in ("nsigma=3", "photutils.nsigma=abc", "sharp.nsigma=3"):
        assert main(["study", "--train", str(fields / "train"), "--test", str(fields / "test"), "--methods", "photutils",
                     "--set", bad, "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "--set" in err and len(err.strip().splitlines()) == 1


def test_study_settings_reach_the_cell(fields, tmp_path):
    out = tmp_path / "study"
    assert main(["study", "--train", str(fields / "train"), "--test", str(fields / "test"), "--methods", "photutils",
                 "--set", "photutils.nsigma=4.5", "-o", str(out)]) == 0
    row = json.loads((out / "cells" / "photutils__default" / "result.json").read_text())
    assert float(row["settings"]["nsigma"]) == 4.5
