"""Reports: the study's table (one row per method and input) as text, CSV, JSON and a PNG figure.

Files are written atomically and never replace an existing file unless ``overwrite=True``.
The figure uses matplotlib's Agg canvas directly (no pyplot), so it never changes the backend of a
running napari session.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .._atomic import atomic_path

#: Columns of the text table, in the study's spirit (its tables had IoU, recall, Dice, accuracy).
TABLE_COLUMNS = (
    "iou", "dice", "precision", "recall", "accuracy", "f1",
    "completeness", "purity", "object_f1", "n_true", "n_pred", "ap", "ap50", "ap75", "ar",
)  # fmt: skip

#: Metrics drawn as bars in the figure.
BAR_METRICS = ("iou", "dice", "precision", "recall", "f1", "completeness", "purity", "ap")


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays to Python, NaN/inf to None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rows(rows: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        out.append(row.row() if hasattr(row, "row") else dict(row))
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "-" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def format_table(rows: Iterable[Any], columns: Sequence[str] | None = None) -> str:
    """A plain-text table: one row per evaluation (dicts with ``name`` or :class:`Evaluation`).

    Columns default to :data:`TABLE_COLUMNS` present in at least one row; missing values show "-".
    """
    rows = _rows(rows)
    if columns is None:
        columns = [c for c in TABLE_COLUMNS if any(c in row for row in rows)]
    header = ["name", *columns]
    body = [[_cell(row.get("name", "")), *(_cell(row.get(c)) for c in columns)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def csv_text(rows: Iterable[Any], columns: Sequence[str] | None = None) -> str:
    """CSV of the rows: all scalar keys in first-seen order unless ``columns`` is given."""
    rows = _rows(rows)
    if columns is None:
        columns = []
        for row in rows:
            for key, value in row.items():
                if key not in columns and not isinstance(value, (dict, list, tuple)):
                    columns.append(key)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if to_jsonable(row.get(c)) is None else to_jsonable(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_csv(rows: Iterable[Any], path: str | os.PathLike, *, overwrite: bool = False, columns=None) -> None:
    """Write :func:`csv_text` atomically (refuses to replace a file unless ``overwrite``)."""
    text = csv_text(rows, columns)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


def write_json(data: Any, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write ``data`` as indented JSON atomically (NaN → null)."""
    text = json.dumps(to_jsonable(data), indent=2)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n")


def report_figure(evaluations: Sequence[Any]):
    """A matplotlib Figure: grouped bars of the main metrics and completeness vs area / flux."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    evaluations = list(evaluations)
    curve_kinds = [k for k in ("area", "flux") if any(k in getattr(e, "curves", {}) for e in evaluations)]
    figure = Figure(figsize=(5.0 * (1 + len(curve_kinds)), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 1 + len(curve_kinds), squeeze=False)[0]

    bars = axes[0]
    rows = _rows(evaluations)
    metrics = [m for m in BAR_METRICS if any(isinstance(r.get(m), (int, float)) for r in rows)]
    x = np.arange(len(metrics))
    width = 0.8 / max(len(rows), 1)
    for k, row in enumerate(rows):
        values = [row.get(m) if isinstance(row.get(m), (int, float)) else 0.0 for m in metrics]
        bars.bar(x + (k - (len(rows) - 1) / 2) * width, values, width, label=str(row.get("name", k)))
    bars.set_xticks(x, metrics, rotation=30, ha="right")
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("score")
    bars.set_title("Scores")
    bars.legend(fontsize="small")

    for ax, kind in zip(axes[1:], curve_kinds):
        for evaluation in evaluations:
            curve = evaluation.curves.get(kind)
            if not curve:
                continue
            y = [np.nan if c is None else c for c in curve["completeness"]]
            ax.plot(curve["centres"], y, marker="o", label=evaluation.name)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("true object area (pixels)" if kind == "area" else "true object flux (image units)")
        ax.set_ylabel("completeness")
        ax.set_title(f"Completeness vs {kind}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return figure


def write_figure(evaluations: Sequence[Any], path: str | os.PathLike, *, overwrite: bool = False, dpi: int = 110) -> None:
    """Save :func:`report_figure` as PNG atomically."""
    figure = report_figure(evaluations)
    with atomic_path(path, overwrite=overwrite, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")


__all__ = [
    "BAR_METRICS",
    "TABLE_COLUMNS",
    "csv_text",
    "format_table",
    "report_figure",
    "to_jsonable",
    "write_csv",
    "write_figure",
    "write_json",
]
