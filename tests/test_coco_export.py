"""COCO instances / panoptic exports load back (pycocotools, panoptic JSON + PNG) to the source labels."""
import json

import numpy as np
import pytest

from napari_galseg.io.coco_export import (
    NotInstancesError,
    export_coco_instances,
    export_coco_panoptic,
    ids_of_rgb,
    read_coco_instances,
    read_coco_panoptic,
)
from napari_galseg.synth import make_field


@pytest.fixture(scope="module")
def field():
    return make_field(300, seed=3)  # 300 = one full and one cut-short patch of 256 per axis


def test_instances_round_trip_exactly(tmp_path, field):
    path = export_coco_instances(tmp_path, field.image, field.truth, field.rms, patch=128)
    data = json.loads(path.read_text())
    assert {c["name"] for c in data["categories"]} == {"galaxy"}
    assert len(data["images"]) == 9  # 128, 128, 44 per axis
    ann = data["annotations"][0]
    assert {"segmentation", "bbox", "area", "iscrowd", "category_id", "image_id", "id"} <= set(ann)
    assert isinstance(ann["segmentation"]["counts"], str)  # compressed RLE
    back = read_coco_instances(path)
    np.testing.assert_array_equal(back, field.truth)
    from astropy.io import fits

    pixels = fits.getdata(tmp_path / "images" / data["images"][0]["file_name"])
    assert pixels.shape == (2, 128, 128)
    np.testing.assert_array_equal(pixels[0], field.image[:128, :128])


def test_panoptic_round_trip_exactly(tmp_path, field):
    image = field.image.copy()
    image[5:9, 200:210] = np.nan  # void pixels (unobserved)
    truth = field.truth.copy()
    truth[5:9, 200:210] = 0
    path = export_coco_panoptic(tmp_path, image, truth, field.rms, patch=256)
    data = json.loads(path.read_text())
    cats = {c["name"]: c for c in data["categories"]}
    assert cats["galaxy"]["isthing"] == 1 and cats["sky"]["isthing"] == 0 and "color" in cats["sky"]
    from PIL import Image

    ann = data["annotations"][0]
    ids = ids_of_rgb(np.asarray(Image.open(tmp_path / "annotations" / "panoptic" / ann["file_name"])))
    for seg in ann["segments_info"]:  # area and bbox agree with the PNG
        ys, xs = np.nonzero(ids == seg["id"])
        assert seg["area"] == ys.size
        assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert {"id", "category_id", "iscrowd", "bbox", "area"} <= set(seg)
    labels, void = read_coco_panoptic(path)
    np.testing.assert_array_equal(labels, truth)
    np.testing.assert_array_equal(void, ~np.isfinite(image))


def test_more_than_255_objects_in_a_patch(tmp_path):
    truth = np.arange(1, 401, dtype=np.int32).reshape(20, 20).repeat(2, 0).repeat(2, 1)  # 400 objects
    image = np.ones(truth.shape, np.float32)
    labels, _ = read_coco_panoptic(export_coco_panoptic(tmp_path, image, truth, patch=64))
    np.testing.assert_array_equal(labels, truth)


@pytest.mark.parametrize("labels, message", [
    (np.zeros((40, 40), np.float32), "not integers"),
    (np.full((40, 40), -1, np.int32), "negative"),
    (np.pad(np.eye(4, dtype=np.int32).repeat(5, 0).repeat(5, 1), 10), "0/1 mask"),
    (np.zeros((30, 40), np.int32), "shape"),
])
def test_labels_that_are_not_instances_are_refused(tmp_path, labels, message):
    with pytest.raises(NotInstancesError, match=message):
        export_coco_instances(tmp_path, np.zeros((40, 40), np.float32), labels)
    assert not (tmp_path / "annotations" / "instances.json").exists()


def test_cli_export(tmp_path, field):
    from astropy.io import fits

    from napari_galseg.cli import main

    fits.writeto(tmp_path / "img.fits", field.image)
    fits.writeto(tmp_path / "true.fits", field.truth)
    fits.writeto(tmp_path / "rms.fits", field.rms)
    assert main(["export", "coco", str(tmp_path / "img.fits"), str(tmp_path / "true.fits"), "--rms",
                 str(tmp_path / "rms.fits"), "--patch", "256", "-o", str(tmp_path / "out")]) == 0
    np.testing.assert_array_equal(read_coco_instances(tmp_path / "out" / "annotations" / "instances.json"), field.truth)
    assert main(["export", "coco", str(tmp_path / "img.fits"), str(tmp_path / "true.fits"), "-o", str(tmp_path / "out")]) == 2
    fits.writeto(tmp_path / "float.fits", field.image)
    assert main(["export", "panoptic", str(tmp_path / "img.fits"), str(tmp_path / "float.fits"), "-o", str(tmp_path / "p")]) == 2
