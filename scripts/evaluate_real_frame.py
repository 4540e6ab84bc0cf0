"""The built-in U-Net on a real frame against the real SExtractor's catalogue of it.

The real frame is the Hubble Deep Field (HST WFPC2; scikit-image's ``data.hubble_deep_field``, a
JPEG shipped with the package: no download) as its grey level, written as FITS (rows bottom-up).
SExtractor (``apt-get install source-extractor``) makes the catalogue with its default
configuration files, at DETECT_MINAREA 3 (the shipped default.sex), 5 and 10; the built-in U-Net,
with no rms map, segments the frame. A catalogue object counts as found when its position
(X/Y_IMAGE) lies on a labelled pixel.

    .venv/bin/python scripts/evaluate_real_frame.py [--workdir DIR]

Caveat: a JPEG is stretched and quantised (its sky noise is integer steps around a clipped floor),
so this checks behaviour on real galaxies and a real PSF, not photometry.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SEX = shutil.which("source-extractor") or shutil.which("sex")
SHARE = Path("/usr/share/source-extractor")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=None, help="keep the files here (default: a temporary folder)")
    ap.add_argument("--minareas", default="3,5,10")
    args = ap.parse_args(argv)
    if SEX is None or not (SHARE / "default.sex").exists():
        raise SystemExit("needs SExtractor: apt-get install source-extractor")
    from astropy.io import fits
    from astropy.table import Table
    from skimage import data

    from napari_galseg.cli import main as galseg

    work = Path(args.workdir or tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    grey = data.hubble_deep_field().astype(np.float32).mean(axis=2)[::-1]
    frame = work / "hdf.fits"
    fits.PrimaryHDU(np.ascontiguousarray(grey)).writeto(frame, overwrite=True)
    for name in ("default.sex", "default.conv", "default.nnw"):
        shutil.copy(SHARE / name, work / name)
    (work / "hdf.param").write_text("NUMBER\nX_IMAGE\nY_IMAGE\nISOAREA_IMAGE\nFLAGS\n")
    labels_path = work / "unet.fits"
    if galseg(["segment", "unet", str(frame), "-o", str(labels_path), "--overwrite"]) != 0:
        raise SystemExit("galseg segment unet failed")
    labels = fits.getdata(labels_path)
    print(f"Hubble Deep Field {grey.shape[1]}x{grey.shape[0]}: built-in U-Net {int(labels.max())} objects, no rms map")
    print(f"{'DETECT_MINAREA':>14} {'SExtractor':>10} {'found':>7} {'FLAGS=0':>8} {'found':>7}")
    for minarea in (int(v) for v in args.minareas.split(",")):
        cat_path = work / f"hdf_minarea{minarea}.cat"
        subprocess.run([SEX, str(frame), "-c", "default.sex", "-PARAMETERS_NAME", "hdf.param", "-CATALOG_NAME",
                        cat_path.name, "-CATALOG_TYPE", "ASCII_HEAD", "-DETECT_MINAREA", str(minarea),
                        "-CHECKIMAGE_TYPE", "NONE", "-VERBOSE_TYPE", "QUIET"], cwd=work, check=True)
        cat = Table.read(cat_path, format="ascii.sextractor")
        x = np.clip(np.round(cat["X_IMAGE"] - 1).astype(int), 0, labels.shape[1] - 1)
        y = np.clip(np.round(cat["Y_IMAGE"] - 1).astype(int), 0, labels.shape[0] - 1)
        found = labels[y, x] > 0
        clean = np.asarray(cat["FLAGS"]) == 0
        print(f"{minarea:>14} {len(cat):>10} {found.mean():>7.3f} {int(clean.sum()):>8} {found[clean].mean():>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
