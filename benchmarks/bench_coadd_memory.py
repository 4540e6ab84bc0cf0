"""Peak memory of `galseg segment photutils` on a survey coadd (IMAGE + MASK + VARIANCE) against
the same field as img + rms (and as img + rms + the coadd's mask): the noise conversion and the mask
are applied per window, so the coadd path should cost no frame-sized memory beyond what the
single-plane path has, and gives the labels of img + rms + mask (their differing pixels are counted).

    python benchmarks/bench_coadd_memory.py --sizes 2048 4096 --workdir /tmp/coadd-bench
    python benchmarks/bench_coadd_memory.py --sizes 25000 --tile 2048 --workdir /tmp/coadd25k

Each run is a fresh process; its own peak RSS (ru_maxrss) and wall time are printed. The inputs are
streamed (25000²: 7.5 GB for img, rms and true, 7.5 GB more for the coadd; 2.5 GB per label file).
"""
from __future__ import annotations

import argparse
import resource
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


def make_inputs(folder: Path, size: int, tile: int = 0) -> None:
    """img.fits + rms.fits and hsc.fits with a 40-row masked stripe, all streamed a strip of rows at a
    time (a broadcast row mask, no full-frame plane in memory), so a 25000² coadd is made in well
    under 1 GB. img + rms come from write_field, or with ``tile`` from a tile² field repeated."""
    import numpy as np
    from astropy.io import fits

    from napari_galseg.frames.layouts import write_coadd
    from napari_galseg.synth import write_field

    if (folder / "hsc.fits").exists():
        return
    start = time.perf_counter()
    if not (folder / "img.fits").exists():
        if tile:
            write_tiled(folder, size, tile, seed=11)
        else:
            write_field(folder, size=size, seed=11)
    rows = np.zeros(size, bool)
    rows[size // 2: size // 2 + 40] = True
    with fits.open(folder / "img.fits", memmap=False) as img, fits.open(folder / "rms.fits", memmap=False) as rms:
        write_coadd(folder / "hsc.fits", img[0].section, rms[0].section, "hsc",
                    bad=np.broadcast_to(rows[:, None], (size, size)))
    print(f"{size:5d}  inputs made in {time.perf_counter() - start:.0f} s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (this process)", flush=True)


def write_tiled(folder: Path, size: int, tile: int, seed: int) -> None:
    """img.fits + rms.fits of side ``size``: one ``tile``² synthetic field repeated, streamed in strips
    (rendering a 25000² field with write_field takes hours of one shared core; a tiled one, minutes)."""
    import numpy as np
    from astropy.io import fits

    from napari_galseg._atomic import atomic_path
    from napari_galseg.synth import make_field

    field = make_field(tile, seed=seed)
    reps = -(-size // tile)
    for name, plane in (("img.fits", field.image), ("rms.fits", field.rms)):
        header = fits.PrimaryHDU(np.zeros((1, 1), np.float32)).header
        header["NAXIS1"], header["NAXIS2"] = size, size
        header["TILED"] = (tile, f"a {tile}^2 field (seed {seed}) repeated")
        row = np.tile(plane, (1, reps))[:, :size]
        with atomic_path(folder / name, overwrite=True) as tmp:  # an interrupted run leaves no half file
            stream = fits.StreamingHDU(str(tmp), header)
            for y0 in range(0, size, tile):
                stream.write(row[: min(tile, size - y0)])
            stream.close()


def differing_pixels(a: Path, b: Path, rows: int = 512) -> int:
    """Pixels where two label images differ, read a strip at a time."""
    import numpy as np
    from astropy.io import fits

    with fits.open(a, memmap=False) as x, fits.open(b, memmap=False) as y:
        ha, hb = next(h for h in x if h.header.get("NAXIS")), next(h for h in y if h.header.get("NAXIS"))
        ny = ha.header["NAXIS2"]
        return sum(int(np.count_nonzero(ha.section[y0:y0 + rows] != hb.section[y0:y0 + rows]))
                   for y0 in range(0, ny, rows))


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
    parser.add_argument("--tile", type=int, default=0,
                        help="make img + rms by repeating a TILE² field (0: render the whole field with write_field)")
    args = parser.parse_args()
    print("size   inputs                peak RSS (MiB)  wall (s)")
    for size in args.sizes:
        folder = Path(args.workdir) / str(size)
        folder.mkdir(parents=True, exist_ok=True)
        make_inputs(folder, size, args.tile)
        img, rms, hsc = (str(folder / name) for name in ("img.fits", "rms.fits", "hsc.fits"))
        for label, inputs in (("img + rms", [img, "--rms", rms]),
                              ("hsc coadd", [hsc]),
                              ("img + rms + mask", [img, "--rms", rms, "--mask", hsc, "--mask-hdu", "MASK"])):
            out = folder / f"labels-{label.replace(' + ', '-').replace(' ', '-')}.fits"
            peak, wall = run(["segment", "photutils", *inputs, "-o", str(out), "--overwrite"])
            print(f"{size:5d}  {label:20s}  {peak:14.0f}  {wall:8.1f}", flush=True)
        print(f"{size:5d}  labels: hsc coadd vs img + rms + mask differ at "
              f"{differing_pixels(folder / 'labels-hsc-coadd.fits', folder / 'labels-img-rms-mask.fits')} pixels",
              flush=True)

if __name__ == "__main__":
    main()
