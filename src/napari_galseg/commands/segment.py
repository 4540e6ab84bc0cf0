"""`galseg segment METHOD IMG -o OUT.fits` — run any registered segmenter headless.

``galseg segment METHOD FRAME1 FRAME2 ... -o DIR`` segments many frames, resumably
(:mod:`.segment_frames`); ``--scheduler ADDRESS`` sends the work to a dask cluster.

Generic over :mod:`napari_galseg.segmenters`: the method's parameter dataclass is what ``--set``
sets; trainable methods load a model folder (``--model``); the labels are written as an int32 FITS
image with the input's header and WCS, tile by tile for lazy (huge) results; ``--catalog`` writes the
method's source catalog (photutils) as ECSV, FITS table or DS9 regions.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

DESCRIPTION = """\
Segment a FITS image with one of the registered methods and write the int32 instance label image
(0 = sky) with the image's header and WCS. Huge images are processed lazily and written tile by
tile. Methods that learn from truth (forest, unet, ...) need a model folder from `galseg train`;
kmeans fits its clusters on the image itself (or reuses a saved model folder's).
`galseg segment METHOD --params` lists every setting --set accepts, with its description.
Many frames (FRAME1 FRAME2 ... -o DIR) give DIR/NAME_labels.fits (and DIR/NAME_catalog.ecsv) per
frame; a rerun skips the frames already done. --scheduler runs the work on a dask cluster.

examples:
  galseg segment photutils field.fits --rms rms.fits -o labels.fits --catalog sources.ecsv
  galseg segment photutils field.fits --set nsigma=2.5 --set deblend=false -o labels.fits
  galseg segment photutils field.fits --set threshold_mode=study --set nsigma=1.5 -o study.fits
  galseg segment photutils field.fits --sextractor-config default.sex -o labels.fits
  galseg segment forest field.fits --model models/forest -o forest.fits
  galseg segment photutils field.fits --scheduler tcp://scheduler:8786 -o labels.fits
  galseg segment photutils frames/*.fits --rms 'rms/{name}.rms.fits' -o out/   (resumes; --scheduler: a task per frame)
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment a FITS image with a registered method (photutils, kmeans, forest, ...)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("method", metavar="METHOD", help="segmenter name, e.g. photutils, kmeans, forest, unet (an unknown name lists the available ones)")
    p.add_argument("image", metavar="IMG", nargs="*",
                   help="input image FITS file; several frames (FRAME1 FRAME2 ...) with -o DIR")
    p.add_argument("-o", "--output", metavar="OUT.fits",
                   help="output label FITS file (int32, 0 = sky); for many frames a folder (DIR)")
    p.add_argument("--rms", metavar="RMS", action="append",
                   help="noise (1σ rms) map FITS on the same pixel grid; for many frames repeat it once per frame "
                        "(in order) or give one pattern with {name}, the frame's file name without .fits")
    p.add_argument("--model", metavar="DIR", help="model folder saved by `galseg train` (needed by forest and unet)")
    p.add_argument("--trust-model", action="store_true",
                   help="also load an old model folder that holds a pickle (.joblib): pickles can run code, "
                        "so only for folders you trust; save it again to convert it")
    p.add_argument("--recipe", metavar="R", help="preprocessing recipe file (JSON/YAML) for methods that use one")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set a method parameter (repeatable), e.g. --set nsigma=2.5")
    p.add_argument("--sextractor-config", metavar="FILE.sex",
                   help="photutils: take the detection settings of a SExtractor .sex file (its .conv filter, "
                        "WEIGHT_IMAGE as the rms map); --set overrides them; keys not honoured are listed")
    p.add_argument("--hdu", default=None, help="HDU index or EXTNAME of the image (default: first image HDU)")
    p.add_argument("--catalog", metavar="OUT.ecsv", help="also write the source catalog (.ecsv, .fits or .reg)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--scheduler", metavar="ADDRESS", default="",
                   help="dask scheduler address (tcp://host:8786): one frame's tiles (photutils, unet) or each "
                        "frame run as tasks on that cluster; the labels are the same as here")
    p.add_argument("--params", action="store_true", help="list METHOD's parameters with their defaults and exit")
    p.set_defaults(func=run)


def _error(message: str):
    from ..cli import CliError

    return CliError(message)


def _hdu(value):
    if value is None:
        return None
    return int(value) if str(value).lstrip("-").isdigit() else value


def _make_segmenter(cls, args, overrides: dict):
    if args.model:
        if args.recipe:
            raise _error("--recipe cannot be combined with --model: the model folder holds the recipe it was trained with")
        from ..segmenters._sklearn_state import trusted_pickles

        with trusted_pickles(args.trust_model):  # old pickled folders only when the user says so
            segmenter = cls.load(args.model)
        return segmenter.configure(**overrides)
    if cls.capabilities.trainable:
        raise _error(f"{cls.name} must be trained first: run `galseg train {cls.name} ...` and pass its model folder with --model DIR")
    segmenter = cls(**overrides)
    if args.recipe:
        if not cls.capabilities.uses_recipe:
            raise _error(f"{cls.name} works on the calibrated image itself; --recipe does not apply to it")
        from ..preprocess import Recipe

        segmenter.recipe = Recipe.load(args.recipe).to_dict()
    return segmenter


def _sextractor_config(args, cls):
    """The mapped .sex file; its report (what is not honoured) goes to stderr."""
    import sys

    from ..segmenters.photutils.sextractor import SExtractorConfigError, read_sextractor_config

    if cls.name != "photutils":
        raise _error(f"--sextractor-config sets the photutils pipeline's detection; it does not apply to {cls.name}")
    try:
        sex = read_sextractor_config(args.sextractor_config)
    except SExtractorConfigError as exc:
        raise _error(str(exc)) from None
    print(sex.report(), file=sys.stderr)
    return sex


def print_settings(cls) -> None:
    """Every setting of METHOD by layer, with its default and description (``--params``)."""
    from ..settings import describe

    segmenter = cls()
    layers = segmenter.settings()
    sections = [(f"{cls.name} parameters", describe(layers["params"]))]
    if layers["train"] is not None:
        sections.append(("training (galseg train)", describe(layers["train"])))
    run = [row for row in describe(segmenter.run_options) if row[0] in layers["run"]]
    if run:
        sections.append(("run options (speed and memory only)", run))
    for title, rows in sections:
        print(f"# {title}")
        for name, value, text in rows:
            shown = "auto" if value is None else str(value).lower() if isinstance(value, bool) else value
            print(f"{name} = {shown}" + (f"    # {text}" if text else ""))
        print()


def _check_header_writable(image) -> None:
    """Build the output header now: a value that cannot be written must fail before the work."""
    import numpy as np

    from ..io import labels_header
    from ..io.write import _output_header

    try:
        _output_header(tuple(image.shape[-2:]), np.dtype("i4"), labels_header(image), None).tostring()
    except Exception as exc:
        raise _error(f"the header of {image.path} cannot be copied to the output ({type(exc).__name__}: "
                     f"{exc}); fix the card it names") from None


def _check_float32_range(image, what: str) -> None:
    """The segmenters compute in float32: finite values beyond its range (±3.4e38) would turn
    into inf and the image would look empty ("all NaN/inf"). Say so (checked on a sample)."""
    import numpy as np

    from ..io import sample_pixels

    if image.dtype != np.float64:
        return
    sample = sample_pixels(image.array, n_samples=20_000)
    finite = np.abs(sample[np.isfinite(sample)])
    limit = float(np.finfo(np.float32).max)
    if finite.size and float(finite.max()) > limit:
        raise _error(f"{what} {image.path} holds finite values up to {float(finite.max()):.3g}, beyond the float32 "
                     f"range (±{limit:.3g}) the segmenters compute in; rescale it (e.g. divide by 1e30) first")


@dataclass
class FrameTask:
    """Everything one frame's segmentation needs, as plain values: it runs here or, pickled, as
    one task on a dask worker (``--scheduler``)."""

    method: str
    image: str
    output: str
    rms: str | None = None
    catalog: str | None = None
    hdu: str | None = None
    overrides: dict = field(default_factory=dict)
    model: str | None = None
    trust_model: bool = False
    recipe: str | None = None
    sextractor_config: str | None = None
    overwrite: bool = False
    #: many-frames form: the file that says the frame is done, written last (see segment_frames)
    marker: str | None = None
    marker_record: dict | None = None


def segment_frame(task: FrameTask, progress=None) -> str:
    """Segment one frame and write its labels (and catalog): the message to print."""
    import dask

    # on a dask worker, dask would send the frame's own lazy arrays back to the cluster as
    # tasks of a task: a frame's work stays in the process that runs it (threads)
    with dask.config.set(scheduler="threads"):
        return _segment_frame(task, progress)


def _segment_frame(task: FrameTask, progress=None) -> str:
    from ..segmenters import get

    cls = get(task.method)
    overrides = dict(task.overrides)
    sex = None
    if task.sextractor_config:
        from ..segmenters.photutils.sextractor import read_sextractor_config

        sex = read_sextractor_config(task.sextractor_config)
        overrides = {**sex.overrides, **overrides}
    segmenter = _make_segmenter(cls, task, overrides)

    from ..io import labels_header, open_fits

    image = open_fits(task.image, hdu=_hdu(task.hdu))
    _check_float32_range(image, "the image")
    rms = None
    if task.rms:
        rms_image = open_fits(task.rms)
        _check_float32_range(rms_image, "the rms map")
        if rms_image.shape != image.shape:
            raise _error(f"the rms map {task.rms} has shape {rms_image.shape} but the image has {image.shape}; they must be on the same pixel grid")
        rms = rms_image.data
    _check_header_writable(image)
    data = image.data
    if sex is not None and sex.weight_image is not None:
        if task.rms:
            raise _error(f"both --rms and the configuration's WEIGHT_IMAGE ({sex.weight_image}) give a noise map; keep one")
        weight = open_fits(sex.weight_image)
        if weight.shape != image.shape:
            raise _error(f"WEIGHT_IMAGE {sex.weight_image} has shape {weight.shape} but the image has {image.shape}")
        from ..segmenters.photutils.sextractor import weighted_inputs

        data, rms = weighted_inputs(sex, data, weight.data)
    # methods that stream write strip by strip: a 25000² frame is never held as labels in memory;
    # those that stream their catalog too (instance models: ECSV) write it where --catalog says
    streamed_catalog = (bool(task.catalog) and Path(task.catalog).suffix.lower() == ".ecsv"
                        and segmenter.capabilities.streams_catalog)
    result = segmenter.predict_to_fits(data, task.output, rms=rms, header=labels_header(image),
                                       overwrite=task.overwrite, progress=progress,
                                       **({"catalog_path": task.catalog} if streamed_catalog else {}))
    message = f"wrote {task.output}"
    if streamed_catalog:
        message += f" and {task.catalog} ({len(result.catalog)} sources)"
    elif task.catalog:
        from ..catalog import add_sky_coordinates
        from ..io.catalog import write_catalog

        catalog = result.catalog
        if catalog is None:
            raise _error("no catalog was made (the method ran with catalog=none); drop --set catalog=none or --catalog")
        add_sky_coordinates(catalog, image.wcs)
        write_catalog(catalog, task.catalog, overwrite=task.overwrite, wcs=image.wcs)
        message += f" and {task.catalog} ({len(catalog)} sources)"
    if task.marker:
        from .segment_frames import write_marker

        write_marker(task)
    return message


def run(args: argparse.Namespace) -> int:
    from ..segmenters import get
    from . import check_outputs, parse_set_options, progress_bar, refuse_inputs_as_outputs

    if args.sextractor_config and args.catalog and args.method == "photutils" and args.image and args.output:
        from ..sextractor.command import run_sextractor_mode  # SExtractor mode (issue 27)

        check_outputs([args.output, args.catalog], inputs=args.image[:1], overwrite=args.overwrite)
        return run_sextractor_mode(args)
    cls = get(args.method)  # KeyError lists the choices
    if args.params:
        print_settings(cls)
        return 0
    if not args.image:
        raise _error("missing IMG: galseg segment METHOD IMG -o OUT.fits (or FRAME1 FRAME2 ... -o DIR)")
    if not args.output:
        raise _error("missing -o OUT.fits (where to write the labels; a folder for many frames)")
    overrides = parse_set_options(args.overrides)
    if "scheduler" in overrides:
        raise _error("give the dask scheduler as --scheduler ADDRESS, not --set scheduler=")
    sex = _sextractor_config(args, cls) if args.sextractor_config else None
    if sex is not None:
        refuse_inputs_as_outputs([args.output, args.catalog], [args.sextractor_config, sex.weight_image])
    _make_segmenter(cls, args, {**(sex.overrides if sex else {}), **overrides})  # settings checked before any work
    if args.catalog and not cls.capabilities.catalog:
        raise _error(f"{cls.name} does not produce a source catalog; --catalog needs a method that makes one (photutils)")

    from .segment_frames import is_many_frames, run_frames

    if is_many_frames(args.image, args.output):
        return run_frames(args, cls, overrides, sex)
    rms = args.rms or []
    if len(rms) > 1:
        raise _error(f"one frame takes one --rms map, got {len(rms)}")
    rms_path = rms[0].replace("{name}", _frame_name(args.image[0])) if rms else None
    check_outputs([args.output, args.catalog], inputs=[args.image[0], rms_path], overwrite=args.overwrite,
                  fits=[args.output], catalogs=[args.catalog])
    if args.catalog and Path(args.catalog).resolve() == Path(args.output).resolve():
        raise _error(f"--catalog and -o are the same file ({args.output}); give them different names")
    task = FrameTask(cls.name, args.image[0], args.output, rms_path, args.catalog, args.hdu, overrides, args.model,
                     args.trust_model, args.recipe, args.sextractor_config, args.overwrite)
    import sys

    if args.scheduler and "scheduler" not in cls.run_fields:  # the whole frame is one task on the cluster
        from .segment_frames import run_on_cluster

        return run_on_cluster(args.scheduler, [task])
    if args.scheduler:  # the frame's tiles are tasks on the cluster
        task.overrides = {**overrides, "scheduler": args.scheduler}
    with progress_bar(f"{cls.name}: segmenting", unit="step") as bar:
        message = segment_frame(task, progress=bar)
    print(message, file=sys.stderr)
    return 0


def _frame_name(path: str) -> str:
    from .segment_frames import frame_name

    return frame_name(path)
