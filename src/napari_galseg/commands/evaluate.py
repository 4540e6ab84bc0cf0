"""`galseg evaluate PRED [PRED ...] TRUE` — score predictions against a truth label image.

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
--rms restricts scoring to pixels with a finite, positive noise value. Huge frames are counted
chunk by chunk in bounded memory.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predictions against a truth label image (pixel, object and COCO metrics)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="PRED [PRED ...] TRUE",
                   help="prediction FITS file(s), then the truth label FITS file (last)")
    p.add_argument("--image", metavar="IMG",
                   help="the image FITS file: adds completeness vs flux (the image summed over each true "
                        "object; give a sky-subtracted image for true fluxes)")
    p.add_argument("--rms", metavar="RMS", help="noise map FITS: score only where it is finite and > 0")
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


def _open(path: str) -> Any:
    """Open a FITS image through napari_galseg.io (lazy); small images are loaded into memory."""
    from ..io import open_fits
    from ..metrics.evaluate import IN_MEMORY_PIXELS

    data = open_fits(path).data
    if data.size <= IN_MEMORY_PIXELS:
        data = np.asarray(data.compute())
    return data


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


def run(args: argparse.Namespace) -> int:
    from ..metrics import evaluate
    from ..metrics.report import format_table, to_jsonable, write_csv, write_figure, write_json

    if len(args.files) < 2:
        raise ValueError("give at least one prediction and the truth: galseg evaluate PRED [PRED ...] TRUE")
    if not 0.0 < args.iou_threshold <= 1.0:
        raise ValueError(f"--iou-threshold must be in (0, 1], got {args.iou_threshold}")
    check_outputs([args.csv, args.json_out, args.figure], inputs=[*args.files, args.image, args.rms],
                  overwrite=args.overwrite)
    if args.figure and not str(args.figure).lower().endswith(".png"):
        raise ValueError(f"--figure {args.figure}: the figure is written as PNG; give a name ending in .png")
    *pred_paths, true_path = args.files
    true = _open(true_path)
    if true.dtype.kind not in "iub":
        raise ValueError(f"the truth {true_path} holds {true.dtype} values, not integer labels; "
                         "give the truth label image last")
    image = _open(args.image) if args.image else None
    mask = None
    if args.rms:
        rms = _open(args.rms)
        mask = np.isfinite(rms) & (rms > 0)
    evaluations = []
    for path, name in zip(pred_paths, _unique_names(pred_paths)):
        pred = _open(path)
        if tuple(pred.shape) != tuple(true.shape):
            raise ValueError(f"{path} has shape {tuple(pred.shape)} but the truth {true_path} has "
                             f"{tuple(true.shape)}; evaluate images on the same pixel grid")
        if pred.dtype.kind == "f" and args.threshold is None:
            raise ValueError(f"{path} holds floating-point values (a probability map?); "
                             "pass --threshold (e.g. 0.5) or give an integer label image")
        evaluations.append(evaluate(
            pred, true, image=image, mask=mask, iou_threshold=args.iou_threshold,
            threshold=args.threshold if pred.dtype.kind == "f" else None, name=name, coco=False if args.no_coco else "auto",
        ))
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
    for evaluation in evaluations:
        for note in evaluation.notes:
            print(f"note ({evaluation.name}): {note}", file=sys.stderr)
    return 0
