"""Dock widget "Frame conditions": what ``galseg describe`` measures, for an image layer.

Thin: it picks the layers, runs :func:`napari_galseg.synth.conditions.measure_conditions` in a
worker thread (the same call as the CLI) and shows the result, one row per quantity with a tooltip
saying what it means. The result is also kept in the image layer's ``metadata["conditions"]`` so
other widgets (training like this frame, a model's range check) need not measure again.
"""
from __future__ import annotations

from typing import Any

from napari.layers import Image
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_galseg.widgets._layers import level0

NO_RMS = "(estimate from the image)"

#: (label, tooltip, text of the value) for each row of the results table
ROWS: tuple[tuple[str, str, Any], ...] = (
    ("PSF FWHM", "Full width at half maximum of the PSF in pixels (arcsec in brackets when the image has a WCS)",
     lambda c: f"{c.psf_fwhm_px:.3f} px" + (f" ({c.psf_fwhm_px * c.pixel_scale_arcsec:.3g}\")"
                                              if c.pixel_scale_arcsec else "")),
    ("PSF measured from", "stars: the stellar locus of isolated, unsaturated point sources; narrowest: too few "
     "stars, the narrowest sources stand in (an upper limit); given: set by hand; default: nothing to measure",
     lambda c: f"{c.psf_flag} ({c.psf_n_sources} sources)"),
    ("PSF profile", "Moffat β fitted to the stars; β ≥ 4 (or a near-Gaussian core) reads as Kolmogorov-like "
     "atmospheric seeing", lambda c: c.psf_kind + (f", β {c.psf_moffat_beta:.2f}" if c.psf_moffat_beta else "")),
    ("PSF ellipticity", "1 − b/a of the stars' light (median); 0 is round",
     lambda c: f"{c.psf_ellipticity:.3f}"),
    ("Sky", "Median of the smooth background (σ-clipped mesh of 64 px boxes), image units",
     lambda c: f"{c.sky:.4g}"),
    ("Noise (1σ)", "Median 1σ noise per pixel, image units: from the rms layer, else estimated from the sky",
     lambda c: f"{c.noise_rms:.4g} ({'rms layer' if c.noise_from_map else 'estimated'})"),
    ("Pixel scale", "Arcseconds per pixel from the image's WCS; '-' when it has none (lengths in pixels)",
     lambda c: f"{c.pixel_scale_arcsec:.4g}\"/px" if c.pixel_scale_arcsec else "-"),
    ("Saturation", "SATURATE-like header card, image units ('-' when the header has none)",
     lambda c: "-" if c.saturation is None else f"{c.saturation:.6g}"),
    ("Zero point", "MAGZERO / MAGZPT / ZP-like header card, magnitudes ('-' when the header has none)",
     lambda c: "-" if c.zero_point is None else f"{c.zero_point:.4g}"),
    ("Source density", "Sources detected at 4σ of the PSF-matched filtered image (5 connected pixels), per million pixels",
     lambda c: f"{c.density_per_mpix:.1f} / Mpix ({c.n_detected})"),
    ("Counts slope", "Slope of the number counts dN/dF ∝ F^-slope above the turnover flux (a depth measure)",
     lambda c: "-" if c.flux_slope is None else f"{c.flux_slope:.2f} above {c.flux_turnover:.4g}"),
)


def _measure(image, rms, header, wcs):
    """Worker body: the core measurement, nothing napari."""
    from napari_galseg.synth.conditions import measure_conditions

    return measure_conditions(image, rms, header=header, wcs=wcs)


class ConditionsDock(QWidget):
    """Pick an image (and optionally an rms layer), press Measure, read the frame's conditions."""

    #: the FrameConditions of a finished measurement, and the message of a failed one
    measured = Signal(object)
    failed = Signal(str)

    def __init__(self, napari_viewer, synchronous: bool = False):
        super().__init__()
        self.viewer = napari_viewer
        #: measure in the GUI thread (scripts); the default uses a worker thread
        self.synchronous = synchronous
        self.conditions = None
        self._worker = None
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("The frame to measure (its central 4096² px on survey-size frames)")
        self.rms_combo = QComboBox()
        self.rms_combo.setToolTip("A 1σ noise map on the same pixel grid; without one the noise is estimated")
        self.measure_button = QPushButton("Measure")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.table = QTableWidget(len(ROWS), 2)
        self.table.setHorizontalHeaderLabels(["quantity", "value"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        for row, (label, tip, _) in enumerate(ROWS):
            for col, text in enumerate((label, "")):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.table.setItem(row, col, item)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("rms", self.rms_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.measure_button)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        layout.addWidget(self.notes)
        self.measure_button.clicked.connect(self.measure)
        napari_viewer.layers.events.inserted.connect(self._refresh)
        napari_viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    def _refresh(self, *_: Any) -> None:
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        for combo, names in ((self.image_combo, images), (self.rms_combo, [NO_RMS, *images])):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        if self.rms_combo.currentText() == "" and self.rms_combo.count():
            self.rms_combo.setCurrentIndex(0)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def measure(self) -> None:
        """Measure the chosen layer (in a worker unless ``synchronous``)."""
        name = self.image_combo.currentText()
        if not name or name not in self.viewer.layers or self._worker is not None:
            if not name:
                self.status.setText("Open an image layer first.")
            return
        layer = self.viewer.layers[name]
        rms_name = self.rms_combo.currentText()
        rms = level0(self.viewer.layers[rms_name]) if rms_name not in ("", NO_RMS) else None
        meta = layer.metadata or {}
        args = (level0(layer), rms, meta.get("header"), meta.get("wcs"))
        self.status.setText(f"measuring {name}…")
        self.measure_button.setEnabled(False)
        if self.synchronous:
            try:
                result = _measure(*args)
            except Exception as exc:
                self._on_error(exc)
            else:
                self._on_result(result, name)
            self.measure_button.setEnabled(True)
            return
        from napari.qt.threading import create_worker

        worker = create_worker(_measure, *args, _connect={"errored": self._on_error}, _start_thread=False)
        worker.returned.connect(lambda result: self._on_result(result, name))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _on_finished(self) -> None:
        self._worker = None
        self.measure_button.setEnabled(True)

    def _on_error(self, exc: BaseException) -> None:
        message = " ".join(str(exc).split()) or type(exc).__name__
        self.status.setText(f"error: {message}")
        self.failed.emit(message)

    def _on_result(self, conditions, name: str) -> None:
        self.conditions = conditions
        for row, (_, _, text) in enumerate(ROWS):
            self.table.item(row, 1).setText(text(conditions))
        self.notes.setText("\n".join(f"• {n}" for n in conditions.notes))
        if name in self.viewer.layers:
            self.viewer.layers[name].metadata["conditions"] = conditions.to_dict()
        self.status.setText(f"{name}: {conditions.shape[0]}×{conditions.shape[1]} px measured")
        self.measured.emit(conditions)
