"""Interactive Random Forest training from painted scribbles (ilastik / APOC style).

Paint a few strokes into the "scribbles" Labels layer — label 1 on sky, label 2 on galaxies — press
"Train", and the forest's prediction for the visible part of the image appears as a Labels layer
("forest prediction", one id per object). With "live update" on, every change to the scribbles
retrains after a short pause. The trained model saves to a folder that `galseg segment forest
--model DIR` and the "Segment with a Random Forest" widget load.

All the work (features, training, prediction) runs in a worker thread through the core API
(:meth:`ForestSegmenter.fit_scribbles`, :meth:`ForestSegmenter.predict_region`); this widget only
collects inputs and shows results.
"""
from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, Label, PushButton, SpinBox, create_widget
from napari.layers import Image
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import QVBoxLayout, QWidget

from ..segmenters.forest import ForestSegmenter
from ..segmenters.forest_training import GALAXY, SKY
from ..tiling import label_mask
from ._fit import install_docking
from ._layers import level0, offset_of, visible_region
from ._noise_inputs import FrameInputs, bits_edit, kind_combo, mask_combo

SCRIBBLES = "scribbles"
PREDICTION = "forest prediction"
#: Gaussian scales of the extra (smoothed, DoG, Hessian) features offered by the checkbox
EXTRA_SIGMAS = [1.0, 2.0, 4.0]
#: pause after the last brush stroke before a live retrain starts
DEBOUNCE_MS = 600
#: napari cannot paint quickly into larger labels arrays (napari issues 6916, 7863)
MAX_SCRIBBLE_PIXELS = 8192 * 8192


class ForestScribbleWidget(QWidget):
    """Paint sky (1) and galaxy (2), train a forest in the background, see the field of view."""

    #: emitted on the GUI thread when a training has ended; connect before calling ``train``
    work_finished = Signal()

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.model: ForestSegmenter | None = None
        self.worker = None
        self.trainings = 0  # finished trainings, for the status line (and tests)
        self._pending = False  # scribbles changed while a training was running
        self._watched = None  # the scribbles layer whose edits trigger live updates

        self.image_combo = create_widget(annotation=Image, label="image")
        self.rms_combo = create_widget(annotation=typing.Optional[Image], label="noise (optional)")
        self.noise_kind = kind_combo()  # rms, variance or weight, and a bit mask: as in the segmenter docks
        self.mask_combo = mask_combo()
        self.mask_bits = bits_edit()
        self._frame_inputs = FrameInputs()
        self.n_estimators = SpinBox(value=30, min=1, max=1000, label="trees")
        self.max_depth = SpinBox(value=12, min=1, max=64, label="max depth")
        self.window = SpinBox(value=7, min=3, max=31, step=2, label="texture window")
        self.extra = CheckBox(value=True, text="smoothed / DoG / Hessian features (sigma 1, 2, 4)")
        self.min_area = SpinBox(value=10, min=0, max=100000, label="min area")
        self.live = CheckBox(value=False, text="live update (retrain when the scribbles change)")
        self.train_button = PushButton(text="Train")
        self.save_dir = FileEdit(mode="d", label="save to", value="")
        self.save_button = PushButton(text="Save model…")
        self.status = Label(value="paint label 1 on sky and 2 on galaxies in the 'scribbles' layer")
        self.form = Container(widgets=[
            self.image_combo, self.rms_combo, self.noise_kind, self.mask_combo, self.mask_bits, self.n_estimators, self.max_depth, self.window, self.extra,
            self.min_area, self.live, self.train_button, self.save_dir, self.save_button, self.status,
        ])
        self.status.native.setWordWrap(True)  # long messages must not widen the dock
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addStretch(1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._live_retrain)

        self.train_button.changed.connect(self.train)
        self.save_button.changed.connect(self.save_model)
        self.image_combo.changed.connect(lambda _: self._ensure_scribbles())
        self.live.changed.connect(lambda _: self._watch_scribbles())
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(lambda e: self.form.reset_choices())
        self.form.reset_choices()
        self._ensure_scribbles()

    def _ensure_scribbles(self):
        try:
            self.scribbles_layer()
        except ValueError as exc:
            self._report(exc)

    # -- layers ---------------------------------------------------------------------------------
    def scribbles_layer(self):
        """The "scribbles" Labels layer matching the chosen image (created when missing)."""
        image_layer = self.image_combo.value
        if image_layer is None:
            return None
        shape = tuple(level0(image_layer).shape[-2:])
        if SCRIBBLES in self.viewer.layers:
            layer = self.viewer.layers[SCRIBBLES]
            if tuple(layer.data.shape[-2:]) != shape:
                raise ValueError(f"the '{SCRIBBLES}' layer has shape {layer.data.shape} but the image has {shape}: "
                                 "rename or delete it and choose the image again")
        else:
            if shape[0] * shape[1] > MAX_SCRIBBLE_PIXELS:
                raise ValueError(f"the image ({shape[0]} x {shape[1]}) is too large to paint on in napari; "
                                 "crop a region into a new layer, train there, and apply the saved model to the "
                                 "whole image with `galseg segment forest --model DIR`")
            layer = self.viewer.add_labels(
                np.zeros(shape, np.uint8), name=SCRIBBLES, translate=image_layer.translate[-2:],
                scale=image_layer.scale[-2:], opacity=0.8, metadata={"galseg_role": "scribbles"},
            )
            layer.brush_size = 5
            layer.selected_label = GALAXY
        self._watch_scribbles()
        return layer

    def _watch_scribbles(self):
        layer = self.viewer.layers[SCRIBBLES] if SCRIBBLES in self.viewer.layers else None  # noqa: SIM401 - LayerList has no get
        if layer is self._watched:
            return
        if self._watched is not None:
            for emitter in (self._watched.events.paint, self._watched.events.data):
                emitter.disconnect(self._on_scribbles_changed)
        if layer is not None:
            layer.events.paint.connect(self._on_scribbles_changed)
            layer.events.data.connect(self._on_scribbles_changed)
        self._watched = layer

    def _on_scribbles_changed(self, event=None):
        if self.live.value:
            self._debounce.start()  # restarts the countdown: one retrain after the last stroke

    def _live_retrain(self):
        if self.worker is not None:
            self._pending = True
        else:
            self.train()

    # -- training -------------------------------------------------------------------------------
    def current_segmenter(self) -> ForestSegmenter:
        return ForestSegmenter(
            n_estimators=int(self.n_estimators.value), max_depth=int(self.max_depth.value),
            window=int(self.window.value), extra_sigmas=EXTRA_SIGMAS if self.extra.value else [],
            min_area=int(self.min_area.value), max_train_pixels=100_000,
        )

    def train(self):
        """Train on the current scribbles and predict the visible region in a worker; returns the worker."""
        if self.worker is not None:
            self._pending = True
            return self.worker
        try:
            image_layer = self.image_combo.value
            if image_layer is None:
                raise ValueError("choose an image layer")
            scribbles_layer = self.scribbles_layer()
            rms_layer, mask_layer = self.rms_combo.value, self.mask_combo.value
            image, rms = self._frame_inputs.convert(
                level0(image_layer), level0(rms_layer) if rms_layer is not None else None, self.noise_kind.value,
                level0(mask_layer) if mask_layer is not None else None, self.mask_bits.value,
                getattr(mask_layer, "metadata", {}).get("header"),
                (f"image layer {image_layer.name!r}", f"noise layer {getattr(rms_layer, 'name', '')!r}",
                 f"mask layer {getattr(mask_layer, 'name', '')!r}"))
            scribbles = np.array(scribbles_layer.data, copy=True)  # the worker must not see later strokes
            present = set(np.unique(scribbles).tolist())
            if not {SKY, GALAXY} <= present:
                raise ValueError("paint label 1 on some sky and label 2 on some galaxies, then train")
            region = visible_region(image_layer)
            segmenter = self.current_segmenter()
        except ValueError as exc:
            self._report(exc)
            return None

        def work():
            segmenter.fit_scribbles(image, scribbles, rms=rms)
            proba = segmenter.predict_region(image, region, rms=rms)
            labels = label_mask(proba >= segmenter.params.threshold, min_area=segmenter.params.min_area)
            return segmenter, labels

        self.status.value = "training…"
        self.train_button.enabled = False
        worker = create_worker(work, _connect={"errored": self._report}, _start_thread=False)  # no re-raise
        worker.returned.connect(lambda result: self._show(result, image_layer, region))
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()
        return worker

    def _finished(self):
        self.worker = None
        self.train_button.enabled = True
        self.work_finished.emit()
        if self._pending:
            self._pending = False
            self.train()

    def _show(self, result, image_layer, region):
        segmenter, labels = result
        self.model = segmenter
        self.trainings += 1
        translate = offset_of(image_layer, region[0].start, region[1].start)
        if PREDICTION in self.viewer.layers:
            layer = self.viewer.layers[PREDICTION]
            layer.data = labels
            layer.translate = translate
        else:
            layer = self.viewer.add_labels(labels, name=PREDICTION, translate=translate,
                                           scale=image_layer.scale[-2:], opacity=0.5,
                                           metadata={"galseg_kind": "labels", "galseg_role": "prediction",
                                                     "method": "forest"})
            # keep the scribbles on top so the user can keep painting
            if SCRIBBLES in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(SCRIBBLES), len(self.viewer.layers))
                self.viewer.layers.selection.active = self.viewer.layers[SCRIBBLES]
        n_px = segmenter.provenance.get("training_pixels", {})
        self.status.value = (f"trained on {n_px.get('sky', 0)} sky + {n_px.get('galaxy', 0)} galaxy pixels; "
                             f"{int(labels.max())} objects in view")
        return layer

    def _report(self, exc: BaseException):
        self.status.value = f"error: {exc}"
        try:
            from napari.utils.notifications import show_error

            show_error(f"forest scribbles: {exc}")
        except Exception:
            pass

    # -- saving ---------------------------------------------------------------------------------
    def save_model(self):
        """Save the last trained forest to the chosen folder (a new or empty one)."""
        if self.model is None:
            self._report(ValueError("nothing to save: paint scribbles and train first"))
            return None
        target = Path(self.save_dir.value)
        if not str(self.save_dir.value) or target == Path("."):
            self._report(ValueError("choose a folder to save the model to"))
            return None
        if target.exists() and any(target.iterdir()):
            self._report(ValueError(f"{target} is not empty: choose a new folder (nothing was overwritten)"))
            return None
        self.model.save(target)
        self.status.value = f"saved to {target}"
        return target
