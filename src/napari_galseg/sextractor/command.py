"""``galseg segment photutils IMG --sextractor-config FILE.sex --catalog OUT``: SExtractor mode.

With a ``.sex`` file and a catalogue to write, the frame goes through SExtractor's own steps
(this package) instead of the photutils pipeline: ``-o`` gets SExtractor's segmentation
(CHECKIMAGE_TYPE SEGMENTATION: the NUMBER of each detection's pixels) and ``--catalog`` the
``.param`` columns in the CATALOG_TYPE the ``.sex`` names.
"""
from __future__ import annotations

import sys

import numpy as np


def read_float32(array) -> np.ndarray:
    """The whole plane as native float32, read ~16 MiB of rows at a time: one frame in memory,
    never a big-endian or float64 copy beside it."""
    h, w = array.shape
    out = np.empty((h, w), np.float32)
    step = max(1, (16 << 20) // max(1, 4 * w))
    finite = False
    for y0 in range(0, h, step):
        out[y0:y0 + step] = array[y0:y0 + step]
        finite = finite or bool(np.isfinite(out[y0:y0 + step]).any())
    if not finite:
        from ..io import FitsReadError

        raise FitsReadError(f"HDU {array.hdu} of {array.path} has no finite pixels (all NaN or infinite): "
                            "nothing to extract.")
    return out


def celestial_wcs(header):
    """The frame's celestial WCS, or None; astropy.wcs is imported only for a header that has
    sky axes (CTYPEn cards), which keeps its import out of the start-up of plain frames."""
    if not any(str(header.get(f"CTYPE{i}", "")).strip() for i in (1, 2)):
        return None
    from ..io.fits import _celestial_wcs

    return _celestial_wcs(header)


def run_sextractor_mode(args) -> int:
    """Run one frame in SExtractor mode for the ``segment`` command's parsed ``args``."""
    from ..cli import CliError
    from ..io import labels_header, open_fits_array
    from ..io.write import write_fits
    from .config import read_sex
    from .errors import SExtractorInputError
    from .run import run_frame

    if args.overrides or args.rms or args.recipe or args.model or args.scheduler or len(args.image) != 1:
        raise CliError("SExtractor mode (--sextractor-config with --catalog) takes one frame and its .sex settings "
                       "only: drop --set/--rms/--recipe/--model/--scheduler, or drop --catalog for the photutils mapping")
    try:
        run = read_sex(args.sextractor_config)
    except SExtractorInputError as exc:
        raise CliError(str(exc)) from None
    print(run.report(), file=sys.stderr)
    array, header = open_fits_array(args.image[0], hdu=int(args.hdu) if str(args.hdu or "").isdigit() else args.hdu)
    data = read_float32(array)
    try:
        result = run_frame(run, data, args.catalog, header=header, wcs=celestial_wcs(header),
                           overwrite=args.overwrite, consume=True)
    except SExtractorInputError as exc:
        raise CliError(str(exc)) from None
    del data
    write_fits(args.output, result.segmentation, header=labels_header(header), overwrite=args.overwrite)
    n = len(result.columns.get("NUMBER", []))
    print(f"wrote {args.output} and {args.catalog} ({n} sources, {run.catalog_type})", file=sys.stderr)
    return 0
