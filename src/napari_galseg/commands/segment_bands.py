"""``galseg segment photutils g.fits r.fits i.fits --bands -o OUT.fits``: one segmentation of a
field seen in several bands, detected on a combined image (:mod:`napari_galseg.frames.bands`).

Each band is a frame like any other (``--rms/--variance/--weight`` once per band in order, or a
coadd per band, ``--mask`` per band); the labels are those of the detection image, written with
the first band's header; ``--catalog`` gets the detection catalog plus one ``flux_<band>`` column
per band (sky-subtracted sum over each segment).
"""
from __future__ import annotations

import sys
from pathlib import Path

from .segment import _error, _frame_name


def run_bands(args, cls, overrides: dict) -> int:
    from ..frames import open_frame
    from ..frames.bands import DetectionImage, check_same_grid, sky_subtracted
    from ..frames.frame import _lazy
    from ..io import labels_header
    from . import check_outputs, progress_bar
    from .segment import _make_segmenter, _plane_options

    if cls.name != "photutils":
        raise _error(f"--bands detects on a combined image with the photutils pipeline; {cls.name} does not take one")
    if len(args.image) < 2:
        raise _error("--bands needs two or more band images (g.fits r.fits i.fits)")
    n = len(args.image)
    names = [_frame_name(p) for p in args.image]
    if len(set(names)) != n:
        raise _error(f"two bands have the same name ({', '.join(names)}): the catalog's flux columns are named after them")
    noise = args.rms or []
    masks = args.mask or []
    for option, given in (("--rms/--variance/--weight", noise), ("--mask", masks)):
        if given and len(given) != n:
            raise _error(f"{n} bands but {len(given)} {option} map(s): give one per band, in the bands' order")
    inputs = [*args.image, *noise, *masks]
    check_outputs([args.output, args.catalog], inputs=inputs, overwrite=args.overwrite, fits=[args.output],
                  catalogs=[args.catalog])
    frames = []
    for i, path in enumerate(args.image):
        options = _plane_options(args, masks[i] if masks else None)
        frames.append(open_frame(path, hdu=args.hdu, noise=noise[i] if noise else None,
                                 noise_kind_name=options["noise_kind"], noise_hdu=options["noise_hdu"],
                                 noise_scale=options["noise_scale"], mask=options["mask"],
                                 mask_bits=options["mask_bits"], mask_hdu=options["mask_hdu"]))
    check_same_grid(frames, names)
    skies, sigmas, notes = [], [], []
    for frame, name in zip(frames, names):
        sky, estimated = sky_subtracted(frame.image)
        skies.append(sky)
        sigmas.append(frame.rms if frame.rms is not None else estimated)
        notes.extend(frame.notes)
        if frame.rms is None:
            notes.append(f"band {name}: no noise map given, the noise was estimated from the image")
        elif not noise:
            notes.append(f"band {name}: noise from {frame.sources['noise']}")
        if frame.mask is not None:
            notes.append(f"band {name}: masked: {frame.sources['mask']}")
    combination = args.detection
    detection = DetectionImage(skies, sigmas, combination)
    image = _lazy(detection, f"bands-{combination}-" + "-".join(names), frames[0].science.data.chunksize[0])
    import dask.array as da

    # both detection images have unit noise by construction (the χ² one once made Gaussian)
    rms = da.ones(detection.shape, dtype="f4", chunks=frames[0].science.data.chunksize)
    segmenter = _make_segmenter(cls, args, overrides)
    with progress_bar(f"{cls.name}: segmenting {n} bands ({combination})", unit="step") as bar:
        result = segmenter.predict_to_fits(image, args.output, rms=rms, header=labels_header(frames[0].science),
                                           overwrite=args.overwrite, progress=bar)
    message = [*notes, f"detected on the {combination} image of {', '.join(names)}", f"wrote {args.output}"]
    if args.catalog:
        catalog = result.catalog
        if catalog is None:
            raise _error("no catalog was made (the method ran with catalog=none); drop --set catalog=none or --catalog")
        _band_fluxes(catalog, args.output, skies, names)
        from ..catalog import add_sky_coordinates
        from ..io.catalog import write_catalog

        add_sky_coordinates(catalog, frames[0].wcs)
        write_catalog(catalog, args.catalog, overwrite=args.overwrite, wcs=frames[0].wcs)
        message[-1] += f" and {args.catalog} ({len(catalog)} sources, a flux per band)"
    print("\n".join(message), file=sys.stderr)
    return 0


def _band_fluxes(catalog, labels_path, skies, names) -> None:
    """``flux_<band>``: each segment's sky-subtracted sum in each band (NaN pixels count 0)."""
    import numpy as np
    from astropy.io import fits
    from scipy import ndimage

    from ..arrays import IN_MEMORY_PIXELS

    labels = fits.getdata(Path(labels_path), memmap=True)
    if labels.size > IN_MEMORY_PIXELS:
        raise _error(f"per-band fluxes are summed in memory, up to {IN_MEMORY_PIXELS} pixels; this frame has "
                     f"{labels.size}: drop --catalog (the labels are written)")
    labels = np.asarray(labels, dtype=np.int32)
    ids = np.asarray(catalog["label"], dtype=np.int64)
    for sky, name in zip(skies, names):
        values = np.nan_to_num(np.asarray(sky[:, :], dtype=np.float64))
        catalog[f"flux_{name}"] = ndimage.sum_labels(values, labels, index=ids)
