"""COCO instances and COCO-panoptic datasets from an image (+ rms) and an instance map.

The study trained Mask R-CNN on COCO instances and fine-tuned DETR on COCO-panoptic annotations of
256² patches. These writers cut a field (any size: patches are read one at a time from numpy,
memmap or dask arrays) into a grid of non-overlapping patches; the last row and column are cut
short at the frame edge rather than overlapping, so every pixel is in exactly one patch and the
source labels can be rebuilt exactly (:func:`read_coco_instances`, :func:`read_coco_panoptic`).

Layout of a dataset folder::

    images/<stem>_y<Y0>_x<X0>.fits     patch pixels: float32 (C, h, w), C = image[, rms]
    annotations/instances.json          COCO instances (RLE masks, bbox, area, iscrowd)
    annotations/panoptic.json           COCO panoptic (images, annotations with segments_info, categories)
    annotations/panoptic/<name>.png     one RGB PNG per patch, id = R + 256·G + 256²·B

Patch pixels stay FITS float32 (8-bit PNG would clip the faint wings that make a galaxy's
footprint); ``image_format="png"`` writes an asinh-stretched 8-bit picture instead, for generic
COCO tools. Every image entry carries its origin (``y0``, ``x0``) in the field, every annotation or
segment its ``source_label`` (the id in the instance map), which makes the round trip exact.

Panoptic: ``galaxy`` is the *thing* category (id 1), ``sky`` the *stuff* category (id 2) covering
every valid pixel outside galaxies, and segment id 0 is void: pixels where the image is not finite.
Segment ids are 1..n for the n galaxies of a patch and n + 1 for its sky.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text

GALAXY = {"id": 1, "name": "galaxy", "supercategory": "object", "isthing": 1, "color": [255, 200, 60]}
SKY = {"id": 2, "name": "sky", "supercategory": "background", "isthing": 0, "color": [20, 20, 60]}
INSTANCES_JSON = "annotations/instances.json"
PANOPTIC_JSON = "annotations/panoptic.json"
PANOPTIC_PNG_DIR = "annotations/panoptic"
MAX_SEGMENT_ID = 256 ** 3 - 1

ProgressCallback = Callable[[int, int, str], None]


class NotInstancesError(ValueError):
    """Labels that are not an instance map (float, negative, a 0/1 mask of many objects, wrong shape)."""


def _window(array, y0, y1, x0, x1, dtype=None) -> np.ndarray:
    block = array[y0:y1, x0:x1]
    if hasattr(block, "compute"):
        block = block.compute()
    block = np.asarray(block)
    if block.dtype.byteorder not in ("=", "|"):
        block = block.astype(block.dtype.newbyteorder("="))
    return block.astype(dtype, copy=False) if dtype is not None else block


def check_instances(labels, image_shape: tuple[int, int]) -> None:
    """Refuse label images that are not instance maps, with a message that says what to do."""
    shape = tuple(np.shape(labels))
    if len(shape) != 2:
        raise NotInstancesError(f"the labels must be a 2-D instance map, got shape {shape}")
    if shape != tuple(image_shape):
        raise NotInstancesError(f"the labels have shape {shape} but the image has {tuple(image_shape)}; they must share the pixel grid")
    kind = np.dtype(labels.dtype).kind
    if kind not in "iu":
        raise NotInstancesError(f"the labels are {np.dtype(labels.dtype)}, not integers: give an instance map "
                                "(0 = sky, one id per galaxy), e.g. a truth file or a segmenter's labels")
    # a cheap look at a sample (never the whole frame): negative ids, or a 0/1 mask holding many objects
    step = max(1, int(np.ceil(max(shape) / 2048)))
    sample = labels[::step, ::step]
    sample = np.asarray(sample.compute() if hasattr(sample, "compute") else sample)
    if sample.size and sample.min() < 0:
        raise NotInstancesError("the labels hold negative values; an instance map has 0 for sky and positive ids")
    if sample.size and sample.max() == 1:
        from scipy import ndimage

        _, n = ndimage.label(sample > 0)
        if n > 1:
            raise NotInstancesError(f"the labels look like a 0/1 mask holding {n} separate objects, not an instance "
                                    "map; label its connected components first (e.g. scipy.ndimage.label)")


def patch_grid(shape: tuple[int, int], patch: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping patches ``(y0, y1, x0, x1)`` covering the frame; edge patches are cut short."""
    if patch < 8:
        raise ValueError(f"patch size must be at least 8 px, got {patch}")
    ny, nx = shape
    return [(y, min(y + patch, ny), x, min(x + patch, nx)) for y in range(0, ny, patch) for x in range(0, nx, patch)]


def _patch_name(stem: str, y0: int, x0: int) -> str:
    return f"{stem}_y{y0:06d}_x{x0:06d}"


def _write_patch_image(path: Path, channels: np.ndarray, image_format: str, stretch: tuple[float, float] | None) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        if image_format == "fits":
            from astropy.io import fits

            fits.PrimaryHDU(channels.astype(np.float32)).writeto(tmp)
        else:
            from PIL import Image

            lo, hi = stretch
            x = np.clip((np.nan_to_num(channels[0], nan=lo) - lo) / max(hi - lo, 1e-12), 0, None)
            img = (np.arcsinh(10 * x) / np.arcsinh(10) * 255).clip(0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp, format="PNG")


def _png_stretch(image) -> tuple[float, float]:
    from .pyramid import sample_pixels

    values = np.asarray(sample_pixels(image), np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    return float(np.percentile(values, 5)), float(np.percentile(values, 99.5))


def _prepare(out_dir, image, labels, rms, patch, image_format, overwrite, json_name):
    if image_format not in ("fits", "png"):
        raise ValueError(f"image_format must be 'fits' or 'png', got {image_format!r}")
    shape = tuple(np.shape(image))
    if len(shape) != 2:
        raise ValueError(f"the image must be 2-D, got shape {shape}")
    check_instances(labels, shape)
    if rms is not None and tuple(np.shape(rms)) != shape:
        raise ValueError(f"the rms map has shape {tuple(np.shape(rms))} but the image has {shape}")
    out = Path(out_dir)
    if (out / json_name).exists() and not overwrite:
        raise FileExistsError(f"{out / json_name} already exists; choose another folder or pass --overwrite")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    stretch = _png_stretch(image) if image_format == "png" else None
    return shape, out, stretch, patch_grid(shape, patch)


def _patch_pixels(image, rms, box):
    y0, y1, x0, x1 = box
    channels = [_window(image, y0, y1, x0, x1, np.float32)]
    if rms is not None:
        channels.append(_window(rms, y0, y1, x0, x1, np.float32))
    return np.stack(channels)


def _image_entry(image_id, name, box, image_format, channels):
    y0, y1, x0, x1 = box
    return {"id": image_id, "file_name": f"{name}.{image_format}", "height": y1 - y0, "width": x1 - x0,
            "y0": y0, "x0": x0, "channels": channels}


def _written_patches(out: Path, image, labels, rms, boxes, stem: str, image_format: str, stretch, skip_empty: bool,
                     images: list):
    """For each patch (empty ones left out with ``skip_empty``): write its image, add its entry to
    ``images``, and yield ``(index, image_id, name, labels, pixels)`` — the loop both exports share."""
    channels = ["image", "rms"] if rms is not None else ["image"]
    for k, box in enumerate(boxes):
        y0, y1, x0, x1 = box
        lab = _window(labels, y0, y1, x0, x1, np.int64)
        if skip_empty and not lab.any():
            continue
        pixels = _patch_pixels(image, rms, box)
        image_id = len(images) + 1
        name = _patch_name(stem, y0, x0)
        _write_patch_image(out / "images" / f"{name}.{image_format}", pixels, image_format, stretch)
        images.append(_image_entry(image_id, name, box, image_format, channels))
        yield k, image_id, name, lab, pixels


def export_coco_instances(out_dir: str | os.PathLike, image, labels, rms=None, *, patch: int = 256,
                          stem: str = "patch", image_format: str = "fits", skip_empty: bool = False,
                          overwrite: bool = False, progress: ProgressCallback | None = None) -> Path:
    """Write a COCO instances dataset; returns the path of its JSON.

    Each annotation: compressed RLE ``segmentation``, ``bbox`` [x, y, w, h], ``area``, ``iscrowd`` 0,
    ``category_id`` 1 (galaxy) and ``source_label``. ``skip_empty`` leaves out patches without galaxies.
    """
    from .coco_annotations import labels_to_annotations

    shape, out, stretch, boxes = _prepare(out_dir, image, labels, rms, patch, image_format, overwrite, INSTANCES_JSON)
    images, annotations = [], []
    for k, image_id, _name, lab, _pixels in _written_patches(out, image, labels, rms, boxes, stem, image_format, stretch,
                                                             skip_empty, images):
        for ann in labels_to_annotations(lab, image_id):
            ann["source_label"] = int(ann.pop("label"))
            ann["id"] = len(annotations) + 1
            annotations.append(ann)
        if progress is not None:
            progress(k + 1, len(boxes), f"{len(annotations)} objects")
    dataset = {
        "info": {"description": "napari-galseg COCO instances export", "field_shape": list(shape), "patch": patch},
        "images": images, "annotations": annotations,
        "categories": [{k: GALAXY[k] for k in ("id", "name", "supercategory")}],
    }
    path = out / INSTANCES_JSON
    atomic_write_text(path, json.dumps(dataset), overwrite=True)
    return path


def _rgb_of_ids(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)


def ids_of_rgb(rgb: np.ndarray) -> np.ndarray:
    """Panoptic segment ids of an RGB PNG array: ``R + 256·G + 256²·B``."""
    rgb = np.asarray(rgb, np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def export_coco_panoptic(out_dir: str | os.PathLike, image, labels, rms=None, *, patch: int = 256,
                         stem: str = "patch", image_format: str = "fits", skip_empty: bool = False,
                         overwrite: bool = False, progress: ProgressCallback | None = None) -> Path:
    """Write a COCO-panoptic dataset (PNG per patch + JSON ``segments_info``); returns the JSON path."""
    from PIL import Image
    from scipy import ndimage

    shape, out, stretch, boxes = _prepare(out_dir, image, labels, rms, patch, image_format, overwrite, PANOPTIC_JSON)
    (out / PANOPTIC_PNG_DIR).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k, image_id, name, lab, pixels in _written_patches(out, image, labels, rms, boxes, stem, image_format, stretch,
                                                           skip_empty, images):
        void = ~np.isfinite(pixels[0])
        source_ids = np.unique(lab[lab > 0])
        if source_ids.size + 1 > MAX_SEGMENT_ID:
            y0, _, x0, _ = boxes[k]
            raise ValueError(f"patch at y={y0}, x={x0} holds {source_ids.size} objects: more than a panoptic PNG can number")
        seg = np.searchsorted(source_ids, lab) + 1  # galaxies 1..n (lab > 0 only)
        sky_id = source_ids.size + 1
        seg = np.where(lab > 0, seg, sky_id)
        seg[void & (lab == 0)] = 0
        segments = []
        if source_ids.size:
            slices = ndimage.find_objects(np.where(lab > 0, seg, 0).astype(np.int32), max_label=source_ids.size)
            areas = np.bincount(seg.ravel(), minlength=sky_id + 1)
            for i, (sl, src) in enumerate(zip(slices, source_ids.tolist()), start=1):
                sy, sx = sl
                segments.append({"id": i, "category_id": GALAXY["id"], "iscrowd": 0, "area": int(areas[i]),
                                 "bbox": [sx.start, sy.start, sx.stop - sx.start, sy.stop - sy.start],
                                 "source_label": int(src)})
        sky = seg == sky_id
        if sky.any():
            rows, cols = np.nonzero(sky.any(axis=1))[0], np.nonzero(sky.any(axis=0))[0]
            segments.append({"id": int(sky_id), "category_id": SKY["id"], "iscrowd": 0, "area": int(sky.sum()),
                             "bbox": [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]})
        png_name = f"{name}.png"
        with atomic_path(out / PANOPTIC_PNG_DIR / png_name, overwrite=True) as tmp:
            Image.fromarray(_rgb_of_ids(seg)).save(tmp, format="PNG")
        annotations.append({"image_id": image_id, "file_name": png_name, "segments_info": segments})
        if progress is not None:
            progress(k + 1, len(boxes), f"{sum(len(a['segments_info']) for a in annotations)} segments")
    dataset = {
        "info": {"description": "napari-galseg COCO panoptic export", "field_shape": list(shape), "patch": patch},
        "images": images, "annotations": annotations, "categories": [dict(GALAXY), dict(SKY)],
    }
    path = out / PANOPTIC_JSON
    atomic_write_text(path, json.dumps(dataset), overwrite=True)
    return path


#: the writers by dataset kind, as ``galseg export KIND`` and the export widget name them
EXPORTERS: dict[str, Callable[..., Path]] = {"coco": export_coco_instances, "panoptic": export_coco_panoptic}


# -- reading back -------------------------------------------------------------------------------------
def read_coco_instances(path: str | os.PathLike) -> np.ndarray:
    """Rebuild the field's instance map (source ids) from an instances JSON, through pycocotools."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    ny, nx = coco.dataset["info"]["field_shape"]
    labels = np.zeros((ny, nx), np.int64)
    for img in coco.dataset["images"]:
        view = labels[img["y0"]: img["y0"] + img["height"], img["x0"]: img["x0"] + img["width"]]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
            view[coco.annToMask(ann) > 0] = ann["source_label"]
    return labels


def read_coco_panoptic(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild the instance map (source ids) and the void mask from a panoptic JSON and its PNGs."""
    from PIL import Image

    path = Path(path)
    dataset = json.loads(path.read_text())
    ny, nx = dataset["info"]["field_shape"]
    labels = np.zeros((ny, nx), np.int64)
    void = np.zeros((ny, nx), bool)
    images = {img["id"]: img for img in dataset["images"]}
    png_dir = path.parent / PANOPTIC_PNG_DIR.split("/", 1)[1]
    things = {c["id"] for c in dataset["categories"] if c["isthing"]}
    for ann in dataset["annotations"]:
        img = images[ann["image_id"]]
        ids = ids_of_rgb(np.asarray(Image.open(png_dir / ann["file_name"]).convert("RGB")))
        window = (slice(img["y0"], img["y0"] + img["height"]), slice(img["x0"], img["x0"] + img["width"]))
        lut = np.zeros(int(ids.max()) + 1, np.int64)
        for s in ann["segments_info"]:
            if s["category_id"] in things:
                lut[s["id"]] = s["source_label"]
        labels[window] = lut[ids]
        void[window] = ids == 0
    return labels, void


__all__ = [
    "EXPORTERS", "GALAXY", "SKY", "NotInstancesError", "check_instances", "export_coco_instances", "export_coco_panoptic",
    "ids_of_rgb", "patch_grid", "read_coco_instances", "read_coco_panoptic",
]
