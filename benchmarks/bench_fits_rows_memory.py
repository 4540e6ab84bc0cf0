"""Peak resident memory (ru_maxrss) and time of reading / writing a big FITS frame strip by strip.

    PYTHONPATH=src python benchmarks/bench_fits_rows_memory.py FRAME.fits [--strip 256] [--repeat 3]

Each way runs in a fresh subprocess (ru_maxrss is the whole process's peak, file-backed mapped
pages included): "imports" (the modules only), "read_float32" (today's whole-frame read),
"fitsarray strips" (FitsArray slices dropped after each strip), "memmap strips" (a plain
np.memmap read strip by strip, for comparison), "reader strips" (FitsRowReader), "write_fits"
(an int32 image of the frame's shape held whole) and "write_fits_rows" (the same image computed
band by band). The written files are compared byte for byte.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
import numpy as np
from napari_galseg.io import open_fits_array, labels_header
from napari_galseg.io.fits_rows import FitsRowReader
from napari_galseg.io.write import write_fits, write_fits_rows
from napari_galseg.sextractor.command import read_float32

way, path, strip, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
array, header = open_fits_array(path)
h, w = array.shape

columns = np.arange(w, dtype=np.int32)
making = [0.0]

def labels(y0, y1):  # a deterministic int32 image, computed band by band (its time not counted)
    t = time.perf_counter()
    band = columns[None, :] ^ (np.arange(y0, y1, dtype=np.int32)[:, None] * 7919)
    making[0] += time.perf_counter() - t
    return band

t0 = time.perf_counter()
check = 0.0
if way == "read_float32":
    data = read_float32(array)
    for y0 in range(0, h, strip):
        check += float(data[y0:y0 + strip][::97, ::89].sum(dtype=np.float64))
elif way == "fitsarray strips":
    for y0 in range(0, h, strip):
        s = array[y0:y0 + strip].astype(np.float32)
        check += float(s[::97, ::89].sum(dtype=np.float64))
elif way == "memmap strips":
    m = np.memmap(path, dtype=">f4", mode="r", offset=array.data_offset, shape=(h, w))
    for y0 in range(0, h, strip):
        s = m[y0:y0 + strip].astype(np.float32)
        check += float(s[::97, ::89].sum(dtype=np.float64))
elif way == "reader strips":
    with FitsRowReader(array) as reader:
        buf = np.empty((strip, w), np.float32)
        for y0 in range(0, h, strip):
            y1 = min(h, y0 + strip)
            s = reader.read_rows(y0, y1, out=buf[:y1 - y0])
            check += float(s[::97, ::89].sum(dtype=np.float64))
        reader.check_finite()
elif way == "write_fits":
    image = np.empty((h, w), np.int32)
    for y0 in range(0, h, strip):
        image[y0:y0 + strip] = labels(y0, min(h, y0 + strip))
    t0 = time.perf_counter()  # the write only
    write_fits(out, image, header=labels_header(header), overwrite=True)
elif way == "write_fits_rows":
    bands = (labels(y0, min(h, y0 + strip)) for y0 in range(0, h, strip))
    write_fits_rows(out, (h, w), np.int32, labels_header(header), bands, overwrite=True)
seconds = time.perf_counter() - t0 - (making[0] if way == "write_fits_rows" else 0.0)
print(json.dumps({"way": way, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": seconds, "check": check}))
"""

WAYS = ["imports", "read_float32", "fitsarray strips", "memmap strips", "reader strips", "write_fits",
        "write_fits_rows"]


def run(way: str, path: str, strip: int, out: str) -> dict:
    env = dict(os.environ)
    got = subprocess.run([sys.executable, "-c", CHILD, way, path, str(strip), out], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(got.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frame")
    parser.add_argument("--strip", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.frame))) as tmp:
        outs = {"write_fits": os.path.join(tmp, "old.fits"), "write_fits_rows": os.path.join(tmp, "new.fits")}
        results: dict[str, list[dict]] = {}
        for _ in range(args.repeat):  # ways alternate so that load from other processes spreads evenly
            for way in WAYS:
                results.setdefault(way, []).append(run(way, args.frame, args.strip, outs.get(way, "")))
        with open(outs["write_fits"], "rb") as a, open(outs["write_fits_rows"], "rb") as b:
            same = a.read() == b.read()
    checks = {r["check"] for way in ("read_float32", "fitsarray strips", "memmap strips", "reader strips")
              for r in results[way]}
    print(f"{args.frame}: strips of {args.strip} rows, best of {args.repeat}; written files identical: {same}; "
          f"read checksums agree: {len(checks) == 1}")
    print(f"{'way':<18} {'ru_maxrss MB':>13} {'seconds':>8}")
    for way in WAYS:
        rs = results[way]
        print(f"{way:<18} {min(r['maxrss_mb'] for r in rs):13.1f} {min(r['seconds'] for r in rs):8.3f}")


if __name__ == "__main__":
    main()
