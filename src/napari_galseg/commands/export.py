"""`galseg export coco|panoptic IMG TRUE [--rms RMS] --patch 256 -o DIR` — training sets for other tools."""
from __future__ import annotations

import argparse

from . import progress_bar

DESCRIPTION = """\
Cut an image (+ rms) and an instance map (a truth file or any segmenter's labels, 0 = sky) into
non-overlapping patches and write a COCO dataset into DIR:

  coco      images/*.fits + annotations/instances.json (RLE masks, bbox, area, iscrowd; category galaxy)
  panoptic  images/*.fits + annotations/panoptic.json + annotations/panoptic/*.png
            (ids R + 256*G + 256^2*B; galaxy = thing, sky = stuff, 0 = void where the image is not finite)

Patch images are float32 FITS (channels: image[, rms]); --image-format png writes 8-bit asinh
pictures for generic COCO tools instead. Every image records its origin (y0, x0) and every object its
source_label, so the field's labels can be rebuilt exactly.

examples:
  galseg export coco img.fits true.fits --rms rms.fits --patch 256 -o coco/
  galseg export panoptic img.fits true.fits --patch 256 -o panoptic/
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a COCO instances or COCO-panoptic dataset from an image and labels",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("coco", "panoptic"), help="coco (instances) or panoptic")
    p.add_argument("image", metavar="IMG", help="image FITS file")
    p.add_argument("labels", metavar="TRUE", help="instance label FITS file (0 = sky, one id per galaxy)")
    p.add_argument("--rms", metavar="RMS", help="noise (rms) map FITS, stored as a second channel of each patch")
    p.add_argument("--patch", type=int, default=256, help="patch side in pixels (default 256)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="dataset folder to write")
    p.add_argument("--image-format", choices=("fits", "png"), default="fits",
                   help="patch images: float32 FITS (default) or 8-bit asinh PNG")
    p.add_argument("--skip-empty", action="store_true", help="leave out patches without any galaxy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset JSON in DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io import open_fits
    from ..io.coco_export import EXPORTERS

    image = open_fits(args.image)
    labels = open_fits(args.labels)
    rms = open_fits(args.rms).array if args.rms else None
    write = EXPORTERS[args.kind]
    with progress_bar(f"export {args.kind}", unit="patch") as bar:
        path = write(args.output, image.array, labels.array, rms, patch=args.patch, image_format=args.image_format,
                     skip_empty=args.skip_empty, overwrite=args.overwrite, progress=bar)
    print(f"wrote {path}")
    return 0
