"""npe2 reader: FITS files and folders of FITS files as napari layers, lazily.

``get_reader`` answers None for anything that is not FITS (napari then asks other readers) and
never raises into napari: a FITS file that cannot be opened gives a notification with the reason
and the "read, but no layers" sentinel ``[(None,)]`` (an empty list would make napari raise
"returned no data" on top of our message).

Layers: images larger than :data:`MULTISCALE_ABOVE` px a side become multiscale pyramids of lazy
levels; contrast limits come from a zscale sample; segmentation maps (by header, name or pixels,
see :mod:`napari_galseg.io.label_map`) become Labels (drawn last, on top); noise maps become
images named after the file (hidden when an image is opened with them, so they do not cover it).
Files dropped together reach the reader one at a time; :func:`fit_into_viewer` gives them the
same arrangement as a folder drop. Header, WCS, path and kind go into layer metadata.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_galseg.io import (
    FitsImage,
    FitsReadError,
    FitsReadWarning,
    contrast_limits_zscale,
    find_fits_files,
    is_fits_path,
    open_fits_all,
)

#: Images with a side longer than this open as multiscale pyramids (napari down-samples single
#: arrays over ~16k px and draws big single arrays slowly).
MULTISCALE_ABOVE = 4096
#: Pyramid levels are made by striding: the zoomed-out view reads megabytes, not the file.
PYRAMID_METHOD = "stride"
_KIND_ORDER = {"image": 0, "rms": 1, "labels": 2}

LayerData = tuple


def get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return a reader for FITS files / folders holding FITS files, else None."""
    try:
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        files: list[Path] = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                found = find_fits_files(p)
                if not found:
                    return None
                files.extend(found)
            elif is_fits_path(p):
                files.append(p)
            else:
                return None
    except (OSError, TypeError):
        return None
    if not files:
        return None

    def read(_path: Any = None, **_kwargs: Any) -> list[LayerData]:
        try:
            layers = read_fits_files(files)
            viewer = _current_viewer()
            if viewer is not None and layers and len(layers[0]) == 3:  # not the "no layers" sentinel
                fit_into_viewer(layers, viewer)
            return layers
        except Exception as exc:
            _notify(f"napari-galseg could not read {', '.join(str(f) for f in files)}: "
                    f"{type(exc).__name__}: {exc}", error=True)
            return [(None,)]

    return read


def read_fits_files(files: Sequence[str | os.PathLike]) -> list[LayerData]:
    """Layer data tuples for every image HDU of ``files``; problems become notifications.

    What a file that opens says on the way (non-standard header cards, skipped HDUs) is said once:
    one notification line per file, the messages kept in each layer's ``metadata["fits_warnings"]``.
    """
    images: list[FitsImage] = []
    problems: list[str] = []
    said: dict[str, list[str]] = {}
    for file in files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                opened = open_fits_all(file)
            _name_planes(file, opened)
            images.extend(opened)
            said[str(file)] = [str(w.message) for w in caught if issubclass(w.category, FitsReadWarning)]
            for image in opened:
                image.card_warnings = [*said[str(file)], *image.card_warnings]
            if said[str(file)]:
                problems.append(_one_line(file, said[str(file)]))
        except (FitsReadError, OSError) as exc:
            problems.append(str(exc))
        except Exception as exc:
            problems.append(f"{file} could not be read ({type(exc).__name__}: {exc})")
    for message in problems:
        _notify(message, error=not images)
    if not images:
        return [(None,)]
    images.sort(key=lambda im: _KIND_ORDER.get(im.kind, 0))  # stable: file order within a kind
    has_image = any(im.kind == "image" for im in images)
    layers = []
    for im in images:
        try:
            layers.append(layer_data(im, hide_rms=has_image))
        except Exception as exc:
            _notify(f"{im.name}: {exc}" if isinstance(exc, FitsReadError) else
                    f"{im.name} could not be shown ({type(exc).__name__}: {exc})", error=True)
    return layers or [(None,)]


def _name_planes(file: str | os.PathLike, opened: list[FitsImage]) -> None:
    """A coadd's layers are named after its planes (``coadd[IMAGE]``, ``[MASK]``, ``[VARIANCE]``),
    its mask shown as labels and its noise as a noise map, as `galseg segment` reads them."""
    if len(opened) < 2:
        return
    from napari_galseg.frames import find_planes
    from napari_galseg.io import fits_stem

    try:
        planes = find_planes(file)
    except Exception:  # naming is a courtesy: the layers open without it
        return
    roles = {planes.science: ("science", "image"), planes.noise: ("noise", "rms"), planes.mask: ("mask", "labels")}
    for image in opened:
        extname = str(image.header.get("EXTNAME", "")).strip()
        if extname:
            image.name = f"{fits_stem(file)}[{extname}]"
        if image.hdu in roles:
            image.plane, image.kind = roles[image.hdu]  # read back by layer_data
            if image.plane == "noise":
                image.noise_kind = planes.noise_kind


def _one_line(file: str | os.PathLike, messages: list[str]) -> str:
    """The file's warnings as one line: the first, and how many more are in the layer's metadata."""
    first = " ".join(messages[0].split())
    if len(messages) == 1:
        return first
    return f"{first} (+{len(messages) - 1} more note(s) on {Path(file).name}: layer metadata 'fits_warnings')"


def _current_viewer():
    """The napari viewer files are being opened into, or None (scripts, napari not imported)."""
    if "napari" not in sys.modules:
        return None
    try:
        from napari import current_viewer

        return current_viewer()
    except Exception:  # no viewer is not an error for a reader
        return None


def _is_image_layer(layer: Any) -> bool:
    return type(layer).__name__ == "Image" and layer.metadata.get("galseg_kind") != "rms"


def fit_into_viewer(layers: list[LayerData], viewer: Any) -> None:
    """Make files dropped one by one look like a folder drop: the image visible, nothing covering it.

    napari hands a multi-file drop (``viewer.open([img, rms, true])``) to the reader one file at a
    time, so a read cannot see its siblings; it looks at the viewer instead. Noise maps arriving
    beside a visible image are hidden (and visible noise maps are hidden when an image arrives);
    images arriving after Labels layers are moved below them once napari has added them.
    """
    kinds = [kw.get("metadata", {}).get("galseg_kind") for _, kw, _ in layers]
    _display_conventions(viewer)
    if any(_is_image_layer(layer) and layer.visible for layer in viewer.layers):
        for (_, kwargs, _), kind in zip(layers, kinds):
            if kind == "rms":
                kwargs["visible"] = False
    if "image" in kinds:
        for layer in viewer.layers:
            if type(layer).__name__ == "Image" and layer.metadata.get("galseg_kind") == "rms":
                layer.visible = False
        if any(type(layer).__name__ == "Labels" for layer in viewer.layers):
            _move_below_labels_when_added(viewer, [kw for (_, kw, _), k in zip(layers, kinds) if k in ("image", "rms")])


def _display_conventions(viewer: Any) -> None:
    """DS9's conventions (y up, FITS coordinates, outlines...) for a viewer FITS files go into."""
    try:
        from napari_galseg.widgets.display import install

        install(viewer)
    except Exception as exc:  # a display preference must never stop a file from opening
        _notify(f"napari-galseg: the display conventions could not be applied ({type(exc).__name__}: {exc})",
                error=False)


def _move_below_labels_when_added(viewer: Any, expected: list[dict]) -> None:
    """Once each expected image layer is inserted (on top), move it under the lowest Labels layer."""
    pending = {(kw["metadata"]["path"], kw["metadata"]["hdu"]) for kw in expected}  # names may get " [1]"
    emitter = viewer.layers.events.inserted

    def on_inserted(event: Any) -> None:
        layer = event.value
        key = (layer.metadata.get("path"), layer.metadata.get("hdu"))
        if key not in pending:
            return
        pending.discard(key)
        if not pending:
            emitter.disconnect(on_inserted)
        index = viewer.layers.index(layer)
        labels = [i for i, other in enumerate(viewer.layers) if type(other).__name__ == "Labels" and i < index]
        if labels:
            viewer.layers.move(index, labels[0])

    emitter.connect(on_inserted)


def layer_data(image: FitsImage, hide_rms: bool = False) -> LayerData:
    """One napari layer data tuple for a :class:`FitsImage`."""
    multiscale = max(image.shape) > MULTISCALE_ABOVE
    data: Any = image.pyramid(method="stride" if image.kind == "labels" else PYRAMID_METHOD) if multiscale else image.data
    metadata = {"header": image.header, "wcs": image.wcs, "path": str(image.path),
                "hdu": image.hdu, "galseg_kind": image.kind}
    if image.card_warnings:
        metadata["fits_warnings"] = list(image.card_warnings)
    if getattr(image, "plane", None):  # a plane of a coadd (see _name_planes)
        metadata["galseg_plane"] = image.plane
        if getattr(image, "noise_kind", None):
            metadata["galseg_noise_kind"] = image.noise_kind
    if image.kind == "labels":
        from napari_galseg.io.write import label_role

        role = label_role(image.header)  # a galseg prediction or a synthetic truth say so
        if role is not None:
            metadata["galseg_role"] = role
    kwargs: dict[str, Any] = {"name": image.name, "metadata": metadata}
    if multiscale:
        kwargs["multiscale"] = True
    if image.kind == "labels":
        return (data, kwargs, "labels")
    kwargs["contrast_limits"] = _contrast_limits(image, data)
    if image.kind == "rms":
        kwargs["colormap"] = "magma"
        kwargs["visible"] = not hide_rms
    else:
        kwargs["colormap"] = "gray"
    return (data, kwargs, "image")


def _contrast_limits(image: FitsImage, data: Any) -> list[float]:
    try:
        if image.kind == "rms":  # smooth maps: zscale's slope fit is too tight; use percentiles
            import numpy as np

            from napari_galseg.io import sample_pixels

            sample = sample_pixels(image.array)
            sample = sample[np.isfinite(sample)]
            lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
            return [lo, hi if hi > lo else lo + 1.0]
        return list(contrast_limits_zscale(image.array))
    except (ValueError, IndexError):
        # the sample missed every finite pixel (a mostly blank mosaic): use the coarsest level
        import numpy as np

        coarse = np.asarray((data[-1] if isinstance(data, list) else data[::64, ::64]).compute())
        finite = coarse[np.isfinite(coarse)]
        if finite.size == 0:
            return [0.0, 1.0]
        lo, hi = float(finite.min()), float(finite.max())
        return [lo, hi if hi > lo else lo + 1.0]


def _notify(message: str, error: bool = True) -> None:
    """A napari notification (or a warning outside napari); never raises."""
    try:
        from napari.utils.notifications import show_error, show_warning

        (show_error if error else show_warning)(message)
    except Exception:
        warnings.warn(message, stacklevel=3)
