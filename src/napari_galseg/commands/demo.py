"""`galseg demo` — the whole job on a synthetic field, in a few minutes.

Makes a field with exact truth, segments it with every segmenter this installation has (training
the learned ones on a second field of another seed, so nothing is scored on its training data),
prints the metrics table, writes the FITS files, the table (CSV/JSON) and a figure, and a PNG
screenshot of napari showing the image, the truth and each prediction side by side.
"""
from __future__ import annotations

import argparse
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
    "forest": {"n_estimators": 40, "max_train_pixels": 150_000},
    "unet": {"epochs": 6, "max_minutes": 2.5, "patch_size": 128},
}


#: instance models that train for hours on a CPU: in the demo only when --methods names them
NEEDS_A_GPU = ("maskrcnn", "detr")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="segment a synthetic field with every method, print metrics, save a napari screenshot",
        description=(
            "Synthesise a field with exact truth, segment it with every available segmenter (learned ones "
            "are trained on a second field of another seed), print the metrics table and write FITS files, "
            "metrics (CSV, JSON, PNG figure) and a napari screenshot into --out."
        ),
    )
    p.add_argument("--out", default="demo-out", help="output folder (default ./demo-out)")
    p.add_argument("--size", type=int, default=1024, help="side of the field in pixels (default 1024)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluated field; training uses seed+1")
    p.add_argument("--methods", nargs="*", default=None, help="segmenters to run (default: all available but maskrcnn and detr, which need a GPU to train in minutes)")
    p.add_argument("--no-screenshot", action="store_true", help="skip the napari screenshot")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import metrics, segmenters, synth
    from ..io import write_fits, write_labels

    if args.size < 128:
        raise ValueError(f"--size must be at least 128 px for a meaningful demo, got {args.size}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods or [m for m in segmenters.available() if m not in NEEDS_A_GPU]
    unknown = sorted(set(methods) - set(segmenters.available()))
    if unknown:
        raise ValueError(f"unknown segmenter(s) {', '.join(unknown)}; available: {', '.join(segmenters.available())}")

    t0 = time.perf_counter()
    field = synth.make_field(args.size, seed=args.seed)
    train = None
    print(f"field: {args.size}x{args.size} px, seed {args.seed}, {int((field.catalog['truth_area'] > 0).sum())} true objects")
    header = field.header()
    for name, data in (("img", field.image), ("rms", field.rms)):
        write_fits(out / f"{name}.fits", data, header=header, overwrite=True)
    write_labels(out / "true.fits", field.truth, like=header, overwrite=True)

    predictions: dict[str, np.ndarray] = {}
    evaluations = []
    for name in methods:
        cls = segmenters.get(name)
        model = cls(**DEMO_SETTINGS.get(name, {}))
        started = time.perf_counter()
        if cls.capabilities.trainable:
            if train is None:
                train = synth.make_field(args.size, seed=args.seed + 1)
            with progress_bar(f"train {name}", unit=None) as progress:
                model.fit(train.image, train.truth, rms=train.rms, progress=progress)
        with progress_bar(f"segment {name}", unit="steps") as progress:
            result = model.predict(field.image, rms=field.rms, progress=progress)
        labels = np.asarray(result.labels).astype(np.int32)
        seconds = time.perf_counter() - started
        predictions[name] = labels
        write_labels(out / f"pred_{name}.fits", labels, like=header, overwrite=True)  # as `galseg segment` does
        evaluation = metrics.evaluate(labels, field.truth, image=field.noiseless, name=name)
        evaluation.metrics["seconds"] = round(seconds, 2)
        evaluations.append(evaluation)

    print()
    from ..metrics.report import TABLE_COLUMNS

    print(metrics.format_table(evaluations, columns=[*TABLE_COLUMNS, "seconds"]))
    metrics.write_csv(evaluations, out / "metrics.csv", overwrite=True)
    metrics.write_json([e.to_dict() for e in evaluations], out / "metrics.json", overwrite=True)
    metrics.write_figure(evaluations, out / "metrics.png", overwrite=True)
    print(f"\nwrote {out}/: img/rms/true.fits, pred_*.fits, metrics.csv, metrics.json, metrics.png")

    if not args.no_screenshot:
        path = out / "screenshot.png"
        save_side_by_side_screenshot(path, field.image, field.truth, predictions, noise=float(np.median(field.rms)))
        print(f"screenshot: {path}")
    print(f"done in {format_duration(time.perf_counter() - t0)}")
    return 0


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
