"""``galseg segment photutils g.fits r.fits i.fits --bands -o OUT.fits``: one segmentation of a
field seen in several bands, detected on a combined image (:mod:`napari_galseg.frames.bands`).

Each band is a frame like any other (``--rms/--variance/--weight`` once per band in order, or a
coadd per band, ``--mask`` per band); the labels are those of the detection image, written with
the first band's header; ``--catalog`` gets the detection catalog plus one ``flux_<band>`` column
per band (sky-subtracted sum over each segment). A band's name is its FILTER card, else its file
name.

``galseg segment unet|forest g.fits r.fits i.fits --bands --model M``: a model trained on bands
(``galseg train METHOD --bands ...``) takes them as channels; it refuses other bands or another order.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .segment import _error


def run_bands(args, cls, overrides: dict) -> int:
    from ..frames.bands import detection_image
    from ..frames.frame import _lazy
    from ..io import labels_header
    from . import progress_bar
    from .segment import _make_segmenter

    if cls.capabilities.trainable:
        return run_band_model(args, cls, overrides)
    if cls.name != "photutils":
        raise _error(f"--bands detects on a combined image with the photutils pipeline, or feeds the bands to a model "
                     f"trained on them (unet, forest); {cls.name} does not take one")
    frames, names, noise = _open_bands(args)
    combination = args.detection
    detection, estimated = detection_image([f.image for f in frames], [f.rms for f in frames], combination)
    skies, notes = detection.bands, []
    for frame, name, guessed in zip(frames, names, estimated):
        notes.extend(frame.notes)
        if guessed:
            notes.append(f"band {name}: no noise map given, the noise was estimated from the image")
        elif not noise:
            notes.append(f"band {name}: noise from {frame.sources['noise']}")
        if frame.mask is not None:
            notes.append(f"band {name}: masked: {frame.sources['mask']}")
    image = _lazy(detection, f"bands-{combination}-" + "-".join(names), frames[0].science.data.chunksize[0])
    import dask.array as da

    # both detection images have unit noise by construction (the χ² one once made Gaussian)
    rms = da.ones(detection.shape, dtype="f4", chunks=frames[0].science.data.chunksize)
    segmenter = _make_segmenter(cls, args, overrides)
    with progress_bar(f"{cls.name}: segmenting {len(names)} bands ({combination})", unit="step") as bar:
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


def _open_bands(args):
    """The bands' frames (each with its noise map and mask), their names and the noise files given;
    checked to share one grid before any output is made."""
    from ..frames import open_frame
    from ..frames.bands import band_name, check_same_grid
    from . import check_outputs
    from .segment import _plane_options

    if len(args.image) < 2:
        raise _error("--bands needs two or more band images (g.fits r.fits i.fits)")
    n = len(args.image)
    noise = args.rms or []
    masks = args.mask or []
    for option, given in (("--rms/--variance/--weight", noise), ("--mask", masks)):
        if given and len(given) != n:
            raise _error(f"{n} bands but {len(given)} {option} map(s): give one per band, in the bands' order")
    check_outputs([args.output, args.catalog], inputs=[*args.image, *noise, *masks], overwrite=args.overwrite,
                  fits=[args.output], catalogs=[args.catalog])
    frames = []
    for i, path in enumerate(args.image):
        options = _plane_options(args, masks[i] if masks else None)
        frames.append(open_frame(path, hdu=args.hdu, noise=noise[i] if noise else None,
                                 noise_kind_name=options["noise_kind"], noise_hdu=options["noise_hdu"],
                                 noise_scale=options["noise_scale"], mask=options["mask"],
                                 mask_bits=options["mask_bits"], mask_hdu=options["mask_hdu"]))
    names = [band_name(path, frame.header) for path, frame in zip(args.image, frames)]
    if len(set(names)) != n:
        raise _error(f"two bands have the same name ({', '.join(names)}): the catalog's flux columns and a model's "
                     "channels are named after them (a band's name is its FILTER card, else its file name)")
    check_same_grid(frames, names)
    return frames, names, noise


def run_band_model(args, cls, overrides) -> int:
    """The bands as channels of a model trained on them (unet, forest): one segmentation."""
    from ..frames.bands import BandStack
    from ..io import labels_header
    from . import progress_bar
    from .segment import _make_segmenter, frame_notes

    if args.catalog:
        raise _error(f"{cls.name} does not produce a source catalog; drop --catalog")
    frames, names, noise = _open_bands(args)
    segmenter = _make_segmenter(cls, args, overrides)
    image = BandStack([f.image for f in frames], names)
    sigmas = [f.rms for f in frames]  # given, or a coadd's own noise plane
    if any(s is None for s in sigmas) and any(s is not None for s in sigmas):
        raise _error(f"band(s) {', '.join(n for n, s in zip(names, sigmas) if s is None)} have no noise map and the "
                     "others have one: give one per band (--rms/--variance/--weight), or none")
    rms = None if sigmas[0] is None else BandStack(sigmas, names)
    with progress_bar(f"{cls.name}: segmenting {len(names)} bands", unit="step") as bar:
        segmenter.predict_to_fits(image, args.output, rms=rms, header=labels_header(frames[0].science),
                                  overwrite=args.overwrite, progress=bar)
    notes = [note for f in frames for note in frame_notes(segmenter, True, f)]
    if rms is None:
        notes.append(getattr(segmenter, "noise_note", None) or "no rms maps given: the noise was estimated per band")
    print("\n".join([*dict.fromkeys(notes), f"{', '.join(names)} as the channels of {cls.name}",
                     f"wrote {args.output}"]), file=sys.stderr)
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
