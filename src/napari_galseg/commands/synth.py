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
    p.add_argument("--size", type=int, default=None,
                   help="side of the square field in pixels (default 2048; with --like the frame's size, at most 2048)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed and size give the same field")
    p.add_argument("--backend", choices=("builtin", "galsim"), default="builtin",
                   help="builtin: the fast streaming generator (default); galsim: bulge + disk galaxies, Moffat or "
                        "Kolmogorov PSF and blends drawn by GalSim (the 'galsim' extra; in memory, fields up to a few "
                        "thousand px)")
    p.add_argument("--psf", default=None, help="PSF profile: moffat or gaussian (builtin), moffat or kolmogorov (galsim)")
    p.add_argument("--psf-fwhm", default=None,
                   help="PSF FWHM in pixels (default 2.5 builtin, 3.0 galsim); with --bands the r band's (the others "
                        "scale as wavelength^-0.2) or one per band, like g=3.0,r=2.6,i=2.3")
    p.add_argument("--bands", metavar="B1,B2,...",
                   help="a multi-band field (builtin): img_B.fits and rms_B.fits per band (u g r i z y), one "
                        "true.fits, catalog.ecsv with a flux per band; red and blue galaxy populations with SEDs "
                        "drawn per galaxy, a PSF and a noise per band")
    p.add_argument("--density", type=float, default=None, help="galaxies per million pixels (default 700)")
    p.add_argument("--like", metavar="IMG",
                   help="make the field like this frame: its measured PSF, noise, sky, density and flux "
                        "distribution (`galseg describe IMG`), drawn by GalSim with bulge + disk, knotty, irregular "
                        "and merging galaxies; the frame's conditions go to OUT_DIR/conditions.json")
    p.add_argument("--rms", metavar="RMS", help="with --like: the frame's noise map; its central part becomes the field's noise")
    p.add_argument("--hdu", default=None, help="with --like: HDU index or EXTNAME of the frame's image")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUT_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import synth

    if args.like:
        if args.bands:
            raise ValueError("--bands makes a builtin multi-band field; it does not combine with --like")
        return run_like(args)
    if args.bands:
        return run_bands(args)
    args.psf_fwhm = _number(args.psf_fwhm, "--psf-fwhm")
    if args.rms or args.hdu is not None:
        raise ValueError("--rms and --hdu describe the frame of --like; give --like IMG")
    args.size = 2048 if args.size is None else args.size
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


def _number(text, option: str, hint: str = " (one value per band needs --bands)"):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{option} takes a number, got {text!r}{hint}") from None


def _band_fwhm(text):
    """``--psf-fwhm`` with --bands: a number, or band=FWHM pairs separated by commas."""
    if text is None or "=" not in text:
        return _number(text, "--psf-fwhm")
    out = {}
    for pair in text.split(","):
        band, _, value = pair.partition("=")
        out[band.strip()] = _number(value, f"--psf-fwhm {band.strip()}=", "")
    return out


def run_bands(args: argparse.Namespace) -> int:
    """``galseg synth OUT --bands g,r,i``: the multi-band field of :mod:`napari_galseg.synth.bands`."""
    from ..synth.bands import parse_bands, write_band_field

    bands = parse_bands(args.bands)
    if args.backend != "builtin" or args.rms or args.hdu is not None or args.psf is not None:
        raise ValueError("--bands makes a builtin field with a Moffat PSF per band; drop --backend/--psf/--rms/--hdu")
    size = 2048 if args.size is None else args.size
    if size < 16:
        raise ValueError(f"--size must be at least 16 px, got {size}")
    options = {"galaxy_density": args.density} if args.density is not None else {}
    paths = write_band_field(args.out_dir, size, args.seed, bands, _band_fwhm(args.psf_fwhm),
                             overwrite=args.overwrite, **options)
    for path in paths.values():
        print(path)
    return 0


def run_like(args: argparse.Namespace) -> int:
    """``galseg synth OUT --like IMG``: a field with the frame's conditions, and the conditions."""
    import sys

    from .._atomic import atomic_write_text
    from ..synth.galsim_backend import refuse_existing_field, save_field
    from ..synth.like import make_like_field

    if args.backend != "builtin" or args.psf or args.psf_fwhm is not None or args.density is not None:
        raise ValueError("--like takes the PSF, noise and density from the frame; drop --backend/--psf/--psf-fwhm/--density")
    from pathlib import Path

    refuse_existing_field(args.out_dir, args.overwrite)
    if (Path(args.out_dir) / "conditions.json").exists() and not args.overwrite:
        raise FileExistsError(f"{Path(args.out_dir) / 'conditions.json'} already exists; pick an empty folder or pass --overwrite")
    from ..synth.conditions import measure_conditions
    from .describe import open_frame

    image, rms = open_frame(args.like, args.rms, args.hdu)
    cond = measure_conditions(image.array, rms, header=image.header, wcs=image.wcs)
    for note in cond.notes:
        print(note, file=sys.stderr)
    size = args.size or min(2048, *image.shape)
    if size < 64:
        raise ValueError(f"--size must be at least 64 px with --like, got {size}")
    field = make_like_field(cond, size, args.seed, rms_map=rms)
    from ..synth import field_header

    header = field_header(field.shape, args.seed, field.options)
    header["SYNBACK"] = ("like", "napari_galseg.synth.like")
    paths = save_field(field, args.out_dir, header, overwrite=args.overwrite)
    conditions_path = paths["image"].parent / "conditions.json"
    import json

    atomic_write_text(conditions_path, json.dumps(field.catalog.meta["like"], indent=2, default=float) + "\n",
                      overwrite=args.overwrite)
    print(f"like {args.like}: PSF {cond.psf_fwhm_px:.2f} px ({cond.psf_kind}, {cond.psf_flag}), noise "
          f"{cond.noise_rms:.4g}, {cond.density_per_mpix:.0f} sources per Mpix", file=sys.stderr)
    for path in [*paths.values(), conditions_path]:
        print(path)
    return 0
