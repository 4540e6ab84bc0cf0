"""Commands napari runs from its menus (``menus`` in ``napari.yaml``), beside the dock widgets.

napari 0.9 lets plugins add items to the Layers menu's submenus (Filter, Segment, Measure,
Metadata, ...) but not yet to the layer list's right-click menu (``napari/layers/context`` is
not contributable, NAP-6) nor into submenus of a plugin's own Plugins entry. "Segment the
selected image" therefore sits in Layers ▸ Segment, enabled when the active layer is an image.
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
