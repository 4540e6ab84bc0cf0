"""Dock widget: sky coordinates under the cursor and the FITS header of the layer.

The WCS comes from ``layer.metadata["wcs"]`` (set by our FITS reader) of the active layer, or of
the top-most layer that has one. Coordinates are shown in the widget and, optionally, in a text
overlay on the canvas (napari rewrites its status bar on every mouse move, so we do not fight it).
"""
from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from napari_galseg.io.wcs import SkyPosition, pixel_to_sky

from ._fit import install_docking


def _header_text(header: Any) -> list[str]:
    if header is None:
        return []
    if hasattr(header, "cards"):
        return [str(card) for card in header.cards]
    return [f"{key} = {value}" for key, value in dict(header).items()]


class WcsInfoWidget(QWidget):
    """RA/Dec (sexagesimal and degrees) under the cursor, and a filterable header viewer."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        install_docking(napari_viewer)
        self.layer_label = QLabel("No layer with a WCS")
        self.layer_label.setWordWrap(True)
        self.coords_label = QLabel("Move the cursor over an image with a WCS")
        self.coords_label.setWordWrap(True)
        self.coords_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.overlay_box = QCheckBox("Show coordinates on the canvas")
        self.overlay_box.setChecked(True)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter header cards (e.g. CRVAL, DATE)")
        self.filter_edit.setClearButtonEnabled(True)
        self.header_view = QPlainTextEdit()
        self.header_view.setReadOnly(True)
        # long cards wrap at the dock's width: no sideways scrolling in a dock (issue 29)
        self.header_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        font = self.header_view.font()
        font.setFamily("monospace")
        self.header_view.setFont(font)

        layout = QVBoxLayout(self)
        for widget in (self.layer_label, self.coords_label, self.overlay_box, QLabel("FITS header"),
                       self.filter_edit, self.header_view):
            layout.addWidget(widget)

        self.last_position: SkyPosition | None = None
        self._header_lines: list[str] = []
        self._layer = None
        self.header_layer = None  # whose header is shown
        self.filter_edit.textChanged.connect(self._show_header)
        self.overlay_box.toggled.connect(self._on_overlay_toggled)
        napari_viewer.cursor.events.position.connect(self._on_cursor)
        napari_viewer.layers.selection.events.active.connect(self._on_layers_changed)
        napari_viewer.layers.events.inserted.connect(self._on_layers_changed)
        napari_viewer.layers.events.removed.connect(self._on_layers_changed)
        self._on_layers_changed()

    # -- which layer
    def source_of(self, layer):
        """``layer`` when it carries a header or a WCS, else the image it came from: a prediction's
        ``source_layer``, a catalogue's labels layer (and its image); None when none is found."""
        for _ in range(4):  # catalogue -> labels -> image, and no loops
            if layer is None:
                return None
            if layer.metadata.get("header") is not None or layer.metadata.get("wcs") is not None:
                return layer
            name = layer.metadata.get("source_layer")
            if name is None and str(layer.name).endswith(" catalog"):
                name = str(layer.name)[: -len(" catalog")]
            layer = self.viewer.layers[name] if name is not None and name in self.viewer.layers else None
        return None

    def wcs_layer(self):
        """The active layer's WCS (its own, or the image's it came from), else the top-most layer's."""
        active = self.source_of(self.viewer.layers.selection.active)
        if active is not None and active.metadata.get("wcs") is not None:
            return active
        for layer in reversed(self.viewer.layers):
            if layer.metadata.get("wcs") is not None:
                return layer
        return None

    def _on_layers_changed(self, event: Any = None) -> None:
        active = self.viewer.layers.selection.active
        source = self.source_of(active)
        header_layer = source if source is not None and source.metadata.get("header") is not None else self.wcs_layer()
        self._header_lines = _header_text(header_layer.metadata.get("header")) if header_layer else []
        self.header_layer = header_layer
        self._show_header()
        self._layer = self.wcs_layer()
        text = f"WCS of layer: {self._layer.name}" if self._layer else "No layer with a WCS"
        if active is not None and header_layer is not None and header_layer is not active:
            text += f" (header of {header_layer.name!r}, where {active.name!r} came from)"
        self.layer_label.setText(text)

    def _show_header(self, *_: Any) -> None:
        needle = self.filter_edit.text().strip().lower()
        lines = [line for line in self._header_lines if needle in line.lower()] if needle else self._header_lines
        self.header_view.setPlainText("\n".join(lines))

    # -- coordinates
    def sky_at(self, world_position: Any) -> SkyPosition | None:
        """Sky position of a viewer (world) position, via the WCS layer's data coordinates."""
        layer = self._layer or self.wcs_layer()
        if layer is None:
            return None
        data_position = layer.world_to_data(world_position)
        if len(data_position) < 2:
            return None
        row, col = data_position[-2], data_position[-1]
        return pixel_to_sky(layer.metadata["wcs"], col, row)

    def _on_cursor(self, event: Any = None) -> None:
        try:
            sky = self.sky_at(self.viewer.cursor.position)
        except Exception as exc:  # a broken WCS must not spam tracebacks on every mouse move
            sky = None
            self.coords_label.setText(f"WCS error: {exc}")
        self.last_position = sky
        if sky is not None:
            self.coords_label.setText(
                f"{sky.lon_name} {sky.lon_text}   {sky.lat_name} {sky.lat_text}\n"
                f"{sky.lon_deg:.6f}°   {sky.lat_deg:+.6f}°   ({sky.frame})")
        self._update_overlay()

    def _text_overlay(self):
        canvas = getattr(self.viewer, "canvas", None)
        overlays = getattr(canvas, "overlays", None)
        return getattr(overlays, "text", None) or self.viewer.text_overlay

    def _update_overlay(self) -> None:
        if not self.overlay_box.isChecked():
            return
        overlay = self._text_overlay()
        sky = self.last_position
        overlay.text = f"{sky.lon_name} {sky.lon_text}  {sky.lat_name} {sky.lat_text}" if sky else ""
        overlay.visible = True

    def _on_overlay_toggled(self, checked: bool) -> None:
        overlay = self._text_overlay()
        if not checked:
            overlay.visible = False
        self._update_overlay()
