"""FITS in and out, lazily: the core never imports napari or Qt.

>>> from napari_galseg.io import open_fits          # doctest: +SKIP
>>> img = open_fits("field.fits")                    # dask array + header + WCS, nothing read yet
>>> img.data[:100, :100].compute()
"""
from .fits import (
    DEFAULT_CHUNK,
    FITS_SUFFIXES,
    FitsArray,
    FitsImage,
    FitsReadError,
    FitsReadWarning,
    find_fits_files,
    fits_stem,
    guess_kind,
    image_shape,
    is_fits_path,
    open_fits,
    open_fits_all,
    open_fits_array,
)
from .pyramid import build_pyramid, contrast_limits_zscale, sample_pixels
from .wcs import SkyPosition, pixel_to_sky
from .write import labels_header, write_fits, write_labels

__all__ = [
    "DEFAULT_CHUNK", "FITS_SUFFIXES", "FitsArray", "FitsImage", "FitsReadError", "FitsReadWarning",
    "find_fits_files", "fits_stem", "guess_kind", "image_shape", "is_fits_path", "open_fits", "open_fits_all", "open_fits_array",
    "labels_header", "write_fits", "write_labels", "build_pyramid", "contrast_limits_zscale", "sample_pixels",
    "SkyPosition", "pixel_to_sky",
]
