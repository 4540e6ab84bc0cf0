"""Run every benchmark with its default (moderate) sizes, one after the other.

Benchmarks measure speed and memory against peers in the same run and print ratios; they are not
tests and assert nothing. Each script takes its own options (``--help``); this runner is what
``make bench`` calls. Figures worth keeping go into docs/benchmarks.md and docs/results.md.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = ["bench_metrics.py", "bench_preprocess.py", "bench_photutils.py", "bench_unet_inference.py",
           "bench_builtin_segment.py", "bench_sextractor.py"]


def main(argv: list[str]) -> int:
    chosen = [s for s in SCRIPTS if not argv or any(a in s for a in argv)]
    failed = []
    for script in chosen:
        print(f"\n=== {script} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script)])
        print(f"=== {script}: exit {code}, {time.perf_counter() - started:.0f} s ===", flush=True)
        if code:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
