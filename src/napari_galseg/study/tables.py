"""The study's tables from the cells' results: Markdown, CSV and PNG, the study's numbers beside.

The study's "recall" column is really precision (it computed ``tp / (tp + fp)``); its table is
reprinted with the column named for what it holds.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text
from ..metrics.report import csv_text as report_csv
from .variants import STUDY_ROWS

#: columns of our table, in order (the study's, then object, COCO and panoptic scores, then cost)
COLUMNS = (
    "method", "variant", "iou", "iou_p03", "iou_p05", "dice", "precision", "recall", "accuracy", "f1",
    "completeness", "purity", "ap", "ap50", "ap75", "ar", "pq", "n_true", "n_pred",
    "train_s", "predict_s", "peak_mb",
)  # fmt: skip

#: the study's own numbers (IoU, "recall" = precision, Dice, accuracy), per method and variant
STUDY_NUMBERS = {
    ("photutils", "normalised"): (0.2509, 0.9942, 0.3971, 0.9612),
    ("photutils", "stretched"): (0.1125, 0.1235, 0.1980, 0.7463),
    ("photutils", "stretched+rms"): (0.0795, 0.0918, 0.1415, 0.4669),
    ("photutils", "stretched+logrms"): (0.1063, 0.1181, 0.1783, 0.5320),
    ("kmeans", "normalised"): (0.0315, 0.2711, 0.0594, 0.2554),
    ("kmeans", "stretched"): (0.1526, 0.5696, 0.2624, 0.9534),
    ("kmeans", "stretched+rms"): (0.1531, 0.6202, 0.2633, 0.9542),
    ("kmeans", "stretched+logrms"): (0.2874, 0.7008, 0.4254, 0.9452),
    ("unet", "normalised"): (0.5855, 0.6587, 0.5686, 0.9763),
    ("unet", "stretched"): (0.6164, 0.6931, 0.6120, 0.9781),
    ("unet", "stretched+rms"): (0.6623, 0.7486, 0.5984, 0.9806),
    ("unet", "stretched+logrms"): (0.7076, 0.7751, 0.7493, 0.9838),
}


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def sorted_rows(rows: Sequence[dict]) -> list[dict]:
    from .variants import VARIANTS

    order = list(VARIANTS)
    return sorted(rows, key=lambda r: (r["method"], order.index(r["variant"]) if r["variant"] in order else 99))


def markdown(rows: Sequence[dict], header: str = "", columns: Sequence[str] = COLUMNS, with_study: bool = True) -> str:
    """Our table (``columns`` that any row has), then the study's own numbers unless ``with_study`` is off."""
    rows = sorted_rows(rows)
    cols = [c for c in columns if any(c in r for r in rows)]
    lines = [header] if header else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    if not with_study:
        return "\n".join(lines) + "\n"
    lines += ["", "The study's own numbers (its data; its \"recall\" column is precision, tp / (tp + fp)):", "",
              "| method | variant | study's input | IoU | precision (its \"recall\") | Dice | accuracy |",
              "|---|---|---|---|---|---|---|"]
    for (method, variant), (iou, prec, dice, acc) in STUDY_NUMBERS.items():
        lines.append(f"| {method} | {variant} | {STUDY_ROWS[variant]} | {iou:.3f} | {prec:.3f} | {dice:.3f} | {acc:.3f} |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict]) -> str:
    rows = sorted_rows(rows)
    return report_csv(rows, [c for c in COLUMNS if any(c in r for r in rows)])


def figure(rows: Sequence[dict], path: Path) -> None:
    """Grouped bars: IoU, Dice, F1, completeness, purity and AP per (method, variant)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted_rows(rows)
    metrics = [m for m in ("iou", "dice", "f1", "completeness", "purity", "ap") if any(m in r for r in rows)]
    labels = [f"{r['method']}\n{r['variant']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4.5))
    width = 0.8 / max(len(metrics), 1)
    x = np.arange(len(rows))
    for k, m in enumerate(metrics):
        ax.bar(x + (k - (len(metrics) - 1) / 2) * width, [r.get(m, np.nan) for r in rows], width, label=m)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score on the held-out field")
    ax.legend(ncols=len(metrics), fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def panel(image: np.ndarray, truth: np.ndarray, predictions: dict[str, np.ndarray], path: Path, side: int = 256) -> None:
    """A crop of the test field: the image, the truth and each method's prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crop = (slice(0, min(side, image.shape[0])), slice(0, min(side, image.shape[1])))
    panels = [("image", image[crop]), ("truth", truth[crop])] + [(k, v[crop]) for k, v in predictions.items()]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    lo, hi = np.nanpercentile(image[crop], [1, 99.5])
    for ax, (title, data) in zip(axes.ravel(), panels):
        if title == "image":
            ax.imshow(np.arcsinh((data - lo) / max(hi - lo, 1e-12) * 10), cmap="gray", origin="lower")
        else:
            shown = np.ma.masked_equal(data, 0)
            ax.imshow(np.zeros_like(data), cmap="gray", origin="lower")
            ax.imshow(shown % 20, cmap="tab20", origin="lower", interpolation="nearest")
        ax.set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_tables(rows: Sequence[dict], out: Path, header: str = "") -> dict[str, Path]:
    out = Path(out)
    paths = {"md": out / "results.md", "csv": out / "results.csv", "png": out / "results.png"}
    atomic_write_text(paths["md"], markdown(rows, header))
    atomic_write_text(paths["csv"], csv_text(rows))
    if rows:
        figure(rows, paths["png"])
    return paths
