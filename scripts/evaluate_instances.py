"""Train Mask R-CNN and DETR on one synthetic field; score them and photutils on a field of another seed.

Every method is scored the same way: COCO segm and bbox AP / AP50 / AP75 / AR (detection cap above
the number of objects, galaxy size bins) with a score per instance — the models' own detection
scores, and for photutils each segment's S/N from its catalog (``Segmentation.scores``) — plus
panoptic PQ / SQ / RQ. Inference speed is reported in Mpix/s. A tiled vs
untiled check runs each model on a crop of the test field as one tile and as overlapping tiles.

    # short CPU check (each model ~4 minutes of training)
    .venv/bin/python scripts/evaluate_instances.py --train-size 2048 --test-size 1024 --minutes 4
    # on a GPU
    .venv/bin/python scripts/evaluate_instances.py --train-size 4096 --test-size 2048 --minutes 3 --device cuda
    # a saved model, scored with other post-processing (no training field is made)
    .venv/bin/python scripts/evaluate_instances.py --load detr=eval-instances/detr --set detr.mask_quality=true

Prints a table and writes ``--json`` (default WORKDIR/evaluation.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_galseg.metrics.coco import GALAXY_AREA_BINS, coco_evaluate
from napari_galseg.metrics.panoptic import panoptic_quality
from napari_galseg.synth import make_field

#: what a loaded model may change with --set: how it predicts, not what it learned
PREDICT_WITH = frozenset({"margin", "iou_threshold", "score_threshold", "mask_threshold", "min_size",
                          "min_free_fraction", "mask_quality", "tile_size", "tile_overlap", "tile_batch",
                          "n_threads", "device"})
KEYS = ("ap", "ap50", "ap75", "ar", "bbox_ap", "bbox_ap50", "ap_small", "ap_medium", "ap_large")


def score(labels, scores, truth) -> dict:
    stats = coco_evaluate(labels, truth, scores=scores, area_bins=GALAXY_AREA_BINS)
    pq = panoptic_quality(labels, truth)
    out = {k: (round(stats[k], 4) if stats.get(k) is not None else None) for k in KEYS}
    out.update(pq=round(pq["pq"], 4), sq=round(pq["sq"], 4), rq=round(pq["rq"], 4),
               n_pred=int(labels.max()), n_true=int(len(np.unique(truth)) - 1))
    return out


def run_photutils(train, test, grid) -> dict:
    """photutils with its own scores (each segment's S/N from its catalog): nsigma tuned on (a crop
    of) the training field by segm AP, then applied unchanged to the test field."""
    from napari_galseg.segmenters import get

    best = None
    crop = slice(0, min(1024, train.image.shape[0]))
    for nsigma in grid:
        result = get("photutils")(nsigma=nsigma).predict(train.image[crop, crop], train.rms[crop, crop])
        ap = coco_evaluate(np.asarray(result.labels), train.truth[crop, crop], scores=result.scores,
                           iou_types=("segm",))["ap"]
        print(f"  photutils nsigma {nsigma}: train AP {ap:.3f}", flush=True)
        if best is None or ap > best[1]:
            best = (nsigma, ap)
    t = time.perf_counter()
    result = get("photutils")(nsigma=best[0]).predict(test.image, test.rms)
    labels = np.asarray(result.labels)
    dt = time.perf_counter() - t
    return {**score(labels, result.scores, test.truth), "nsigma": best[0],
            "seconds": round(dt, 1), "mpix_per_s": round(test.image.size / dt / 1e6, 3)}


def tiled_check(model, test, crop: int) -> dict:
    """AP of the model on a crop as one tile and as overlapping tiles (same weights)."""
    image, rms, truth = test.image[:crop, :crop], test.rms[:crop, :crop], test.truth[:crop, :crop]
    run = model.run_options
    out = {}
    for name, tile, overlap in (("untiled", crop, 0), ("tiled", run.tile_size, run.tile_overlap)):
        model.configure(tile_size=tile, tile_overlap=overlap)
        lab, scores, _ = model.predict_instances(image, rms)
        out[name] = coco_evaluate(lab, truth, scores=scores, iou_types=("segm",), area_bins=GALAXY_AREA_BINS)["ap"]
    model.configure(tile_size=run.tile_size, tile_overlap=run.tile_overlap)
    out["difference"] = round(abs(out["tiled"] - out["untiled"]), 4)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-size", type=int, default=2048)
    ap.add_argument("--test-size", type=int, default=1024)
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--test-seed", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=4.0, help="training time budget per model")
    ap.add_argument("--models", default="maskrcnn,detr")
    ap.add_argument("--load", action="append", default=[], metavar="MODEL=FOLDER",
                    help="score a saved model folder instead of training that model, e.g. --load detr=eval-instances/detr")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", dest="set_options", action="append", default=[], metavar="MODEL.KEY=VALUE",
                    help="a model parameter, e.g. --set maskrcnn.lr=2e-3 --set detr.d_model=128")
    ap.add_argument("--skip-photutils", action="store_true")
    ap.add_argument("--tiled-crop", type=int, default=512, help="side of the crop of the tiled-vs-untiled check (0 = skip)")
    ap.add_argument("--workdir", default="eval-instances")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from napari_galseg.model_folder import ModelFolderError
    from napari_galseg.segmenters import get
    from napari_galseg.settings import SettingError

    settings: dict[str, dict] = {}
    for item in args.set_options:
        key, _, value = item.partition("=")
        model_name, _, field = key.partition(".")
        settings.setdefault(model_name, {})[field] = value
    loaded = {}
    for item in args.load:  # checked before fields are made: a wrong folder is one line, not a traceback later
        name, _, folder = item.partition("=")
        fixed = sorted(set(settings.get(name, {})) - PREDICT_WITH)
        if fixed:
            ap.error(f"--set {', '.join(fixed)}: a loaded model keeps what it was trained with; with --load, "
                     f"--set only how it predicts ({', '.join(sorted(PREDICT_WITH))})")
        try:
            loaded[name] = get(name).load(folder).configure(**{"device": args.device, **settings.get(name, {})})
        except (ModelFolderError, SettingError, ValueError, KeyError, OSError) as exc:
            ap.error(f"--load {item}: {exc}")
    models = list(loaded) if loaded else [m for m in args.models.split(",") if m]

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    train = make_field(size=args.train_size, seed=args.train_seed) if len(loaded) < len(models) or not args.skip_photutils else None
    test = make_field(size=args.test_size, seed=args.test_seed)
    print(f"fields: train {args.train_size}² seed {args.train_seed}{'' if train else ' (not needed)'}, "
          f"test {args.test_size}² seed {args.test_seed} ({time.perf_counter() - t:.0f}s)", flush=True)
    out = Path(args.json) if args.json else work / "evaluation.json"

    def save(results) -> None:  # after every method: a run stopped early keeps what it measured
        out.write_text(json.dumps(results, indent=2, default=str))

    results: dict = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "methods": {}, "tiled_check": {}}
    for name in models:
        if name in loaded:
            model, train_s = loaded[name], None
        else:
            model = get(name)(**{"epochs": 10_000, "max_minutes": args.minutes, "device": args.device, **settings.get(name, {})})
            t = time.perf_counter()
            model.fit(train.image, train.truth, train.rms,
                      callback=lambda r, name=name: print(f"  {name}: " + r.line(), flush=True) if r.kind == "epoch" else None)
            train_s = round(time.perf_counter() - t, 1)
            model.save(work / name)
        t = time.perf_counter()
        labels, scores, _ = model.predict_instances(test.image, test.rms)
        dt = time.perf_counter() - t
        results["methods"][name] = {**score(labels, scores, test.truth), "train_seconds": train_s,
                                    "steps": model.provenance["training"]["steps"], "test_patches": model.metrics.get("test"),
                                    "seconds": round(dt, 1), "mpix_per_s": round(test.image.size / dt / 1e6, 3)}
        print(f"{name}: {results['methods'][name]}", flush=True)
        save(results)
        if args.tiled_crop:
            results["tiled_check"][name] = tiled_check(model, test, min(args.tiled_crop, args.test_size))
            print(f"  tiled check: {results['tiled_check'][name]}", flush=True)
            save(results)
    if not args.skip_photutils:
        results["methods"]["photutils"] = run_photutils(train, test, (2.0, 3.0, 4.0, 5.0))
        print(f"photutils: {results['methods']['photutils']}", flush=True)
        save(results)

    print()
    print(f"{'method':<10} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AR':>6} {'bboxAP':>7} {'PQ':>6} {'Mpix/s':>7}")
    for name, s in results["methods"].items():
        f = lambda v: f"{v:.3f}" if v is not None else "  -  "
        print(f"{name:<10} {f(s['ap']):>6} {f(s['ap50']):>6} {f(s['ap75']):>6} {f(s['ar']):>6} {f(s['bbox_ap']):>7} "
              f"{f(s['pq']):>6} {s['mpix_per_s']:>7}")
    save(results)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
