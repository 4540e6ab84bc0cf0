"""The metrics dock's "compare" action: where a prediction and the truth agree, as layers.

:func:`napari_galseg.metrics.compare.compare` gives the pixel outcomes and the object markers; this
panel puts them over the image — a Labels layer coloured by outcome (true positive green, false
positive red, false negative blue: hovering says which) and a Points layer of matched (green),
missed (blue) and spurious (red) objects — and lists the objects in a table whose rows centre the
view on the object when clicked. A second compare of the same pair replaces its layers.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ..metrics.compare import FALSE_NEGATIVE, FALSE_POSITIVE, PIXEL_CLASSES, TRUE_POSITIVE, Comparison, compare
from ._layers import centre_on

#: outcome colours, shared by the pixel layer and the markers (matched ~ TP, missed ~ FN, spurious ~ FP)
COLORS = {TRUE_POSITIVE: "#33cc33", FALSE_POSITIVE: "#ff3333", FALSE_NEGATIVE: "#3399ff"}
MARKER_COLORS = {"matched": COLORS[TRUE_POSITIVE], "missed": COLORS[FALSE_NEGATIVE], "spurious": COLORS[FALSE_POSITIVE]}
#: most rows the object table lists (missed and spurious first); the Points layer holds them all
MAX_ROWS = 5000
#: the largest comparison made in the GUI thread (a huge frame: compare the field of view)
MAX_PIXELS = 1 << 24


class ComparePanel(QWidget):
    """A "Compare" button, a summary line and the object table (embedded in the metrics dock)."""

    def __init__(self, dock: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.dock = dock
        self.viewer = dock.viewer
        self.result: Comparison | None = None
        self.offset = np.zeros(2)
        self.scale = np.ones(2)
        self.button = QPushButton("Compare: TP / FP / FN, missed, spurious")  # short: never cut in a dock
        self.button.setToolTip("Adds a pixel layer coloured by outcome (TP green, FP red, FN blue) and a points "
                               "layer of matched (green), missed (blue) and spurious (red) objects; objects "
                               "match one-to-one at the IoU threshold, as in the scores above")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["object", "id", "IoU"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setToolTip("Click a row to centre the view on the object. IoU: of the match; for a missed "
                              "or spurious object, its best overlap (0: none)")
        row = QHBoxLayout()
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        self.button.clicked.connect(self.run)
        self.table.cellClicked.connect(lambda r, _c: self.go_to_row(r))

    # -- the action -------------------------------------------------------------------------------
    def run(self) -> Comparison | None:
        """Compare the dock's prediction and truth (its scope and IoU threshold) and show the layers."""
        from .metrics import FIELD_OF_VIEW, aligned_arrays, partial_view

        pred_layer, true_layer = self.dock.prediction_layer, self.dock.truth_layer
        if pred_layer is None or true_layer is None or pred_layer is true_layer:
            self.summary.setText("Choose a prediction and a truth Labels layer to compare.")
            return None
        try:
            pred, true = aligned_arrays(pred_layer, true_layer)
        except ValueError as exc:
            self.summary.setText(f"Cannot compare: {exc}")
            return None
        region = partial_view(pred_layer) if self.dock.scope_combo.currentText() == FIELD_OF_VIEW else None
        start = np.zeros(2)
        if region is not None:
            pred, true = pred[region], true[region]
            start = np.array([region[0].start, region[1].start], float)
        if int(np.prod(pred.shape)) > MAX_PIXELS:
            self.summary.setText(f"{pred.shape[0]}×{pred.shape[1]} px is too large to draw; choose the scope "
                                 "'Field of view' and zoom in")
            return None
        self.result = compare(pred, true, float(self.dock.iou_spin.value()))
        self.scale = np.asarray(pred_layer.scale[-2:], float)
        self.offset = np.asarray(pred_layer.translate[-2:], float) + self.scale * start
        self._show_layers(f"{pred_layer.name} vs {true_layer.name}")
        self._fill_table()
        self.summary.setText(self.result.summary())
        return self.result

    def _show_layers(self, pair: str) -> None:
        from napari.utils.colormaps import DirectLabelColormap

        result = self.result
        pixels_name, points_name = f"compare {pair}", f"compare objects {pair}"
        for name in (pixels_name, points_name):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        colormap = DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", **COLORS})
        outcome = ["sky", *(PIXEL_CLASSES[k] for k in sorted(PIXEL_CLASSES))]
        pixels = self.viewer.add_labels(result.pixels, name=pixels_name, translate=self.offset, scale=self.scale,
                                        colormap=colormap, opacity=0.5,
                                        metadata={"galseg_role": "comparison"},
                                        features={"index": np.arange(4), "outcome": outcome})
        pixels.contour = 0  # outcomes are areas, not outlines
        pixels.opacity = 0.5
        colors = [MARKER_COLORS[k] for k in result.kinds]
        self.viewer.add_points(result.centroids, name=points_name, translate=self.offset, scale=self.scale,
                               size=10, symbol="ring", face_color=colors if len(colors) else "white",
                               border_width=0, metadata={"galseg_role": "comparison"},
                               features={"object": result.kinds, "id": result.ids, "iou": result.iou})

    def _fill_table(self) -> None:
        result = self.result
        order = np.argsort([{"missed": 0, "spurious": 1, "matched": 2}[k] for k in result.kinds], kind="stable")
        self._rows = order[:MAX_ROWS]
        self.table.setRowCount(len(self._rows))
        for r, i in enumerate(self._rows):
            for c, text in enumerate((result.kinds[i], str(int(result.ids[i])), f"{result.iou[i]:.2f}")):
                self.table.setItem(r, c, QTableWidgetItem(text))

    def go_to_row(self, row: int) -> None:
        """Centre the view on the object of table row ``row`` (world coordinates of its marker)."""
        if self.result is None or not 0 <= row < len(self._rows):
            return
        centre_on(self.viewer, self.offset + self.scale * self.result.centroids[self._rows[row]])
