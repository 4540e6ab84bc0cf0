"""Load a SExtractor ``.sex`` configuration into the photutils widget's parameter form.

The file goes through the same reader as ``galseg segment photutils --sextractor-config``
(:func:`~napari_galseg.segmenters.photutils.sextractor.read_sextractor_config`): the mapped values
fill the form (the user can still change them), and a short line says what the pipeline does not
honour; the full report is its tooltip. A file that cannot be used gives one line saying why.
"""
from __future__ import annotations

from pathlib import Path

from magicgui.widgets import Container, FileEdit, Label

from ..segmenters.photutils.sextractor import SExtractorConfig, SExtractorConfigError, read_sextractor_config
from ..settings import SettingError


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


class SExtractorConfigLoader(Container):
    """A ``.sex`` file chooser that fills a segmenter widget's parameters when a file is chosen."""

    def __init__(self, widget):
        self._segmenter_widget = widget
        self.file = FileEdit(mode="r", label="SExtractor config", filter="*.sex", value="",
                             tooltip="load a .sex file: its detection settings fill the parameters below")
        self.report = Label(value="")
        super().__init__(widgets=[self.file, self.report], labels=True)
        self.file.changed.connect(lambda value: self.load(value))

    def load(self, path=None) -> SExtractorConfig | None:
        """Read ``path`` (default: the chosen file) and fill the form; None when it cannot be used."""
        path = Path(path if path is not None else self.file.value)
        if not str(path) or path == Path(".") or path.is_dir():
            return None
        try:
            cfg = read_sextractor_config(path)
        except SExtractorConfigError as exc:
            self.report.value = self.report.tooltip = ""
            self._segmenter_widget._report_error(exc)
            return None
        try:
            base = self._segmenter_widget.current_params()
        except SettingError:  # a bad entry in the form: the file's values over the defaults
            base = None
        self._segmenter_widget.params.set_values(cfg.params(base))
        self.report.value = summary(cfg)
        self.report.tooltip = cfg.report()
        self._segmenter_widget.status.value = f"loaded {path.name}"
        return cfg
