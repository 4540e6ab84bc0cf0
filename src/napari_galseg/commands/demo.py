"""`galseg demo` — the whole job on a synthetic field, in a few minutes, on the study's machinery.

Makes a field with exact truth and a training field of another seed, then runs every segmenter this
installation has as the cells of a one-variant study (:mod:`napari_galseg.study`): each method in a
process of its own, trained on the training field, scored on the other the same way as `galseg
study` scores it (COCO AP included), a rerun skipping the cells already done. Prints the table and
writes the FITS files, the table (CSV/JSON/PNG) and a napari screenshot of the image, the truth and
each prediction side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .._duration import format_duration
from . import progress_bar

#: quick settings for the demo (the defaults are tuned for quality, not for a 3-minute tour)
DEMO_SETTINGS: dict[str, dict] = {
    "unet": {"epochs": 15, "max_minutes": 2.5},
}

#: training minutes of a learned method the demo gives no settings of its own
DEMO_BUDGET_MINUTES = 2.5

#: the columns the demo prints (the study's table has more: results in metrics.csv / metrics.json)
DEMO_COLUMNS = ("method", "iou", "dice", "precision", "recall", "f1", "completeness", "purity", "ap50", "pq",
                "n_true", "n_pred", "train_s", "predict_s")

#: instance models that train for hours on a CPU: in the demo only when --methods names them
NEEDS_A_GPU = ("maskrcnn", "detr")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="segment a synthetic field with every method, print metrics, save a napari screenshot",
        description=(
            "Synthesise a field with exact truth, segment it with every available segmenter (learned ones "
            "are trained on a second field of another seed), print the metrics table and write FITS files, "
            "metrics (CSV, JSON, PNG figure) and a napari screenshot into --out. Each method runs as a cell "
            "of `galseg study`; a rerun with the same --size and --seed skips the methods already done."
        ),
    )
    p.add_argument("--out", default="demo-out", help="output folder (default ./demo-out)")
    p.add_argument("--size", type=int, default=1024, help="side of the field in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluated field; training uses seed+1")
    p.add_argument("--methods", nargs="*", default=None, help="segmenters to run (default: all available but maskrcnn and detr, which need a GPU to train in minutes)")
    p.add_argument("--no-screenshot", action="store_true", help="skip the napari screenshot")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import segmenters
    from ..io import open_fits, write_labels
    from ..study import Cell, StudyPlan, run_study
    from ..study.grid import failed_cells
    from ..study.tables import csv_text, figure, markdown

    if args.size < 128:
        raise ValueError(f"--size must be at least 128 px for a meaningful demo, got {args.size}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods or [m for m in segmenters.available() if m not in NEEDS_A_GPU]
    unknown = sorted(set(methods) - set(segmenters.available()))
    if unknown:
        raise ValueError(f"unknown segmenter(s) {', '.join(unknown)}; available: {', '.join(segmenters.available())}")

    t0 = time.perf_counter()
    test_files = _field(out, args.size, args.seed)
    train_files = _field(out / "train", args.size, args.seed + 1)
    header = open_fits(test_files["image"]).header
    truth = np.asarray(open_fits(test_files["truth"]).data)
    print(f"field: {args.size}x{args.size} px, seed {args.seed}, {len(np.unique(truth)) - 1} true objects "
          f"(training field: seed {args.seed + 1})")
    plan = StudyPlan(train=train_files, test=test_files, out=str(out / f"study-{args.size}px-seed{args.seed}"),
                     methods=methods, variants=["default"], budget_minutes=DEMO_BUDGET_MINUTES,
                     settings=DEMO_SETTINGS)
    with progress_bar("demo", unit="methods") as bar:
        rows = run_study(plan, progress=bar)
    for failure in failed_cells(plan):
        print(f"{failure['cell']['method']} failed: {failure['error']}", file=sys.stderr)

    predictions: dict[str, np.ndarray] = {}
    for row in rows:
        name = row["method"]
        labels = np.asarray(open_fits(plan.cell_dir(Cell(name, row["variant"])) / "pred.fits").data, dtype=np.int32)
        write_labels(out / f"pred_{name}.fits", labels, like=header, overwrite=True)  # with the field's WCS
        predictions[name] = labels
    print()
    print(markdown(rows, columns=DEMO_COLUMNS, with_study=False))
    from .._atomic import atomic_write_text

    atomic_write_text(out / "metrics.csv", csv_text(rows))
    atomic_write_text(out / "metrics.json", json.dumps(rows, indent=2, default=str))
    if rows:
        figure(rows, out / "metrics.png")
    print(f"wrote {out}/: img/rms/true.fits, pred_*.fits, metrics.csv, metrics.json, metrics.png "
          f"(each method's cell: {plan.out}/cells/)")

    if not args.no_screenshot and predictions:
        path = out / "screenshot.png"
        image = np.asarray(open_fits(test_files["image"]).data)
        rms = np.asarray(open_fits(test_files["rms"]).data)
        save_side_by_side_screenshot(path, image, truth, predictions, noise=float(np.median(rms)))
        print(f"screenshot: {path}")
    print(f"done in {format_duration(time.perf_counter() - t0)}")
    return 0 if not failed_cells(plan) else 1


def _field(folder: Path, size: int, seed: int) -> dict[str, str]:
    """The field files of ``size``/``seed`` in ``folder``, made unless that very field is already there."""
    from ..io import open_fits
    from ..synth import FIELD_FILES, write_field

    files = {kind: folder / name for kind, name in FIELD_FILES.items()}
    made = all(p.is_file() for p in files.values())
    if made:
        header = open_fits(files["image"]).header
        made = header.get("NAXIS1") == size and header.get("NAXIS2") == size and header.get("SYNSEED") == seed
    if not made:
        write_field(folder, size=size, seed=seed, overwrite=True)
    return {kind: str(p) for kind, p in files.items()}


def save_side_by_side_screenshot(
    path, image, truth, predictions: dict[str, np.ndarray], noise: float | None = None, size=(1600, 1000), columns: int = 3
) -> Path:
    """A napari screenshot: panels of the image, the truth and each prediction (labels over the image),
    three to a row, each titled."""
    _ensure_display()
    import napari

    viewer = napari.Viewer(show=True)
    try:
        viewer.window.resize(*size)
        panels = [("image", None), ("truth", truth), *predictions.items()]
        ny, nx = image.shape
        gap = max(ny, nx) // 12
        sample = image[::4, ::4]
        sky = float(np.median(sample))
        noise = noise or float(1.4826 * np.median(np.abs(sample - sky)))
        limits = (sky - 0.5 * noise, sky + 25 * noise)  # grey sky, faint galaxies visible (with gamma)
        columns = min(columns, len(panels))
        titles, anchors = [], []
        for i, (title, labels) in enumerate(panels):
            row, col = divmod(i, columns)
            offset = (row * (ny + gap), col * (nx + gap))
            viewer.add_image(image, name=f"image [{title}]", translate=offset, contrast_limits=limits, gamma=0.4)
            if labels is not None:
                layer = viewer.add_labels(labels, name=title, translate=offset, opacity=0.55)
                layer.contour = 0
            titles.append(title)
            anchors.append((offset[0] + ny + gap * 0.45, offset[1] + nx / 2))
        viewer.add_points(
            np.asarray(anchors), name="titles", size=0.1,
            text={"string": "{title}", "size": 16, "color": "white", "anchor": "center"},
            features={"title": titles},
        )
        viewer.reset_view()
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        shot = viewer.screenshot(canvas_only=True, flash=False)
        import imageio.v3 as iio

        from .._atomic import atomic_path

        with atomic_path(path, overwrite=True) as tmp:
            iio.imwrite(tmp, shot, extension=".png")
    finally:
        viewer.close()
    return Path(path)


def _ensure_display() -> None:
    """Start a private Xvfb when there is no display (a headless server), so napari can render."""
    if sys.platform != "linux" or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise RuntimeError("no display and no Xvfb: run under xvfb-run, or pass --no-screenshot")
    for number in range(99, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            break
    proc = subprocess.Popen([xvfb, f":{number}", "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        time.sleep(0.1)
    os.environ["DISPLAY"] = f":{number}"
    import atexit

    atexit.register(proc.terminate)
