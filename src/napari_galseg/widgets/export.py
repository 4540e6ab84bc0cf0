"""Export layers as a COCO instances or COCO-panoptic dataset — `galseg export` from the viewer.

The widget collects an image layer (+ an optional rms layer), a Labels layer holding instances,
the dataset kind, patch size and output folder, and runs the same core writer as the command line
(:data:`napari_galseg.io.coco_export.EXPORTERS`) in a worker thread with a progress bar. Labels that
are not an instance map are refused before anything is written, with the core's one-line message.
"""
from __future__ import annotations

import typing
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, PushButton, SpinBox, create_widget
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QProgressBar, QVBoxLayout, QWidget

from ..io.coco_export import EXPORTERS, SKY, NotInstancesError, check_instances
from ._fit import install_docking, wrap_label
from ._layers import level0
from .segment import _ProgressRelay

KINDS = [("COCO instances (RLE masks)", "coco"), ("COCO panoptic (PNG + segments_info)", "panoptic")]


SKY_ID = SKY["id"]


class ExportWidget(QWidget):
    """Image (+ rms) and instance labels → a COCO instances or COCO-panoptic dataset folder."""

    #: emitted on the GUI thread once an export has ended (written or error reported); connect first
    work_finished = Signal()

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.worker = None
        self.image_combo = create_widget(annotation=Image, label="image")
        self.rms_combo = create_widget(annotation=typing.Optional[Image], label="rms (optional)")
        self.labels_combo = create_widget(annotation=Labels, label="instance labels")
        self.kind = ComboBox(label="dataset", choices=KINDS, value="coco")
        self.patch = SpinBox(label="patch size", value=256, min=8, max=8192, step=32,
                             tooltip="side of the square patches, in pixels; edge patches are cut short")
        self.image_format = ComboBox(label="patch images", choices=[("float32 FITS", "fits"), ("8-bit asinh PNG", "png")],
                                     value="fits", tooltip="FITS keeps the faint wings; PNG is for generic COCO tools")
        self.skip_empty = CheckBox(label="skip patches without galaxies", value=False)
        self.overwrite = CheckBox(label="overwrite an existing dataset", value=False)
        self.output = FileEdit(mode="d", label="output folder", value="")
        self.export_button = PushButton(text="Export")
        self.status = Label(value="")
        wrap_label(self.status.native)
        self.form = Container(widgets=[self.image_combo, self.rms_combo, self.labels_combo, self.kind, self.patch,
                                       self.image_format, self.skip_empty, self.overwrite, self.output,
                                       self.export_button, self.status])
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.form.native)
        layout.addWidget(self.progress)
        layout.addStretch(1)
        self._relay = _ProgressRelay()
        self._relay.progressed.connect(self._on_progress)
        self.export_button.changed.connect(self.export)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)
        self._refresh_choices()

    def _refresh_choices(self, event=None):
        """Keep the layer lists current; preselect the rms map the reader typed, when it fits the image."""
        self.form.reset_choices()
        image = self.image_combo.value
        if self.rms_combo.value is not None or image is None:
            return
        for layer in reversed(self.viewer.layers):
            if isinstance(layer, Image) and layer.metadata.get("galseg_kind") == "rms" and layer is not image \
                    and level0(layer).shape == level0(image).shape:
                self.rms_combo.value = layer
                return

    def _inputs(self):
        image_layer, labels_layer = self.image_combo.value, self.labels_combo.value
        if image_layer is None or labels_layer is None:
            raise ValueError("choose an image layer and a labels layer")
        out = str(self.output.value)
        if not out or Path(out) == Path("."):
            raise ValueError("choose an output folder for the dataset")
        image, labels = level0(image_layer), level0(labels_layer)
        rms = level0(self.rms_combo.value) if self.rms_combo.value is not None else None
        check_instances(labels, tuple(image.shape))  # refuse before writing anything
        return Path(out), image, labels, rms

    def export(self):
        """Write the dataset in a worker; returns the worker (None when the inputs are refused)."""
        try:
            out, image, labels, rms = self._inputs()
        except ValueError as exc:  # NotInstancesError is one
            self._report_error(exc)
            return None
        write = EXPORTERS[self.kind.value]
        options = {"patch": int(self.patch.value), "image_format": self.image_format.value,
                   "skip_empty": bool(self.skip_empty.value), "overwrite": bool(self.overwrite.value)}

        def work():
            path = write(out, image, labels, rms, progress=self._relay, **options)
            return written_summary(path, options["image_format"])

        self.export_button.enabled = False
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self._clear_status()  # an old error goes with the new export
        self.status.value = "exporting…"
        # errors are reported in one line by _report_error, not re-raised with a traceback
        worker = create_worker(work, _connect={"errored": self._report_error}, _start_thread=False)
        worker.returned.connect(self._on_written)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()
        return worker

    def _clear_status(self):
        self.status.value = ""
        self.status.tooltip = None
        self.status.native.setStyleSheet("")

    def _on_written(self, summary: str):
        self._clear_status()
        self.status.value = summary
        self.status.tooltip = summary

    def _on_progress(self, done: int, total: int, message: str):
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        if message:
            self.status.value = f"patch {done}/{total}: {message}"

    def _on_finished(self):
        self.worker = None
        self.export_button.enabled = True
        self.progress.setVisible(False)
        self.work_finished.emit()

    def _report_error(self, exc: BaseException):
        message = str(exc)
        self.status.value = f"error: {message}"
        self.status.tooltip = message
        try:
            from napari.utils.notifications import show_error

            show_error(f"export: {message}")
        except Exception:
            pass


def written_summary(path, image_format: str) -> str:
    """What an export wrote, in one line: patches, objects, the folder and the JSON that indexes them."""
    import json

    path = Path(path)
    dataset = json.loads(path.read_text())
    n_images = len(dataset.get("images", []))
    annotations = dataset.get("annotations", [])
    if annotations and "segments_info" in annotations[0]:  # panoptic: galaxy segments, the sky apart
        n_objects = sum(1 for a in annotations for seg in a["segments_info"] if seg.get("category_id") != SKY_ID)
        kind = "panoptic PNGs"
    else:
        n_objects, kind = len(annotations), "instance annotations"
    images = "FITS" if image_format == "fits" else image_format.upper()
    return (f"wrote {n_images} patches ({images} images) and {n_objects} galaxies ({kind}) to {path.parent}: "
            f"index {path.name}")


__all__ = ["ExportWidget", "NotInstancesError", "written_summary"]
