"""`galseg evaluate` on small FITS files: table, --json, several predictions, files, errors."""
import json

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from napari_galseg.cli import main
from napari_galseg.metrics import pixel_metrics


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    true, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=(80, 90)), 2) > 0.2)
    true = true.astype(np.int32)
    image = (ndimage.gaussian_filter((true > 0).astype(np.float32), 1) * 40 + rng.normal(0, 1, true.shape)).astype(np.float32)
    pred = ndimage.shift(true, (1, 1), order=0).astype(np.int32)
    prob = ndimage.gaussian_filter((true > 0).astype(np.float32), 0.7)
    rms = np.ones(true.shape, np.float32)
    rms[:, :10] = np.nan
    paths = {}
    for name, data in {"true": true, "img": image, "pred": pred, "prob": prob, "rms": rms,
                       "small": pred[:40]}.items():
        paths[name] = tmp_path / f"{name}.fits"
        fits.writeto(paths[name], data)
    paths["arrays"] = {"true": true, "pred": pred, "prob": prob, "rms": rms}
    return paths


def test_json_for_one_prediction(files, capsys):
    assert main(["evaluate", str(files["pred"]), str(files["true"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("iou", "dice", "precision", "recall", "accuracy", "f1", "completeness", "purity",
                "n_true", "n_pred", "ap", "ap50", "ap75", "ar"):
        assert key in out, key
    reference = pixel_metrics(files["arrays"]["pred"], files["arrays"]["true"])
    assert out["iou"] == pytest.approx(reference["iou"])
    assert out["precision"] == pytest.approx(reference["precision"])
    assert out["n_true"] == len(np.unique(files["arrays"]["true"])) - 1


def test_several_predictions_json_keyed_by_file(files, capsys):
    argv = ["evaluate", str(files["pred"]), str(files["prob"]), str(files["true"]), "--json", "--threshold", "0.5",
            "--iou-threshold", "0.7"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [str(files["pred"]), str(files["prob"])]
    assert "ap" in out[str(files["pred"])]          # integer labels keep their instances
    assert "ap" not in out[str(files["prob"])]      # a probability map has none
    assert out[str(files["pred"])]["iou_threshold"] == 0.7
    expected = pixel_metrics(files["arrays"]["prob"], files["arrays"]["true"], threshold=0.5)
    assert out[str(files["prob"])]["recall"] == pytest.approx(expected["recall"])


def test_table_and_report_files(files, tmp_path, capsys):
    csv_path, png_path, json_path = tmp_path / "out.csv", tmp_path / "out.png", tmp_path / "full.json"
    argv = ["evaluate", str(files["pred"]), str(files["true"]), "--image", str(files["img"]), "--rms", str(files["rms"]),
            "--csv", str(csv_path), "--figure", str(png_path), "--json-out", str(json_path)]
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["name", "iou"] and table[2].startswith("pred")
    assert csv_path.read_text().startswith("name,iou,")
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    full = json.loads(json_path.read_text())
    assert "flux" in full["curves"]
    masked = pixel_metrics(files["arrays"]["pred"], files["arrays"]["true"], mask=np.isfinite(files["arrays"]["rms"]))
    assert full["n_pixels"] == masked["n_pixels"] == 80 * 80
    # the same command again refuses to replace the user's files
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_errors_are_one_line_with_exit_2(files, capsys):
    assert main(["evaluate", str(files["small"]), str(files["true"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "shape" in err and len(err.splitlines()) == 1
    assert main(["evaluate", str(files["prob"]), str(files["true"])]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert main(["evaluate", str(files["true"])]) == 2
    assert main(["evaluate", str(files["pred"]), str(files["true"]) + ".missing"]) == 2


def test_help_mentions_the_metrics(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "completeness" in capsys.readouterr().out
