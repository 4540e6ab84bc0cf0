"""Commands napari runs from its menus (``menus`` in ``napari.yaml``), beside the dock widgets.

napari 0.9 lets plugins add items to the Layers menu's submenus (Filter, Segment, Measure,
Metadata, ...) but not yet to the layer list's right-click menu (``napari/layers/context`` is
not contributable, NAP-6) nor into submenus of a plugin's own Plugins entry. "Segment the
selected image" therefore sits in Layers ▸ Segment, enabled when the active layer is an image,
and "RGB composite from 3 band layers" in Layers ▸ Visualize.
"""
from __future__ import annotations

from napari.layers import Image
from napari.viewer import Viewer

#: the manifest name of the plugin and the display name of the photutils dock (napari.yaml)
PLUGIN = "napari-galseg"
PHOTUTILS_DOCK = "Segment: photutils"


def segment_selected_image(viewer: Viewer):
    """Segment the active image layer with photutils' defaults, in its dock (progress, cancel).

    The dock opens (or comes forward) with the image and, when the reader found one, its rms map
    preselected, then segments the whole image in a worker; returns the worker (None when the
    active layer is not an image).
    """
    layer = viewer.layers.selection.active
    if not isinstance(layer, Image):
        from napari.utils.notifications import show_info

        show_info("Segment the selected image: select an image layer in the layer list first")
        return None
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, PHOTUTILS_DOCK)
    dock.show()
    dock.raise_()
    widget.image_combo.value = layer
    rms = widget.rms_combo.value
    if rms is not None and tuple(rms.data.shape) != tuple(layer.data.shape):
        widget.rms_combo.value = None
    return widget.run(field_of_view=False)


def rgb_composite_from_layers(viewer: Viewer):
    """Add an RGB layer made of three band layers of one field (Lupton asinh, astropy's
    ``make_lupton_rgb``, lazy: :func:`napari_galseg.frames.bands.rgb_of_bands`), red to blue by
    filter when the names or headers tell it. The three selected image layers, else the only three
    images of the viewer; returns the new layer (None with a message when there are not three)."""
    from napari.utils.notifications import show_info

    from ..frames.bands import rgb_of_bands
    from ._layers import level0

    chosen = [layer for layer in viewer.layers.selection if isinstance(layer, Image) and not layer.rgb]
    if len(chosen) != 3:
        images = [layer for layer in viewer.layers if isinstance(layer, Image) and not layer.rgb
                  and layer.metadata.get("galseg_kind") != "rms"]
        chosen = images if len(images) == 3 else []
    if len(chosen) != 3:
        show_info("RGB composite: select three band layers of one field (e.g. g, r and i) in the layer list")
        return None
    chosen = [layer for layer in viewer.layers if layer in chosen]  # the layer list's order
    try:
        rgb, order = rgb_of_bands([level0(layer) for layer in chosen], [layer.name for layer in chosen],
                                  headers=[layer.metadata.get("header") for layer in chosen],
                                  wcs=[_celestial(layer.metadata.get("wcs")) for layer in chosen])
    except ValueError as exc:
        show_info(f"RGB composite: {exc}")
        return None
    first = chosen[order[0]]
    names = [chosen[i].name for i in order]
    return viewer.add_image(rgb, rgb=True, name=f"RGB ({', '.join(names)})", translate=first.translate[-2:],
                            scale=first.scale[-2:],
                            metadata={"galseg_kind": "rgb", "bands": names,
                                      **{k: first.metadata[k] for k in ("header", "wcs") if k in first.metadata}})


def _celestial(wcs):
    """A layer's WCS when it has a celestial part (what the bands' grids are compared by), else None."""
    return wcs if getattr(wcs, "has_celestial", False) else None
