"""Load a SExtractor ``.sex`` configuration into the photutils widget.

The file goes through the same readers as ``galseg segment photutils --sextractor-config``. When
it can run in SExtractor mode (:func:`~napari_galseg.sextractor.read_sex`: its ``.param`` and
filter files found), the "SExtractor mode" switch is on and a run gives SExtractor's segmentation
and catalogue (widgets/sextractor_mode.py), the form below unused. Off (or when the mode cannot
read the file), the mapped values fill the form of the photutils pipeline
(:func:`~napari_galseg.segmenters.photutils.sextractor.read_sextractor_config`). A short line says
what is not honoured or reproduced; the full report is its tooltip. A file that cannot be used at
all gives one line saying why.
"""
from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, Container, FileEdit, Label

from ..segmenters.photutils.sextractor import SExtractorConfig, SExtractorConfigError, read_sextractor_config
from ..settings import SettingError
from ..sextractor import SexRun, SExtractorInputError, read_sex


def summary(cfg: SExtractorConfig) -> str:
    """One line: what the file set, and the keys it has that the pipeline does not honour."""
    name = cfg.path.name if cfg.path else "configuration"
    line = f"{name}: set {len(cfg.overrides)} parameters"
    if cfg.not_honoured:
        line += "; not honoured: " + ", ".join(cfg.not_honoured)
    if cfg.approximated:
        line += "; approximated: " + ", ".join(cfg.approximated)
    if cfg.weight_image is not None:
        line += f"; WEIGHT_IMAGE {cfg.weight_image.name} ({cfg.weight_type}): choose its rms map as the rms layer"
    return line


def mode_summary(run: SexRun) -> str:
    """One line: SExtractor mode's catalogue, and what it leaves out or does not reproduce."""
    line = run.report().splitlines()[0]
    if run.params.left_out:
        line += "; left out: " + ", ".join(run.params.left_out)
    if run.not_reproduced:
        line += "; not reproduced: " + ", ".join(run.not_reproduced)
    return line


class SExtractorConfigLoader(Container):
    """A ``.sex`` file chooser that fills a segmenter widget's parameters when a file is chosen."""

    def __init__(self, widget):
        self._segmenter_widget = widget
        self.file = FileEdit(mode="r", label="SExtractor config", filter="*.sex", value="",
                             tooltip="load a .sex file: SExtractor mode runs with it, or its detection settings fill the "
                             "parameters below")
        self.mode = CheckBox(value=True, text="SExtractor mode (its segmentation and .param catalogue)",
                             enabled=False, tooltip="on: SExtractor's own steps with the file's settings, the "
                             "catalogue as a points layer and a table (the parameters below are not used); off: "
                             "the photutils pipeline with the file's settings mapped to the parameters below")
        self.report = Label(value="")
        super().__init__(widgets=[self.file, self.mode, self.report], labels=True)
        self.config: SExtractorConfig | None = None
        #: the file read for SExtractor mode; None when its .param or filter cannot be found
        self.sex_run: SexRun | None = None
        self._mode_error = ""
        self.file.changed.connect(lambda value: self.load(value))
        self.mode.changed.connect(lambda _value: self._show_mode())

    def active_run(self) -> SexRun | None:
        """What a run of the widget goes through: the SExtractor-mode file, or None (the pipeline)."""
        return self.sex_run if self.mode.value else None

    def _show_mode(self) -> None:
        """The report line and the form follow the mode: the form is not used in SExtractor mode."""
        running = self.active_run()
        self._segmenter_widget.params.enabled = running is None
        if running is not None:
            self.report.value = mode_summary(running)
            self.report.tooltip = running.report()
        elif self.config is not None:
            self.report.value = summary(self.config) + (f"; SExtractor mode: {self._mode_error}" if self._mode_error else "")
            self.report.tooltip = self.config.report()

    def load(self, path=None) -> SExtractorConfig | None:
        """Read ``path`` (default: the chosen file) and fill the form; None when it cannot be used."""
        path = Path(path if path is not None else self.file.value)
        if not str(path) or path == Path(".") or path.is_dir():
            return None
        try:
            cfg = read_sextractor_config(path)
        except SExtractorConfigError as exc:
            self.report.value = self.report.tooltip = ""
            self.config = self.sex_run = None
            self.mode.enabled = False
            self._segmenter_widget.params.enabled = True
            self._segmenter_widget._report_error(exc)
            return None
        try:
            self.sex_run, self._mode_error = read_sex(path), ""
        except SExtractorInputError as exc:  # e.g. no .param file: the mapping still fills the form
            self.sex_run, self._mode_error = None, str(exc)
        self.config = cfg
        self.mode.enabled = self.sex_run is not None
        try:
            base = self._segmenter_widget.current_params()
        except SettingError:  # a bad entry in the form: the file's values over the defaults
            base = None
        self._segmenter_widget.params.set_values(cfg.params(base))
        self._show_mode()
        self._segmenter_widget.status.value = f"loaded {path.name}"
        return cfg
