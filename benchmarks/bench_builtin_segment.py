"""Benchmark: `galseg segment unet FRAME -o OUT` with the built-in model and no rms map, whole process.

What a user on a fresh install runs: the process starts, opens the frame, estimates its noise
and sky, runs the built-in U-Net tile by tile and writes the labels. Timed end to end (Python
start-up and imports included) with its peak memory; the peer in the same run is `galseg segment
photutils` on the same frame, so the ratio stays meaningful on a shared machine. The issue's
target: >= 3 Mpix/s on this CPU.

    .venv/bin/python benchmarks/bench_builtin_segment.py                 # 4096² frame
    .venv/bin/python benchmarks/bench_builtin_segment.py --size 8192
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: runs the CLI in a child that reports its own peak memory as its last stderr line
_CHILD = ("import resource, sys\nfrom napari_galseg.cli import main\nrc = main(sys.argv[1:])\n"
          "print(f'peak-rss-kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}', file=sys.stderr)\nsys.exit(rc)")


def run_whole(args: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stderr) of one `galseg` process, start-up and imports included."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"galseg {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    lines = proc.stderr.strip().splitlines()
    peak_kb = float(lines[-1].split()[-1]) if lines and lines[-1].startswith("peak-rss-kb") else float("nan")
    return seconds, peak_kb / 1024, proc.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)
    from napari_galseg.synth import write_field

    with tempfile.TemporaryDirectory() as tmp:
        files = write_field(Path(tmp) / "frame", args.size, args.seed)
        mpix = args.size**2 / 1e6
        rows = []
        for method in ("unet",) + (() if args.no_peers else ("photutils",)):
            out = Path(tmp) / f"{method}.fits"
            seconds, peak, err = run_whole(["segment", method, str(files["image"]), "-o", str(out)])
            notes = [line for line in err.splitlines() if "inference in" in line or "built-in" in line]
            rows.append((method, seconds, mpix / seconds, peak, notes))
            os.remove(out)
    print(f"whole process on a {args.size}² frame ({mpix:.1f} Mpix), no rms map:")
    for method, seconds, rate, peak, notes in rows:
        print(f"  galseg segment {method:<9} {seconds:6.1f} s  {rate:5.2f} Mpix/s  peak {peak:6.0f} MB")
        for note in notes:
            print(f"      {note}")
    if len(rows) > 1:
        print(f"  U-Net / photutils throughput: {rows[0][2] / rows[1][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
