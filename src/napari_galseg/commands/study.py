"""`galseg study` — every method under every preprocessing variant of the study, one results page."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import progress_bar

DESCRIPTION = """\
Reproduce the study's comparison on fields with exact truth: for each method and each
preprocessing variant (normalised; stretched; stretched + rms; stretched + log-stretched rms; the
method's own default), train on --train, segment --test and score it. Writes OUT/results.md,
results.csv, results.png (the scores per method and variant), panel.png (predictions side by side)
and one folder per cell (prediction, result.json). Each cell runs in a process of its own (wall
time and peak memory are its own); a rerun skips the cells already done.

FIELD is a folder holding img.fits, rms.fits and true.fits (`galseg synth FIELD ...`).

examples:
  galseg study --quick -o study-quick/                 # makes small fields, tiny budgets: a few minutes
  galseg study --train train/ --test test/ --budget 30 -o study/
  galseg study --train train/ --test test/ --methods photutils unet --variants default stretched -o study/
"""

#: the --quick study: small fields, small models, tiny budgets (minutes on a laptop CPU)
QUICK_SIZE = 256
QUICK_SETTINGS: dict[str, dict] = {
    "forest": {"n_estimators": 20, "max_train_pixels": 20_000},
    "kmeans": {"sample_size": 20_000},
    "unet": {"depth": 3, "base_width": 8, "patch_size": 64, "block_size": 64, "epochs": 3, "patches_per_epoch": 32,
             "val_max_patches": 4, "tile_size": 128, "tile_overlap": 32, "halo": 32},
    "maskrcnn": {"widths": [8, 16, 32, 64], "fpn_channels": 16, "rois_per_image": 64, "patch_size": 64,
                 "block_size": 64, "epochs": 2, "patches_per_epoch": 8, "batch_size": 2, "val_max_patches": 2,
                 "tile_size": 128, "tile_overlap": 32},
    "detr": {"d_model": 32, "heads": 8, "encoder_layers": 1, "decoder_layers": 1, "ffn_dim": 64,
             "backbone_widths": [8, 16, 32, 64], "patch_size": 64, "block_size": 64, "epochs": 2,
             "patches_per_epoch": 8, "batch_size": 2, "val_max_patches": 2, "tile_size": 128, "tile_overlap": 32},
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="every method under every preprocessing variant: the study's tables",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", metavar="FIELD", help="training field folder (img.fits, rms.fits, true.fits)")
    p.add_argument("--test", metavar="FIELD", help="held-out field folder, scored")
    p.add_argument("--methods", nargs="+", metavar="M", help="methods (default: every installed one)")
    p.add_argument("--variants", nargs="+", metavar="V", help="preprocessing variants (default: all five)")
    p.add_argument("--budget", type=float, default=10.0, metavar="MINUTES", help="training minutes per deep model (default 10)")
    p.add_argument("--quick", action="store_true", help=f"make {QUICK_SIZE}² fields and use tiny models and budgets")
    p.add_argument("--set", dest="set_options", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="a setting of one method, e.g. --set maskrcnn.batch_size=16 (repeatable; `galseg segment "
                        "METHOD --params` lists them)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (a rerun resumes it)")
    p.set_defaults(func=run)


def _field_files(folder: str, name: str) -> dict[str, str]:
    from ..cli import CliError
    from ..synth import FIELD_FILES

    files = {kind: Path(folder) / name for kind, name in FIELD_FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise CliError(f"--{name} {folder} lacks {', '.join(missing)}; make a field with `galseg synth {folder}`")
    return {k: str(v) for k, v in files.items()}


def _method_settings(pairs: list[str]) -> list[tuple[str, str, str]]:
    """``--set METHOD.KEY=VALUE`` options as (method, key, value), each checked against the method's settings."""
    from ..cli import CliError
    from ..segmenters import available, get
    from . import parse_set_options

    out = []
    for dotted, value in parse_set_options(pairs).items():
        method, dot, key = dotted.partition(".")
        if not dot or method not in available():
            raise CliError(f"--set {dotted}={value}: write METHOD.KEY=VALUE with METHOD one of {', '.join(available())}")
        try:
            get(method)().configure(**{key: value})
        except (TypeError, ValueError) as exc:
            raise CliError(f"--set {dotted}={value}: {exc}") from None
        out.append((method, key, value))
    return out


def run(args: argparse.Namespace) -> int:
    from ..cli import CliError
    from ..segmenters import available
    from ..study import StudyPlan, run_study
    from ..study.grid import collect_results, failed_cells
    from ..study.tables import write_tables
    from ..study.variants import VARIANTS

    out = Path(args.out)
    settings: dict[str, dict] = {}
    budget = args.budget
    if args.quick:
        from ..synth import write_field

        fields = {}
        for name, seed in (("train", 1), ("test", 2)):
            folder = out / "fields" / name
            if not (folder / "true.fits").exists():
                write_field(folder, size=QUICK_SIZE, seed=seed, overwrite=True)
            fields[name] = str(folder)
        train, test = _field_files(fields["train"], "train"), _field_files(fields["test"], "test")
        settings, budget = QUICK_SETTINGS, min(budget, 0.5)
    else:
        if not args.train or not args.test:
            raise CliError("give --train FIELD and --test FIELD (or --quick to make small ones)")
        train, test = _field_files(args.train, "train"), _field_files(args.test, "test")
    methods = args.methods or available()
    unknown = sorted(set(methods) - set(available()))
    if unknown:
        raise CliError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(available())}")
    variants = args.variants or list(VARIANTS)
    bad = sorted(set(variants) - set(VARIANTS))
    if bad:
        raise CliError(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
    settings = {method: dict(values) for method, values in settings.items()}
    for method, key, value in _method_settings(args.set_options):
        settings.setdefault(method, {})[key] = value
    plan = StudyPlan(train=train, test=test, out=str(out), methods=methods, variants=variants,
                     budget_minutes=budget, settings=settings)
    with progress_bar("study", unit="cells") as bar:
        run_study(plan, progress=bar)
    rows = collect_results(out)  # earlier runs into the same folder (other methods, variants) too
    header = (f"Trained on {train['image']}, scored on {test['image']}; "
              f"training budget {budget:g} min per deep model (the last run's).\n")
    paths = write_tables(rows, out, header)
    _write_panel(plan, rows, out)
    for failure in failed_cells(plan):
        print(f"{failure['cell']['method']} / {failure['cell']['variant']} failed: {failure['error']}", file=sys.stderr)
    print(paths["md"].read_text())
    print(f"wrote {paths['md']}, {paths['csv']}, {paths['png']} and {out / 'panel.png'}", file=sys.stderr)
    return 0 if not failed_cells(plan) else 1


def _write_panel(plan, rows, out: Path) -> None:
    """The test field, its truth and each method's prediction (its best variant by IoU)."""
    import numpy as np

    from ..io import open_fits
    from ..study.tables import panel

    best: dict[str, dict] = {}
    for row in rows:
        if row["method"] not in best or row.get("iou", 0) > best[row["method"]].get("iou", 0):
            best[row["method"]] = row
    predictions = {}
    for method, row in sorted(best.items()):
        path = out / "cells" / f"{method}__{row['variant']}" / "pred.fits"
        if path.exists():
            predictions[f"{method} ({row['variant']})"] = np.asarray(open_fits(path).data)
    image = np.asarray(open_fits(plan.test["image"]).data)
    truth = np.asarray(open_fits(plan.test["truth"]).data)
    panel(image, truth, predictions, out / "panel.png")
