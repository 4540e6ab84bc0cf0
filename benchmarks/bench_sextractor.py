"""Benchmark: SExtractor mode (napari_galseg.sextractor) against the real SExtractor.

Run on demand (not part of the test suite; needs ``source-extractor``, which the Makefile installs):

    .venv/bin/python benchmarks/bench_sextractor.py                      # 1024² and 4096², both configs
    .venv/bin/python benchmarks/bench_sextractor.py --sizes 2048 --configs default

For each synthetic field (``napari_galseg.synth.make_field``, written with astropy) and each
configuration, both programs run on the same ``.sex``/``.param``/``.conv``/``.nnw`` files:

* ``default``: SExtractor's own defaults (DEBLEND_MINCONT 0.005, CLEAN Y, FILTER default.conv);
* ``nodeblend``: DEBLEND_MINCONT 1 and CLEAN N (the comparison the issue asks for first);
* ``weighted``: ``default`` with WEIGHT_TYPE MAP_WEIGHT, a weight map (``w.fits``) four times
  lower on the right half and zero in a block (per-pixel thresholds, weight rescaling, interpolation).

Timing and peak memory are of the *whole process*, each in a fresh wrapper process that reads its
child's ``ru_maxrss``: ``source-extractor IMG -c t.sex`` and ``python -m napari_galseg.cli segment
photutils IMG --sextractor-config t.sex -o labels.fits --catalog ours.cat`` (its imports and the
numba cache load included). Both write a FITS_1.0 catalogue and the segmentation map. Parity is
read from the two catalogues (objects matched by position within 0.5 px) and the two
segmentations; the background map is compared with SExtractor's CHECKIMAGE_TYPE BACKGROUND from a
separate, untimed run. The machine may be shared: repeat and read the spread.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARE = Path("/usr/share/source-extractor")
PARAMS = """NUMBER
X_IMAGE
Y_IMAGE
X2_IMAGE
Y2_IMAGE
XY_IMAGE
A_IMAGE
B_IMAGE
THETA_IMAGE
ISOAREA_IMAGE
FLUX_ISO
FLUX_MAX
BACKGROUND
FLUX_APER(3)
FLUXERR_APER(3)
KRON_RADIUS
FLUX_AUTO
FLUXERR_AUTO
MAG_AUTO
FLUX_RADIUS
XWIN_IMAGE
YWIN_IMAGE
CLASS_STAR
FLAGS
"""
CONFIGS = {"default": "DEBLEND_MINCONT 0.005\nCLEAN Y\n", "nodeblend": "DEBLEND_MINCONT 1\nCLEAN N\n",
           "weighted": "DEBLEND_MINCONT 0.005\nCLEAN Y\nWEIGHT_TYPE MAP_WEIGHT\nWEIGHT_IMAGE w.fits\n"}
WRAP = ("import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL)\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(code, time.perf_counter() - t, u.ru_utime + u.ru_stime, u.ru_maxrss / 1024)\n")


def _measure(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak MB) of ``cmd`` run alone in a fresh wrapper process. CPU
    time (user + system) is the steadier figure on a shared machine."""
    out = subprocess.run([sys.executable, "-c", WRAP, *cmd], cwd=cwd, capture_output=True, text=True, check=True)
    code, wall, cpu, peak = out.stdout.split()
    if int(code):
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {code}) in {cwd}")
    return float(wall), float(cpu), float(peak)


def _field(work: Path, size: int, seed: int, fwhm: float, density: float) -> Path:
    from astropy.io import fits

    from napari_galseg.synth import make_field

    path = work / f"field_{size}_{seed}.fits"
    if not path.exists():
        f = make_field(size, seed, psf_fwhm=fwhm, galaxy_density=density)
        fits.writeto(path, f.image.astype(np.float32))
    return path


def _setup(folder: Path, image: Path, config: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("default.conv", "default.nnw"):
        shutil.copy(SHARE / name, folder / name)
    (folder / "t.param").write_text(PARAMS)
    (folder / "t.sex").write_text(
        "CATALOG_NAME ref.cat\nCATALOG_TYPE FITS_1.0\nPARAMETERS_NAME t.param\nFILTER_NAME default.conv\n"
        "PHOT_APERTURES 3,6,12\nGAIN 2.0\nMAG_ZEROPOINT 25\nCHECKIMAGE_TYPE SEGMENTATION\n"
        "CHECKIMAGE_NAME seg.fits\nVERBOSE_TYPE QUIET\n" + CONFIGS[config])
    link = folder / "img.fits"
    if not link.exists():
        link.symlink_to(image.resolve())
    if config == "weighted" and not (folder / "w.fits").exists():
        from astropy.io import fits

        h, w = fits.getdata(image).shape
        weight = np.ones((h, w), np.float32)
        weight[:, w // 2:] = 0.25
        weight[h // 3: h // 3 + h // 16, w // 4: w // 4 + w // 8] = 0.0
        fits.writeto(folder / "w.fits", weight)


def _parity(folder: Path) -> dict:
    from astropy.io import fits
    from scipy.spatial import cKDTree

    from napari_galseg.sextractor import sextractor_background

    ref = fits.getdata(folder / "ref.cat", 1)
    ours = fits.getdata(folder / "ours.cat", 1)
    tree = cKDTree(np.c_[ref["X_IMAGE"], ref["Y_IMAGE"]])
    d, j = tree.query(np.c_[ours["X_IMAGE"], ours["Y_IMAGE"]])
    ok = (d < 0.5) & (np.bincount(j, minlength=len(ref))[j] == 1)
    r, o = ref[j[ok]], ours[ok]

    def rel(name):
        a, b = np.asarray(o[name], float), np.asarray(r[name], float)
        return np.abs(a - b) / np.maximum(np.abs(b), 1e-3)

    seg_ref, seg = fits.getdata(folder / "seg.fits"), fits.getdata(folder / "labels.fits")
    subprocess.run(["source-extractor", "img.fits", "-c", "t.sex", "-CATALOG_TYPE", "NONE", "-CHECKIMAGE_TYPE",
                    "BACKGROUND", "-CHECKIMAGE_NAME", "back.fits"], cwd=folder, check=True, capture_output=True)
    back_ref = fits.getdata(folder / "back.fits")
    var = None
    if (folder / "w.fits").exists():  # the weighted configuration's meshes leave zero weights out
        from napari_galseg.sextractor.weights import weight_to_var

        var = weight_to_var(fits.getdata(folder / "w.fits"), "MAP_WEIGHT")
    back = sextractor_background(fits.getdata(folder / "img.fits"), var=var).level()
    return {
        "n_sex": len(ref), "n_ours": len(ours), "matched": float(ok.sum() / max(len(ref), 1)),
        "pos_max_px": float(d[ok].max()), "x2y2xy_max": float(max(np.abs(o[k] - r[k]).max() for k in ("X2_IMAGE", "Y2_IMAGE", "XY_IMAGE"))),
        "flux_iso_max_rel": float(rel("FLUX_ISO").max()), "flux_aper_max_rel": float(rel("FLUX_APER").max()),
        "flux_auto_1pc": float((rel("FLUX_AUTO") < 0.01).mean()), "kron_1pc": float((rel("KRON_RADIUS") < 0.01).mean()),
        "flux_radius_2pc": float((rel("FLUX_RADIUS") < 0.02).mean()),
        "xwin_max_px": float(np.hypot(o["XWIN_IMAGE"] - r["XWIN_IMAGE"], o["YWIN_IMAGE"] - r["YWIN_IMAGE"]).max()),
        "class_star_max": float(np.abs(o["CLASS_STAR"] - r["CLASS_STAR"]).max()),
        "flags_equal": float((o["FLAGS"] == r["FLAGS"]).mean()), "number_equal": float((o["NUMBER"] == r["NUMBER"]).mean()),
        "seg_equal": float((seg == seg_ref).mean()),
        "back_max_rel": float(np.abs(back - back_ref).max() / np.abs(back_ref).max()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--fwhm", type=float, default=3.0)
    ap.add_argument("--density", type=float, default=2000.0, help="galaxy_density of make_field")
    ap.add_argument("--workdir", default="bench_sextractor_work")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if shutil.which("source-extractor") is None:
        print("source-extractor is not installed (apt-get install source-extractor; `make` does it)")
        return 1
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        image = _field(work, size, args.seed, args.fwhm, args.density)
        for config in args.configs:
            folder = work / f"{size}_{config}"
            _setup(folder, image, config)
            for stale in ("ours.cat", "labels.fits"):
                (folder / stale).unlink(missing_ok=True)
            sex_t, sex_cpu, sex_mb = _measure(["source-extractor", "img.fits", "-c", "t.sex"], folder)
            ours_t, ours_cpu, ours_mb = _measure([sys.executable, "-m", "napari_galseg.cli", "segment", "photutils", "img.fits",
                                        "--sextractor-config", "t.sex", "-o", "labels.fits", "--catalog",
                                        "ours.cat"], folder)
            row = {"size": size, "config": config, "sex_s": sex_t, "ours_s": ours_t, "sex_cpu_s": sex_cpu,
                   "ours_cpu_s": ours_cpu, "sex_mb": sex_mb,
                   "ours_mb": ours_mb, **_parity(folder)}
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\n| size | config | objects (SExtractor / ours) | matched | NUMBER equal | segmentation equal | "
          "wall s (SExtractor / ours) | CPU s (SExtractor / ours) | peak MB (SExtractor / ours) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']}² | {r['config']} | {r['n_sex']} / {r['n_ours']} | {r['matched']:.4f} | "
              f"{r['number_equal']:.4f} | {r['seg_equal']:.6f} | {r['sex_s']:.2f} / {r['ours_s']:.2f} "
              f"(×{r['ours_s'] / r['sex_s']:.1f}) | {r['sex_cpu_s']:.2f} / {r['ours_cpu_s']:.2f} "
              f"(×{r['ours_cpu_s'] / r['sex_cpu_s']:.1f}) | {r['sex_mb']:.0f} / {r['ours_mb']:.0f} (×{r['ours_mb'] / r['sex_mb']:.1f}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
