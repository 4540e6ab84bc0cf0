"""``galseg segment photutils IMG --sextractor-config FILE.sex --catalog OUT``: SExtractor mode.

With a ``.sex`` file and a catalogue to write, the frame goes through SExtractor's own steps
(this package) instead of the photutils pipeline: ``-o`` gets SExtractor's segmentation
(CHECKIMAGE_TYPE SEGMENTATION: the NUMBER of each detection's pixels) and ``--catalog`` the
``.param`` columns in the CATALOG_TYPE the ``.sex`` names.
"""
from __future__ import annotations

import sys

import numpy as np


def one_malloc_arena() -> None:
    """glibc gives each thread that allocates its own malloc arena, and the extraction's worker
    threads (photometry, deblending, filtering) would each keep freed memory resident beside the
    main one. A command-line run asks for one arena, as a single-threaded C program has (no effect
    outside glibc)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


class _Rows:
    """A FITS plane as the row source SExtractor mode reads strip by strip: a frame without one
    finite pixel is refused after the background pass, which reads every row."""

    def __init__(self, reader):
        self.reader = reader
        self.shape = reader.shape
        self.checked = False

    def read(self, y0: int, y1: int):
        rows = self.reader.read_rows(y0, y1)
        if not self.checked and y1 == self.shape[0]:
            self.reader.check_finite()
            self.checked = True
        return rows


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
    from ..commands.segment import _noise_choice
    from ..io import labels_header, open_fits_array
    from ..io.fits_rows import FitsRowReader
    from ..io.write import write_fits_rows
    from .config import read_sex
    from .errors import SExtractorInputError
    from .run import run_frame

    if args.overrides or args.recipe or args.model or args.scheduler or len(args.image) != 1:
        raise CliError("SExtractor mode (--sextractor-config with --catalog) takes one frame and its .sex settings "
                       "only: drop --set/--recipe/--model/--scheduler, or drop --catalog for the photutils mapping")
    _noise_choice(args)  # --rms/--variance/--weight and --weight-type → args.rms, args.noise_kind
    try:
        run = read_sex(args.sextractor_config)
        used = _cli_weights(args, run)
    except SExtractorInputError as exc:
        raise CliError(str(exc)) from None
    print(run.report(), file=sys.stderr)
    one_malloc_arena()
    array, header = open_fits_array(args.image[0], hdu=int(args.hdu) if str(args.hdu or "").isdigit() else args.hdu)
    with FitsRowReader(array) as reader:
        try:
            result = run_frame(run, _Rows(reader), args.catalog, header=header, wcs=celestial_wcs(header),
                               overwrite=args.overwrite)
        except SExtractorInputError as exc:
            raise CliError(str(exc)) from None
    write_fits_rows(args.output, result.labels.shape, np.int32, labels_header(header), result.labels.blocks(),
                    overwrite=args.overwrite)
    n = len(result.columns.get("NUMBER", []))
    print(weights_line(run, used, result), file=sys.stderr)
    print(f"wrote {args.output} and {args.catalog} ({n} sources, {run.catalog_type})", file=sys.stderr)
    return 0


#: the command line's noise kinds → SExtractor's WEIGHT_TYPE
_TYPES = {"rms": "MAP_RMS", "variance": "MAP_VAR", "weight": "MAP_WEIGHT"}


def _cli_weights(args, run) -> str:
    """Give the run the command line's noise map (--rms/--variance/--weight) as its WEIGHT_IMAGE with
    the matching WEIGHT_TYPE; where the weights come from, for the report line."""
    from .errors import SExtractorInputError

    w = run.settings.weight
    paths = args.rms or []
    if not paths:
        if getattr(args, "weight_scale", 1.0) != 1.0:
            raise SExtractorInputError("--weight-scale scales a noise map given with --rms/--variance/--weight; "
                                       "give the map or drop --weight-scale")
        return "the .sex file"
    if len(paths) > 1:
        raise SExtractorInputError(f"one frame takes one noise map, got {len(paths)}")
    if w.on:
        raise SExtractorInputError(f"both {paths[0]} (command line) and the .sex file's WEIGHT_TYPE {w.type} give "
                                   "weights; keep one (drop the option or set WEIGHT_TYPE NONE)")
    if getattr(args, "noise_hdu", None):
        raise SExtractorInputError("--noise-hdu is not read in SExtractor mode; give the noise map's file with "
                                   "its image in the first HDU")
    kind = args.noise_kind or "rms"
    w.type = _TYPES[kind]
    w.image = paths[0]
    scale = float(getattr(args, "weight_scale", 1.0))
    if scale != 1.0:
        from .weights import read_map

        w.image = read_map(paths[0], _image_shape(args), "weight map", "--weight-scale").astype("float32") * scale
    return f"--{kind} {paths[0]}" + (f" × {scale:g}" if scale != 1.0 else "")


def _image_shape(args) -> tuple[int, int]:
    from ..io.fits import image_shape

    return image_shape(args.image[0], hdu=int(args.hdu) if str(args.hdu or "").isdigit() else args.hdu)


def weights_line(run, used: str, result) -> str:
    """One line: which weights the extraction used."""
    w = run.settings.weight
    if not w.on:
        return "weights: none (WEIGHT_TYPE NONE: thresholds on the global background rms)"
    source = "the background rms map" if w.type == "BACKGROUND" else used
    scale = ""
    if w.type in ("MAP_VAR", "MAP_WEIGHT"):
        scale = f", {'rescaled' if w.rescale else 'not rescaled'} (sigfac {result.sigfac:.4g})"
    return f"weights: WEIGHT_TYPE {w.type} from {source}{scale}"
