"""SExtractor mode's Lutz scan fed in strips (LutzStream) against the whole-frame scan.

    PYTHONPATH=src python benchmarks/bench_sextractor_lutz_stream.py [side]

A side² mask (smoothed noise above its 96 % quantile: ~4 % detected, like a deep field) scanned by
lutz_scan_into + pixel_lists (a whole-frame link array) and by LutzStream fed 256-row strips, with
and without two float32 value pools; old and new alternate 3 times, the ratio uses the fastest.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from scipy import ndimage as ndi

from napari_galseg.sextractor.lutz import LutzStream, lutz_scan_into, pixel_lists


def main(n: int = 8192, strip: int = 256) -> None:
    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.standard_normal((n, n), dtype=np.float32), 2.5)
    above = field > np.quantile(field[::16, ::16], 0.96)
    print(f"{n}² mask, {above.mean():.3%} detected")

    def whole():
        first, counts, nextpix = lutz_scan_into(above, np.full(n * n, -1, np.int32))
        pixel_lists(first, counts, nextpix, 5)
        return len(counts)

    def streamed(values):
        s = LutzStream(n)
        nobj = peak = 0
        for y in range(0, n, strip):
            pos, off = s.feed(above[y:y + strip], *((field[y:y + strip], field[y:y + strip]) if values else ()))
            s.idx[pos], [v[pos] for v in s.values]  # what a caller gathers
            nobj += len(off) - 1
            peak = max(peak, len(s.idx))
        return nobj + len(s.finish()[1]) - 1, peak

    whole(), streamed(False), streamed(True)  # compile
    t = {"whole": [], "stream": [], "stream+2 values": []}
    for _ in range(3):
        for key, call in [("whole", whole), ("stream", lambda: streamed(False)),
                          ("stream+2 values", lambda: streamed(True))]:
            start = time.perf_counter()
            out = call()
            t[key].append(time.perf_counter() - start)
            if key == "whole":
                nobj = out
            else:
                assert out[0] == nobj
                peak = out[1]
    print(f"{nobj} objects; stream pool at most {peak} pixels of {int(above.sum())} detected")
    for key, v in t.items():
        print(f"{key:16s}", " ".join(f"{x:.3f}" for x in v), f"s   ratio to whole {min(v) / min(t['whole']):.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
