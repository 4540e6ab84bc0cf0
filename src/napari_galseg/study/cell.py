"""One cell of the study, run as ``python -m napari_galseg.study.cell SPEC_JSON`` (see :mod:`.grid`).

Trains (within the plan's budget), segments the test field, scores it and writes the prediction
(``pred.fits``) and ``result.json`` — the latter last and atomically, so its presence means done.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text
from ..io import open_fits, write_labels
from ..metrics import evaluate
from ..segmenters import get
from .grid import RESULT
from .variants import RECIPE_INPUT_SETTINGS, VARIANT_SETTINGS, recipe_for


def _field(paths: dict[str, str]):
    return {k: np.asarray(open_fits(p).data) for k, p in paths.items()}


def _probability_iou(probability: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """The study's "IoU 0.3 / 0.5": pixel IoU of the probability map thresholded at ``threshold``."""
    pred, true = probability >= threshold, truth > 0
    union = np.count_nonzero(pred | true)
    return float(np.count_nonzero(pred & true) / union) if union else 1.0


def score(result, test: dict) -> dict:
    """Every table column of one prediction of the test field (a ``Segmentation``)."""
    labels = np.asarray(result.labels, dtype=np.int32)
    evaluation = evaluate(labels, test["truth"], image=test["image"], scores=result.scores, coco=True,
                          check_prediction=False)  # made by a segmenter: a label map, however fragmented
    row = {k: v for k, v in evaluation.metrics.items() if isinstance(v, (int, float))}
    probability = result.maps.get("probability")
    if probability is not None:
        row["iou_p03"] = _probability_iou(np.asarray(probability), test["truth"], 0.3)
        row["iou_p05"] = _probability_iou(np.asarray(probability), test["truth"], 0.5)
    row["notes"] = list(evaluation.notes)
    return row


def run_cell(plan: dict, cell: dict, folder: Path) -> dict:
    method, variant = cell["method"], cell["variant"]
    cls = get(method)
    settings = dict(plan.get("settings", {}).get(method, {}))
    if cls.capabilities.trainable and cls.train_fields != () and plan.get("budget_minutes"):
        settings.setdefault("max_minutes", float(plan["budget_minutes"]))
    recipe = recipe_for(variant)
    if recipe is not None:
        settings.update(RECIPE_INPUT_SETTINGS.get(method, {}))
        settings.update(VARIANT_SETTINGS.get((method, variant), {}))
    segmenter = cls(**settings)
    if recipe is not None:
        segmenter.recipe = recipe.to_dict()
    test = _field(plan["test"])
    row = {"method": method, "variant": variant, "settings": settings}
    t0 = time.perf_counter()
    if cls.capabilities.trainable:
        train = _field(plan["train"])
        segmenter.fit(train["image"], train["truth"], train.get("rms"))
        del train
    row["train_s"] = round(time.perf_counter() - t0, 2)
    t1 = time.perf_counter()
    result = segmenter.predict(test["image"], test.get("rms"))
    labels = np.asarray(result.labels, dtype=np.int32)
    row["predict_s"] = round(time.perf_counter() - t1, 2)
    row["mpix_per_s"] = round(labels.size / 1e6 / max(row["predict_s"], 1e-9), 3)
    write_labels(folder / "pred.fits", labels, overwrite=True)
    row.update(score(result, test))
    row["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # Linux: kB
    atomic_write_text(folder / RESULT, json.dumps(row, indent=2, default=str))
    return row


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    run_cell(spec["plan"], spec["cell"], Path(spec["folder"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
