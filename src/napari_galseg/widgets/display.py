"""DS9 display conventions in napari, each one a setting (:class:`DisplaySettings`).

What an astronomer expects of a FITS viewer, and what napari does otherwise:

- **y up**: FITS row 1 is at the bottom in DS9 and every FITS viewer; napari puts row 0 at the
  top, so every frame looked upside down. The camera's vertical axis is turned (``orientation2d``),
  the data are untouched.
- **1-based FITS pixel coordinates and RA/Dec in the status bar**: napari shows 0-based
  ``[y, x]``. The status is rewritten after napari computes it: ``x 124  y 46`` (the pixel under
  the cursor, FITS convention, the one DS9 and the catalogue files use), RA/Dec from the layer's
  WCS, then the value.
- **Stretches and colormaps**: limits from zscale (the reader's) are kept; the stretch (linear,
  sqrt, log, asinh, power, squared: DS9's formulas) is applied as a colormap on [0, 1] between
  the limits, so it costs nothing on a 25000² frame and the data stay as they are.
- **Outlines**: predictions are drawn as outlines (Labels ``contour``) in instance colours, the
  truth as outlines of one colour, so the two compare at a glance and the image stays visible.
- **Catalogues**: ellipses and points in a bright colour with a visible edge.

:func:`install` applies them to a viewer once (the reader and the sample data call it when they
put a FITS image in a viewer) and keeps applying them to the layers that arrive; the *Display*
dock (:class:`DisplayWidget`) changes them.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._catalog_layers import is_catalog_layer, style_catalog_layer
from ._layers import camera

#: DS9's stretch functions of x in [0, 1] (its default exponents: 1000 for log and power)
STRETCHES = {
    "linear": lambda x: x,
    "sqrt": np.sqrt,
    "log": lambda x: np.log10(1000.0 * x + 1.0) / np.log10(1000.0),
    "asinh": lambda x: np.arcsinh(10.0 * x) / 3.0,
    "power": lambda x: (1000.0 ** x - 1.0) / 1000.0,
    "squared": lambda x: x * x,
}
#: colormaps astronomers use, by the name shown -> napari / matplotlib name
COLORMAPS = {"gray": "gray", "heat": "gist_heat", "cool": "cool", "viridis": "viridis", "inferno": "inferno",
             "magma": "magma", "cubehelix": "cubehelix"}
LIMITS = ("zscale", "minmax", "99.5%")
#: the colour of the truth's outlines (DS9's default region colour)
TRUTH_COLOR = "lime"


@dataclass
class DisplaySettings:
    """The display conventions; the defaults are DS9's."""

    #: FITS/DS9 orientation: row 1 at the bottom (napari's default is row 0 at the top)
    y_up: bool = True
    #: status bar: 1-based FITS pixel x, y and RA/Dec under the cursor (else napari's 0-based [y, x])
    fits_status: bool = True
    #: how values between the contrast limits map to brightness (DS9's definitions)
    stretch: str = "linear"
    #: contrast limits: zscale (IRAF/DS9), min/max, or the 0.25–99.75 % percentiles
    limits: str = "zscale"
    #: colormap of science images
    colormap: str = "gray"
    #: predictions and truth drawn as outlines (Labels contour) rather than filled
    outlines: bool = True

    def check(self) -> None:
        if self.stretch not in STRETCHES:
            raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, got {self.stretch!r}")
        if self.colormap not in COLORMAPS:
            raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}, got {self.colormap!r}")
        if self.limits not in LIMITS:
            raise ValueError(f"limits must be one of {', '.join(LIMITS)}, got {self.limits!r}")


#: the settings new viewers get (the Display dock changes them for the session)
SETTINGS = DisplaySettings()

_installed: dict[int, Any] = {}  # id(viewer) -> weakref to the viewer


def installed(viewer) -> bool:
    ref = _installed.get(id(viewer))
    return ref is not None and ref() is viewer


def install(viewer, settings: DisplaySettings | None = None) -> None:
    """Apply the conventions to ``viewer`` and to every layer it gets from now on (once per viewer)."""
    settings = settings or SETTINGS
    if installed(viewer):
        return
    _installed[id(viewer)] = weakref.ref(viewer)
    apply_orientation(viewer, settings)
    viewer.events.status.connect(lambda event: _fits_status(viewer, settings))
    viewer.layers.events.inserted.connect(lambda event: style_layer(event.value, settings))
    for layer in viewer.layers:
        style_layer(layer, settings)


def apply_orientation(viewer, settings: DisplaySettings) -> None:
    """y up (FITS/DS9) or down (napari's default), by the camera: the data are untouched."""
    camera(viewer).orientation2d = ("up" if settings.y_up else "down", "right")


# -- layers ---------------------------------------------------------------------------------------
def _is_science_image(layer) -> bool:
    return (type(layer).__name__ == "Image" and not getattr(layer, "rgb", False)
            and layer.metadata.get("galseg_kind", "image") == "image")


def style_layer(layer, settings: DisplaySettings | None = None) -> None:
    """Outlines for labels, stretch and colormap for science images, bright catalogues."""
    settings = settings or SETTINGS
    kind = type(layer).__name__
    if kind == "Labels":
        style_labels(layer, settings)
    elif _is_science_image(layer) and (settings.stretch != "linear" or settings.colormap != "gray"):
        layer.colormap = stretched_colormap(settings.colormap, settings.stretch)
    elif is_catalog_layer(layer):
        style_catalog_layer(layer)


def style_labels(layer, settings: DisplaySettings) -> None:
    """Predictions as outlines in instance colours, the truth as outlines of one colour; labels
    being painted (scribbles) stay filled."""
    role = layer.metadata.get("galseg_role")
    if role in ("scribbles", "comparison"):  # painted strokes, outcome areas: filled
        return
    if not settings.outlines:
        layer.contour = 0
        layer.opacity = 0.5
        return
    layer.contour = 1
    layer.opacity = 1.0
    if role == "truth":
        from napari.utils.colormaps import DirectLabelColormap

        layer.colormap = DirectLabelColormap(color_dict={None: TRUTH_COLOR, 0: "transparent"})


def stretched_colormap(colormap: str = "gray", stretch: str = "linear", n: int = 256):
    """A napari colormap: ``colormap`` (a :data:`COLORMAPS` name) seen through ``stretch``."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    base = ensure_colormap(COLORMAPS[colormap])
    if stretch == "linear":
        return base
    x = np.linspace(0.0, 1.0, n)
    colors = base.map(np.clip(STRETCHES[stretch](x), 0.0, 1.0))
    return Colormap(colors=colors, controls=x, name=f"{colormap} {stretch}")


def contrast_limits(layer, limits: str) -> tuple[float, float]:
    """Contrast limits of an image layer from a sample of its full-resolution data."""
    from napari_galseg.io import contrast_limits_zscale, sample_pixels

    from ._layers import level0

    data = level0(layer)
    if limits == "zscale":
        lo, hi = contrast_limits_zscale(data)
    else:
        sample = np.asarray(sample_pixels(data), float)
        sample = sample[np.isfinite(sample)]
        if not sample.size:
            return 0.0, 1.0
        lo, hi = (float(sample.min()), float(sample.max())) if limits == "minmax" \
            else (float(np.percentile(sample, 0.25)), float(np.percentile(sample, 99.75)))
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


# -- the status bar -------------------------------------------------------------------------------
def fits_position_text(row: float, col: float, wcs: Any = None) -> str:
    """``x 124  y 46`` (the pixel under the cursor, 1-based FITS) and ``RA … Dec …`` from ``wcs``."""
    from napari_galseg.io.wcs import pixel_to_sky

    text = f"x {int(np.floor(col + 0.5)) + 1}  y {int(np.floor(row + 0.5)) + 1}"
    if wcs is not None:
        try:
            sky = pixel_to_sky(wcs, col, row)
        except Exception:  # a broken WCS must not break the status bar
            sky = None
        if sky is not None:
            text += f"   {sky.lon_name} {sky.lon_text}  {sky.lat_name} {sky.lat_text}"
    return text


def _wcs_for(viewer, layer):
    if layer.metadata.get("wcs") is not None:
        return layer.metadata["wcs"]
    for other in reversed(viewer.layers):  # a prediction placed over its image: the image's WCS
        if other.metadata.get("wcs") is not None:
            return other.metadata["wcs"]
    return None


def _fits_status(viewer, settings: DisplaySettings) -> None:
    """Rewrite napari's status (a dict for the active layer) in FITS terms, once per update."""
    status = viewer.status
    if not settings.fits_status or not isinstance(status, dict) or status.get("fits"):
        return
    layer = viewer.layers.selection.active
    if layer is None or len(viewer.cursor.position) < 2 or not status.get("coords"):
        return
    position = np.asarray(layer.world_to_data(viewer.cursor.position), float)
    text = fits_position_text(position[-2], position[-1], _wcs_for(viewer, layer))
    value = status.get("value", "")
    viewer.status = {**status, "coordinates": f"{text}: {value}" if value != "" else text, "fits": "1"}


__all__ = ["COLORMAPS", "LIMITS", "SETTINGS", "STRETCHES", "DisplaySettings", "apply_orientation", "contrast_limits",
           "fits_position_text", "install", "installed", "stretched_colormap", "style_layer"]
