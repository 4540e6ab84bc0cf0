"""`galseg preprocess IMG [--rms RMS] [--recipe R] -o OUT.fits` — write a (C, ny, nx) float32 cube."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from . import check_outputs, progress_bar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="apply a preprocessing recipe and write a (channels, ny, nx) float32 FITS cube",
        description=(
            "Apply a preprocessing recipe (normalise, stretch, rms channel; see docs/preprocessing.md) to a "
            "FITS image, chunk by chunk, and write the channels as a float32 FITS cube. The recipe's levels are "
            "fitted once on a reproducible sample of the whole image; --save-recipe keeps the fitted numbers so "
            "that other images or patches can be processed identically."
        ),
    )
    p.add_argument("image", help="input FITS image")
    p.add_argument("--rms", help="rms (noise) map of the image, needed by recipes with an rms channel")
    p.add_argument("--recipe", default=None,
                   help="recipe file (.yaml/.json) or 'default' / 'default+snr' / 'image-only' (default: 'default' with --rms, "
                        "else 'image-only')")
    p.add_argument("-o", "--output", required=True, help="output FITS file (C, ny, nx) float32")
    p.add_argument("--save-recipe", default=None, help="also write the fitted recipe here (.yaml or .json)")
    p.add_argument("--hdu", default=None, help="HDU of IMG (and RMS) to read (default: first image HDU)")
    p.add_argument("--chunk", type=int, default=2048, help="chunk side in pixels for processing (default 2048)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT (and --save-recipe) if they exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..preprocess import as_recipe, default_recipe, image_only_recipe

    out = Path(args.output)
    check_outputs([out, args.save_recipe], inputs=[args.image, args.rms, args.recipe], overwrite=args.overwrite,
                  fits=[out])
    if args.chunk < 16:
        raise ValueError(f"--chunk must be at least 16 px, got {args.chunk}")
    hdu = _parse_hdu(args.hdu)
    image, header = read_image(args.image, hdu, args.chunk)
    rms = read_image(args.rms, hdu, args.chunk)[0] if args.rms else None
    if args.recipe is None:
        recipe = default_recipe() if rms is not None else image_only_recipe()
    else:
        recipe = as_recipe(args.recipe)
    if recipe.needs_rms and rms is None:
        raise ValueError(f"the recipe needs an rms map (channel(s) "
                         f"{[c.name for c in recipe.channels if c.source == 'rms']}): pass --rms RMS.fits")
    if rms is not None and tuple(rms.shape) != tuple(image.shape):
        raise ValueError(f"--rms has shape {tuple(rms.shape)} but the image has {tuple(image.shape)}; "
                         "they must cover the same pixels")
    recipe = recipe.fit(image, rms)
    cube = recipe.apply(image, rms)
    out_header = output_header(header, recipe)
    with progress_bar(f"preprocess {Path(args.image).name}", unit="band") as progress:
        write_cube(out, cube, out_header, overwrite=args.overwrite, progress=progress)
    if args.save_recipe:
        recipe.save(args.save_recipe, overwrite=args.overwrite)
        print(args.save_recipe)
    print(out)
    return 0


def _parse_hdu(value):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def read_image(path, hdu=None, chunk: int = 2048):
    """A lazy 2-D dask array and the header of a FITS image (via ``napari_galseg.io.open_fits``)."""
    from ..io import open_fits

    fits_image = open_fits(path, hdu=hdu, chunks=chunk)
    return fits_image.data, fits_image.header


def output_header(header, recipe):
    """The image's celestial WCS plus the channel names (CHNAMEn) of the recipe."""
    from astropy.io import fits

    out = fits.Header()
    if header is not None:
        try:
            from astropy.wcs import WCS

            wcs = WCS(header).celestial
            if wcs.has_celestial:
                out.update(wcs.to_header())
        except Exception as exc:
            warnings.warn(f"the image's WCS could not be read ({exc}); the cube is written without one",
                          stacklevel=2)
    out["NCHAN"] = (recipe.n_channels, "preprocessed channels (napari-galseg recipe)")
    for i, name in enumerate(recipe.channel_names, start=1):
        c = recipe.channels[i - 1]
        out[f"CHNAME{i}"] = (name[:60], f"{c.step} of {c.source}")
    return out


def write_cube(path, cube, header, overwrite: bool = False, progress=None) -> None:
    """Write a (C, ny, nx) float32 cube atomically, one band of chunk rows at a time.

    (``napari_galseg.io.write_fits`` writes 2-D images only; a cube is laid out here the same way:
    header, then the data streamed into a memory-mapped temporary file renamed when complete.)
    """
    from astropy.io import fits

    from .._atomic import atomic_path

    nc, ny, nx = cube.shape
    hdr = fits.PrimaryHDU(data=np.zeros((1, 1, 1), np.float32)).header
    hdr["NAXIS1"], hdr["NAXIS2"], hdr["NAXIS3"] = nx, ny, nc
    hdr.extend(header, unique=True)
    with atomic_path(path, overwrite=overwrite) as tmp:
        header_bytes = hdr.tostring().encode("ascii")
        padded = (nc * ny * nx * 4 + 2879) // 2880 * 2880
        with open(tmp, "wb") as f:
            f.write(header_bytes)
            f.seek(len(header_bytes) + padded - 1)
            f.write(b"\0")
        with fits.open(tmp, mode="update", memmap=True) as hdul:
            target = hdul[0].data
            bands = np.cumsum((0,) + tuple(cube.chunks[1])) if hasattr(cube, "chunks") else np.array([0, ny])
            total = len(bands) - 1
            for i in range(total):
                y0, y1 = int(bands[i]), int(bands[i + 1])
                target[:, y0:y1, :] = np.asarray(cube[:, y0:y1, :])
                if progress:
                    progress(i + 1, total, f"rows {y1}/{ny}")
            hdul.flush()
