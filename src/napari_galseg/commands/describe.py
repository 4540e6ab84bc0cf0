"""`galseg describe IMG` — measure a frame's conditions: PSF, noise, sky, pixel scale, density, counts."""
from __future__ import annotations

import argparse

from . import progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "describe",
        help="measure a frame's PSF, noise, sky, pixel scale and source density",
        description=(
            "Measure what a frame looks like on its central 4096² px: the PSF from isolated, unsaturated "
            "point sources (FWHM, ellipticity, Moffat beta), the sky and the median 1-sigma noise (from --rms, "
            "else estimated), the pixel scale from the WCS, saturation and zero point from the header, the "
            "density of 5-sigma sources and their number counts. A table by default; --json prints the "
            "conditions as JSON (keys documented in docs/synth.md)."
        ),
    )
    p.add_argument("image", help="FITS image of the frame")
    p.add_argument("--rms", default=None, help="FITS 1-sigma noise map on the same pixel grid (default: estimated)")
    p.add_argument("--hdu", default=None, help="HDU index or EXTNAME of the image (default: first image HDU)")
    p.add_argument("--psf-fwhm", type=float, default=None,
                   help="PSF FWHM in pixels, when known or when the frame has too few stars to measure it")
    p.add_argument("--max-pixels", type=int, default=4096**2,
                   help="measure on the central window of at most this many pixels (default 4096²)")
    p.add_argument("--json", action="store_true", help="print the conditions as JSON instead of a table")
    p.set_defaults(func=run)


def open_frame(image_path: str, rms_path: str | None = None, hdu=None):
    """A frame to measure and its rms map (or None), checked to share one pixel grid: what
    ``describe``, ``synth --like`` and ``train --like`` read."""
    from ..frames.planes import hdu_value
    from ..io import open_fits

    image = open_fits(image_path, hdu=hdu_value(hdu))
    if not rms_path:
        return image, None
    rms_image = open_fits(rms_path)
    if rms_image.shape != image.shape:
        raise ValueError(f"the rms map {rms_path} has shape {rms_image.shape} but the image has {image.shape}; "
                         "they must be on the same pixel grid")
    # FitsImage.array slices straight from the memory map: cheaper than dask for windows
    return image, rms_image.array


def _fmt(value, spec: str = ".4g", unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{unit}"


def table(c) -> str:
    """The conditions as a readable two-column table (the JSON has every field)."""
    beta = f", Moffat beta {c.psf_moffat_beta:.2f}" if c.psf_moffat_beta is not None else ""
    scale = c.pixel_scale_arcsec
    fwhm_arcsec = f" ({c.psf_fwhm_px * scale:.3g}\")" if scale else ""
    rows = [
        ("shape", f"{c.shape[0]} × {c.shape[1]} px"),
        ("pixel scale", _fmt(scale, ".4g", " arcsec/px") if scale else "- (no WCS)"),
        ("PSF FWHM", f"{c.psf_fwhm_px:.3f} px{fwhm_arcsec}  [{c.psf_flag}, {c.psf_n_sources} sources]"),
        ("PSF shape", f"{c.psf_kind}{beta}, ellipticity {c.psf_ellipticity:.3f}"),
        ("sky", _fmt(c.sky)),
        ("noise (1σ, median)", f"{c.noise_rms:.4g}  [{'rms map' if c.noise_from_map else 'estimated'}]"),
        ("saturation", _fmt(c.saturation)),
        ("zero point", _fmt(c.zero_point, ".4g", " mag")),
        ("sources", f"{c.n_detected}, {c.density_per_mpix:.1f} per Mpix"),
        ("counts slope", (f"dN/dF ∝ F^-{c.flux_slope:.2f} above F = {c.flux_turnover:.4g}"
                          if c.flux_slope is not None else "- (too few sources)")),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"note: {n}" for n in c.notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..synth.conditions import measure_conditions

    image, rms = open_frame(args.image, args.rms, args.hdu)
    with progress_bar(f"describe {image.name}", unit=None) as progress:
        conditions = measure_conditions(image.array, rms, header=image.header, wcs=image.wcs,
                                        psf_fwhm=args.psf_fwhm, max_pixels=args.max_pixels, progress=progress)
    print(conditions.to_json(indent=1) if args.json else table(conditions))
    return 0
