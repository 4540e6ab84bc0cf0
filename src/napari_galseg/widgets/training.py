"""The training widget: send a training job to a thread, a local process, SLURM or dask, and watch it.

It collects a method, inputs (layers or files), settings, a device and a runner, writes layer
inputs into the job folder (in a worker thread), starts the job with :func:`jobs.start_job` and
then only reads the job's log: a progress bar, live loss and validation-IoU curves docked in the
viewer, the error line of a failed job. A finished job's model is copied into the models folder
(:mod:`napari_galseg.model_registry`), where every segmenter widget lists it.
"""
from __future__ import annotations

import json
import typing
from pathlib import Path

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Labels
from napari.qt.threading import create_worker
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QScrollArea, QVBoxLayout, QWidget

from .. import segmenters
from ..devices import device_choices
from ..jobs import log
from ..jobs.runners import OPTIONS
from ..jobs.spec import RUNNERS, JobSpec, JobSpecError, jobs_root, new_job_dir
from ..model_registry import models_root, register_job
from ..settings import SettingError
from ._curves import TrainingCurves
from ._fit import fit_label_height, install_docking, vertical_only, wrap_label
from ._job_watch import JobWatcher
from ._layers import level0
from ._models_list import models_changed
from ._noise_inputs import bits_edit, kind_combo, kind_of, preselect_mask
from ._settings_form import SettingsForm
from ._training_preview import FieldOfViewPreview
from .segment import _folded

CURVES_DOCK = "Training curves"
#: the method the widget opens with: the first of these installed (both train in minutes on a CPU;
#: Mask R-CNN and DETR want a GPU)
CPU_METHODS = ("unet", "forest")


def trainable_methods() -> list[str]:
    """Installed methods that learn from a truth image (each class is imported to read its capabilities)."""
    names = []
    for name in segmenters.available():
        try:
            if segmenters.get(name).capabilities.trainable:
                names.append(name)
        except Exception:  # a method that cannot be imported here is simply not offered
            continue
    return names


def default_method(methods: list[str]) -> str | None:
    return next((m for m in CPU_METHODS if m in methods), methods[0] if methods else None)


SCORE_NAMES = {"iou": "IoU", "dice": "Dice", "ap": "AP", "ap50": "AP50", "ap75": "AP75"}


def scores_text(metrics: dict) -> str:
    """The held-out scores of a trained model in one line: 'validation: IoU 0.81, Dice 0.89 · test: ...'."""
    parts = []
    for split in ("validation", "test"):
        values = metrics.get(split) or {}
        numbers = ", ".join(f"{SCORE_NAMES.get(k, k.replace('_', ' '))} {v:.3f}" for k, v in values.items()
                            if isinstance(v, (int, float)) and k != "loss")
        if numbers:
            parts.append(f"{split}: {numbers}")
    return " · ".join(parts)


SCORES_TOOLTIP = ("scores on blocks of the field kept out of training: validation (it chose the best epoch) and "
                  "test (never seen while training). IoU and Dice: pixel overlap of galaxy pixels with the truth "
                  "(1 = perfect); AP/AP50: COCO average precision of the instances")


def _path(edit: FileEdit) -> str | None:
    value = str(edit.value or "")
    return value if value not in ("", ".") else None


def _option_value(text: str):
    """Runner option text as a number when it is one (gpus=2), else as text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class InputChooser(Container):
    """One input: a layer, or a file that replaces it when given."""

    def __init__(self, kind: str, layer_type, required: bool):
        annotation = layer_type if required else typing.Optional[layer_type]
        self.kind = kind
        self.layer = create_widget(annotation=annotation, label=f"{kind} layer")
        self.file = FileEdit(mode="r", label=f"… or {kind} file", value="", filter="*.fits *.fit *.fts *.fz *.gz")
        super().__init__(widgets=[self.layer, self.file], labels=True)


class TrainingWidget(QWidget):
    """Method, inputs, settings, device and runner; Start/Stop; progress, curves and the outcome."""

    #: a job was started (its folder); emitted on the GUI thread
    job_started = Signal(str)
    #: a followed job ended (its final status), after a finished job's model was registered
    job_ended = Signal(str)

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.job_dir: Path | None = None
        self.registered = None  # the RegisteredModel of the last finished job
        self.activity = None  # the job's bar in napari's activity dock

        methods = trainable_methods()
        self.method = ComboBox(label="method", choices=methods, value=default_method(methods),
                               tooltip="unet and forest train in minutes on a CPU; maskrcnn and detr want a GPU")
        self.inputs = {"image": InputChooser("image", Image, True), "rms": InputChooser("noise", Image, False),
                       "truth": InputChooser("truth", Labels, False)}
        # what the noise holds and a bit mask: converted here (frames.frame_arrays) into the job's image + rms
        self.noise_kind = kind_combo()
        self.mask = InputChooser("mask", Labels, False)
        self.mask_bits = bits_edit()
        self.like = CheckBox(value=False, text="like this frame (simulated fields, no truth)",
                             tooltip="the image's PSF, noise, sky and density are measured (galseg describe) and the "
                                     "model learns from GalSim fields made like it, with exact truth; the truth "
                                     "layer is not used")
        self.like_size = SpinBox(label="simulated field (px)", value=2048, min=256, max=8192, step=256,
                                 tooltip="with 'like this frame': the side of the simulated training field")
        self.recipe = LineEdit(label="recipe", value="", tooltip="a recipe name ('default', 'image-only'...) or a "
                                                                 "recipe file; empty = the method's own")
        self.device = ComboBox(label="device", choices=device_choices(), tooltip="where a torch method trains")
        self.runner = ComboBox(label="runner", choices=list(RUNNERS), value="process",
                               tooltip="thread: inside napari (small models); process: a local subprocess (frees "
                                       "GPU memory when it ends); slurm: submitit; dask: a distributed scheduler")
        self.runner_options = Container(labels=True)
        self.jobs_dir = FileEdit(mode="d", label="jobs folder", value=str(jobs_root()),
                                 tooltip="each job gets a folder here: its spec, log, checkpoints and model")
        self.start_button = PushButton(text="Start training")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = Label(value="")
        wrap_label(self.status.native)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.scores = Label(value="", tooltip=SCORES_TOOLTIP)
        wrap_label(self.scores.native)
        self.curves = TrainingCurves()
        self.watcher = JobWatcher(self)
        self.preview_box = CheckBox(value=True, text="preview on the field of view after each validation",
                                    tooltip="the job segments the visible part of the image layer with its model of "
                                            "the moment, at most every 10 s (methods that can show their progress: "
                                            "the U-Net)")
        self.preview = FieldOfViewPreview(self.viewer, self)
        self.preview.shown.connect(lambda epoch: self._say(f"{self.job_dir.name}: {self.watcher.state.summary()} "
                                                           f"(preview: epoch {epoch})"))

        top = Container(widgets=[self.method, self.inputs["image"], self.inputs["rms"], self.noise_kind, self.mask,
                                 self.mask_bits, self.inputs["truth"], self.like, self.like_size, self.recipe, self.device, self.runner])
        body = QWidget()
        self._body = QVBoxLayout(body)
        self._body.addWidget(top.native)
        self._body.addWidget(self.runner_options.native)
        self._body.addWidget(Container(widgets=[self.jobs_dir], labels=True).native)  # with its label
        self._body.addWidget(self.preview_box.native)
        self._body.addWidget(QLabel(f"models go to {models_root()}"))
        self._settings_box = QWidget()
        self._settings_layout = QVBoxLayout(self._settings_box)
        self._settings_layout.setContentsMargins(0, 0, 0, 0)
        self._body.addWidget(self._settings_box)
        self._body.addStretch(1)
        scroll = vertical_only(QScrollArea())  # the form wraps to the dock's width: no sideways scrolling
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(Container(widgets=[self.start_button, self.stop_button], layout="horizontal", labels=False).native)
        layout.addWidget(self.progress)
        layout.addWidget(self.status.native)
        layout.addWidget(self.scores.native)
        self._top = top

        self.method.changed.connect(self._build_settings)
        self.runner.changed.connect(self._build_runner_options)
        self.start_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.watcher.records.connect(self._on_records)
        self.watcher.ended.connect(self._on_ended)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_layers)
        self._refresh_layers()
        self._build_settings()
        self._build_runner_options()

    def _refresh_layers(self, event=None):
        """Keep the layer lists current; preselect what the reader and the layer names say (an
        image, its rms map, the truth) where nothing is chosen yet."""
        from .metrics import truth_score

        self._top.reset_choices()
        kinds = {}
        for layer in reversed(self.viewer.layers):
            kinds.setdefault(layer.metadata.get("galseg_kind"), layer)
        for kind in ("image", "rms"):
            if self.inputs[kind].layer.value is None and isinstance(kinds.get(kind), Image):
                self.inputs[kind].layer.value = kinds[kind]
                if kind == "rms":
                    self.noise_kind.value = kind_of(kinds[kind])
        preselect_mask(self.mask.layer, self.viewer.layers, self.inputs["image"].layer.value)
        truths = sorted((layer for layer in self.viewer.layers if isinstance(layer, Labels) and truth_score(layer) > 1),
                        key=truth_score)
        if self.inputs["truth"].layer.value is None and truths:
            self.inputs["truth"].layer.value = truths[-1]

    # -- forms ------------------------------------------------------------------------------------
    def _build_settings(self, *_):
        """The chosen method's parameters, then its training and run options folded."""
        while self._settings_layout.count():
            item = self._settings_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.forms: list[SettingsForm] = []
        if not self.method.value:
            return
        cls = segmenters.get(self.method.value)
        layers = cls().settings()
        self.forms.append(SettingsForm(layers["params"]))
        self._settings_layout.addWidget(QLabel(f"<b>{cls.name} parameters</b>"))
        self._settings_layout.addWidget(self.forms[-1].native)
        if layers["train"] is not None:
            self.forms.append(SettingsForm(layers["train"]))
            self._settings_layout.addWidget(_folded("Training", self.forms[-1]))
        run_fields = [name for name in layers["run"] if name != "device"]
        if run_fields:
            self.forms.append(SettingsForm(cls().run_options, fields=run_fields))
            self._settings_layout.addWidget(_folded("Run options", self.forms[-1]))
        self.device.enabled = "device" in cls.run_fields
        self.recipe.enabled = cls.capabilities.uses_recipe

    def _build_runner_options(self, *_):
        self.runner_options.clear()
        for name, description in OPTIONS[self.runner.value].items():
            widget = CheckBox(name=name, label=name.replace("_", " ")) if name == "gpu" else \
                LineEdit(name=name, label=name.replace("_", " "), value="")
            widget.tooltip = description
            self.runner_options.append(widget)

    # -- the job ----------------------------------------------------------------------------------
    def settings(self) -> dict:
        """Every setting the forms show, by name, as plain data a spec file holds."""
        values = {}
        for form in self.forms:
            values.update(form.values())
        return json.loads(json.dumps(values, default=str))

    def _spec(self, job_dir: Path, inputs: dict[str, str | None]) -> JobSpec:
        method = self.method.value
        options = {w.name: (bool(w.value) if isinstance(w, CheckBox) else _option_value(w.value.strip()))
                   for w in self.runner_options if (w.value if isinstance(w, CheckBox) else str(w.value).strip())}
        device = self.device.value if self.device.enabled else None
        like = bool(self.like.value)
        return JobSpec(method=method, image=inputs["image"] or "", rms=inputs.get("rms"),
                       truth="" if like else inputs["truth"] or "", like=like, like_size=int(self.like_size.value),
                       output=str(job_dir / "model"), job_dir=str(job_dir), recipe=self.recipe.value.strip() or None,
                       settings=self.settings(), device=device, runner=self.runner.value, runner_options=options)

    def _sources(self) -> tuple[dict[str, str], dict[str, object], dict[str, object]]:
        """(files, layer arrays to save, their headers) for image, rms and truth."""
        files, arrays, headers = {}, {}, {}
        for kind, chooser in self.inputs.items():
            if kind == "truth" and self.like.value:
                continue  # simulated fields bring their own exact truth
            path, layer = _path(chooser.file), chooser.layer.value
            if path is not None:
                files[kind] = str(Path(path).expanduser().resolve())
            elif layer is not None:
                arrays[kind], headers[kind] = level0(layer), layer.metadata.get("header")
        for kind in ("image",) if self.like.value else ("image", "truth"):
            if kind not in files and kind not in arrays:
                raise ValueError(f"choose a {kind} layer or file" + (" (or tick 'like this frame')" if kind == "truth" else ""))
        self._convert_noise(files, arrays, headers)
        return files, arrays, headers

    def _convert_noise(self, files: dict, arrays: dict, headers: dict) -> None:
        """A variance or weight, or a mask: the job gets the image with NaN where there is no data
        and the 1σ map (frames.frame_arrays, window by window), saved to its folder like layers."""
        from ..frames import frame_arrays
        from ..io import open_fits

        mask_path, mask_layer = _path(self.mask.file), self.mask.layer.value
        kind = self.noise_kind.value
        if kind == "rms" and mask_path is None and mask_layer is None:
            return  # a 1σ map goes to the job as it is

        def source(kind_name: str):
            """A file chosen for ``kind_name`` (opened lazily, then converted) or its layer's array."""
            if kind_name in files:
                opened = open_fits(files.pop(kind_name), check_finite=False)
                headers.setdefault(kind_name, opened.header)
                return opened.data
            return arrays.get(kind_name)

        image, noise = source("image"), source("rms")
        mask, mask_header = None, None
        if mask_path is not None:
            opened = open_fits(mask_path, check_finite=False)
            mask, mask_header = opened.data, opened.header
        elif mask_layer is not None:
            mask, mask_header = level0(mask_layer), mask_layer.metadata.get("header")
        arrays["image"], rms = frame_arrays(image, noise, kind, mask=mask, mask_bits=self.mask_bits.value.strip() or None,
                                            mask_header=mask_header,
                                            names=("the image", f"the {kind} map", "the mask"))
        headers.pop("rms", None)  # a WGT/VARIANCE plane's header would name the 1σ map after its old kind
        if rms is not None:
            arrays["rms"] = rms
        else:
            arrays.pop("rms", None)

    def start(self):
        """Check the inputs and settings, then save layers and start the job in a worker thread."""
        if self.watcher.timer.isActive():
            self._say("a job is being followed: stop it or wait for it to end first")
            return None
        try:
            files, arrays, headers = self._sources()
            placeholder = {kind: files.get(kind) or (f"<{kind} layer>" if kind in arrays else None) for kind in self.inputs}
            self._spec(Path("job"), placeholder).check()  # every setting checked before any folder is made
            job_dir = new_job_dir(_path(self.jobs_dir), self.method.value)
        except (ValueError, SettingError, JobSpecError, OSError) as exc:
            self._say(f"error: {exc}", error=True)
            return None

        def work():
            from ..jobs import start_job
            from ..jobs.inputs import save_inputs

            saved = save_inputs(job_dir, arrays, headers) if arrays else {}
            spec = self._spec(job_dir, {kind: saved.get(kind) or files.get(kind) for kind in self.inputs})
            return start_job(spec)

        self.job_dir = job_dir
        self._set_running(True)
        self._say(f"starting {job_dir.name}" + (" (saving layers to the job folder)" if arrays else ""))
        worker = create_worker(work, _connect={"errored": self._on_start_failed}, _start_thread=False)  # no re-raise
        worker.returned.connect(self._on_started)
        worker.start()
        return worker

    def follow(self, job_dir, handle=None) -> None:
        """Show a job's progress and curves (one this widget started, or any job folder)."""
        self.job_dir = Path(job_dir)
        self.preview.follow(self.job_dir)
        self.curves.clear(title=f"job {self.job_dir.name}")
        self._dock_curves()
        self.scores.value = ""
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._set_running(True)
        self.watcher.follow(self.job_dir, handle)

    def stop(self):
        """Ask the job to stop at its next step (it keeps its last checkpoint)."""
        if self.job_dir is not None:
            log.request_cancel(self.job_dir)
            self._say(f"asked {self.job_dir.name} to stop at its next step")

    # -- what the job says --------------------------------------------------------------------------
    def _on_started(self, handle):
        self.job_started.emit(str(handle.job_dir))
        self.follow(handle.job_dir, handle)

    def _on_start_failed(self, exc):
        self._set_running(False)
        self._say(f"error: could not start the job: {exc}", error=True)
        self.job_ended.emit("failed")

    def _on_records(self, records: list[dict]):
        self.curves.add(records)
        state = self.watcher.state
        # the bar follows the method's own done/total (steps, or the clock under a time budget), not
        # epochs: under a budget the epochs cap is no measure of how far the run is
        last = next((r for r in reversed(records) if r.get("kind") == "progress" and r.get("total")), None)
        if last is not None:
            done, total = int(last.get("done") or 0), int(last["total"])
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self._activity_progress(done, total)
        self._say(f"{self.job_dir.name}: {state.summary()}")
        if self.preview_box.value:
            self.preview.update(self.inputs["image"].layer.value)

    def _on_ended(self, status: str):
        state = self.watcher.state
        self._set_running(False)
        if status == "finished":
            # a copy of the model folder: off the GUI thread; errors reported, not re-raised
            failed = lambda exc: self._finish("finished", f"finished, but not registered: {exc}", error=True)
            worker = create_worker(register_job, self.job_dir, _connect={"errored": failed}, _start_thread=False)
            worker.returned.connect(self._on_registered)
            worker.start()
            return
        if status == "failed":
            self._finish(status, f"{self.job_dir.name} failed: {state.error}", error=True)
        else:
            self._finish(status, f"{self.job_dir.name}: {state.summary()} — resume with `galseg jobs resume {self.job_dir}`")

    def _on_registered(self, model):
        self.registered = model
        models_changed()
        self._finish("finished", f"finished: model {model.name!r} is in the models folder")

    def _finish(self, status: str, message: str, error: bool = False):
        self.progress.setVisible(status == "finished")
        if status == "finished":  # done is done: 100 %, whatever the last progress record said
            if self.progress.maximum() <= 0:
                self.progress.setRange(0, 1)
            self.progress.setValue(self.progress.maximum())
        self._say(message, error=error)
        self.scores.value = self._outcome() if status == "finished" else ""
        fit_label_height(self.scores.native)
        self.job_ended.emit(status)

    def _outcome(self) -> str:
        """The finished job's held-out scores and which limit stopped it (from its last log record)."""
        state = self.watcher.state
        last = next((r for r in reversed(state.records) if r.get("kind") == "status"), {}) if state else {}
        metrics = (self.registered.metrics if self.registered is not None else None) or last.get("metrics") or {}
        lines = [scores_text(metrics) or "no held-out scores (the field was too small to keep blocks out)"]
        if last.get("stopped"):
            lines.append(last["stopped"])
        return "\n".join(lines)

    # -- display --------------------------------------------------------------------------------------
    def _dock_curves(self):
        window = getattr(self.viewer, "window", None)
        if window is None or self.curves.parent() is not None:
            return
        window.add_dock_widget(self.curves, name=CURVES_DOCK, area="bottom")

    def _set_running(self, running: bool):
        self.start_button.enabled = not running
        self.stop_button.enabled = running
        self.progress.setVisible(running or self.progress.isVisible())
        if not running and self.activity is not None:
            self.activity.close()
            self.activity = None

    def _activity_progress(self, done: int, total: int):
        """The same progress in napari's activity dock (bottom right), one bar per followed job."""
        from napari.utils import progress

        if self.activity is None or self.activity.total != total:
            if self.activity is not None:
                self.activity.close()
            self.activity = progress(total=total, desc=f"training {self.job_dir.name}")
        self.activity.n = min(done, total)
        self.activity.refresh()

    def _say(self, message: str, error: bool = False):
        self.status.value = message
        fit_label_height(self.status.native)
        if error:
            try:
                from napari.utils.notifications import show_error

                show_error(message)
            except Exception:
                pass
