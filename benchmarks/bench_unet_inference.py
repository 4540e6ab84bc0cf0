"""Benchmark: U-Net tiled inference speed (Mpix/s) on this machine, with peers from the same run.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bench_unet_inference.py                      # 2048² field, default model
    .venv/bin/python benchmarks/bench_unet_inference.py --size 4096 --model eval-unet/model
    .venv/bin/python benchmarks/bench_unet_inference.py --device cuda        # on a GPU

Speed does not depend on the weights, so without ``--model`` a randomly initialised network of the
default architecture is timed. Three numbers per setting:

* ``maps``: sky background + recipe + network + blending over the frame (what the viewer's
  field-of-view mode needs);
* ``labels``: the full ``predict`` (maps + watershed into instances, strip by strip);
* settings: fp32, channels_last, channels_last + bf16 autocast (the CPU default where bf16 is native).

Peers on the same field: SEP (``sep.extract`` with a segmentation map) and our photutils pipeline,
so the ratio stays meaningful on a shared machine. The issue's target is >= 2 Mpix/s on the 2-core
CPU (a 25000² frame in <= 5 minutes).
"""
from __future__ import annotations

import argparse
import time


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--model", default=None, help="a trained model folder (default: untrained default architecture)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--settings", default="fp32,cl,cl+bf16", help="comma list of fp32, cl, cl+bf16")
    args = ap.parse_args(argv)

    import torch

    from napari_galseg.preprocess import snr_recipe
    from napari_galseg.segmenters.unet import UNetSegmenter
    from napari_galseg.synth import make_field
    from napari_galseg.training.device import cpu_count

    field = make_field(size=args.size, seed=0)
    mpix = field.image.size / 1e6
    if args.model:
        seg = UNetSegmenter.load(args.model)
    else:
        seg = UNetSegmenter()
        recipe = snr_recipe().fit(seg.input_image(field.image), field.rms)
        seg.recipe = recipe.to_dict()
        torch.manual_seed(0)
        seg.net = seg.build_net(recipe.n_channels).eval()
    p, r = seg.params, seg.run_options
    print(f"field {args.size}² ({mpix:.1f} Mpix), U-Net depth {p.depth} width {p.base_width}, tile {r.tile_size} "
          f"overlap {r.tile_overlap} batch {r.tile_batch}, device {args.device}, {cpu_count()} cores, torch {torch.__version__}")
    rows = []
    for setting in args.settings.split(","):
        cl = "cl" in setting
        bf16 = "bf16" in setting
        seg.configure(device=args.device, channels_last=cl, bf16=bf16)
        def fresh(run):  # every timing includes the frame's sky background (estimated per frame)
            seg._sky_cache = None
            return run()

        maps = timed(lambda: fresh(lambda: [None for _ in seg.iter_maps(field.image, field.rms)]), args.repeat)
        labels = timed(lambda: fresh(lambda: seg.predict(field.image, field.rms)), 1)
        rows.append((setting, mpix / maps, mpix / labels))
        print(f"  {setting:<8} maps {mpix / maps:6.2f} Mpix/s   labels {mpix / labels:6.2f} Mpix/s", flush=True)
    peers = {}
    if not args.no_peers:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
        from evaluate_unet import run_photutils, run_sep

        peers["sep"] = mpix / timed(lambda: run_sep(field.image, field.rms, 1.5), 1)
        peers["photutils (galseg)"] = mpix / timed(lambda: run_photutils(field.image, field.rms, 1.5), 1)
        for name, speed in peers.items():
            print(f"  {name:<20} {speed:6.2f} Mpix/s")
    best = max(r[2] for r in rows)
    print(f"best U-Net labels speed {best:.2f} Mpix/s -> a 25000² frame in {625 / best / 60:.1f} min "
          f"(target >= 2 Mpix/s, <= 5 min)")
    for name, speed in peers.items():
        print(f"  U-Net / {name}: {best / speed:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
