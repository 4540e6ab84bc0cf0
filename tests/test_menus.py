"""Menus: where the widgets and "Segment the selected image" appear in napari, and that they work."""
from pathlib import Path

import numpy as np
import pytest

import napari_galseg

MANIFEST = Path(napari_galseg.__file__).parent / "napari.yaml"


def test_menu_items_point_at_declared_commands_in_menus_napari_opens():
    from napari._app_model.constants._menus import is_menu_contributable
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)  # validates against npe2's schema
    commands = {c.id for c in manifest.contributions.commands}
    for menu_id, items in manifest.contributions.menus.items():
        assert is_menu_contributable(menu_id), f"napari ignores items in {menu_id}"
        assert {item.command for item in items} <= commands
    titles = [w.display_name for w in manifest.contributions.widgets]
    groups = [t.split(":")[0] for t in titles]
    assert groups == sorted(groups, key=["Preprocess", "Segment", "Train", "Measure", "Export"].index)  # grouped, in order


def _menu(bar_or_menu, *path):
    """The QMenu at ``path`` (titles without '&') in the menu bar."""
    menu = bar_or_menu
    for title in path:
        actions = {a.text().replace("&", ""): a for a in menu.actions()}
        assert title in actions, f"{title!r} not in {sorted(actions)}"
        menu = actions[title].menu()
        menu.aboutToShow.emit()  # app-model menus fill and update enablement when shown
    return menu


def _texts(menu):
    return [a.text().replace("&&", "&") for a in menu.actions() if a.text()]


@pytest.mark.gui
def test_widgets_sit_in_the_plugins_and_layers_menus(make_napari_viewer):
    viewer = make_napari_viewer()
    bar = viewer.window._qt_window.menuBar()
    plugin_items = _texts(_menu(bar, "Plugins", "Galaxy segmentation"))
    assert plugin_items[0].startswith("Preprocess: normalise") and plugin_items[-1].startswith("Export:")
    segment = _texts(_menu(bar, "Layers", "Segment"))
    assert any(t.startswith("Segment the selected image with photutils") for t in segment)
    assert any(t.startswith("Segment: U-Net") for t in segment)
    assert any(t.startswith("Measure: metrics") for t in _texts(_menu(bar, "Layers", "Measure")))
    assert any(t.startswith("Segment: Mask R-CNN") for t in segment) and any(t.startswith("Segment: DETR") for t in segment)
    assert any(t.startswith("Export: COCO / panoptic dataset") for t in _texts(_menu(bar, "Layers", "Data")))
    assert any(t.startswith("Export: COCO / panoptic dataset") for t in _texts(_menu(bar, "File", "IO Utilities")))
    assert any(t.startswith("Preprocess: normalise") for t in _texts(_menu(bar, "Layers", "Filter")))


@pytest.mark.gui
def test_segment_selected_image_runs_photutils_in_its_dock(make_napari_viewer, qtbot):
    from napari_galseg.synth import make_field
    from napari_galseg.widgets.menu_actions import segment_selected_image

    field = make_field(256, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(field.rms, name="rms", metadata={"galseg_kind": "rms"})
    viewer.add_image(field.image, name="img", metadata={"galseg_kind": "image"})
    viewer.layers.selection.active = viewer.layers["rms"]  # what is selected is segmented
    viewer.layers.selection.active = viewer.layers["img"]
    bar = viewer.window._qt_window.menuBar()
    action = next(a for a in _menu(bar, "Layers", "Segment").actions()
                  if a.text().startswith("Segment the selected image"))
    assert action.isEnabled()
    _, widget = viewer.window.add_plugin_dock_widget("napari-galseg", "Segment: photutils")
    with qtbot.waitSignal(widget.work_finished, timeout=60000):  # connected before the worker starts
        worker = segment_selected_image(viewer)
    assert worker is not None and widget.image_combo.value is viewer.layers["img"]
    labels = viewer.layers["photutils"]
    assert labels.metadata["source_layer"] == "img" and np.asarray(labels.data).max() > 10


@pytest.mark.gui
def test_segment_selected_image_needs_an_image(make_napari_viewer):
    from napari_galseg.widgets.menu_actions import segment_selected_image

    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((32, 32), np.int32), name="labels")
    action = next(a for a in _menu(viewer.window._qt_window.menuBar(), "Layers", "Segment").actions()
                  if a.text().startswith("Segment the selected image"))
    assert not action.isEnabled()  # greyed out unless the active layer is an image
    assert segment_selected_image(viewer) is None  # and harmless if called anyway
