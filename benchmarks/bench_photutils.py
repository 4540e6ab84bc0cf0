"""Benchmark: our tiled photutils pipeline vs SEP vs plain photutils on one synthetic field.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_photutils.py --sizes 2048 8192
    .venv/bin/python benchmarks/bench_photutils.py --sizes 2048 --methods galseg sep      # a subset
    .venv/bin/python benchmarks/bench_photutils.py --sizes 25000 --allow-huge              # needs ~15 GB disk, long

Each method runs in its own Python process on the same field (``napari_galseg.synth.write_field``,
cached in ``--workdir``), so peak memory (``ru_maxrss``) and wall time are per method. Wall time
is the segmentation itself, from the FITS files on disk to the complete label image (and catalog
where the method makes one), after the imports; the imports are reported separately. Quality is
the binary IoU / Dice of ``labels > 0`` against ``truth > 0``, computed block by block after the
peak-memory reading.

Methods (same detection settings everywhere: Gaussian FWHM 3 px / 5×5 kernel, threshold 3σ of the
*smoothed* noise, ≥10 connected pixels, 32 deblending levels, contrast 0.001):

* ``galseg``: our pipeline, lazy FITS input, tiles of ``tile_size``, deblending + the "basic"
  catalog (centroid, bbox, area, second-moment ellipse, segment flux + error, min/max: what
  ``sep.extract`` returns too), per-tile passes in ``--threads`` threads (0 = one per CPU),
  ``--workers N``: deblending in N forked processes.
* ``galseg-cli``: the whole ``galseg segment photutils IMG -o OUT --catalog CAT`` command in a
  fresh process (its imports inside the measurement): the whole-process peak a user sees.
* ``galseg-full``: the same with the "full" catalog (photutils' SourceCatalog, adding Kron radius
  and Kron flux); ``galseg-nocat``: no catalog; ``galseg-detect``: no deblending, no catalog.
* ``sep``: ``sep.Background`` + ``sep.extract(..., segmentation_map=True)`` (matched filter, so its
  threshold is also in units of the smoothed noise); frames over ``--sep-tile-above`` pixels per
  side run in 4096² tiles with a 128 px halo, keeping objects whose centre is in the tile core.
* ``photutils``: plain photutils on the whole frame: Background2D, astropy convolve,
  detect_sources, deblend_sources, SourceCatalog.to_table (the same columns as ours).

Ratios are printed against SEP measured in the same run. The machine may be shared: timings
move by tens of percent between runs; repeat (``--repeat``) and read the spread.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("galseg", "galseg-full", "galseg-nocat", "galseg-detect", "galseg-cli", "sep", "photutils")
CATALOG = {"galseg": "basic", "galseg-full": "full", "galseg-nocat": "none", "galseg-detect": "none", "galseg-cli": "basic"}
NSIGMA, FWHM, KSIZE, NPIX, NLEVELS, CONTRAST = 3.0, 3.0, 5, 10, 32, 0.001


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def _kernel():
    import numpy as np

    from napari_galseg.segmenters.photutils import gaussian_kernel_1d

    k = gaussian_kernel_1d(FWHM, KSIZE)
    return np.outer(k, k).astype(np.float32)


def _load(path):
    import numpy as np
    from astropy.io import fits

    return np.ascontiguousarray(fits.getdata(path), dtype=np.float32)


def run_galseg(field: dict, variant: str, tile_size: int, workers: int, threads: int, labels_to: str = "fits"):
    from napari_galseg.io import open_fits, write_labels
    from napari_galseg.segmenters.photutils import segment

    image = open_fits(field["image"])
    result = segment(
        image.data, nsigma=NSIGMA, fwhm=FWHM, kernel_size=KSIZE, n_pixels=NPIX, n_levels=NLEVELS,
        contrast=CONTRAST, min_snr=0.0, deblend=variant != "galseg-detect", catalog=CATALOG[variant], tile_size=tile_size,
        n_workers=workers, n_threads=threads,
    )
    n = len(result.catalog) if result.catalog is not None else result.n_labels
    if labels_to == "memory":  # like SEP and plain photutils: the whole label image in memory
        return result.labels.compute(scheduler="synchronous"), n  # blocks share a tile-label cache: one thread is faster
    # end-to-end: the lazy labels are produced block by block while being written to disk
    out = Path(field["workdir"]) / f"labels-{variant}.fits"
    write_labels(out, result.labels, like=image, overwrite=True)
    return out, n


def run_cli(field: dict):
    """``galseg segment photutils`` end to end, in this process (started with nothing imported)."""
    from astropy.table import Table

    from napari_galseg.cli import main

    out = Path(field["workdir"]) / "labels-galseg-cli.fits"
    cat = Path(field["workdir"]) / "catalog-galseg-cli.ecsv"
    same = ["--set", f"nsigma={NSIGMA}", "--set", f"contrast={CONTRAST}", "--set", "min_snr=0"]  # the settings of the others
    if main(["segment", "photutils", field["image"], "-o", str(out), "--catalog", str(cat), "--overwrite", *same]) != 0:
        raise RuntimeError("galseg segment failed")
    return out, len(Table.read(cat))


def run_sep(field: dict, tile_above: int):
    import numpy as np
    import sep

    img = _load(field["image"])
    kernel = _kernel()
    sep.set_sub_object_limit(4096)

    def extract(block):
        bkg = sep.Background(block)
        data = block - bkg.back()
        # the pixel stack is allocated up front (~40 B per entry): as small as works, grown on overflow
        stack = 300_000
        while True:
            sep.set_extract_pixstack(stack)
            try:
                return sep.extract(
                    data, NSIGMA, err=bkg.rms(), minarea=NPIX, filter_kernel=kernel, filter_type="matched",
                    deblend_nthresh=NLEVELS, deblend_cont=CONTRAST, segmentation_map=True,
                )
            except Exception as exc:  # "internal pixel buffer full"
                if "pixel buffer full" not in str(exc) or stack >= block.size:
                    raise
                stack *= 4

    ny, nx = img.shape
    if max(ny, nx) <= tile_above:
        objs, seg = extract(img)
        return seg.astype(np.int32), len(objs)
    from napari_galseg.tiling import iter_tiles

    labels = np.zeros(img.shape, np.int32)
    count = 0
    for tile in iter_tiles(img.shape, 4096, halo=128):
        objs, seg = extract(np.ascontiguousarray(img[tile.outer]))
        cy = objs["y"] + tile.outer[0].start
        cx = objs["x"] + tile.outer[1].start
        own = (cy >= tile.core[0].start) & (cy < tile.core[0].stop) & (cx >= tile.core[1].start) & (cx < tile.core[1].stop)
        keep = np.zeros(len(objs) + 1, np.int32)
        keep[1:][own] = np.arange(count + 1, count + 1 + own.sum())
        count += int(own.sum())
        mapped = keep[seg]
        target = labels[tile.outer]
        target[mapped > 0] = mapped[mapped > 0]
    return labels, count


def run_photutils(field: dict):
    import warnings

    import numpy as np
    from astropy.convolution import convolve
    from photutils.background import Background2D
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources

    from napari_galseg.catalog import CATALOG_COLUMNS

    img = _load(field["image"])
    kernel = _kernel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bkg = Background2D(img, 64, filter_size=3)
        data = img - bkg.background
        conv = convolve(data, kernel)
        threshold = NSIGMA * bkg.background_rms * float(np.sqrt((kernel.astype(float) ** 2).sum()))
        segm = detect_sources(conv, threshold, n_pixels=NPIX)
        segm = deblend_sources(conv, segm, NPIX, n_levels=NLEVELS, contrast=CONTRAST, progress_bar=False)
        cat = SourceCatalog(data, segm, convolved_data=conv, error=bkg.background_rms)
        table = cat.to_table(columns=CATALOG_COLUMNS)
    return segm.data.astype(np.int32), len(table)


def _quality(labels, truth_path) -> dict:
    """Binary IoU / Dice of labels > 0 vs truth > 0, in row bands (bounded memory)."""
    import numpy as np
    from astropy.io import fits

    with fits.open(truth_path, memmap=True) as hdul:
        truth = hdul[0].data
        if isinstance(labels, (str, Path)):
            lab_hdul = fits.open(labels, memmap=True)
            lab = lab_hdul[0].data
        else:
            lab_hdul, lab = None, labels
        tp = fp = fn = 0
        for y0 in range(0, truth.shape[0], 1024):
            t = np.asarray(truth[y0 : y0 + 1024]) > 0
            p = np.asarray(lab[y0 : y0 + 1024]) > 0
            tp += int(np.count_nonzero(t & p))
            fp += int(np.count_nonzero(p & ~t))
            fn += int(np.count_nonzero(t & ~p))
        if lab_hdul is not None:
            lab_hdul.close()
    return {"iou": tp / max(tp + fp + fn, 1), "dice": 2 * tp / max(2 * tp + fp + fn, 1)}


def worker(args) -> None:
    """One method in this process; prints one JSON line."""
    t0 = time.perf_counter()
    import astropy.io.fits
    import numpy  # noqa: F401

    if args.method == "galseg-cli":
        pass  # the command imports what it needs, inside the measurement
    elif args.method.startswith("galseg"):
        import photutils.background
        import photutils.segmentation

        import napari_galseg._kernels
        import napari_galseg.segmenters.photutils

        napari_galseg._kernels.load()  # compiled kernels loaded like SEP's extension: at import
    elif args.method == "sep":
        import sep  # noqa: F401

        import napari_galseg.tiling
    else:
        import astropy.convolution  # noqa: F401
        import photutils.background
        import photutils.segmentation  # noqa: F401
    field = json.loads(args.field)
    import_s = time.perf_counter() - t0
    if args.method.startswith("galseg"):  # replacing last run's 268+ MB file is not segmentation work
        (Path(field["workdir"]) / f"labels-{args.method}.fits").unlink(missing_ok=True)
    base_rss = _rss_mb()
    t1 = time.perf_counter()
    if args.method == "galseg-cli":
        labels, n = run_cli(field)
    elif args.method.startswith("galseg"):
        labels, n = run_galseg(field, args.method, args.tile_size, args.workers, args.threads, args.labels)
    elif args.method == "sep":
        labels, n = run_sep(field, args.sep_tile_above)
    else:
        labels, n = run_photutils(field)
    wall = time.perf_counter() - t1
    peak = _rss_mb()
    # forked workers (--workers > 1): the largest child's peak; all children together are counted
    # as workers × that (an upper bound: pages shared copy-on-write with the parent count twice)
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    if args.method.startswith("galseg") and args.workers > 1 and child > 0:
        peak += args.workers * child
    quality = _quality(labels, field["truth"])
    print(json.dumps({"method": args.method, "catalog": CATALOG.get(args.method, "sep" if args.method == "sep" else "full"),
                      "labels_to": args.labels if args.method.startswith("galseg") else "memory",
                      "threads": args.threads, "wall_s": wall, "import_s": import_s, "peak_rss_mb": peak,
                      "base_rss_mb": base_rss, "child_peak_mb": child, "n_sources": n, **quality}))


def ensure_field(workdir: Path, size: int, seed: int) -> dict:
    folder = workdir / f"field-{size}-s{seed}"
    files = {"image": folder / "img.fits", "rms": folder / "rms.fits", "truth": folder / "true.fits"}
    if not all(p.exists() for p in files.values()):
        t = time.perf_counter()
        print(f"writing the {size}² synthetic field to {folder} ...", file=sys.stderr, flush=True)
        # in a child process: Linux keeps ru_maxrss across fork + exec, so a parent grown by the
        # field's generation would inflate every method's peak memory reading
        code = ("import sys; from napari_galseg.synth import write_field; "
                "write_field(sys.argv[1], size=int(sys.argv[2]), seed=int(sys.argv[3]), overwrite=True)")
        subprocess.run([sys.executable, "-c", code, str(folder), str(size), str(seed)], check=True)
        print(f"  done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    return {k: str(v) for k, v in files.items()} | {"workdir": str(folder)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method and size (the best is reported)")
    parser.add_argument("--tile-size", type=int, default=512, help="our pipeline's tile side")
    parser.add_argument("--workers", type=int, default=1, help="our pipeline's n_workers (processes for deblending + catalog)")
    parser.add_argument("--threads", type=int, default=0, help="our pipeline's n_threads (per-tile passes; 0 = one per CPU)")
    parser.add_argument("--labels", choices=("fits", "memory"), default="fits",
                        help="our labels: written to a FITS file block by block (end to end, default) or computed into memory like SEP's")
    parser.add_argument("--sep-tile-above", type=int, default=16384, help="SEP runs tiled above this side")
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "galseg-bench")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per method run")
    parser.add_argument("--allow-huge", action="store_true", help="allow sizes over 8192 (25000² needs ~10 GB disk and a long run)")
    parser.add_argument("--json", type=Path, help="also write all results as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--field", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if any(s > 8192 for s in args.sizes) and not args.allow_huge:
        parser.error("sizes over 8192 need --allow-huge (they take long and need ~10 GB of disk)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        field = ensure_field(args.workdir, size, args.seed)
        rows = {}
        for method in args.methods:
            best = None
            for _ in range(args.repeat):
                cmd = [sys.executable, __file__, "--worker", "--method", method, "--field", json.dumps(field),
                       "--tile-size", str(args.tile_size), "--workers", str(args.workers), "--threads", str(args.threads),
                       "--labels", args.labels,
                       "--sep-tile-above", str(args.sep_tile_above)]
                try:
                    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.timeout)
                except subprocess.TimeoutExpired:
                    print(f"{method} @ {size}²: timed out after {args.timeout} s", file=sys.stderr)
                    break
                if proc.returncode != 0:
                    print(f"{method} @ {size}² failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    break
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                if best is None or row["wall_s"] < best["wall_s"]:
                    best = row
            if best:
                best["size"] = size
                best["mpix_s"] = size * size / 1e6 / best["wall_s"]
                rows[method] = best
                results.append(best)
                print(f"  {method:14s} {best['wall_s']:8.1f} s  {best['peak_rss_mb']:8.0f} MB", file=sys.stderr, flush=True)
        sep_row = rows.get("sep")
        print(f"\n{size}×{size} ({size * size / 1e6:.1f} Mpix)")
        print(f"{'method':14s} {'catalog':>8s} {'wall s':>8s} {'Mpix/s':>8s} {'peak MB':>8s} {'IoU':>6s} {'Dice':>6s} {'n':>7s} {'speed/SEP':>9s} {'mem/SEP':>8s} {'import s':>8s}")
        for method, r in rows.items():
            speed = f"{sep_row['wall_s'] / r['wall_s']:.2f}" if sep_row else "-"
            mem = f"{r['peak_rss_mb'] / sep_row['peak_rss_mb']:.2f}" if sep_row else "-"
            print(f"{method:14s} {r['catalog']:>8s} {r['wall_s']:8.2f} {r['mpix_s']:8.2f} {r['peak_rss_mb']:8.0f} {r['iou']:6.3f} {r['dice']:6.3f} "
                  f"{r['n_sources']:7d} {speed:>9s} {mem:>8s} {r['import_s']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
