"""One dock widget per segmenter, all built from the segmenter's parameter dataclass.

The widget only collects inputs and parameters, runs the core call (``Segmenter.fit`` /
``Segmenter.predict``) in a worker thread with a progress bar, and puts the result into a Labels
layer named after the method, its parameters in the layer's metadata. "Run on field of view"
segments only the visible region (instant on huge images); "Run on whole image" everything.
"""
from __future__ import annotations

import dataclasses
import threading
import typing
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, Select, create_widget
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QScrollArea, QVBoxLayout, QWidget
from superqt import QCollapsible

from .. import segmenters
from ..arrays import IN_MEMORY_PIXELS
from ..frames.bands import COMBINATIONS
from ..progress import Cancelled
from ..segmenters import Segmentation, Segmenter
from ..window import Window
from ._catalog_layers import show_catalog
from ._fit import install_docking, vertical_only, wrap_label
from ._layers import level0, offset_of, visible_region
from ._models_list import model_choices, models_folder_events
from ._noise_inputs import FrameInputs, bits_edit, kind_combo, kind_of, mask_combo, preselect_mask
from ._settings_form import SettingsForm


class _ProgressRelay(QObject):
    """Carries progress(done, total, message) from the worker thread to the GUI thread."""

    progressed = Signal(int, int, str)

    def __call__(self, done: int, total: int, message: str = "") -> None:
        try:
            self.progressed.emit(int(done), int(total), str(message))
        except RuntimeError:  # the widget was closed while the worker ran: stop quietly
            raise Cancelled("widget closed") from None


def _folded(title: str, form: Container) -> QCollapsible:
    """Advanced settings, folded under a title until opened."""
    box = QCollapsible(title)
    box.addWidget(form.native)
    return box


class SegmenterWidget(QWidget):
    """Inputs, parameters, run buttons and a progress bar for one registered segmenter."""

    method: str = ""
    #: emitted on the GUI thread once a run or training has ended (result shown or error reported);
    #: connect to it *before* starting work: a small input can finish before ``run`` returns
    work_finished = Signal()

    def __init__(self, napari_viewer, method: str | None = None):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.method = method or self.method
        self.segmenter_cls: type[Segmenter] = segmenters.get(self.method)
        self.model: Segmenter | None = None
        self._range_notes: tuple | None = None  # (frame and model, their range warnings)
        self.worker = None
        self._cancel_event = threading.Event()
        defaults = self.segmenter_cls()
        layers = defaults.settings()

        self.image_combo = create_widget(annotation=Image, label="image")
        self.rms_combo = create_widget(annotation=typing.Optional[Image], label="noise (optional)")
        self.noise_kind = kind_combo()  # rms, variance or weight: converted as the CLI converts them
        self.mask_combo = mask_combo()
        self.mask_bits = bits_edit()
        self._frame_inputs = FrameInputs()
        # the method's own parameters first; training and run options folded as advanced
        self.params = SettingsForm(layers["params"])
        self.train_form = SettingsForm(layers["train"]) if layers["train"] is not None else None
        self.run_form = SettingsForm(defaults.run_options, fields=layers["run"]) if layers["run"] else None
        self.fov_button = PushButton(text="Run on field of view")
        self.whole_button = PushButton(text="Run on whole image")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = Label(value="")
        widgets = [self.image_combo, self.rms_combo, self.noise_kind, self.mask_combo, self.mask_bits]
        if self.segmenter_cls.capabilities.trainable:
            self.truth_combo = create_widget(annotation=typing.Optional[Labels], label="truth (to train)")
            # the models folder's models of this method (the training widget registers them there)
            self.model_choice = ComboBox(label="model", choices=lambda _: model_choices(self.method))
            self.model_choice.changed.connect(self._load_registered)
            models_folder_events().changed.connect(self._refresh_models)
            self.model_dir = FileEdit(mode="d", label="model folder", value="")
            self.load_button = PushButton(text="Load model")
            self.train_button = PushButton(text="Train on truth")
            self.save_button = PushButton(text="Save model…")
            self.save_dir = FileEdit(mode="d", label="save to", value="")
            widgets += [self.truth_combo, self.model_choice, self.model_dir, self.load_button, self.train_button, self.save_dir, self.save_button]
            self.load_button.changed.connect(lambda: self._load_model())
            self.train_button.changed.connect(self._train)
            self.save_button.changed.connect(self._save_model)
        self.form = Container(widgets=widgets)
        # a run with the same settings on the same image replaces its layer; this brings the old one back
        self.undo_button = PushButton(text="Undo replace", enabled=False,
                                      tooltip="bring back the labels the last run replaced")
        self._undo: tuple | None = None  # (layer, data, translate, metadata, features) before the replacement
        self.actions = Container(widgets=[self.fov_button, self.whole_button, self.cancel_button, self.undo_button,
                                          self.status])
        wrap_label(self.status.native)
        self.progress = QProgressBar()
        self.progress.setVisible(False)

        body = QWidget()
        inner = QVBoxLayout(body)
        inner.addWidget(self.form.native)
        inner.addWidget(QLabel(f"<b>{self.method} parameters</b>"))
        inner.addWidget(self.params.native)
        if self.train_form is not None:
            inner.addWidget(_folded("Training", self.train_form))
        if self.run_form is not None:
            inner.addWidget(_folded("Run options (speed and memory)", self.run_form))
        inner.addStretch(1)
        scroll = vertical_only(QScrollArea())  # a long form scrolls down instead of growing past the screen
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.actions.native)
        layout.addWidget(self.progress)

        self._relay = _ProgressRelay()
        self._relay.progressed.connect(self._on_progress)
        self.fov_button.changed.connect(lambda: self.run(field_of_view=True))
        self.whole_button.changed.connect(lambda: self.run(field_of_view=False))
        self.cancel_button.changed.connect(self._cancel)
        self.undo_button.changed.connect(self.undo_replace)
        # keep the layer choices current as layers come and go
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)
        self._refresh_choices()

    def _refresh_choices(self, event=None):
        """Keep the layer lists current; preselect the image and its rms map as the reader typed them."""
        self.form.reset_choices()
        by_kind = {}
        for layer in reversed(self.viewer.layers):
            by_kind.setdefault(layer.metadata.get("galseg_kind"), layer)
        image = self.image_combo.value
        if isinstance(by_kind.get("image"), Image) and (image is None or image.metadata.get("galseg_kind") == "rms"):
            self.image_combo.value = image = by_kind["image"]
        rms = by_kind.get("rms")
        if self.rms_combo.value is None and isinstance(rms, Image) and image is not None and rms.data.shape == image.data.shape:
            self.rms_combo.value = rms
            self.noise_kind.value = kind_of(rms)  # a coadd's VARIANCE or WGT plane says what it holds
        preselect_mask(self.mask_combo, self.viewer.layers, image)

    # -- parameters ---------------------------------------------------------------------------
    def current_params(self):
        """The method's parameters as the form shows them (a SettingError for a bad entry)."""
        from ..settings import build

        return build(self.segmenter_cls.Params, values=self.params.values())

    def current_settings(self) -> dict:
        """Every setting the form shows, by name (the three layers together)."""
        values = self.params.values()
        for form in (self.train_form, self.run_form):
            if form is not None:
                values.update(form.values())
        return values

    def _segmenter(self) -> Segmenter:
        settings = self.current_settings()
        if self.model is None and self.segmenter_cls.capabilities.trainable and self.model_choice.value:
            self._load_model(self.model_choice.value)  # the chosen (by default the built-in) model
        if self.model is not None:
            return self.model.configure(**settings)
        if self.segmenter_cls.capabilities.trainable:
            raise ValueError("choose a model, load a model folder or train on a truth layer first")
        return self.segmenter_cls(**settings)

    def _inputs(self, field_of_view: bool):
        """(image layer, full-resolution image, rms or None, region of interest as two slices): the
        image NaN where the noise says no data or the mask's bad bits are set, the noise as 1σ."""
        image_layer = self.image_combo.value
        if image_layer is None:
            raise ValueError("choose an image layer")
        image = level0(image_layer)
        rms_layer, mask_layer = self.rms_combo.value, self.mask_combo.value
        noise = level0(rms_layer) if rms_layer is not None else None
        mask = level0(mask_layer) if mask_layer is not None else None
        names = (f"image layer {image_layer.name!r}", f"noise layer {getattr(rms_layer, 'name', '')!r}",
                 f"mask layer {getattr(mask_layer, 'name', '')!r}")
        image, rms = self._frame_inputs.convert(image, noise, self.noise_kind.value, mask, self.mask_bits.value,
                                                getattr(mask_layer, "metadata", {}).get("header"), names)
        region = visible_region(image_layer) if field_of_view else (slice(0, image.shape[-2]), slice(0, image.shape[-1]))
        return image_layer, image, rms, region

    # -- running --------------------------------------------------------------------------------
    def run(self, field_of_view: bool = True):
        """Segment the field of view or the whole image in a worker; returns the worker."""
        try:
            image_layer, image, rms, region = self._inputs(field_of_view)
            segmenter = self._segmenter()
        except (ValueError, KeyError) as exc:
            self._report_error(exc)
            return None
        window = Window.of(region) if field_of_view else None

        header, wcs = image_layer.metadata.get("header"), image_layer.metadata.get("wcs")
        range_key = (id(image), id(segmenter))  # measured once per frame and model, not per field of view

        def work():
            from ..builtin_models import range_notes

            cached = self._range_notes
            if cached is None or cached[0] != range_key:
                wcs_ok = wcs if hasattr(wcs, "pixel_to_world") else None
                cached = self._range_notes = (range_key, range_notes(segmenter, image, rms, header=header, wcs=wcs_ok))
            notes = list(cached[1])
            # methods with region_with_context read the context they need around the view
            result = segmenter.predict(image, rms=rms, region=window, progress=self._relay, cancel=self._cancel_event)
            result.labels = _materialise(result.labels)
            if rms is None:
                notes.append(getattr(segmenter, "noise_note", None) or "no rms layer: the noise was estimated from the image")
            result.notes = notes
            return result, segmenter

        return self._start(work, lambda result: self._show_result(result, image_layer, region, field_of_view))

    def _train(self):
        truth_layer = self.truth_combo.value
        if truth_layer is None:
            self._report_error(ValueError("choose a truth labels layer to train on"))
            return None
        try:
            image_layer, image, rms, _ = self._inputs(field_of_view=False)
            truth = level0(truth_layer)
            if tuple(truth.shape) != tuple(image.shape):
                raise ValueError(f"truth {truth.shape} and image {image.shape} differ in shape")
            model = self.segmenter_cls(**self.current_settings())
        except ValueError as exc:
            self._report_error(exc)
            return None

        def work():
            return model.fit(image, truth, rms=rms, progress=self._relay, cancel=self._cancel_event)

        def done(fitted):
            self.model = fitted
            self.status.value = f"trained {self.method} on {image_layer.name!r}"

        return self._start(work, done)

    def _refresh_models(self):
        try:
            self.model_choice.reset_choices()
        except RuntimeError:  # this widget was closed: its Qt side is gone
            pass

    def _load_registered(self, folder: str):
        if folder:
            self._load_model(folder)

    def _load_model(self, folder: str | None = None):
        folder = folder or self.model_dir.value
        try:
            self.model = self.segmenter_cls.load(Path(folder))
        except (ValueError, OSError) as exc:
            self._report_error(exc)
            return
        self.params.set_values(self.model.params)
        if self.train_form is not None and self.model.train_config is not None:
            self.train_form.set_values(self.model.train_config)
        if self.run_form is not None:
            self.run_form.set_values(self.model.run_options)
        self.status.value = f"loaded {folder}"

    def _save_model(self):
        if self.model is None:
            self._report_error(ValueError("nothing to save: train or load a model first"))
            return
        target = Path(self.save_dir.value)
        if not str(self.save_dir.value) or target == Path("."):
            self._report_error(ValueError("choose a folder to save the model to"))
            return
        self.model.save(target)
        self.status.value = f"saved to {target}"

    def _start(self, work, on_done):
        self._cancel_event.clear()
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.value = "running…"
        self._set_running(True)
        # errored connected at creation: otherwise superqt re-raises the error in the Qt loop as a
        # traceback, on top of the one-line status
        worker = create_worker(work, _connect={"errored": self._report_error}, _start_thread=False)
        worker.returned.connect(on_done)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()
        return worker

    def _on_finished(self):
        self.worker = None
        self._set_running(False)
        self.work_finished.emit()

    def _set_running(self, running: bool):
        self.fov_button.enabled = self.whole_button.enabled = not running
        self.cancel_button.enabled = running
        if not running:
            self.progress.setVisible(False)

    def _cancel(self):
        if self.worker is not None:
            self._cancel_event.set()
            self.status.value = "cancelling… (stops at the next progress step)"

    def _on_progress(self, done: int, total: int, message: str):
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        if message:
            self.status.value = message

    def _report_error(self, exc: BaseException):
        if isinstance(exc, Cancelled):
            self.status.value = "cancelled"
            return
        self.status.value = f"error: {exc}"
        try:
            from napari.utils.notifications import show_error

            message = str(exc)  # the method's name once, even when the message starts with it
            show_error(message if message.startswith(f"{self.method}:") else f"{self.method}: {message}")
        except Exception:
            pass

    # -- results --------------------------------------------------------------------------------
    def undo_replace(self) -> bool:
        """Put back the labels the last run replaced (once); False when there is nothing to undo."""
        if self._undo is None:
            return False
        layer, data, translate, metadata, features = self._undo
        self._undo = None
        self.undo_button.enabled = False
        if layer not in self.viewer.layers:
            self.status.value = f"{layer.name!r} was removed: nothing to undo"
            return False
        layer.data, layer.translate = data, translate
        layer.metadata.clear()
        layer.metadata.update(metadata)
        layer.features = features
        self.status.value = f"{layer.name!r}: the previous labels are back"
        return True

    def layer_name(self, field_of_view: bool = False) -> str:
        """Short: the method, plus ``[view]`` for a field-of-view run; the parameters are in
        the layer's ``metadata["params"]`` (napari adds `` [1]`` to tell runs apart)."""
        return self.method + (" [view]" if field_of_view else "")

    def put_labels(self, labels, image_layer, region, field_of_view: bool, params: dict, name: str | None = None):
        """Add ``labels`` over ``image_layer`` (at ``region``'s corner), or replace the layer of an
        earlier run with the same ``params`` on the same image (undoable); (layer, translate, outcome)."""
        translate = offset_of(image_layer, region[0].start, region[1].start)
        metadata = {
            "galseg_kind": "labels",
            "galseg_role": "prediction",
            "method": self.method,
            "params": params,
            "field_of_view": field_of_view,
            "source_layer": image_layer.name,
            **{k: v for k, v in image_layer.metadata.items() if k in ("header", "wcs", "path")},
        }
        same_run = [layer for layer in self.viewer.layers if isinstance(layer, Labels) and all(
            layer.metadata.get(k) == metadata[k] for k in ("method", "params", "field_of_view", "source_layer"))]
        if same_run:  # the same parameters again (e.g. after panning): replace, don't stack layers; undoable
            layer = same_run[-1]
            self._undo = (layer, layer.data, tuple(layer.translate), dict(layer.metadata), layer.features.copy())
            layer.data = labels
            layer.translate = translate
            layer.metadata.update(metadata)
            outcome = f"replaced {layer.name!r} (same settings, same image; 'Undo replace' brings the old labels back)"
        else:
            layer = self.viewer.add_labels(labels, name=name or self.layer_name(field_of_view), translate=translate,
                                           scale=image_layer.scale[-2:], metadata=metadata, opacity=0.6)
            self._undo = None
            outcome = f"new layer {layer.name!r}"
        self.undo_button.enabled = self._undo is not None
        return layer, translate, outcome

    def run_params(self, segmenter: Segmenter) -> dict:
        """What tells one run from another in the layer's metadata (a re-run of the same replaces it)."""
        return dataclasses.asdict(segmenter.params)

    def _show_result(self, result: tuple[Segmentation, Segmenter], image_layer, region, field_of_view: bool):
        segmentation, segmenter = result
        labels = segmentation.labels
        layer, translate, outcome = self.put_labels(labels, image_layer, region, field_of_view,
                                                    self.run_params(segmenter))
        name = layer.name
        layer.features = score_features(segmentation.scores)  # hovering an object shows its score
        catalog = segmentation.catalog
        if catalog is not None and len(catalog):
            show_catalog(self.viewer, catalog, name, translate, image_layer.scale[-2:])
        self.status.value = f"{name}: {int(labels.max())} objects" if isinstance(labels, np.ndarray) else name
        self.status.value += f" — {outcome}"
        if len(layer.features):
            what = ("detection confidence, 0–1" if self.segmenter_cls.capabilities.uses_device
                    else "signal-to-noise of each object")  # networks score a detection, classical methods its S/N
            self.status.value += (f", scores {layer.features['score'].min():.2f}–{layer.features['score'].max():.2f}"
                                  f" ({what}; hover an object for its own)")
        notes = getattr(segmentation, "notes", None) or []
        if notes:  # an estimated noise map, a frame outside the model's range: said under the result
            self.status.value += "\n" + "\n".join(notes)
            layer.metadata["notes"] = list(notes)
        return layer


def score_features(scores) -> dict[str, np.ndarray]:
    """A Labels layer's features from per-id scores (``scores[i]`` for label i): one row per scored
    label, ``index`` naming it, so napari's status bar shows the score of the object under the cursor."""
    if scores is None:
        return {}
    scores = np.asarray(scores, float)
    ids = np.nonzero(np.isfinite(scores))[0]
    ids = ids[ids > 0]
    return {"index": ids, "score": scores[ids]}


def _materialise(labels):
    """Numpy labels for moderate sizes; a lazy multiscale pyramid on a memory-mapped file for huge ones."""
    if isinstance(labels, np.ndarray):
        return labels
    if int(np.prod(labels.shape)) <= IN_MEMORY_PIXELS:
        return np.asarray(labels.compute() if hasattr(labels, "compute") else labels)
    import tempfile

    from ..io import open_fits, write_labels

    path = Path(tempfile.mkdtemp(prefix="galseg-")) / "labels.fits"
    write_labels(path, labels)
    return open_fits(path).pyramid()


class PhotutilsWidget(SegmenterWidget):
    method = "photutils"

    def __init__(self, napari_viewer, method: str | None = None):
        super().__init__(napari_viewer, method)
        from .sextractor_config import SExtractorConfigLoader

        self.sextractor = SExtractorConfigLoader(self)  # a .sex file: SExtractor mode, or it fills the parameters
        self.form.append(self.sextractor)
        # several bands of one field: detect on their combined image (as `galseg segment --bands`)
        self.bands_select = Select(label="more bands (detect on all)", choices=self._band_choices,
                                   tooltip="other bands of the image's field, on the same pixel grid: one "
                                           "segmentation detected on the combined image")
        self.detection = ComboBox(label="detection image", choices=list(COMBINATIONS), value="snr",
                                  tooltip="snr: inverse-variance weighted sum; chi2: Szalay et al. (1999) χ² "
                                          "(finds sources of any colour)")
        self.form.extend([self.bands_select, self.detection])
        self._bands_used: list[str] = []

    def _band_choices(self, _widget=None):
        image = self.image_combo.value
        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and layer is not image and layer.metadata.get("galseg_kind") != "rms"]

    def _inputs(self, field_of_view: bool):
        """With more bands chosen, the image is their combined detection image (unit noise)."""
        image_layer, image, rms, region = super()._inputs(field_of_view)
        extra = [layer for layer in (self.bands_select.value or []) if layer is not image_layer]
        self._bands_used = []
        if not extra:
            return image_layer, image, rms, region
        import dask.array as da

        from ..frames.bands import detection_image
        from ..frames.frame import _lazy

        planes = [level0(layer) for layer in extra]
        for layer, plane in zip(extra, planes):
            if tuple(plane.shape) != tuple(image.shape):
                raise ValueError(f"band layer {layer.name!r} has shape {tuple(plane.shape)} but image {image_layer.name!r} "
                                 f"has {tuple(image.shape)}: bands must share one pixel grid (reproject them first)")
        combination = self.detection.value
        detection, estimated = detection_image([image, *planes], [rms, *([None] * len(planes))], combination)
        names = [image_layer.name, *(layer.name for layer in extra)]
        self._bands_used = [f"detected on the {combination} image of {', '.join(names)}"] + [
            f"band {name}: no noise layer, the noise was estimated from the image"
            for name, guessed in zip(names, estimated) if guessed]
        chunks = min(2048, max(image.shape))
        lazy = _lazy(detection, f"bands-{combination}-{id(detection)}", chunks)
        return image_layer, lazy, da.ones(detection.shape, dtype="f4", chunks=chunks), region

    def run_params(self, segmenter) -> dict:
        params = super().run_params(segmenter)
        return {**params, "bands": list(self._bands_used[:1])} if self._bands_used else params

    def _show_result(self, result, image_layer, region, field_of_view: bool):
        if self._bands_used:  # said under the result instead of "the noise was estimated" of one band
            result[0].notes = list(self._bands_used)
        return super()._show_result(result, image_layer, region, field_of_view)

    def run(self, field_of_view: bool = True):
        """With a ``.sex`` file in SExtractor mode, its segmentation, catalogue layer and table."""
        sex = self.sextractor.active_run()
        if sex is None:
            return super().run(field_of_view)
        if self.bands_select.value:
            self._report_error(ValueError("SExtractor mode extracts one image: clear 'more bands', or turn the "
                                          "SExtractor mode off to detect on the bands' combined image"))
            return None
        from .sextractor_mode import start_run

        return start_run(self, sex, field_of_view)


class KMeansWidget(SegmenterWidget):
    method = "kmeans"


class ForestWidget(SegmenterWidget):
    method = "forest"


class UNetWidget(SegmenterWidget):
    method = "unet"


class MaskRCNNWidget(SegmenterWidget):
    method = "maskrcnn"


class DetrWidget(SegmenterWidget):
    method = "detr"
