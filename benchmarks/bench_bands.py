"""What several bands bring: completeness at fixed purity, multi-band detection (S/N-weighted sum,
χ image) against each single band, on a synthetic field whose galaxies differ in colour.

    python benchmarks/bench_bands.py --size 512 --seed 4 --workdir /tmp/bands-bench

Each galaxy is bright in one of g, r, i (chosen at random) and a quarter as bright in the others;
noise is independent per band (:mod:`napari_galseg.synth.bands`). Every input is run at several `nsigma`; the table gives, per input,
the best completeness among the runs with purity ≥ each target.
"""
from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

NSIGMA = (0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
PURITY = (0.7, 0.8, 0.9)


def make_bands(folder: Path, size: int, seed: int):
    """g, r, i files of :func:`napari_galseg.synth.bands.make_bands`; the truth."""
    from astropy.io import fits

    from napari_galseg.synth.bands import make_bands as bands

    f = bands(size, seed=seed)
    for name in f.bands:
        fits.writeto(folder / f"{name}.fits", f.images[name], overwrite=True)
        fits.writeto(folder / f"{name}.rms.fits", f.rms[name], overwrite=True)
    return f.truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--workdir", default="/tmp/bands-bench")
    args = parser.parse_args()
    from astropy.io import fits

    from napari_galseg.cli import main as galseg
    from napari_galseg.metrics.evaluate import evaluate

    folder = Path(args.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    truth = make_bands(folder, args.size, args.seed)
    inputs = {b: [str(folder / f"{b}.fits"), "--rms", str(folder / f"{b}.rms.fits")] for b in "gri"}
    rms = [a for b in "gri" for a in ("--rms", str(folder / f"{b}.rms.fits"))]
    for combination in ("snr", "chi2"):
        inputs[combination] = [*(str(folder / f"{b}.fits") for b in "gri"), "--bands", "--detection", combination, *rms]
    runs = {}
    for name, argv in inputs.items():
        for nsigma in NSIGMA:
            out = folder / f"{name}-{nsigma}.fits"
            with contextlib.redirect_stderr(io.StringIO()):
                code = galseg(["segment", "photutils", *argv, "--set", f"nsigma={nsigma}", "-o", str(out), "--overwrite"])
            if code:
                raise SystemExit(f"{name} nsigma={nsigma} failed")
            m = evaluate(fits.getdata(out), truth, coco=False).metrics
            runs[name, nsigma] = (m["completeness"], m["purity"])
    print(f"{args.size}² field, seed {args.seed}, {int(truth.max())} true galaxies; nsigma in {NSIGMA}")
    print("| input | " + " | ".join(f"completeness at purity ≥ {p}" for p in PURITY) + " |")
    print("|---|" + "---|" * len(PURITY))
    for name in inputs:
        cells = []
        for p in PURITY:
            ok = [(c, n) for (k, n), (c, q) in runs.items() if k == name and q >= p]
            cells.append(f"{max(ok)[0]:.3f} (nsigma {max(ok)[1]})" if ok else "–")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
