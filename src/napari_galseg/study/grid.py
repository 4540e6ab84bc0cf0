"""The study's grid: one cell per (method, variant), each run in a process of its own.

A cell trains the method on the training field (when it learns), segments the held-out field and
scores it (:func:`napari_galseg.metrics.evaluate`, scores included, so COCO AP ranks every method
the same way). Each cell runs in a fresh Python process, so its wall time and peak memory are its
own and a crash in one method cannot take the grid down; it writes ``cells/<key>/result.json``
last (atomically), and a rerun skips every cell that has one.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text

RESULT = "result.json"
ERROR = "error.json"


@dataclass(frozen=True)
class Cell:
    method: str
    variant: str

    @property
    def key(self) -> str:
        return f"{self.method}__{self.variant}"


@dataclass
class StudyPlan:
    """What to run: the two fields (file paths: image, rms, truth), the methods and variants, a
    training budget in minutes per method, per-method settings, and the output folder."""

    train: dict[str, str]
    test: dict[str, str]
    out: str
    methods: list[str]
    variants: list[str]
    budget_minutes: float = 10.0
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeout_s: float = 6 * 3600

    def cells(self) -> list[Cell]:
        """Every (method, variant); methods that read no recipe run once, under ``default``."""
        from ..segmenters import get

        cells = []
        for method in self.methods:
            if get(method).capabilities.uses_recipe:
                cells += [Cell(method, v) for v in self.variants]
            else:
                cells.append(Cell(method, "default"))
        return cells

    def cell_dir(self, cell: Cell) -> Path:
        return Path(self.out) / "cells" / cell.key


def run_study(plan: StudyPlan, progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """Run every cell that has no result yet; returns all results (finished earlier ones too)."""
    cells = plan.cells()
    Path(plan.out).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(plan.out) / "plan.json", json.dumps(asdict(plan), indent=2))
    results = []
    for n, cell in enumerate(cells):
        folder = plan.cell_dir(cell)
        done = folder / RESULT
        if progress:
            progress(n, len(cells), f"{cell.key}" + (" (done before)" if done.exists() else ""))
        if not done.exists():
            _run_cell_process(plan, cell, folder)
        if done.exists():
            results.append(json.loads(done.read_text()))
    if progress:
        progress(len(cells), len(cells), "finished")
    return results


def _run_cell_process(plan: StudyPlan, cell: Cell, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ERROR).unlink(missing_ok=True)
    spec = {"plan": asdict(plan), "cell": asdict(cell), "folder": str(folder)}
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "napari_galseg.study.cell", json.dumps(spec)],
                              capture_output=True, text=True, timeout=plan.timeout_s)
        failed = proc.returncode != 0
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1] if failed else ""
    except subprocess.TimeoutExpired:
        failed, reason = True, f"timed out after {plan.timeout_s:.0f} s"
    if failed:  # kept beside the cell; a rerun tries it again
        atomic_write_text(folder / ERROR, json.dumps({"cell": asdict(cell), "error": reason,
                                                      "seconds": round(time.perf_counter() - started, 1)}))


def collect_results(out: str | Path) -> list[dict]:
    """Every finished cell under ``out`` (from this plan and from earlier runs into the same folder)."""
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob(f"cells/*/{RESULT}"))]


def failed_cells(plan: StudyPlan) -> list[dict]:
    """The errors of cells that did not finish (what a rerun will try again)."""
    out = []
    for cell in plan.cells():
        path = plan.cell_dir(cell) / ERROR
        if path.exists() and not (plan.cell_dir(cell) / RESULT).exists():
            out.append(json.loads(path.read_text()))
    return out
