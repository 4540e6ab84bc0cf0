"""How well ``galseg describe`` measures a frame: PSF FWHM and noise on GalSim fields of known conditions.

For each PSF kind (Moffat β 3.5, Kolmogorov) × FWHM × seed, a GalSim field is drawn (default
galaxy and star densities unless ``--star-density`` is given) and measured *without* its rms map
(the noise is estimated, as for a frame that comes without one). The FWHM is compared with the
one the field was drawn with, the noise with the median of the field's true rms map. Targets
(issue 26): |FWHM error| ≤ 10 %, |noise error| ≤ 5 %.

    .venv/bin/python scripts/evaluate_describe.py --size 2048 --seeds 11 12 13 --json describe_eval.json

Prints a table and writes ``--json``; fields are cached as .npz under ``--cache`` when given.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from napari_galseg.synth.conditions import measure_conditions


def field_arrays(kind: str, fwhm: float, seed: int, size: int, star_density: float | None, cache: Path | None):
    name = f"{kind}_{fwhm:g}_{seed}_{size}_{star_density}.npz"
    if cache is not None and (cache / name).exists():
        z = np.load(cache / name)
        return z["image"], z["rms"]
    from napari_galseg.synth.galsim_backend import make_galsim_field

    options = {} if star_density is None else {"star_density": star_density}
    f = make_galsim_field(size, seed, psf=kind, psf_fwhm=fwhm, **options)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / name, image=f.image, rms=f.rms)
    return f.image, f.rms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    p.add_argument("--fwhm", type=float, nargs="+", default=[1.5, 2.5, 4.0, 6.0])
    p.add_argument("--kinds", nargs="+", default=["moffat", "kolmogorov"])
    p.add_argument("--star-density", type=float, default=None, help="stars per Mpix (default: GalSim's, 25)")
    p.add_argument("--cache", type=Path, default=None, help="folder to keep the drawn fields in")
    p.add_argument("--json", type=Path, default=Path("describe_eval.json"))
    args = p.parse_args(argv)
    rows = []
    print(f"{'psf':<11}{'fwhm':>5}{'seed':>5} {'measured':>9}{'err':>8}{'flag':>10}{'n':>4}{'kind':>11}{'beta':>6}"
          f"{'noise err':>10}{'dens':>7}{'slope':>6}{'s':>6}")
    for kind in args.kinds:
        for fwhm in args.fwhm:
            for seed in args.seeds:
                image, rms = field_arrays(kind, fwhm, seed, args.size, args.star_density, args.cache)
                t = time.perf_counter()
                c = measure_conditions(image)
                seconds = time.perf_counter() - t
                true_noise = float(np.median(rms))
                row = {"psf": kind, "fwhm": fwhm, "seed": seed, "size": args.size, "measured_fwhm": c.psf_fwhm_px,
                       "fwhm_error": c.psf_fwhm_px / fwhm - 1, "psf_flag": c.psf_flag, "psf_n_sources": c.psf_n_sources,
                       "psf_kind": c.psf_kind, "psf_moffat_beta": c.psf_moffat_beta, "noise_rms": c.noise_rms,
                       "true_noise": true_noise, "noise_error": c.noise_rms / true_noise - 1,
                       "density_per_mpix": c.density_per_mpix, "flux_slope": c.flux_slope, "seconds": seconds}
                rows.append(row)
                beta = f"{c.psf_moffat_beta:6.2f}" if c.psf_moffat_beta is not None else f"{'-':>6}"
                slope = f"{c.flux_slope:6.2f}" if c.flux_slope is not None else f"{'-':>6}"
                print(f"{kind:<11}{fwhm:>5g}{seed:>5} {c.psf_fwhm_px:>9.3f}{100 * row['fwhm_error']:>7.1f}%"
                      f"{c.psf_flag:>10}{c.psf_n_sources:>4}{c.psf_kind:>11}{beta}{100 * row['noise_error']:>9.1f}%"
                      f"{c.density_per_mpix:>7.0f}{slope}{seconds:>6.1f}", flush=True)
    fe = np.array([abs(r["fwhm_error"]) for r in rows])
    ne = np.array([abs(r["noise_error"]) for r in rows])
    kind_ok = np.mean([r["psf_kind"] == r["psf"] for r in rows])
    summary = {"fwhm_abs_error_mean": float(fe.mean()), "fwhm_abs_error_max": float(fe.max()),
               "fwhm_within_10pct": float(np.mean(fe <= 0.10)), "noise_abs_error_mean": float(ne.mean()),
               "noise_abs_error_max": float(ne.max()), "noise_within_5pct": float(np.mean(ne <= 0.05)),
               "psf_kind_correct": float(kind_ok), "flag_stars": float(np.mean([r["psf_flag"] == "stars" for r in rows]))}
    print(f"FWHM |error|: mean {100 * summary['fwhm_abs_error_mean']:.1f} %, max {100 * summary['fwhm_abs_error_max']:.1f} %, "
          f"within 10 %: {100 * summary['fwhm_within_10pct']:.0f} %; noise |error|: mean {100 * summary['noise_abs_error_mean']:.1f} %, "
          f"max {100 * summary['noise_abs_error_max']:.1f} %; PSF kind right: {100 * kind_ok:.0f} %")
    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
