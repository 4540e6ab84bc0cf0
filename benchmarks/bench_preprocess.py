"""Preprocessing: speed and peak memory of the chunked recipe against astropy on the whole array,
and (``--levels``) the evaluation behind the default stretch levels.

    python benchmarks/bench_preprocess.py --size 4096          # speed / memory ratios
    python benchmarks/bench_preprocess.py --levels             # KMeans IoU of candidate stretches

Each measurement runs in its own Python process so its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

OURS = r"""
import json, resource, sys, time
from napari_galseg.cli import main
d = sys.argv[1]
t = time.perf_counter()
rc = main(["preprocess", f"{d}/img.fits", "--rms", f"{d}/rms.fits", "-o", f"{d}/pre.fits", "--overwrite", "--chunk", "1024"])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PEER = r"""
import json, resource, sys, time
import numpy as np
from astropy.io import fits
from astropy.visualization import (AsinhStretch, AsymmetricPercentileInterval, ImageNormalize, LogStretch,
                                   MinMaxInterval, PercentileInterval)
d = sys.argv[1]
t = time.perf_counter()
img = fits.getdata(f"{d}/img.fits").astype(np.float32)
rms = fits.getdata(f"{d}/rms.fits").astype(np.float32)
a = ImageNormalize(img, interval=PercentileInterval(99.9), clip=True)(img)
b = ImageNormalize(img, interval=AsymmetricPercentileInterval(84, 99.9), stretch=AsinhStretch(0.05), clip=True)(img)
c = ImageNormalize(rms, interval=MinMaxInterval(), stretch=LogStretch(), clip=True)(rms)
cube = np.stack([np.asarray(a), np.asarray(b), np.asarray(c)]).astype(np.float32)
fits.writeto(f"{d}/peer.fits", cube, overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, folder: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def speed(size: int) -> None:
    from napari_galseg import synth

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        synth.write_field(tmp, size, seed=0)
        print(f"synthetic field {size}² written in {time.perf_counter() - t:.1f} s")
        ours = _run(OURS, tmp)
        peer = _run(PEER, tmp)
        if ours.pop("rc"):
            raise SystemExit("galseg preprocess failed")
    print(f"{'':32s}{'seconds':>10s}{'peak MiB':>10s}")
    print(f"{'galseg preprocess (chunked)':32s}{ours['seconds']:10.2f}{ours['peak_mib']:10.0f}")
    print(f"{'astropy ImageNormalize (whole)':32s}{peer['seconds']:10.2f}{peer['peak_mib']:10.0f}")
    print(f"ratio ours/astropy: time {ours['seconds'] / peer['seconds']:.2f}, peak memory "
          f"{ours['peak_mib'] / peer['peak_mib']:.2f}")


def levels(seeds=(1, 2, 5), size: int = 512) -> None:
    import numpy as np
    from sklearn.cluster import KMeans

    from napari_galseg.preprocess import stretch
    from napari_galseg.synth import make_field

    candidates = [(84, 99.99, 0.02), (84, 99.99, 0.1), (70, 99.9, 0.1), (50, 99.8, 0.1), (90, 99.99, 0.02),
                  (84, 99.9, 0.05)]

    def kmeans_iou(channel, truth):
        x = channel.reshape(-1, 1)
        idx = np.random.default_rng(0).choice(x.size, min(40000, x.size), replace=False)
        km = KMeans(2, n_init=3, random_state=0).fit(x[idx])
        fg = (km.predict(x) == np.argmax(km.cluster_centers_.ravel())).reshape(channel.shape)
        return (fg & truth).sum() / (fg | truth).sum()

    print("asinh levels (percentiles) and softening a: IoU of a 2-cluster KMeans split vs truth")
    print(f"{'lower-upper a':18s}" + "".join(f"{'seed ' + str(s):>9s}" for s in seeds) + f"{'mean':>8s}")
    fields = [make_field(size, seed=s) for s in seeds]
    for lo, hi, a in candidates:
        ious = [kmeans_iou(stretch(f.image, stretch="asinh", a=a, interval="asymmetric_percentile",
                                   lower_percentile=lo, upper_percentile=hi), f.truth > 0) for f in fields]
        print(f"{f'{lo}-{hi} {a}':18s}" + "".join(f"{v:9.3f}" for v in ious) + f"{np.mean(ious):8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="side of the synthetic field (default 4096)")
    parser.add_argument("--levels", action="store_true", help="evaluate candidate default stretch levels")
    args = parser.parse_args()
    levels() if args.levels else speed(args.size)


if __name__ == "__main__":
    main()
