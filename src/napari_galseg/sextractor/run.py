"""One frame through SExtractor mode: read, extract, write the labels and the catalogue."""
from __future__ import annotations

import dataclasses

import numpy as np

from .catalog import catalog_columns, write_catalog
from .config import SexRun
from .errors import SExtractorInputError
from .extract import extract


def summary_cards(run: SexRun, result) -> dict:
    """The SEX* header cards SExtractor writes with its catalogues."""
    s = run.settings
    return {
        "SEXVERS": ("napari-galseg SExtractor mode", "Extraction software"),
        "SEXBKGND": (result.background.backmean, "Median background level (ADU)"),
        "SEXBKDEV": (result.background.backsig, "Median background RMS (ADU)"),
        "SEXTHLD": (result.dthresh, "Extraction threshold (ADU)"),
        "SEXATHLD": (result.thresh, "Analysis threshold (ADU)"),
        "SEXNFIN": (len(result.columns.get("NUMBER", [])), "Final number of extracted sources"),
        "SEXNPARA": (len(run.params.columns), "Number of parameters per source"),
        "SEXGAIN": (s.gain, "Gain used (e-/ADU)"),
        "SEXFLTR": (s.kernel is not None, "Detection filtering activated (flag)"),
        "SEXMINAR": (s.minarea, "Minimum area used for detection (pixels)"),
        "SEXSATLV": (s.satur_level, "Saturation level used for flagging (ADU)"),
        "SEXMGZPT": (s.mag_zeropoint, "Zero-point used for magnitudes"),
        "SEXBKGSX": (s.back_size[0], "Mesh width used for background mapping (pixels)"),
        "SEXBKGSY": (s.back_size[1], "Mesh height used for background mapping (pix)"),
    }


def run_frame(run: SexRun, image, catalog_path, *, header=None, wcs=None, overwrite=True, progress=None):
    """Extract ``image`` (an array, or a row source: ``.shape`` and ``.read(y0, y1)``) with ``run``'s
    settings and write its catalogue; the extraction. ``progress(rows_done, rows)`` follows the scan."""
    if len(image.shape) != 2:
        raise SExtractorInputError(f"SExtractor mode needs a 2-D image, got shape {tuple(image.shape)}")
    settings = run.settings
    for key, field in ((run.gain_key, "gain"), (run.satur_key, "satur_level")):
        # SExtractor takes GAIN and SATUR_LEVEL from the frame's header when it has them
        value = header.get(key) if header is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            settings = dataclasses.replace(settings, **{field: float(value)})
    if settings.pixel_scale <= 0.0:  # PIXEL_SCALE 0: from the frame's WCS, as SExtractor does
        scale = 1.0
        if wcs is not None and getattr(wcs, "has_celestial", False):
            from astropy.wcs.utils import proj_plane_pixel_scales

            scale = float(np.sqrt(np.prod(proj_plane_pixel_scales(wcs.celestial))) * 3600.0)
        settings = dataclasses.replace(settings, pixel_scale=scale)
    result = extract(image, settings, progress)
    cols = catalog_columns(result.columns, run.params, wcs)
    if run.catalog_type != "NONE":
        write_catalog(cols, catalog_path, run.catalog_type, image_header=header, info=summary_cards(run, result),
                      overwrite=overwrite)
    return result
