"""Score the built-in models on fields they never saw, and write the scores into their cards.

The test fields are GalSim fields inside the models' range (PSF FWHM 1.5-6 px, Moffat and
Kolmogorov, several depths and densities) whose galaxies have morphologies the models did not
train on: irregular systems and mergers (the training mosaics hold Sérsic, bulge + disk and
knotty galaxies only). No method is given the rms map: the built-ins and photutils estimate the
noise; SEP (a SExtractor-like extraction: 1.5σ, minarea 10) uses its own background rms.

    .venv/bin/python scripts/evaluate_builtin.py --size 1024 --seeds 601,602,603,604,605,606
    .venv/bin/python scripts/evaluate_builtin.py --no-card      # score only, leave the cards alone
    .venv/bin/python scripts/evaluate_builtin.py --seeds 701,702,703,704,705 --candidates /tmp/build --no-card
                                                                # a rebuilt model before it replaces a built-in

Prints a table (mean and range over the fields) and writes --json (default builtin-scores.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_galseg._atomic import atomic_write_text
from napari_galseg.builtin_models import CARD_NAME, builtin_model
from napari_galseg.segmenters import get
from napari_galseg.synth.galsim_backend import make_galsim_field

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_unet import scores as unet_scores

#: one test field per seed: conditions cycle through this list (inside the built-ins' range)
CONDITIONS = [
    {"psf": "moffat", "psf_fwhm": 2.0, "moffat_beta": 3.0, "sky_level": 150.0, "galaxy_density": 700.0},
    {"psf": "kolmogorov", "psf_fwhm": 3.5, "sky_level": 400.0, "galaxy_density": 1000.0},
    {"psf": "moffat", "psf_fwhm": 5.0, "moffat_beta": 4.0, "sky_level": 80.0, "galaxy_density": 500.0},
    {"psf": "kolmogorov", "psf_fwhm": 1.8, "sky_level": 600.0, "galaxy_density": 1200.0},
    {"psf": "moffat", "psf_fwhm": 3.0, "moffat_beta": 2.5, "sky_level": 250.0, "galaxy_density": 900.0},
    {"psf": "kolmogorov", "psf_fwhm": 5.5, "sky_level": 200.0, "galaxy_density": 600.0},
]
#: morphologies the built-ins never trained on
UNSEEN = {"knotty_fraction": 0.0, "irregular_fraction": 0.45, "merger_fraction": 0.35}
METHODS = ("unet", "forest", "photutils", "sep")


def scores(labels, truth, seconds: float) -> dict:
    """The U-Net evaluation's scores (pixel IoU/Dice, object completeness/purity) and the speed."""
    return {**unet_scores(labels, truth), "mpix_per_s": labels.size / 1e6 / max(seconds, 1e-9)}


def run_sep(image) -> np.ndarray:
    """SExtractor-like: background mesh, 1.5σ of its rms on the 3x3-filtered image, minarea 10."""
    import sep

    sep.set_sub_object_limit(4096)
    sep.set_extract_pixstack(int(2e7))
    data = np.ascontiguousarray(image, dtype=np.float64)
    bkg = sep.Background(data)
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], float)
    _, seg = sep.extract(data - bkg.back(), 1.5, err=bkg.rms(), minarea=10, filter_kernel=k, deblend_nthresh=32,
                         deblend_cont=0.005, segmentation_map=True)
    return seg.astype(np.int32)


def segment(method: str, image, candidates: Path | None = None) -> np.ndarray:
    if method == "sep":
        return run_sep(image)
    if method == "photutils":
        return np.asarray(get("photutils")(catalog="none").predict(image).labels)
    if candidates is not None:  # a rebuilt folder (build_builtin_models.py --out DIR), not the package's
        path = candidates / f"{method}-general"
        if not path.is_dir():
            raise SystemExit(f"no {path}: give --candidates the --out folder of build_builtin_models.py")
    else:
        model = builtin_model(f"{method}-general")
        if model is None:
            raise SystemExit(f"no built-in {method} model: run scripts/build_builtin_models.py first")
        path = model.path
    return np.asarray(get(method).load(path).predict(image).labels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="side of each test field (default 1024)")
    ap.add_argument("--seeds", default="601,602,603,604,605,606", help="test field seeds (one field each)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default="builtin-scores.json")
    ap.add_argument("--no-card", action="store_true", help="do not write the scores into the built-in models' cards")
    ap.add_argument("--candidates", default="", help="score the model folders of this build_builtin_models.py --out "
                                                     "folder instead of the built-ins (implies --no-card)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    candidates = Path(args.candidates) if args.candidates else None
    fields = []
    for n, seed in enumerate(seeds):
        cond = {**CONDITIONS[n % len(CONDITIONS)], **UNSEEN}
        f = make_galsim_field(args.size, seed, **cond)
        row = {"seed": seed, "conditions": cond, "methods": {}}
        for method in methods:
            t0 = time.perf_counter()
            labels = segment(method, f.image, candidates)
            row["methods"][method] = scores(labels, f.truth, time.perf_counter() - t0)
        fields.append(row)
        print(f"seed {seed} {cond['psf']} {cond['psf_fwhm']} px: " + ", ".join(
            f"{m} IoU {row['methods'][m]['iou']:.3f} P {row['methods'][m]['purity']:.3f}" for m in methods),
            file=sys.stderr)
    summary = {}
    for method in methods:
        values = {k: [f["methods"][method][k] for f in fields] for k in ("iou", "dice", "completeness", "purity")}
        summary[method] = {"mean": {k: float(np.mean(v)) for k, v in values.items()},
                           "min": {k: float(np.min(v)) for k, v in values.items()},
                           "max": {k: float(np.max(v)) for k, v in values.items()}}
    print(f"{'method':<10} {'IoU mean (range)':<22} {'completeness':>12} {'purity':>8}")
    for method, s in summary.items():
        print(f"{method:<10} {s['mean']['iou']:.3f} ({s['min']['iou']:.3f}–{s['max']['iou']:.3f})    "
              f"{s['mean']['completeness']:>12.3f} {s['mean']['purity']:>8.3f}")
    command = "scripts/evaluate_builtin.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"date": time.strftime("%Y-%m-%d"), "command": command, "size": args.size, "unseen": UNSEEN,
              "fields": fields, "summary": summary}
    atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if not args.no_card and candidates is None:
        for method in ("unet", "forest"):
            model = builtin_model(f"{method}-general")
            if model is None or method not in summary:
                continue
            card = dict(model.card)
            card["scores_unseen"] = {**summary[method], "baselines": {m: summary[m]["mean"] for m in summary
                                                                       if m != method},
                                     "fields": f"{len(seeds)} GalSim fields of {args.size}², irregular and merging "
                                               "galaxies (never trained on), no rms map given",
                                     "date": report["date"], "command": command}
            atomic_write_text(Path(model.path) / CARD_NAME, json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
