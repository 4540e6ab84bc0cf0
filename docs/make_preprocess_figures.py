"""Make the before/after pictures of docs/preprocessing.md (run: python docs/make_preprocess_figures.py).

Uses a synthetic field from :func:`napari_galseg.synth.make_field` (seeded, so the pictures are
reproducible) and writes PNGs into docs/images/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from napari_galseg.preprocess import (
    StretchParams,
    default_recipe,
    fit_stretch,
    normalise,
    stretch,
)
from napari_galseg.synth import make_field

HERE = Path(__file__).resolve().parent


def _show(ax, data, title, vmin=0.0, vmax=1.0):
    ax.imshow(data, origin="lower", cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def pipeline_figure(field, out: Path) -> None:
    """Raw image, the three channels of the default recipe, and the composite as RGB."""
    cube = default_recipe().apply(field.image, field.rms)
    raw = normalise(field.image, interval="minmax")
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4), constrained_layout=True)
    _show(axes[0], raw, "raw image (min-max)")
    _show(axes[1], cube[0], "normalised (percentile 99.9)")
    _show(axes[2], cube[1], "stretched (asinh a=0.05, 84-99.9 %)")
    _show(axes[3], cube[2], "rms channel (log, a=1000)")
    axes[4].imshow(np.moveaxis(cube, 0, -1), origin="lower", interpolation="nearest")
    axes[4].set_title("composite as RGB", fontsize=9)
    axes[4].set_xticks([])
    axes[4].set_yticks([])
    fig.savefig(out, dpi=90)
    plt.close(fig)


def stretch_figure(field, out: Path) -> None:
    """Every stretch with the same black/white levels (84th .. 99.9th percentile)."""
    base = fit_stretch(field.image, StretchParams(stretch="linear"))
    names = [("linear", None), ("sqrt", None), ("log", None), ("asinh", 0.05), ("power", 0.5), ("sinh", None),
             ("squared", None), ("histeq", None)]
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.4), constrained_layout=True)
    for ax, (name, a) in zip(axes.ravel(), names):
        params = StretchParams(stretch=name, a=a, black=base.black, white=base.white)
        _show(ax, stretch(field.image, params), name + (f" (a={a})" if a else ""))
    fig.savefig(out, dpi=80)
    plt.close(fig)


def interval_figure(field, out: Path) -> None:
    """The four intervals of the normalise step on the same image."""
    cases = [("minmax", {}), ("percentile", {"percentile": 99.5}),
             ("asymmetric_percentile", {"lower_percentile": 1, "upper_percentile": 99}), ("zscale", {})]
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), constrained_layout=True)
    for ax, (name, kw) in zip(axes, cases):
        _show(ax, normalise(field.image, interval=name, **kw), name)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def background_figure(size: int, seed: int, out: Path) -> None:
    """A field with a strong sky gradient, stretched without and with background flattening."""
    field = make_field(size, seed=seed, sky_gradient=1.5)
    params = {"stretch": "asinh", "a": 0.05}
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), constrained_layout=True)
    _show(axes[0], normalise(field.image, interval="minmax"), "raw (sky gradient)")
    _show(axes[1], stretch(field.image, **params), "asinh stretch")
    _show(axes[2], stretch(field.image, flatten_background=True, background_box=64, **params),
          "asinh after Background2D flattening")
    fig.savefig(out, dpi=80)
    plt.close(fig)


def widget_screenshot(field, out: Path) -> None:
    """The stretch widget docked beside its live preview (needs a display: run under xvfb-run)."""
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_galseg.widgets.preprocess import StretchWidget

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1300, 800)
    viewer.add_image(field.image, name="image", colormap="gray")
    widget = StretchWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Preprocess: contrast stretch", area="right")
    widget.input_combo.value = viewer.layers["image"]
    widget.params.stretch.value = "asinh"
    widget.params.a.value = "0.05"
    for _ in range(20):
        QApplication.processEvents()
    widget.update_preview()
    for _ in range(20):
        QApplication.processEvents()
    shot = viewer.screenshot(canvas_only=False, flash=False)
    plt.imsave(out, np.asarray(shot))
    viewer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images", help="folder for the PNGs (default docs/images)")
    parser.add_argument("--size", type=int, default=384, help="side of the synthetic field (default 384)")
    parser.add_argument("--seed", type=int, default=3, help="seed of the synthetic field (default 3)")
    parser.add_argument("--screenshot", action="store_true",
                        help="also save a screenshot of the stretch widget (needs a display, e.g. xvfb-run)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    field = make_field(args.size, seed=args.seed)
    pipeline_figure(field, args.out / "preprocess_pipeline.png")
    stretch_figure(field, args.out / "preprocess_stretches.png")
    interval_figure(field, args.out / "preprocess_intervals.png")
    background_figure(args.size, args.seed, args.out / "preprocess_background.png")
    names = ["pipeline", "stretches", "intervals", "background"]
    if args.screenshot:
        widget_screenshot(field, args.out / "preprocess_widget.png")
        names.append("widget")
    for name in names:
        print(args.out / f"preprocess_{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
