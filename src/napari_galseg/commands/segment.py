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
tile. Methods that learn (unet, forest) use their built-in model unless --model names another: a
built-in name, a model of the models folder (`galseg models list`) or a folder from `galseg train`;
kmeans fits its clusters on the image itself (or reuses a saved model folder's). Without --rms the
noise map is estimated from the image, and the output says so. --variance/--weight (or --weight-type)
give the noise as survey products ship it; zero weight, infinite variance and masked bits (--mask, or a
coadd's MASK plane) are never detected.
`galseg segment METHOD --params` lists every setting --set accepts, with its description.
Many frames (FRAME1 FRAME2 ... -o DIR) give DIR/NAME_labels.fits (and DIR/NAME_catalog.ecsv) per
frame; a rerun skips the frames already done. --scheduler runs the work on a dask cluster.

examples:
  galseg segment unet frame.fits -o labels.fits                  (the built-in U-Net; noise estimated)
  galseg segment photutils field.fits --rms rms.fits -o labels.fits --catalog sources.ecsv
  galseg segment photutils calexp.fits -o labels.fits      (HSC/LSST IMAGE+MASK+VARIANCE, DES SCI+MSK+WGT, HST SCI+WHT)
  galseg segment photutils tile.fits --weight tile_invvar.fits --mask tile_maskbits.fits:0,1,5 -o labels.fits
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
    p.add_argument("--variance", metavar="VAR", action="append",
                   help="a variance map instead of --rms (converted to rms per tile; infinite variance = no data)")
    p.add_argument("--weight", metavar="WHT", action="append",
                   help="an inverse-variance weight map instead of --rms (zero weight = no data, never detected)")
    p.add_argument("--weight-type", metavar="TYPE",
                   help="what the noise map holds, SExtractor's names: MAP_RMS, MAP_VAR or MAP_WEIGHT (for --rms FILE "
                        "or a coadd's noise plane; default: from the option or the plane's EXTNAME)")
    p.add_argument("--weight-scale", metavar="S", type=float, default=1.0,
                   help="multiply the noise map by S before converting it: a drizzle WHT that is an exposure-time "
                        "map becomes an inverse variance with S = 1/(σ² per second of exposure)")
    p.add_argument("--noise-hdu", metavar="HDU", help="HDU index or EXTNAME of the noise plane (default: a coadd's "
                   "VARIANCE/WGT/WHT/RMS/ERR extension, found by name)")
    p.add_argument("--mask", metavar="FILE[:BITS]", action="append",
                   help="a bit mask (or FLAG image): pixels with a bad bit set are never detected nor labelled; BITS "
                        "as in --mask-bits")
    p.add_argument("--mask-bits", metavar="BITS",
                   help="which mask bits are bad: names from the header's MP_* cards (BAD,SAT,EDGE), bit numbers "
                        "(0,3) or a hex value (0x9); default: BAD,SAT,NO_DATA,EDGE,CR,SUSPECT,UNMASKEDNAN where "
                        "named, else any set bit")
    p.add_argument("--mask-hdu", metavar="HDU", help="HDU index or EXTNAME of the mask plane (default: a coadd's "
                   "MASK/MSK/MASKBITS/FLAGS extension, found by name)")
    p.add_argument("--bands", action="store_true",
                   help="the images are bands of one field (g.fits r.fits i.fits): one segmentation, detected on a "
                        "combined image (photutils); noise maps and masks once per band, in order")
    p.add_argument("--detection", choices=("snr", "chi2"), default="snr",
                   help="--bands: the S/N-weighted sum (snr, default) or the chi² image of Szalay et al. 1999 (chi2)")
    p.add_argument("--model", metavar="NAME|DIR",
                   help="a built-in model's name (unet-general, forest-general), a model of the models folder, or a "
                        "folder saved by `galseg train`; unet and forest use their built-in model without it")
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
        raise _error(f"{cls.name} has no built-in model and must be trained first: run `galseg train {cls.name} ...` "
                     "and pass its model folder with --model DIR")
    segmenter = cls(**overrides)
    if args.recipe:
        if not cls.capabilities.uses_recipe:
            raise _error(f"{cls.name} works on the calibrated image itself; --recipe does not apply to it")
        from ..preprocess import Recipe

        segmenter.recipe = Recipe.load(args.recipe).to_dict()
    return segmenter


def _resolve_model(args, cls) -> str | None:
    """``--model`` as a folder path: a built-in name, a models-folder name or a path; without
    ``--model`` a trainable method takes its built-in model: the line that says so (printed with
    the result, so an error stays one line), else None."""
    from ..builtin_models import default_model, resolve_model
    from ..model_folder import ModelFolderError

    if args.model:
        try:
            args.model = str(resolve_model(args.model, cls.name))
        except ModelFolderError as exc:
            raise _error(str(exc)) from None
        return None
    if not cls.capabilities.trainable:
        return None
    try:
        builtin = default_model(cls.name)
    except ModelFolderError as exc:
        raise _error(str(exc)) from None
    if builtin is not None:
        args.model = str(builtin.path)
        return f"no --model: used the built-in model {builtin.name} (see `galseg models list`)"
    return None


def frame_notes(segmenter, rms_given: bool, frame=None) -> list[str]:
    """What the user should know about a run beyond its output: the network's precision, where the
    noise map and the mask came from, an estimated noise map."""
    notes = [segmenter.precision_note] if getattr(segmenter, "precision_note", None) else []
    if frame is not None:
        notes.extend(frame.notes)
        if frame.noise is not None:
            notes.append(f"noise from {frame.sources['noise']}")
        if frame.mask is not None:
            notes.append(f"masked: {frame.sources['mask']}")
    if not rms_given:
        notes.append(getattr(segmenter, "noise_note", None)
                     or "no rms map given: the noise was estimated from the image")
    return notes


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
    #: what ``rms`` holds (rms, variance, weight or a WEIGHT_TYPE) and the coadd planes by hand
    noise_kind: str | None = None
    noise_scale: float = 1.0
    noise_hdu: str | None = None
    mask: str | None = None
    mask_bits: str | None = None
    mask_hdu: str | None = None


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

    from ..frames import open_frame
    from ..io import labels_header, open_fits

    frame = open_frame(task.image, hdu=task.hdu, noise=task.rms, noise_kind_name=task.noise_kind,
                       noise_hdu=task.noise_hdu, noise_scale=task.noise_scale, mask=task.mask, mask_bits=task.mask_bits,
                       mask_hdu=task.mask_hdu)
    image = frame.science
    _check_float32_range(image, "the image")
    if task.rms and frame.noise.kind == "rms":
        _check_float32_range(open_fits(task.rms, hdu=_hdu(task.noise_hdu), check_finite=False), "the rms map")
    _check_header_writable(image)
    from ..builtin_models import range_notes

    data, rms = frame.image, frame.rms
    out_of_range = range_notes(segmenter, data, rms, header=image.header, wcs=image.wcs)
    if sex is not None and sex.weight_image is not None:
        if frame.noise is not None:
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
    message = "\n".join([*out_of_range, *frame_notes(segmenter, rms is not None, frame), f"wrote {task.output}"])
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
    import sys

    from . import check_outputs, parse_set_options, progress_bar, refuse_inputs_as_outputs

    if args.sextractor_config and args.catalog and args.method == "photutils" and args.image and args.output:
        # SExtractor mode (issue 27), before the segmenter registry is imported: its start-up counts
        # in the whole-process time compared with SExtractor's
        from ..sextractor.command import run_sextractor_mode

        noise = [*(args.rms or []), *(args.variance or []), *(args.weight or [])]
        check_outputs([args.output, args.catalog], inputs=args.image[:1] + noise, overwrite=args.overwrite)
        return run_sextractor_mode(args)
    from ..segmenters import get
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
    builtin_note = _resolve_model(args, cls)
    sex = _sextractor_config(args, cls) if args.sextractor_config else None
    if sex is not None:
        refuse_inputs_as_outputs([args.output, args.catalog], [args.sextractor_config, sex.weight_image])
    _make_segmenter(cls, args, {**(sex.overrides if sex else {}), **overrides})  # settings checked before any work
    if args.catalog and not cls.capabilities.catalog:
        raise _error(f"{cls.name} does not produce a source catalog; --catalog needs a method that makes one (photutils)")

    _noise_choice(args)
    if args.bands:
        from .segment_bands import run_bands

        return run_bands(args, cls, overrides)
    from .segment_frames import is_many_frames, run_frames

    if is_many_frames(args.image, args.output):
        code = run_frames(args, cls, overrides, sex)
        if builtin_note:
            print(builtin_note, file=sys.stderr)
        return code
    rms = args.rms or []
    if len(rms) > 1:
        raise _error(f"one frame takes one --rms map, got {len(rms)}")
    rms_path = rms[0].replace("{name}", _frame_name(args.image[0])) if rms else None
    masks = args.mask or []
    if len(masks) > 1:
        raise _error(f"one frame takes one --mask, got {len(masks)}")
    mask = masks[0].replace("{name}", _frame_name(args.image[0])) if masks else None
    check_outputs([args.output, args.catalog], inputs=[args.image[0], rms_path, mask and _mask_file(mask)],
                  overwrite=args.overwrite, fits=[args.output], catalogs=[args.catalog])
    if args.catalog and Path(args.catalog).resolve() == Path(args.output).resolve():
        raise _error(f"--catalog and -o are the same file ({args.output}); give them different names")
    task = FrameTask(cls.name, args.image[0], args.output, rms_path, args.catalog, args.hdu, overrides, args.model,
                     args.trust_model, args.recipe, args.sextractor_config, args.overwrite, **_plane_options(args, mask))

    if args.scheduler and "scheduler" not in cls.run_fields:  # the whole frame is one task on the cluster
        from .segment_frames import run_on_cluster

        return run_on_cluster(args.scheduler, [task])
    if args.scheduler:  # the frame's tiles are tasks on the cluster
        task.overrides = {**overrides, "scheduler": args.scheduler}
    with progress_bar(f"{cls.name}: segmenting", unit="step") as bar:
        message = segment_frame(task, progress=bar)
    print("\n".join(filter(None, [builtin_note, message])), file=sys.stderr)
    return 0


def _noise_choice(args) -> None:
    """--rms, --variance or --weight (one kind) and --weight-type as ``args.rms`` (the noise files)
    and ``args.noise_kind``; an unknown or contradicting weight type stops here."""
    given = {kind: paths for kind, paths in (("rms", args.rms), ("variance", args.variance), ("weight", args.weight))
             if paths}
    if len(given) > 1:
        raise _error(f"give one kind of noise map, got {' and '.join('--' + k for k in given)}")
    kind = next(iter(given), None)
    if args.weight_type:
        from ..frames import noise_kind  # the frames package (scipy, dask) only when it is needed

        try:
            typed = noise_kind(args.weight_type)
        except ValueError as exc:
            raise _error(str(exc)) from None
        if kind not in (None, "rms", typed):
            raise _error(f"--{kind} and --weight-type {args.weight_type} disagree; give the map with the option of "
                         "its kind, or as --rms FILE --weight-type TYPE")
        kind = typed
    args.rms = next(iter(given.values()), None)
    args.noise_kind = kind if (given or args.weight_type) else None


def _mask_file(spec: str) -> str:
    from ..frames.frame import _mask_spec

    return _mask_spec(spec)[0]


def _plane_options(args, mask: str | None) -> dict:
    """The FrameTask fields of the noise kind, the mask and the planes named by hand."""
    if not (args.weight_scale > 0 and args.weight_scale < float("inf")):
        raise _error(f"--weight-scale must be a positive number, got {args.weight_scale}")
    return {"noise_kind": args.noise_kind, "noise_scale": args.weight_scale, "noise_hdu": args.noise_hdu,
            "mask": mask, "mask_bits": args.mask_bits, "mask_hdu": args.mask_hdu}


def _frame_name(path: str) -> str:
    from .segment_frames import frame_name

    return frame_name(path)
