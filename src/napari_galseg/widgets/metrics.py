"""The metrics dock: live scores of a prediction Labels layer against a truth Labels layer.

It only picks layers, watches them and shows numbers: the scoring is
:func:`napari_galseg.metrics.evaluate`, the same call as ``galseg evaluate``, run in a worker
thread. Any change to either layer (painting, a new segmentation run, a data assignment) restarts a
300 ms debounce timer; when it fires the scores are recomputed (at most one worker at a time; a
change during a run queues one more run). "Field of view" scores only the visible part of the
prediction, which stays instant on huge images.

"Compare" (:mod:`napari_galseg.widgets.compare`) draws where they agree: a TP / FP / FN pixel
layer and matched / missed / spurious markers, with a table whose rows centre the view.

The history keeps one row per (prediction, truth, scope, IoU threshold): a new segmentation run
(a new layer, or new parameters in the layer's metadata) adds a row, and edits to the same layer
update its row, so runs can be compared side by side and exported as CSV.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..metrics import evaluate, write_csv
from ._fit import install_docking
from ._layers import camera as view_camera
from ._layers import canvas_region, level0

WHOLE_IMAGE = "Whole image"
FIELD_OF_VIEW = "Field of view"

#: metrics shown in the table (in this order) when present
SHOWN = (
    "iou", "dice", "precision", "recall", "accuracy", "f1",
    "completeness", "purity", "object_f1", "mean_matched_iou",
    "n_true", "n_pred", "n_matched", "n_split", "n_merged", "pq", "sq", "rq", "ap", "ap50", "ap75", "ar",
)  # fmt: skip
HISTORY_METRICS = ("iou", "dice", "precision", "recall", "f1", "completeness", "purity", "n_true", "n_pred", "ap")

#: layers bigger than this are not copied before scoring, and their set_data events (sent on every
#: redraw of a lazy pyramid) do not trigger a whole-image recomputation: only data/paint events do
COPY_PIXELS = 1 << 24

_TRUTH_NAME = re.compile(r"(^|[^a-z])(true|truth|gt|ground[ _-]?truth|reference)([^a-z]|$)", re.IGNORECASE)


def truth_score(layer: Labels) -> int:
    """How strongly a Labels layer says it is the truth: role metadata, then its name, then a file."""
    meta = layer.metadata or {}
    if meta.get("galseg_role") == "truth":
        return 3
    if meta.get("galseg_role") == "prediction":
        return 0
    if _TRUTH_NAME.search(layer.name):
        return 2
    if meta.get("galseg_kind") == "labels":  # a label image read from a file rather than computed
        return 1
    return 0


def is_scribbles(layer: Labels) -> bool:
    """Training strokes (the Random Forest scribbles layer) or a comparison's outcome layer:
    neither a prediction nor the truth."""
    return (layer.metadata or {}).get("galseg_role") in ("scribbles", "comparison") or layer.name == "scribbles"


def _pixels(array: Any) -> int:
    return int(np.prod(array.shape))


def partial_view(layer: Labels) -> tuple[slice, ...] | None:
    """Full-resolution slices of ``layer`` shown on the canvas; None when unknown (hidden viewer) or
    when the whole image is in view (then the whole-image result is the answer)."""
    region = canvas_region(layer, min_side=2)
    if region is None:
        return None
    shape = level0(layer).shape[-2:]
    if all(r.start == 0 and r.stop == n for r, n in zip(region, shape)):
        return None
    return region


def aligned_arrays(pred_layer: Labels, true_layer: Labels) -> tuple[Any, Any]:
    """Prediction and truth data on the same pixel grid.

    A prediction made on a field of view is a smaller layer translated onto the image: the truth is
    cropped to the prediction's footprint (same pixel scale, whole-pixel offset).
    """
    pred, true = level0(pred_layer), level0(true_layer)
    if tuple(pred.shape) == tuple(true.shape) and np.allclose(pred_layer.translate, true_layer.translate):
        return pred, true
    if not np.allclose(pred_layer.scale[-2:], true_layer.scale[-2:]):
        raise ValueError(f"{pred_layer.name!r} and {true_layer.name!r} have different pixel scales")
    offset = (np.asarray(pred_layer.translate[-2:]) - np.asarray(true_layer.translate[-2:])) / np.asarray(true_layer.scale[-2:])
    start = np.round(offset).astype(int)
    stop = start + np.asarray(pred.shape[-2:])
    if not np.allclose(offset, start) or np.any(start < 0) or np.any(stop > np.asarray(true.shape[-2:])):
        raise ValueError(
            f"{pred_layer.name!r} {tuple(pred.shape)} does not lie on the pixel grid of "
            f"{true_layer.name!r} {tuple(true.shape)}"
        )
    return pred, true[start[0]:stop[0], start[1]:stop[1]]


def _score(pred: Any, true: Any, region, iou_threshold: float, coco: bool) -> dict[str, Any]:
    """Worker body: the core evaluation, nothing napari."""
    started = time.perf_counter()
    result = evaluate(pred, true, region=region, iou_threshold=iou_threshold, coco=coco, name="")
    metrics = dict(result.metrics)
    metrics["seconds"] = time.perf_counter() - started
    return metrics


class MetricsDock(QWidget):
    """Choose prediction and truth Labels layers; see their scores, live, with a history of runs."""

    DEBOUNCE_MS = 300

    def __init__(self, napari_viewer, synchronous: bool = False):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        #: compute in the GUI thread (scripts, debugging); the default uses a worker thread
        self.synchronous = synchronous
        self.current: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.n_computed = 0
        self._worker = None
        self._pending = False
        self._watched: list[Labels] = []
        self._camera_connected = False

        self.pred_combo = QComboBox()
        self.true_combo = QComboBox()
        self.iou_spin = QDoubleSpinBox()
        self.iou_spin.setRange(0.05, 1.0)
        self.iou_spin.setSingleStep(0.05)
        self.iou_spin.setValue(0.5)
        self.iou_spin.setToolTip("IoU needed to match a predicted object to a true one (one-to-one)")
        self.scope_combo = QComboBox()
        self.scope_combo.addItems([WHOLE_IMAGE, FIELD_OF_VIEW])
        self.scope_combo.setToolTip("Field of view scores only the visible part: instant on huge images")
        self.coco_check = QCheckBox("COCO AP (slower)")
        self.auto_check = QCheckBox("Recompute on every change")
        self.auto_check.setChecked(True)
        self.compute_button = QPushButton("Compute now")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["metric", "value"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.history_table = QTableWidget(0, 0)
        self.history_table.setEditTriggers(QTableWidget.NoEditTriggers)
        for table in (self.table, self.history_table):
            table.verticalHeader().setVisible(False)
            table.verticalHeader().setDefaultSectionSize(22)
        from .compare import ComparePanel

        self.compare = ComparePanel(self)  # the "compare" action: TP/FP/FN and object layers
        self.export_button = QPushButton("Export CSV…")
        self.clear_button = QPushButton("Clear history")

        form = QFormLayout()
        form.addRow("Prediction", self.pred_combo)
        form.addRow("Truth", self.true_combo)
        form.addRow("IoU threshold", self.iou_spin)
        form.addRow("Scope", self.scope_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        checks = QHBoxLayout()
        checks.addWidget(self.auto_check)
        checks.addWidget(self.coco_check)
        layout.addLayout(checks)
        layout.addWidget(self.compute_button)
        layout.addWidget(self.status)
        layout.addWidget(self.table, stretch=2)
        layout.addWidget(QLabel("History (one row per prediction, truth, scope and threshold)"))
        layout.addWidget(self.history_table, stretch=1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.clear_button)
        layout.addLayout(buttons)
        layout.addWidget(self.compare, stretch=1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.DEBOUNCE_MS)
        self._timer.timeout.connect(self.compute)

        self.compute_button.clicked.connect(self.compute)
        self.export_button.clicked.connect(self._export_dialog)
        self.clear_button.clicked.connect(self.clear_history)
        self.pred_combo.currentTextChanged.connect(self._on_selection)
        self.true_combo.currentTextChanged.connect(self._on_selection)
        self.iou_spin.valueChanged.connect(self.schedule)
        self.scope_combo.currentTextChanged.connect(self._on_scope)
        self.coco_check.toggled.connect(self.schedule)

        layers = self.viewer.layers.events
        layers.inserted.connect(self._on_inserted)
        layers.removed.connect(self._on_removed)
        for layer in self._labels_layers():
            layer.events.name.connect(self._on_renamed)
        # napari drops these connections itself once the dock's Qt object is deleted
        self._refresh_layers(choose_defaults=True)

    # -- layers ---------------------------------------------------------------------------------
    def _labels_layers(self) -> list[Labels]:
        return [layer for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _layer(self, name: str) -> Labels | None:
        for layer in self._labels_layers():
            if layer.name == name:
                return layer
        return None

    @property
    def prediction_layer(self) -> Labels | None:
        return self._layer(self.pred_combo.currentText())

    @property
    def truth_layer(self) -> Labels | None:
        return self._layer(self.true_combo.currentText())

    def default_layers(self) -> tuple[Labels | None, Labels | None]:
        """(prediction, truth): the strongest truth candidate, the newest other layer as prediction."""
        labels = [layer for layer in self._labels_layers() if not is_scribbles(layer)]
        scored = [(truth_score(layer), -i, layer) for i, layer in enumerate(labels)]
        truth = max(scored, key=lambda s: s[:2])[2] if scored and max(s[0] for s in scored) > 0 else None
        others = [layer for layer in labels if layer is not truth]
        predictions = [layer for layer in others if (layer.metadata or {}).get("galseg_role") == "prediction"]
        pred = (predictions or others or [None])[-1]
        if truth is None and len(others) > 1:
            truth = others[0]
        return pred, truth

    def set_layers(self, prediction: Labels | str | None = None, truth: Labels | str | None = None) -> None:
        """Select layers by object or name (scripts and tests)."""
        if prediction is not None:
            self.pred_combo.setCurrentText(getattr(prediction, "name", prediction))
        if truth is not None:
            self.true_combo.setCurrentText(getattr(truth, "name", truth))

    def _refresh_layers(self, choose_defaults: bool = False, prefer_prediction: Labels | None = None) -> None:
        pred_name, true_name = self.pred_combo.currentText(), self.true_combo.currentText()
        names = [layer.name for layer in self._labels_layers()
                 if (layer.metadata or {}).get("galseg_role") != "comparison"]
        for combo in (self.pred_combo, self.true_combo):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.blockSignals(False)
        default_pred, default_truth = self.default_layers()
        if prefer_prediction is not None:
            pred_name = prefer_prediction.name
        elif choose_defaults or pred_name not in names:
            pred_name = default_pred.name if default_pred else ""
        if choose_defaults or true_name not in names:
            true_name = default_truth.name if default_truth else ""
        for combo, name in ((self.pred_combo, pred_name), (self.true_combo, true_name)):
            combo.blockSignals(True)
            combo.setCurrentIndex(combo.findText(name))
            combo.blockSignals(False)
        self._on_selection()

    def _on_inserted(self, event) -> None:
        layer = event.value
        if isinstance(layer, Labels):
            layer.events.name.connect(self._on_renamed)
            # a new run becomes the prediction to score, unless it is itself the truth
            new_prediction = (layer if truth_score(layer) < 2 and not is_scribbles(layer) and self.truth_layer is not None
                              else None)
            self._refresh_layers(choose_defaults=self.truth_layer is None, prefer_prediction=new_prediction)

    def _on_removed(self, event) -> None:
        if isinstance(event.value, Labels):
            self._refresh_layers()

    def _on_renamed(self, event=None) -> None:
        self._refresh_layers()

    def _on_selection(self, *_: Any) -> None:
        for layer in self._watched:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    emitter.disconnect(self._on_layer_changed)
        self._watched = [layer for layer in (self.prediction_layer, self.truth_layer) if layer is not None]
        for layer in self._watched:
            for name in ("data", "paint", "set_data"):
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    emitter.connect(self._on_layer_changed)
        self.schedule()

    def _on_layer_changed(self, event=None) -> None:
        if not self.auto_check.isChecked():
            return
        if getattr(event, "type", None) == "set_data" and self.scope_combo.currentText() == WHOLE_IMAGE:
            layer = getattr(event, "source", None)
            if layer is not None and (getattr(layer, "multiscale", False) or _pixels(level0(layer)) > COPY_PIXELS):
                return  # redraws of a huge lazy layer; data/paint events still count
        self.schedule()

    def _on_scope(self, *_: Any) -> None:
        camera = view_camera(self.viewer).events
        if self.scope_combo.currentText() == FIELD_OF_VIEW and not self._camera_connected:
            camera.center.connect(self._on_camera)
            camera.zoom.connect(self._on_camera)
            self._camera_connected = True
        elif self.scope_combo.currentText() == WHOLE_IMAGE and self._camera_connected:
            camera.center.disconnect(self._on_camera)
            camera.zoom.disconnect(self._on_camera)
            self._camera_connected = False
        self.schedule()

    def _on_camera(self, event=None) -> None:
        if self.auto_check.isChecked():
            self.schedule()

    # -- computing ------------------------------------------------------------------------------
    def schedule(self, *_: Any) -> None:
        """(Re)start the debounce timer: many quick changes give one computation."""
        self._timer.start()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def compute(self) -> None:
        """Score the selected layers now (in a worker unless ``synchronous``)."""
        self._timer.stop()
        pred_layer, true_layer = self.prediction_layer, self.truth_layer
        if pred_layer is None or true_layer is None:
            self.status.setText("Choose a prediction and a truth Labels layer.")
            return
        if pred_layer is true_layer:
            self.status.setText("The prediction and the truth are the same layer; choose two layers.")
            return
        if self._worker is not None:
            self._pending = True  # rerun once the current run finishes
            return
        try:
            pred, true = aligned_arrays(pred_layer, true_layer)
        except ValueError as exc:
            self.status.setText(f"Cannot compare: {exc}")
            return
        scope = self.scope_combo.currentText()
        region = partial_view(pred_layer) if scope == FIELD_OF_VIEW else None
        if region is not None:
            pred, true = pred[region], true[region]
        if isinstance(pred, np.ndarray) and _pixels(pred) <= COPY_PIXELS:
            pred = pred.copy()  # painting may continue while the worker reads
        context = {
            "prediction": pred_layer.name,
            "truth": true_layer.name,
            "method": (pred_layer.metadata or {}).get("method", pred_layer.name),
            "params": json.dumps((pred_layer.metadata or {}).get("params", {}), sort_keys=True, default=str),
            "scope": scope if region is not None or scope == WHOLE_IMAGE else f"{scope} (whole image shown)",
        }
        args = (pred, true, None, float(self.iou_spin.value()), self.coco_check.isChecked())
        self.status.setText(f"computing {context['prediction']} vs {context['truth']}…")
        if self.synchronous:
            try:
                metrics = _score(*args)
            except Exception as exc:
                self._on_error(exc)
            else:
                self._on_result(metrics, context)
            return
        from napari.qt.threading import create_worker

        worker = create_worker(_score, *args, _connect={"errored": self._on_error}, _start_thread=False)  # no re-raise
        worker.returned.connect(lambda metrics: self._on_result(metrics, context))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        if self._pending:
            self._pending = False
            self.compute()

    def _on_error(self, exc: BaseException) -> None:
        self.status.setText(f"error: {exc}")

    def _on_result(self, metrics: dict[str, Any], context: dict[str, Any]) -> None:
        self.n_computed += 1
        self.current = metrics
        self._show_current(metrics)
        row = {"time": time.strftime("%H:%M:%S"), **context, "iou_threshold": metrics.get("iou_threshold")}
        row.update({k: metrics[k] for k in HISTORY_METRICS if k in metrics})
        key = (row["prediction"], row["truth"], row["scope"], row["iou_threshold"], row["params"])
        for index, old in enumerate(self.history):
            if (old["prediction"], old["truth"], old["scope"], old["iou_threshold"], old["params"]) == key:
                self.history[index] = row
                break
        else:
            self.history.append(row)
        self._show_history()
        self.status.setText(
            f"{context['prediction']} vs {context['truth']} ({context['scope'].lower()}): "
            f"IoU {metrics['iou']:.4f}, completeness {metrics.get('completeness', float('nan')):.3f} "
            f"in {metrics['seconds']:.2f} s"
        )

    # -- display and export ---------------------------------------------------------------------
    @staticmethod
    def _format(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    def _show_current(self, metrics: dict[str, Any]) -> None:
        keys = [k for k in SHOWN if k in metrics]
        self.table.setRowCount(len(keys))
        for row, key in enumerate(keys):
            self.table.setItem(row, 0, QTableWidgetItem(key))
            self.table.setItem(row, 1, QTableWidgetItem(self._format(metrics[key])))

    def _show_history(self) -> None:
        columns = ["time", "prediction", "truth", "method", "params", "scope", "iou_threshold", *HISTORY_METRICS]
        self.history_table.setColumnCount(len(columns))
        self.history_table.setHorizontalHeaderLabels(columns)
        self.history_table.setRowCount(len(self.history))
        for r, row in enumerate(self.history):
            for c, key in enumerate(columns):
                self.history_table.setItem(r, c, QTableWidgetItem(self._format(row.get(key))))

    def value(self, metric: str) -> Any:
        """The value of ``metric`` in the current scores (None before the first computation)."""
        return None if self.current is None else self.current.get(metric)

    def clear_history(self) -> None:
        self.history = []
        self._show_history()

    def export_csv(self, path, overwrite: bool = False) -> None:
        """Write the history (one row per run) as CSV, atomically; refuses to replace a file
        unless ``overwrite`` (the file dialog asks the user first and passes True)."""
        rows = [{"name": row["prediction"], **row} for row in self.history]
        write_csv(rows, path, overwrite=overwrite)
        self.status.setText(f"history written to {path}")

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics history", "metrics.csv", "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path, overwrite=True)
            except OSError as exc:
                self.status.setText(f"error: {exc}")
