"""The export widget: layers → COCO instances / panoptic datasets that load back to the source labels."""
import json

import numpy as np
import pytest

from napari_galseg.io.coco_export import read_coco_instances, read_coco_panoptic
from napari_galseg.synth import make_field

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def field():
    return make_field(200, seed=3)  # 200 = one full and one cut-short patch of 128 per axis


def _widget(make_napari_viewer, field, labels=None):
    from napari_galseg.widgets.export import ExportWidget

    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="img")
    viewer.add_image(field.rms, name="rms")
    viewer.add_labels(field.truth if labels is None else labels, name="truth")
    widget = ExportWidget(viewer)
    widget.image_combo.value = viewer.layers["img"]
    widget.rms_combo.value = viewer.layers["rms"]
    widget.labels_combo.value = viewer.layers["truth"]
    widget.patch.value = 128
    return viewer, widget


@pytest.mark.parametrize("kind", ["coco", "panoptic"])
def test_export_from_layers_loads_back_to_the_source_labels(make_napari_viewer, qtbot, tmp_path, field, kind):
    _, widget = _widget(make_napari_viewer, field)
    widget.kind.value = kind
    widget.output.value = str(tmp_path / kind)
    with qtbot.waitSignal(widget.work_finished, timeout=30000):  # connected before the worker starts
        assert widget.export() is not None
    name = "instances.json" if kind == "coco" else "panoptic.json"
    path = tmp_path / kind / "annotations" / name
    data = json.loads(path.read_text())
    n_galaxies = len(np.unique(field.truth)) - 1
    what = "instance annotations" if kind == "coco" else "panoptic PNGs"
    # what it wrote, in one line: patches, galaxies (patch pieces of them), the folder and its index
    assert widget.status.value.startswith("wrote 4 patches (FITS images) and ") and f"galaxies ({what})" in widget.status.value
    assert widget.status.value.endswith(f"to {path.parent}: index {name}")
    assert int(widget.status.value.split(" and ")[1].split()[0]) >= n_galaxies
    assert len(data["images"]) == 4 and data["images"][0]["channels"] == ["image", "rms"]
    back = read_coco_instances(path) if kind == "coco" else read_coco_panoptic(path)[0]  # pycocotools / PNG + JSON
    np.testing.assert_array_equal(back, field.truth)


def test_labels_that_are_not_instances_are_refused_with_one_line(make_napari_viewer, tmp_path, field):
    mask = (field.truth > 0).astype(np.int32)  # a 0/1 mask of many objects
    _, widget = _widget(make_napari_viewer, field, labels=mask)
    widget.output.value = str(tmp_path / "out")
    assert widget.export() is None
    assert widget.status.value.startswith("error: the labels look like a 0/1 mask") and "\n" not in widget.status.value
    assert not (tmp_path / "out").exists()


def test_an_existing_dataset_is_kept_unless_overwrite(make_napari_viewer, qtbot, tmp_path, field):
    _, widget = _widget(make_napari_viewer, field)
    widget.output.value = str(tmp_path)
    with qtbot.waitSignal(widget.work_finished, timeout=30000):
        widget.export()
    with qtbot.waitSignal(widget.work_finished, timeout=30000):
        widget.export()
    assert widget.status.value.startswith("error:") and "already exists" in widget.status.value
    widget.overwrite.value = True
    with qtbot.waitSignal(widget.work_finished, timeout=30000):
        widget.export()
    assert widget.status.value.startswith("wrote")
    assert "already exists" not in (widget.status.tooltip or "")  # the old error is gone, tooltip included


def test_the_rms_map_the_reader_typed_is_preselected(make_napari_viewer, field):
    from napari_galseg.widgets.export import ExportWidget

    viewer = make_napari_viewer()
    viewer.add_image(field.image, name="img", metadata={"galseg_kind": "image"})
    viewer.add_image(field.rms, name="rms", metadata={"galseg_kind": "rms"})
    widget = ExportWidget(viewer)
    assert widget.image_combo.value.name == "img" and widget.rms_combo.value.name == "rms"
