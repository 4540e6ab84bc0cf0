"""Peak memory of `galseg segment photutils` on a survey coadd (IMAGE + MASK + VARIANCE) against
the same field as img + rms: the noise conversion and the mask are applied per window, so the
coadd path should cost no frame-sized memory beyond what the single-plane path has.

    python benchmarks/bench_coadd_memory.py --sizes 2048 4096 --workdir /tmp/coadd-bench

Each run is a fresh process; its own peak RSS (ru_maxrss) and wall time are printed.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

RUN = """
import resource, sys
from napari_galseg.cli import main
code = main(sys.argv[1:])
print("PEAK_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
sys.exit(code)
"""


def make_inputs(folder: Path, size: int) -> None:
    """img.fits + rms.fits (streamed by write_field) and hsc.fits with a 40-row masked stripe."""
    import numpy as np
    from astropy.io import fits

    from napari_galseg.frames.layouts import write_coadd
    from napari_galseg.synth import write_field

    if (folder / "hsc.fits").exists():
        return
    files = write_field(folder, size=size, seed=11)
    image = fits.getdata(files["image"], memmap=True)
    rms = fits.getdata(files["rms"], memmap=True)
    bad = np.zeros(image.shape, bool)
    bad[size // 2: size // 2 + 40] = True
    write_coadd(folder / "hsc.fits", image, rms, "hsc", bad=bad)


def run(argv: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    peak = float(done.stdout.split("PEAK_MB")[-1])
    return peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--workdir", default="/tmp/coadd-bench")
    args = parser.parse_args()
    print("size   inputs          peak RSS (MiB)  wall (s)")
    for size in args.sizes:
        folder = Path(args.workdir) / str(size)
        folder.mkdir(parents=True, exist_ok=True)
        make_inputs(folder, size)
        for label, inputs in (("img + rms", [str(folder / "img.fits"), "--rms", str(folder / "rms.fits")]),
                              ("hsc coadd", [str(folder / "hsc.fits")])):
            peak, wall = run(["segment", "photutils", *inputs, "-o", str(folder / "labels.fits"), "--overwrite"])
            print(f"{size:5d}  {label:14s}  {peak:14.0f}  {wall:8.1f}")


if __name__ == "__main__":
    main()
