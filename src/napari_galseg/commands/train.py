"""`galseg train METHOD --image IMG --rms RMS --truth TRUE -o MODEL_DIR` — train and save a model folder."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..model_folder import file_provenance
from . import parse_set_options, progress_bar

DESCRIPTION = """\
Train a segmenter on one field and save it as a model folder (config.json + weights). For torch
models (unet) the field is split spatially into train / validation / test blocks, training runs
with early stopping on the validation loss, a progress bar, and one line per epoch; checkpoints are
kept in MODEL_DIR/checkpoints so an interrupted run continues with --resume. Any parameter of the
method can be set with --set key=value (e.g. --set base_width=8 --set lr=1e-3); see
`galseg segment METHOD --params` for the list with defaults.

With --like FRAME the model learns from simulated fields made like that frame (its measured PSF,
noise, sky, density and flux distribution; `galseg describe FRAME`), never from a truth map of
the frame: a frame nobody labelled can still get a model of its own. The model folder records the
conditions it was made for.

Example:
  galseg train unet --image img.fits --rms rms.fits --truth true.fits -o models/unet-1 --epochs 20
  galseg segment unet img2.fits --rms rms2.fits --model models/unet-1 -o labels.fits
  galseg train unet --like frame.fits --minutes 25 -o models/unet-frame
  galseg train unet --bands img_g.fits img_r.fits img_i.fits --rms rms_g.fits rms_r.fits rms_i.fits \
      --truth true.fits -o models/unet-gri
  galseg segment unet g.fits r.fits i.fits --bands --rms rg.fits --rms rr.fits --rms ri.fits --model models/unet-gri -o labels.fits
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a segmenter (e.g. unet) on an image with truth labels",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("method", nargs="?", help="segmenter to train, e.g. unet (trainable ones: see the description)")
    p.add_argument("--spec", metavar="JOB.yaml", help="run a job spec here instead (see `galseg jobs`); other options are ignored")
    p.add_argument("--image", metavar="IMG", help="image FITS file")
    p.add_argument("--rms", metavar="RMS", nargs="+",
                   help="noise (rms) map FITS file; needed by the default recipe (with --bands: one per band, in order)")
    p.add_argument("--bands", metavar="BAND.fits", nargs="+",
                   help="train on several bands of one field as channels (unet, forest) instead of --image: "
                        "g.fits r.fits i.fits on one pixel grid; a band's name is its FILTER card, else its file "
                        "name, and the model keeps the names and their order")
    p.add_argument("--truth", metavar="TRUE", help="truth label FITS file (0 = sky)")
    p.add_argument("-o", "--output", metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--epochs", type=int, default=None,
                   help="maximum number of epochs (default: the method's; with --minutes and no --epochs, no cap)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop training after this many minutes (default: the method's; the U-Net's is 25); epochs "
                        "are then cut so that 10-12 validations fit in the budget")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--patch-size", type=int, default=None, help="training patch side in pixels (default: the method's; the U-Net's is 128)")
    p.add_argument("--recipe", default=None,
                   help="preprocessing recipe: 'default', 'default+snr' (the U-Net's default with --rms), 'image-only' or a recipe JSON/YAML file")
    p.add_argument("--set", dest="set_options", action="append", metavar="KEY=VALUE",
                   help="set a method parameter (repeatable)")
    p.add_argument("--like", metavar="FRAME",
                   help="train on simulated fields made like this frame (no truth map; --image/--truth not used)")
    p.add_argument("--like-size", type=int, default=2048, help="with --like: side of the simulated field (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="with --like: seed of the simulated field")
    p.add_argument("--psf-fwhm", type=float, default=None,
                   help="with --like: the frame's PSF FWHM in px, when its measurement is not to be trusted")
    p.add_argument("--resume", action="store_true", help="continue from MODEL_DIR/checkpoints/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    p.set_defaults(func=run)


def _open(path: str):
    from ..io import open_fits

    # FitsImage.array slices straight from the memory map: cheaper than dask for random patches
    return open_fits(path).array


def _open_bands(paths, rms_paths):
    """The bands (and their noise maps) as :class:`~napari_galseg.frames.bands.BandStack` inputs,
    checked to share one pixel grid."""
    from ..frames.bands import BandStack, band_name, check_same_grid
    from ..io import open_fits

    images = [open_fits(p) for p in paths]
    names = [band_name(p, im.header) for p, im in zip(paths, images)]
    check_same_grid(images, names)
    stack = BandStack([im.array for im in images], names)
    rms = BandStack([_open(p) for p in rms_paths], names) if rms_paths else None
    return stack, rms


def _like_training_field(args, model):
    """A simulated field like ``--like`` FRAME (image, truth, rms), recorded in the model's provenance."""
    from ..training.like_frame import like_training_field
    from .describe import open_frame

    if args.like_size < 256:
        raise ValueError(f"--like-size must be at least 256 px, got {args.like_size}")
    frame, frame_rms = open_frame(args.like, args.rms)
    return like_training_field(model, frame.array, frame_rms, header=frame.header, wcs=frame.wcs, size=args.like_size,
                               seed=args.seed, psf_fwhm=args.psf_fwhm, say=lambda line: print(line, file=sys.stderr),
                               provenance={"frame": file_provenance(args.like), "rms": file_provenance(args.rms)})


def run(args: argparse.Namespace) -> int:
    from ..cli import CliError
    from ..segmenters import get

    if args.spec:
        from .jobs import run_spec

        return run_spec(args.spec, resume=args.resume)
    rms_paths = args.rms or []
    if args.bands:
        if args.image or args.like:
            raise CliError("--bands gives the field's images: drop --image/--like")
        if len(args.bands) < 2:
            raise CliError("--bands needs two or more band images (g.fits r.fits i.fits)")
        if rms_paths and len(rms_paths) != len(args.bands):
            raise CliError(f"{len(args.bands)} bands but {len(rms_paths)} --rms map(s): give one per band, in order")
        args.image = args.bands[0]  # what the checks below ask for
    elif len(rms_paths) > 1:
        raise CliError(f"one image takes one --rms map, got {len(rms_paths)} (several bands: --bands)")
    else:
        args.rms = rms_paths[0] if rms_paths else None
    if args.like and (args.image or args.truth):
        raise CliError("--like trains on fields simulated like the frame: drop --image/--truth (or drop --like to "
                       "train on a truth map)")
    needed = (("METHOD", args.method), ("-o", args.output)) if args.like else (
        ("METHOD", args.method), ("--image", args.image), ("--truth", args.truth), ("-o", args.output))
    missing = [flag for flag, value in needed if not value]
    if missing and args.like:
        raise CliError(f"missing {', '.join(missing)}: galseg train METHOD --like FRAME -o MODEL_DIR")
    if missing:
        raise CliError(f"missing {', '.join(missing)}: galseg train METHOD --image IMG --truth TRUE -o MODEL_DIR "
                       "(or galseg train --spec JOB.yaml)")
    cls = get(args.method)
    if not cls.capabilities.trainable:
        raise CliError(f"{args.method!r} does not learn from data; use `galseg segment {args.method}` directly")
    out = Path(args.output)
    for ancestor in (out, *out.parents):  # a model folder is a folder: say so before the work
        if ancestor.exists() and not ancestor.is_dir():
            raise CliError(f"cannot write the model folder {out}: {ancestor} is a file, not a folder; "
                           "give -o a folder path")
        if ancestor.exists():
            break
    if out.exists() and any(out.iterdir()) and not (args.overwrite or args.resume):
        raise CliError(f"{out} already exists and is not empty; choose another -o, or pass --overwrite or --resume")
    overrides = parse_set_options(args.set_options)
    for key, value in (("epochs", args.epochs), ("device", args.device), ("patch_size", args.patch_size),
                       ("max_minutes", args.minutes)):
        if value is not None:
            overrides[key] = value
    if args.minutes and "epochs" not in overrides:  # the budget the user gave stops training, not a default cap
        from ..training.loop import UNCAPPED_EPOCHS

        overrides["epochs"] = UNCAPPED_EPOCHS
    model = cls(**overrides)
    if args.recipe is not None:
        from ..preprocess import as_recipe

        model.recipe = as_recipe(args.recipe).to_dict()
    if args.like:
        image, truth, rms = _like_training_field(args, model)
    elif args.bands:
        image, rms = _open_bands(args.bands, rms_paths)
        truth = _open(args.truth)
        model.provenance["training"] = {"bands": [file_provenance(p) for p in args.bands],
                                        "rms": [file_provenance(p) for p in rms_paths],
                                        "truth": file_provenance(args.truth)}
    else:
        image = _open(args.image)
        truth = _open(args.truth)
        rms = _open(args.rms) if args.rms else None
        model.provenance["training"] = {"image": file_provenance(args.image), "rms": file_provenance(args.rms),
                                        "truth": file_provenance(args.truth)}
    kwargs = {}
    if cls.capabilities.resumable:
        kwargs["checkpoint_dir"] = out / "checkpoints"
        kwargs["resume"] = bool(args.resume)
    elif args.resume:
        raise CliError(f"{args.method!r} has no checkpoints to resume from")
    # no counts: with --minutes the bar may follow the clock rather than the steps
    with progress_bar(f"train {args.method}", unit=None) as progress:

        def epoch_line(report) -> None:
            if getattr(report, "kind", None) == "epoch":  # one line per epoch on stdout, above the bar
                progress.write(report.line(), stream=sys.stdout)

        kwargs["callback"] = epoch_line
        model.fit(image, truth, rms=rms, progress=progress, **kwargs)
    model.save(out)
    training = model.provenance.get("training") or {}
    if training.get("stopped"):  # which limit ended the run: the budget, the epochs cap, early stopping
        from ..training.loop import stop_reason

        print(stop_reason(training["stopped"], int(training.get("epochs_run") or 0), float(training.get("elapsed_s") or 0),
                          float(getattr(model.train_config, "max_minutes", 0) or 0)))
    metrics = getattr(model, "metrics", {}) or {}
    val = metrics.get("validation") or {}
    summary = ", ".join(f"{k} {v:.3f}" for k, v in val.items() if isinstance(v, (int, float)))
    print(f"saved {out}" + (f" (validation: {summary})" if summary else ""))
    return 0
