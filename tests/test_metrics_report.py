"""evaluate() end to end, and the report: table, CSV, JSON, PNG (written atomically, never over a file)."""
import csv
import json

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from napari_galseg.metrics import (
    evaluate,
    format_table,
    panoptic_quality,
    pixel_metrics,
    write_csv,
    write_figure,
    write_json,
)
from napari_galseg.metrics.report import csv_text, to_jsonable


def _field(seed=0, shape=(96, 96)):
    rng = np.random.default_rng(seed)
    true, _ = ndimage.label(ndimage.gaussian_filter(rng.normal(size=shape), 2) > 0.15)
    image = ndimage.gaussian_filter((true > 0).astype(float), 1) * 50 + rng.normal(0, 1, shape)
    return true.astype(np.int32), image.astype(np.float32)


def test_evaluate_instances_has_every_metric():
    true, image = _field()
    pred = ndimage.shift(true, (1, 0), order=0)
    result = evaluate(pred, true, image=image, name="shifted")
    for key in ("iou", "dice", "precision", "recall", "accuracy", "f1", "completeness", "purity",
                "n_true", "n_pred", "ap", "ap50", "ap75", "ar", "bbox_ap"):
        assert key in result.metrics, key
    assert result.metrics["iou"] == pixel_metrics(pred, true)["iou"]
    assert result.metrics["pq"] == panoptic_quality(pred, true)["pq"]
    assert set(result.curves) == {"area", "flux"}
    assert result.row()["name"] == "shifted"


def test_evaluate_probability_map_uses_connected_components_and_no_ap():
    true, image = _field(1)
    prob = ndimage.gaussian_filter((true > 0).astype(np.float32), 0.5)
    result = evaluate(prob, true, threshold=0.5)
    assert "ap" not in result.metrics
    assert result.metrics["n_pred"] > 0 and result.metrics["completeness"] > 0.5
    assert any("connected components" in note for note in result.notes)


def test_evaluate_dask_equals_numpy():
    true, image = _field(2)
    pred = ndimage.shift(true, (0, 2), order=0)
    a = evaluate(pred, true, image=image)
    b = evaluate(da.from_array(pred, chunks=40), da.from_array(true, chunks=50), image=da.from_array(image, chunks=30))
    assert a.metrics == b.metrics


def test_table_csv_json_and_figure(tmp_path):
    true, image = _field(3)
    rows = [evaluate(true, true, image=image, name="perfect"),
            evaluate(ndimage.shift(true, (2, 2), order=0), true, image=image, name="shifted")]
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["name", "iou", "dice"]
    assert lines[2].startswith("perfect") and "1.0000" in lines[2]
    assert len(lines) == 4

    write_csv(rows, tmp_path / "scores.csv")
    with open(tmp_path / "scores.csv") as handle:
        parsed = list(csv.DictReader(handle))
    assert [r["name"] for r in parsed] == ["perfect", "shifted"]
    assert float(parsed[0]["iou"]) == 1.0 and float(parsed[1]["precision"]) == rows[1].metrics["precision"]
    with pytest.raises(FileExistsError):
        write_csv(rows, tmp_path / "scores.csv")

    write_json([r.to_dict() for r in rows], tmp_path / "scores.json")
    data = json.loads((tmp_path / "scores.json").read_text())
    assert data[1]["name"] == "shifted" and "area" in data[1]["curves"]

    write_figure(rows, tmp_path / "report.png")
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.png", "scores.csv", "scores.json"]


def test_json_has_no_nan():
    assert to_jsonable({"a": float("nan"), "b": np.float32(0.5), "c": [np.int64(3)]}) == {"a": None, "b": 0.5, "c": [3]}
    assert csv_text([{"name": "x", "ap": None}]).splitlines() == ["name,ap", "x,"]
