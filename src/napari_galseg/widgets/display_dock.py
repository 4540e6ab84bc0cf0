"""Dock widget: the display conventions of :mod:`napari_galseg.widgets.display`, one click each.

Stretch buttons (linear, sqrt, log, asinh, power, squared) act at once on the science images;
limits and colormap are lists; y up, FITS coordinates and outlines are check boxes. What is
chosen here is also what the next files opened in this session get.
"""
from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import display
from ._fit import install_docking
from .display import COLORMAPS, LIMITS, STRETCHES


class DisplayWidget(QWidget):
    """DS9-style display settings for the viewer's FITS images and labels."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.settings = display.SETTINGS
        display.install(napari_viewer, self.settings)

        self.stretch_buttons = QButtonGroup(self)
        stretches = QGridLayout()
        for i, name in enumerate(STRETCHES):
            button = QPushButton(name)
            button.setCheckable(True)
            button.setChecked(name == self.settings.stretch)
            button.setToolTip(f"{name} stretch between the contrast limits (DS9's formula)")
            self.stretch_buttons.addButton(button, i)
            stretches.addWidget(button, i // 3, i % 3)
        self.limits = QComboBox()
        self.limits.addItems(LIMITS)
        self.limits.setCurrentText(self.settings.limits)
        self.limits.setToolTip("zscale: IRAF/DS9's limits from a sample; minmax; 99.5%: the 0.25-99.75 percentiles")
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.colormap.setCurrentText(self.settings.colormap)
        self.y_up = QCheckBox("y up (FITS/DS9 orientation)")
        self.y_up.setChecked(self.settings.y_up)
        self.fits_status = QCheckBox("status bar: FITS x, y (1-based) and RA/Dec")
        self.fits_status.setChecked(self.settings.fits_status)
        self.outlines = QCheckBox("labels as outlines")
        self.outlines.setChecked(self.settings.outlines)
        self.outlines.setToolTip("predictions: outlines in instance colours; truth: outlines in one colour")

        form = QFormLayout()
        form.addRow("limits", self.limits)
        form.addRow("colormap", self.colormap)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("stretch"))
        layout.addLayout(stretches)
        layout.addLayout(form)
        for box in (self.y_up, self.fits_status, self.outlines):
            layout.addWidget(box)
        layout.addStretch(1)

        self.stretch_buttons.idClicked.connect(lambda i: self.set_stretch(list(STRETCHES)[i]))
        self.limits.currentTextChanged.connect(self.set_limits)
        self.colormap.currentTextChanged.connect(self.set_colormap)
        self.y_up.toggled.connect(self._on_y_up)
        self.fits_status.toggled.connect(lambda on: setattr(self.settings, "fits_status", bool(on)))
        self.outlines.toggled.connect(self._on_outlines)

    # -- actions (also called by scripts and tests) -------------------------------------------------
    def images(self) -> list:
        return [layer for layer in self.viewer.layers if display._is_science_image(layer)]

    def set_stretch(self, stretch: str) -> None:
        self.settings.stretch = stretch
        self.settings.check()
        self.stretch_buttons.button(list(STRETCHES).index(stretch)).setChecked(True)
        self._restyle_images()

    def set_colormap(self, name: str) -> None:
        self.settings.colormap = name
        self.settings.check()
        if self.colormap.currentText() != name:
            self.colormap.setCurrentText(name)
        self._restyle_images()

    def set_limits(self, limits: str) -> None:
        self.settings.limits = limits
        self.settings.check()
        if self.limits.currentText() != limits:
            self.limits.setCurrentText(limits)
        for layer in self.images():
            layer.contrast_limits = display.contrast_limits(layer, limits)

    def _restyle_images(self) -> None:
        colormap = display.stretched_colormap(self.settings.colormap, self.settings.stretch)
        for layer in self.images():
            layer.colormap = colormap

    def _on_y_up(self, on: bool) -> None:
        self.settings.y_up = bool(on)
        display.apply_orientation(self.viewer, self.settings)

    def _on_outlines(self, on: bool) -> None:
        self.settings.outlines = bool(on)
        for layer in self.viewer.layers:
            if type(layer).__name__ == "Labels":
                display.style_labels(layer, self.settings)
