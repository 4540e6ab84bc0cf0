"""`galseg evaluate PRED [PRED ...] TRUE` (or ``--truth TRUE --pred PRED ...``) — score predictions
against a truth label image.

A swapped order that the files tell (a prediction galseg wrote, ``SEGROLE = 'prediction'``, given
as the truth; a synthetic field's truth given as a prediction) is refused with one line: scored the
other way round, completeness and purity trade places and the numbers look plausible. A file that
does not look like a segmentation (no sky, one label over most of the frame) gets a note.

Prints the table (one row per prediction); ``--json`` prints one JSON object instead: the metrics
of the prediction for one PRED, or ``{PRED path: metrics, ...}`` (in command-line order) for
several. ``--csv``/``--figure``/``--json-out`` also write the report to files.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import check_outputs

DESCRIPTION = """\
Score one or more predictions (label images, or probability maps with --threshold) against a
truth label image, all FITS files on the same pixel grid. Reports pixel metrics (IoU, Dice,
precision, recall, accuracy, F1), object metrics (completeness, purity, object F1, split and
merged objects, matched one-to-one at --iou-threshold) and, when a prediction holds instances,
COCO AP/AR from pycocotools. --image adds completeness as a function of true object flux;
--rms restricts scoring to pixels with a finite, positive noise value; --variance/--weight (or
--weight-type) and --mask (or a coadd given as --image: its noise and mask planes are found by
EXTNAME) leave out every pixel without data — zero weight, infinite variance, masked bits — as
`galseg segment` never detects there. Huge frames are counted chunk by chunk in bounded memory.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predictions against a truth label image (pixel, object and COCO metrics)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", metavar="PRED [PRED ...] TRUE",
                   help="prediction FITS file(s), then the truth label FITS file (last); or name them "
                        "with --pred/--truth")
    p.add_argument("--truth", metavar="TRUE", help="the truth label FITS file (instead of the last positional)")
    p.add_argument("--pred", metavar="PRED", nargs="+", action="extend",
                   help="prediction FITS file(s) (instead of the positionals); named files are taken as "
                        "given, even when a file says it is a prediction")
    p.add_argument("--image", metavar="IMG",
                   help="the image FITS file: adds completeness vs flux (the image summed over each true "
                        "object; give a sky-subtracted image for true fluxes); its NaN pixels are not scored; a "
                        "multi-extension coadd brings its noise and mask planes")
    p.add_argument("--rms", metavar="RMS", help="noise map FITS: score only where it is finite and > 0")
    p.add_argument("--variance", metavar="VAR", help="a variance map instead of --rms: infinite variance is not scored")
    p.add_argument("--weight", metavar="WHT", help="an inverse-variance weight map instead of --rms: zero weight is not scored")
    p.add_argument("--weight-type", metavar="TYPE", help="what the noise map holds: MAP_RMS, MAP_VAR or MAP_WEIGHT")
    p.add_argument("--weight-scale", metavar="S", type=float, default=1.0,
                   help="multiply the noise map by S first (an exposure-time map used as a weight)")
    p.add_argument("--noise-hdu", metavar="HDU", help="HDU index or EXTNAME of the noise plane (default: found by name)")
    p.add_argument("--mask", metavar="FILE[:BITS]",
                   help="a bit mask (or FLAG image): pixels with a bad bit set are not scored; BITS as in --mask-bits")
    p.add_argument("--mask-bits", metavar="BITS", help="which mask bits are bad: MP_* names (BAD,SAT), bit numbers "
                   "(0,3) or a hex value (0x9); default as in `galseg segment`")
    p.add_argument("--mask-hdu", metavar="HDU", help="HDU index or EXTNAME of the mask plane (default: found by name)")
    p.add_argument("--iou-threshold", type=float, default=0.5,
                   help="IoU needed to match a predicted to a true object (default 0.5)")
    p.add_argument("--threshold", type=float, default=None,
                   help="binarise floating-point (probability map) predictions at this value, e.g. 0.5; "
                        "integer label predictions are used as they are")
    p.add_argument("--no-coco", action="store_true", help="skip the COCO AP/AR computation")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (metrics; for several PREDs a dict keyed by PRED path)")
    p.add_argument("--json-out", metavar="OUT.json", help="also write the full results (with curves) as JSON")
    p.add_argument("--csv", metavar="OUT.csv", help="also write the table as CSV")
    p.add_argument("--figure", metavar="OUT.png", help="also write a PNG: bar chart and completeness curves")
    p.add_argument("--overwrite", action="store_true", help="replace existing --csv/--json-out/--figure files")
    p.set_defaults(func=run)


def _open(path: str, with_header: bool = False) -> Any:
    """Open a FITS image through napari_galseg.io (lazy); small images are loaded into memory."""
    from ..io import open_fits
    from ..metrics.evaluate import IN_MEMORY_PIXELS

    image = open_fits(path)
    data = image.data
    if data.size <= IN_MEMORY_PIXELS:
        data = np.asarray(data.compute())
    return (data, image.header) if with_header else data


def _split_files(args: argparse.Namespace) -> tuple[list[str], str, bool]:
    """(prediction paths, truth path, named): from --pred/--truth or from the positionals."""
    named = args.truth is not None or bool(args.pred)
    if named:
        if args.truth is None or not (args.pred or args.files):
            raise ValueError("with --truth give the prediction(s) too (--pred PRED ...), and with --pred give --truth")
        if args.pred and args.files:
            raise ValueError(f"give the predictions either with --pred or as positionals, not both "
                             f"(extra: {' '.join(args.files)})")
        return list(args.pred or args.files), args.truth, True
    if len(args.files) < 2:
        raise ValueError("give at least one prediction and the truth: galseg evaluate PRED [PRED ...] TRUE "
                         "(or --truth TRUE --pred PRED)")
    *preds, true = args.files
    return preds, true, False


def _check_roles(pred_paths: list[str], true_path: str, roles: dict[str, str | None], named: bool) -> list[str]:
    """Refuse a swapped positional order the files tell; notes for what named files say."""
    from ..cli import CliError

    wrong = [p for p in pred_paths if roles[p] == "truth"]
    if roles[true_path] == "prediction" and not named and any(roles[p] != "prediction" for p in pred_paths):
        raise CliError(f"{true_path} is a prediction (its SEGROLE card says galseg wrote it) but is given as the "
                       "truth: the truth goes last (galseg evaluate PRED TRUE), or name the files: "
                       "--truth TRUE --pred PRED")
    if wrong and not named:
        raise CliError(f"{wrong[0]} is a true segmentation (its header says so) but is given as a prediction: "
                       "the truth goes last (galseg evaluate PRED TRUE), or name the files: --truth TRUE --pred PRED")
    notes = []
    if roles[true_path] == "prediction":
        notes.append(f"the truth {Path(true_path).name} is itself a prediction written by galseg: these scores "
                     "compare two predictions")
    notes += [f"{Path(p).name}, given as a prediction, is a true segmentation (its header says so)" for p in wrong]
    return notes


def _unique_names(paths: list[str]) -> list[str]:
    names = []
    for path in paths:
        stem = Path(path).name
        for suffix in (".fits.gz", ".fits", ".fit", ".fts", ".fz"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        names.append(stem)
    if len(set(names)) < len(names):  # same file names in different folders: use the paths
        names = list(paths)
    return names


def _keys(paths: list[str]) -> list[str]:
    """JSON keys: the PRED paths as given; a path given twice gets ``#2``, ``#3``..."""
    seen: dict[str, int] = {}
    keys = []
    for path in paths:
        seen[path] = seen.get(path, 0) + 1
        keys.append(path if seen[path] == 1 else f"{path}#{seen[path]}")
    return keys


def _scored_pixels(args: argparse.Namespace, true_path: str) -> tuple[Any, Any, list[str]]:
    """``(image, mask, notes)``: the pixels to score, as :func:`napari_galseg.frames.open_frame`
    defines "no data" for `galseg segment` (NaN in ``image``; without --image, a ``mask`` of the
    pixels with data, from the noise map and bit mask on the truth's grid)."""
    from ..frames import NoDataError, open_frame
    from ..metrics.evaluate import IN_MEMORY_PIXELS

    planes_given = any((args.rms, args.mask, args.noise_hdu, args.mask_hdu, args.noise_kind, args.mask_bits))
    if not args.image and not planes_given:
        return None, None, []
    if args.mask_bits and not (args.mask or args.mask_hdu or args.image):
        raise ValueError("--mask-bits chooses bits of a mask: give the mask with --mask FILE (or a coadd as --image)")
    try:
        frame = open_frame(args.image or true_path, noise=args.rms, noise_kind_name=args.noise_kind,
                           noise_hdu=args.noise_hdu, noise_scale=args.weight_scale, mask=args.mask,
                           mask_bits=args.mask_bits, mask_hdu=args.mask_hdu, planes=bool(args.image))
    except NoDataError as exc:
        raise ValueError(f"no pixel is left to score: every pixel is without data ({exc.reason})") from None
    small = frame.shape[0] * frame.shape[1] <= IN_MEMORY_PIXELS
    if args.image:
        image = frame.image
        planes = ", ".join(f"{k} {v}" for k, v in frame.sources.items() if k != "science")
        notes = [f"the pixels with data are those of the image's {planes}"] if planes else []
        return (np.asarray(image.compute()) if small else image), None, notes + frame.notes
    valid = frame.valid  # the truth's grid, undefined where the noise or mask says so (its notes are the truth's)
    if small:
        valid = np.asarray(valid.compute())
        missing = int(valid.size - valid.sum())
        return None, valid, [f"{missing} pixels without data ({', '.join(v for k, v in frame.sources.items() if k != 'science')}) "
                             "are not scored"] if missing else []
    return None, valid, []


def run(args: argparse.Namespace) -> int:
    from ..io.write import label_role
    from ..metrics import evaluate
    from ..metrics.evaluate import segmentation_doubts
    from ..metrics.report import format_table, to_jsonable, write_csv, write_figure, write_json
    from .segment import _mask_file, _noise_choice

    pred_paths, true_path, named = _split_files(args)
    if not 0.0 < args.iou_threshold <= 1.0:
        raise ValueError(f"--iou-threshold must be in (0, 1], got {args.iou_threshold}")
    _noise_choice(args)  # --rms/--variance/--weight/--weight-type → args.rms (the file) and args.noise_kind
    if not (args.weight_scale > 0 and args.weight_scale < float("inf")):
        raise ValueError(f"--weight-scale must be a positive number, got {args.weight_scale}")
    check_outputs([args.csv, args.json_out, args.figure],
                  inputs=[*pred_paths, true_path, args.image, args.rms, args.mask and _mask_file(args.mask)],
                  overwrite=args.overwrite)
    if args.figure and not str(args.figure).lower().endswith(".png"):
        raise ValueError(f"--figure {args.figure}: the figure is written as PNG; give a name ending in .png")
    true, true_header = _open(true_path, with_header=True)
    if true.dtype.kind not in "iub":
        raise ValueError(f"the truth {true_path} holds {true.dtype} values, not integer labels; "
                         "give the truth label image last (or with --truth)")
    roles = {true_path: label_role(true_header)}
    preds = []
    for path in pred_paths:
        pred, header = _open(path, with_header=True)
        roles[path] = label_role(header)
        preds.append(pred)
    shared_notes = _check_roles(pred_paths, true_path, roles, named)
    shared_notes += [f"the truth {Path(true_path).name} {doubt}" for doubt in segmentation_doubts(true)]
    image, mask, frame_notes = _scored_pixels(args, true_path)
    shared_notes += frame_notes
    evaluations = []
    for path, name, pred in zip(pred_paths, _unique_names(pred_paths), preds):
        if tuple(pred.shape) != tuple(true.shape):
            raise ValueError(f"{path} has shape {tuple(pred.shape)} but the truth {true_path} has "
                             f"{tuple(true.shape)}; evaluate images on the same pixel grid")
        if pred.dtype.kind == "f" and args.threshold is None:
            raise ValueError(f"{path} holds floating-point values (a probability map?); "
                             "pass --threshold (e.g. 0.5) or give an integer label image")
        evaluation = evaluate(
            pred, true, image=image, mask=mask, iou_threshold=args.iou_threshold,
            threshold=args.threshold if pred.dtype.kind == "f" else None, name=name, coco=False if args.no_coco else "auto",
        )
        doubts = segmentation_doubts(pred) if pred.dtype.kind in "iub" else []
        evaluation.notes[:0] = [*shared_notes, *(f"the prediction {Path(path).name} {d}" for d in doubts)]
        evaluations.append(evaluation)
    if args.csv:
        write_csv(evaluations, args.csv, overwrite=args.overwrite)
    if args.json_out:
        full = [e.to_dict() for e in evaluations]
        write_json(full[0] if len(full) == 1 else dict(zip(_keys(pred_paths), full)), args.json_out,
                   overwrite=args.overwrite)
    if args.figure:
        write_figure(evaluations, args.figure, overwrite=args.overwrite)
    if args.json:  # the notes travel with the numbers: a script must see them too
        rows = [{**e.metrics, "notes": list(e.notes)} for e in evaluations]
        payload = rows[0] if len(rows) == 1 else dict(zip(_keys(pred_paths), rows))
        print(json.dumps(to_jsonable(payload)))
    else:
        print(format_table(evaluations))
    # notes go under the table (stdout: they belong to the numbers) and, with --json, to stderr
    stream = sys.stderr if args.json else sys.stdout
    for evaluation in evaluations:
        for note in evaluation.notes:
            print(f"note ({evaluation.name}): {note}", file=stream)
    return 0
