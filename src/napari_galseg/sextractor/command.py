"""``galseg segment photutils IMG --sextractor-config FILE.sex --catalog OUT``: SExtractor mode.

With a ``.sex`` file and a catalogue to write, the frame goes through SExtractor's own steps
(this package) instead of the photutils pipeline: ``-o`` gets SExtractor's segmentation
(CHECKIMAGE_TYPE SEGMENTATION: the NUMBER of each detection's pixels) and ``--catalog`` the
``.param`` columns in the CATALOG_TYPE the ``.sex`` names.
"""
from __future__ import annotations

import sys


def run_sextractor_mode(args) -> int:
    """Run one frame in SExtractor mode for the ``segment`` command's parsed ``args``."""
    import numpy as np

    from ..cli import CliError
    from ..io import labels_header, open_fits
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
    image = open_fits(args.image[0], hdu=int(args.hdu) if str(args.hdu or "").isdigit() else args.hdu)
    data = np.asarray(image.data, dtype=np.float32)
    try:
        result = run_frame(run, data, args.catalog, header=image.header, wcs=image.wcs, overwrite=args.overwrite)
    except SExtractorInputError as exc:
        raise CliError(str(exc)) from None
    write_fits(args.output, result.segmentation, header=labels_header(image), overwrite=args.overwrite)
    n = len(result.columns.get("NUMBER", []))
    print(f"wrote {args.output} and {args.catalog} ({n} sources, {run.catalog_type})", file=sys.stderr)
    return 0
