"""`galseg synth OUT_DIR` — write a synthetic field (img.fits, rms.fits, true.fits, catalog.ecsv)."""
from __future__ import annotations

import argparse

from . import progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a synthetic galaxy field with exact truth",
        description=(
            "Write img.fits, rms.fits, true.fits and catalog.ecsv of a synthetic field (Sersic galaxies, "
            "point sources, PSF, sky gradient, Poisson + read noise, varying depth). Streams block by block, "
            "so any size up to survey frames fits in memory."
        ),
    )
    p.add_argument("out_dir", help="folder to write into (created if missing)")
    p.add_argument("--size", type=int, default=2048, help="side of the square field in pixels (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed and size give the same field")
    p.add_argument("--backend", choices=("builtin", "galsim"), default="builtin",
                   help="builtin: the fast streaming generator (default); galsim: bulge + disk galaxies, Moffat or "
                        "Kolmogorov PSF and blends drawn by GalSim (the 'galsim' extra; in memory, fields up to a few "
                        "thousand px)")
    p.add_argument("--psf", default=None, help="PSF profile: moffat or gaussian (builtin), moffat or kolmogorov (galsim)")
    p.add_argument("--psf-fwhm", type=float, default=None, help="PSF FWHM in pixels (default 2.5 builtin, 3.0 galsim)")
    p.add_argument("--density", type=float, default=None, help="galaxies per million pixels (default 700)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUT_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import synth

    if args.size < 16:
        raise ValueError(f"--size must be at least 16 px, got {args.size}")
    options = {}
    if args.psf_fwhm is not None:
        options["psf_fwhm"] = args.psf_fwhm
    if args.psf is not None:
        options["psf"] = args.psf
    if args.density is not None:
        options["galaxy_density"] = args.density
    if args.backend == "galsim":
        from ..cli import CliError

        try:
            from ..synth.galsim_backend import write_galsim_field

            paths = write_galsim_field(args.out_dir, args.size, args.seed, overwrite=args.overwrite, **options)
        except ImportError as exc:
            raise CliError(str(exc)) from None
        for path in paths.values():
            print(path)
        return 0
    if options.get("psf", "moffat") not in ("moffat", "gaussian"):
        raise ValueError(f"--psf {options['psf']} is not a PSF of the builtin generator (moffat, gaussian); try --backend galsim")
    with progress_bar(f"synth {args.size}² seed {args.seed}", unit="block") as progress:
        paths = synth.write_field(args.out_dir, args.size, args.seed, overwrite=args.overwrite, progress=progress, **options)
    for path in paths.values():
        print(path)
    return 0
