"""Live training curves (pyqtgraph): loss per step and per epoch, validation IoU per epoch.

Fed with job log records as they arrive (:meth:`TrainingCurves.add`), so the same panel draws a
job this session started and one it only follows. The x axis counts optimiser steps: with a time
budget an epoch ends when its share of the budget is used (training/loop.py), so epochs differ in
length and only the step count is a fair clock; plain integers, never pyqtgraph's "(x0.001)".
"""
from __future__ import annotations

import pyqtgraph as pg
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget


def _step_of(record: dict) -> int:
    """The optimiser step a record speaks of (logs older than ``global_step`` in progress records:
    from the epoch and the step, exact for epochs of equal length)."""
    if record.get("global_step") is not None:
        return int(record["global_step"])
    n_steps = int(record.get("n_steps") or 1)
    return (int(record["epoch"]) - 1) * n_steps + int(record.get("step") or n_steps)


class TrainingCurves(QWidget):
    """Two plots side by side: losses (train per step, train and validation per epoch) and val IoU."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel("")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#262930")  # napari's dark panel colour
        self.loss_plot = self.graphics.addPlot(title="loss")
        self.iou_plot = self.graphics.addPlot(title="validation IoU")
        self.iou_plot.setLabel("left", "pixel IoU (0-1)")
        for plot in (self.loss_plot, self.iou_plot):
            plot.setLabel("bottom", "optimiser steps")
            plot.getAxis("bottom").enableAutoSIPrefix(False)  # no "(x0.001)" on a short run
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.showGrid(x=True, y=True, alpha=0.3)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.iou_plot.setYRange(0, 1)
        self.step_curve = self.loss_plot.plot(name="train (steps)", pen=pg.mkPen("#5a7fa6", width=1))
        self.train_curve = self.loss_plot.plot(name="train", pen=pg.mkPen("#4fc3f7", width=2), symbol="o", symbolSize=6,
                                               symbolBrush="#4fc3f7")
        self.val_curve = self.loss_plot.plot(name="validation", pen=pg.mkPen("#ffb74d", width=2), symbol="o", symbolSize=6,
                                             symbolBrush="#ffb74d")
        self.iou_curve = self.iou_plot.plot(pen=pg.mkPen("#81c784", width=2), symbol="o", symbolSize=6, symbolBrush="#81c784")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.graphics, 1)
        self.setMinimumHeight(200)

    def sizeHint(self):  # a strip under the canvas, not half the window
        from qtpy.QtCore import QSize

        return QSize(640, 240)
        self.clear()

    def clear(self, title: str = "") -> None:
        self.title.setText(title)
        self.steps: list[tuple[float, float]] = []
        self.epochs: dict[int, dict] = {}  # by epoch: a resumed job's epochs replace the old ones
        self._draw()

    def add(self, records: list[dict]) -> None:
        """Take the log records that concern the curves; redraw once."""
        changed = False
        for r in records:
            if r.get("kind") == "epoch" and r.get("epoch") is not None:
                self.epochs[int(r["epoch"])] = r
                changed = True
            elif r.get("kind") == "progress" and r.get("loss") is not None and r.get("epoch"):
                self.steps.append((_step_of(r), r["loss"]))
                changed = True
        if changed:
            self._draw()

    def _draw(self) -> None:
        epochs = [self.epochs[k] for k in sorted(self.epochs)]

        def series(key):
            points = [(float(_step_of(e)), float(e[key])) for e in epochs if e.get(key) is not None]
            return [p[0] for p in points], [p[1] for p in points]

        self.step_curve.setData(*zip(*self.steps) if self.steps else ([], []))
        self.train_curve.setData(*series("train_loss"))
        self.val_curve.setData(*series("val_loss"))
        self.iou_curve.setData(*series("val_iou"))

    @property
    def n_points(self) -> int:
        """How many epoch points the curves hold (what a test or a status line counts)."""
        return len(self.epochs)
