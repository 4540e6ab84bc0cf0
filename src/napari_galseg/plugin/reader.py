"""npe2 reader: FITS files and folders of FITS files as napari layers, lazily.

``get_reader`` answers None for anything that is not FITS (napari then asks other readers) and
never raises into napari: a FITS file that cannot be opened gives a notification with the reason
and the "read, but no layers" sentinel ``[(None,)]`` (an empty list would make napari raise
"returned no data" on top of our message).

Layers: images larger than :data:`MULTISCALE_ABOVE` px a side become multiscale pyramids of lazy
levels; contrast limits come from a zscale sample; integer segmentation maps become Labels
(drawn last, on top); noise maps become images named after the file (hidden when an image is
opened with them, so they do not cover it). Header, WCS, path and kind go into layer metadata.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

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
            return read_fits_files(files)
        except Exception as exc:  # noqa: BLE001 - the promise: never raise into napari
            _notify(f"napari-galseg could not read {', '.join(str(f) for f in files)}: "
                    f"{type(exc).__name__}: {exc}", error=True)
            return [(None,)]

    return read


def read_fits_files(files: Sequence[str | os.PathLike]) -> list[LayerData]:
    """Layer data tuples for every image HDU of ``files``; problems become notifications."""
    images: list[FitsImage] = []
    problems: list[str] = []
    for file in files:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                images.extend(open_fits_all(file))
            problems.extend(str(w.message) for w in caught if issubclass(w.category, FitsReadWarning))
        except (FitsReadError, OSError) as exc:
            problems.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - astropy/numpy errors on odd files: say so, go on
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
        except Exception as exc:  # noqa: BLE001 - a damaged tile read for the contrast limits...
            _notify(f"{im.name}: {exc}" if isinstance(exc, FitsReadError) else
                    f"{im.name} could not be shown ({type(exc).__name__}: {exc})", error=True)
    return layers or [(None,)]


def layer_data(image: FitsImage, hide_rms: bool = False) -> LayerData:
    """One napari layer data tuple for a :class:`FitsImage`."""
    multiscale = max(image.shape) > MULTISCALE_ABOVE
    data: Any = image.pyramid(method="stride" if image.kind == "labels" else PYRAMID_METHOD) if multiscale else image.data
    metadata = {"header": image.header, "wcs": image.wcs, "path": str(image.path),
                "hdu": image.hdu, "galseg_kind": image.kind}
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
