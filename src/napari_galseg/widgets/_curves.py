"""Live training curves (pyqtgraph): loss per step and per epoch, validation IoU per epoch.

Fed with job log records as they arrive (:meth:`TrainingCurves.add`), so the same panel draws a
job this session started and one it only follows.
"""
from __future__ import annotations

import pyqtgraph as pg
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget


class TrainingCurves(QWidget):
    """Two plots side by side: losses (train per step, train and validation per epoch) and val IoU."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel("")
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#262930")  # napari's dark panel colour
        self.loss_plot = self.graphics.addPlot(title="loss")
        self.iou_plot = self.graphics.addPlot(title="validation IoU")
        for plot in (self.loss_plot, self.iou_plot):
            plot.setLabel("bottom", "epoch")
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
        self.setMinimumHeight(220)
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
                n_steps = r.get("n_steps") or 1
                self.steps.append((r["epoch"] - 1 + (r.get("step") or n_steps) / n_steps, r["loss"]))
                changed = True
        if changed:
            self._draw()

    def _draw(self) -> None:
        epochs = [self.epochs[k] for k in sorted(self.epochs)]

        def series(key):
            points = [(float(e["epoch"]), float(e[key])) for e in epochs if e.get(key) is not None]
            return [p[0] for p in points], [p[1] for p in points]

        self.step_curve.setData(*zip(*self.steps) if self.steps else ([], []))
        self.train_curve.setData(*series("train_loss"))
        self.val_curve.setData(*series("val_loss"))
        self.iou_curve.setData(*series("val_iou"))

    @property
    def n_points(self) -> int:
        """How many epoch points the curves hold (what a test or a status line counts)."""
        return len(self.epochs)
