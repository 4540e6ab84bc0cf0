"""Quality benchmark: every classical method beside SEP on fields the code was not tuned on.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_quality.py                      # 6 fields of 2048², all methods
    .venv/bin/python benchmarks/bench_quality.py --size 1024 --fields builtin-gauss galsim-kolmo
    .venv/bin/python benchmarks/bench_quality.py --methods photutils sep --set photutils nsigma=2.5

Fields (``FIELDS``; seeds 201+ — none was used while choosing any default): the built-in generator
(:mod:`napari_galseg.synth`) and GalSim (:mod:`napari_galseg.synth.galsim_backend`, bulge + disk galaxies,
blends) with Moffat, Gaussian and Kolmogorov PSFs of 2.5–4 px FWHM, densities 400–1200 galaxies per
Mpix and skies 120–400 e⁻ (depths). Truth reaches 0.5σ per pixel in both generators.

Methods: ``photutils`` (defaults) and ``photutils-study`` (the study's literal setting),
``sep`` at SExtractor-like defaults (``sep.Background`` 64/3, ``sep.extract`` 1.5σ with the rms map,
minarea 10, its default 3×3 filter, 32 levels, contrast 0.005, cleaning on), ``kmeans`` (defaults)
and ``kmeans-study``, ``forest`` (defaults) and ``forest-study`` — each forest trained once on a
2048² built-in field of seed 200 with its default settings (the time is printed), then applied
unchanged to every field. Scores: pixel IoU of ``labels > 0`` vs ``truth > 0``; completeness and
purity from :func:`napari_galseg.metrics.object_metrics` (one-to-one matches at IoU ≥ 0.5).
``--json`` writes every number.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np

#: name -> (generator, options); seeds are given per field below
FIELDS = {
    "builtin-moffat": ("builtin", 201, {}),
    "builtin-gauss": ("builtin", 202, {"psf": "gaussian", "psf_fwhm": 3.5, "galaxy_density": 1200.0, "sky_level": 120.0}),
    "builtin-wide": ("builtin", 203, {"psf_fwhm": 4.0, "moffat_beta": 2.5, "galaxy_density": 400.0, "sky_level": 400.0}),
    "galsim-moffat": ("galsim", 204, {"psf": "moffat", "psf_fwhm": 3.0}),
    "galsim-kolmo": ("galsim", 205, {"psf": "kolmogorov", "psf_fwhm": 3.5, "galaxy_density": 1000.0}),
    "galsim-kolmo-sparse": ("galsim", 206, {"psf": "kolmogorov", "psf_fwhm": 2.5, "galaxy_density": 400.0, "sky_level": 400.0}),
}
METHODS = ("photutils", "photutils-study", "sep", "kmeans", "kmeans-study", "forest", "forest-study")
TRAIN_SEED = 200


def make(name: str, size: int):
    kind, seed, options = FIELDS[name]
    if kind == "galsim":
        from napari_galseg.synth.galsim_backend import make_galsim_field

        return make_galsim_field(size, seed, **options)
    from napari_galseg.synth import make_field

    return make_field(size, seed, **options)


def run_sep(image, rms):
    import sep

    data = np.ascontiguousarray(image, dtype=np.float64)
    bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    sep.set_extract_pixstack(10_000_000)
    sep.set_sub_object_limit(4096)
    _, seg = sep.extract(data - bkg.back(), 1.5, err=np.ascontiguousarray(rms, dtype=np.float64), minarea=10,
                         deblend_nthresh=32, deblend_cont=0.005, segmentation_map=True)
    return seg.astype(np.int32)


def segmenter(method: str, overrides: dict):
    from napari_galseg.segmenters import get
    from napari_galseg.segmenters.forest import STUDY_PRESET as FOREST_STUDY
    from napari_galseg.segmenters.kmeans import STUDY_PRESET as KMEANS_STUDY
    from napari_galseg.segmenters.photutils import STUDY_PRESET as PHOTUTILS_STUDY

    base, _, variant = method.partition("-")
    preset = {"photutils": PHOTUTILS_STUDY, "kmeans": KMEANS_STUDY, "forest": FOREST_STUDY}[base] if variant == "study" else {}
    settings = {**preset, **overrides.get(method, {})}
    if base == "photutils":
        settings.setdefault("catalog", "none")
    return get(base)(**settings)


def score(labels, truth) -> dict:
    from napari_galseg.metrics.objects import object_metrics
    from napari_galseg.metrics.pixel import pixel_metrics

    labels = np.asarray(labels)
    pix = pixel_metrics(labels > 0, truth > 0)
    obj = object_metrics(labels, truth)
    return {"iou": pix["iou"], "completeness": obj["completeness"], "purity": obj["purity"], "n_pred": obj["n_pred"],
            "n_true": obj["n_true"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--fields", nargs="+", default=list(FIELDS), choices=list(FIELDS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--train-size", type=int, default=2048, help="side of the forests' training field")
    ap.add_argument("--set", nargs=2, action="append", default=[], metavar=("METHOD", "KEY=VALUE"),
                    help="a setting for one method, e.g. --set photutils nsigma=2.5 (repeatable)")
    ap.add_argument("--json", help="write every number to this file")
    args = ap.parse_args(argv)
    overrides: dict = {}
    for method, kv in args.set:
        key, _, value = kv.partition("=")
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
        overrides.setdefault(method, {})[key] = value

    trained = {}
    forests = [m for m in args.methods if m.startswith("forest")]
    if forests:
        from napari_galseg.synth import make_field

        train = make_field(args.train_size, TRAIN_SEED)
        for method in forests:
            seg = segmenter(method, overrides)
            started = time.perf_counter()
            seg.fit(train.image, train.truth, train.rms)
            trained[method] = seg
            print(f"{method}: trained on a {args.train_size}² field (seed {TRAIN_SEED}) in {time.perf_counter() - started:.0f} s",
                  flush=True)

    rows = []
    for name in args.fields:
        started = time.perf_counter()
        field = make(name, args.size)
        print(f"\n{name} ({FIELDS[name][0]}, seed {FIELDS[name][1]}, {FIELDS[name][2] or 'defaults'}): "
              f"{int(field.truth.max())} true objects, made in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"  {'method':16s} {'IoU':>6s} {'compl':>6s} {'purity':>6s} {'n_pred':>7s} {'Mpix/s':>7s}")
        for method in args.methods:
            started = time.perf_counter()
            if method == "sep":
                labels = run_sep(field.image, field.rms)
            else:
                seg = trained.get(method) or segmenter(method, overrides)
                labels = seg.predict(field.image, field.rms).labels
            seconds = time.perf_counter() - started
            s = score(labels, field.truth)
            s.update(field=name, method=method, seconds=seconds)
            rows.append(s)
            print(f"  {method:16s} {s['iou']:6.3f} {s['completeness']:6.3f} {s['purity']:6.3f} {s['n_pred']:7d} "
                  f"{field.image.size / seconds / 1e6:7.2f}", flush=True)

    print("\nmean over fields (and the worst field)")
    print(f"  {'method':16s} {'IoU':>13s} {'compl':>13s} {'purity':>13s}")
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        cells = [f"{np.mean([r[k] for r in mine]):.3f} ({min(r[k] for r in mine):.3f})" for k in ("iou", "completeness", "purity")]
        print(f"  {method:16s} " + " ".join(f"{c:>13s}" for c in cells))
    if "sep" in args.methods:
        print("\nagainst SEP on each field: IoU above, completeness and purity at least SEP's")
        for method in (m for m in args.methods if m != "sep"):
            wins = []
            for name in args.fields:
                r = next(r for r in rows if r["method"] == method and r["field"] == name)
                s = next(r for r in rows if r["method"] == "sep" and r["field"] == name)
                wins.append(r["iou"] > s["iou"] and r["completeness"] >= s["completeness"] and r["purity"] >= s["purity"])
            print(f"  {method:16s} dominates SEP on {sum(wins)}/{len(wins)} fields")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"size": args.size, "rows": rows, "overrides": overrides}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
