"""The photutils widget's SExtractor mode: a ``.sex`` run gives SExtractor's segmentation as a Labels
layer, its catalogue as a Points layer whose features are the ``.param`` columns, and a table.

The extraction is the CLI's (``galseg segment photutils IMG --sextractor-config X.sex --catalog
OUT``: :func:`napari_galseg.sextractor.run_frame`), in a worker; nothing is written, the catalogue
goes to the layers (columns named as astropy reads the catalogue file: :mod:`napari_galseg.sextractor.table`).
A run on the field of view extracts the visible crop alone, as SExtractor would that cut-out: the
layers sit at the crop's place, and X_IMAGE / Y_IMAGE count from the crop's corner.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..progress import reporter
from ..sextractor import SexRun, catalog_columns, run_frame
from ..sextractor.table import flat_columns, source_positions
from ._catalog_layers import show_catalog_layer
from .catalog_table import show_catalog_table

#: marker diameters, in data pixels: twice the profile's RMS width across, at least this many
MIN_MARKER = 8.0


def _crop_wcs(wcs, region):
    """The frame's WCS for a crop (ALPHA/DELTA_J2000 of its sources); None without a celestial WCS."""
    if not hasattr(wcs, "pixel_to_world"):
        return None
    if region[0].start == 0 and region[1].start == 0:
        return wcs
    try:
        return wcs.slice(region)
    except Exception:  # a WCS that cannot be cut: ALPHA/DELTA_J2000 are written as 0, as SExtractor does
        return None


def marker_sizes(columns: dict[str, np.ndarray]) -> np.ndarray | float:
    """Diameters of 4 × A_IMAGE (about the isophotal extent), never below :data:`MIN_MARKER`."""
    a = np.asarray(columns.get("A_IMAGE", []), float)
    return np.maximum(4.0 * a, MIN_MARKER) if len(a) else MIN_MARKER


def start_run(widget, run: SexRun, field_of_view: bool):
    """Extract the widget's image (or its field of view) with ``run``'s settings in a worker."""
    try:
        image_layer, image, rms, region = widget._inputs(field_of_view)
    except ValueError as exc:
        widget._report_error(exc)
        return None
    header = image_layer.metadata.get("header")
    wcs = _crop_wcs(image_layer.metadata.get("wcs"), region)
    quiet = dataclasses.replace(run, catalog_type="NONE")  # no file: the catalogue goes to the layers
    report = reporter(widget._relay, widget._cancel_event)
    use_rms = rms is not None and not run.settings.weight.on

    def work():
        crop = np.asarray(image[region], dtype=np.float32)
        this = quiet
        if use_rms:  # the noise layer is the weight map, as `--rms` is on the command line
            weight = dataclasses.replace(run.settings.weight, type="MAP_RMS",
                                         image=np.asarray(rms[region], dtype=np.float32))
            this = dataclasses.replace(quiet, settings=dataclasses.replace(run.settings, weight=weight))
        result = run_frame(this, crop, None, header=header, wcs=wcs,
                           progress=lambda done, total: report(done, total, f"SExtractor mode: row {done} of {total}"))
        table = flat_columns(catalog_columns(result.columns, run.params, wcs))
        return result.segmentation, source_positions(result.columns), table, marker_sizes(result.columns)

    def done(out):
        show_result(widget, run, out, image_layer, region, field_of_view, rms is not None and not use_rms)
        if use_rms:
            widget.status.value += "\nweights: the noise layer, as WEIGHT_TYPE MAP_RMS (thresholds follow it)"

    return widget._start(work, done)


def show_result(widget, run: SexRun, out, image_layer, region, field_of_view: bool, had_rms: bool):
    """The segmentation (replacing an earlier run of the same file), the catalogue layer and its table."""
    import pandas as pd


    labels, positions, table, sizes = out
    params = {"sextractor_config": str(run.path), "mode": "SExtractor"}
    name = "sextractor" + (" [view]" if field_of_view else "")
    layer, translate, outcome = widget.put_labels(labels, image_layer, region, field_of_view, params, name=name)
    layer.features = {}  # an earlier run's scores do not describe these labels
    points = show_catalog_layer(widget.viewer, positions, pd.DataFrame(table), layer.name, translate,
                                image_layer.scale[-2:], size=sizes)
    points.metadata["sextractor_config"] = str(run.path)
    show_catalog_table(widget.viewer, points)
    widget.viewer.layers.selection.active = points  # hovering a source shows its columns
    widget.status.value = (f"{layer.name}: {len(positions)} sources (SExtractor mode, {len(table)} columns) "
                           f"— {outcome}; the table lists the catalogue")
    notes = [f"not reproduced: {key}: {why}" for key, why in run.not_reproduced.items()]
    if had_rms:
        notes.append(f"the noise layer is not used: the .sex file's WEIGHT_TYPE {run.settings.weight.type} gives "
                     "the weights")
    if field_of_view:
        notes.append("field of view: X_IMAGE / Y_IMAGE count from the view's corner")
    if notes:
        widget.status.value += "\n" + "\n".join(notes)
        layer.metadata["notes"] = notes
    return layer, points
