"""What several bands bring to the U-Net: one network trained on g, r, i as channels against the
same network trained on each band alone, with the same budget, scored on an unseen field.

    python benchmarks/bench_bands_unet.py --size 256 --seed 1 --epochs 8

Fields from ``galseg synth --bands g,r,i`` (:func:`napari_galseg.synth.bands.make_band_field`): red
and blue galaxy populations with a power-law SED per galaxy, a PSF and a noise per band, one truth.
Training on the field of ``--seed``, testing on the field of ``--seed`` + 100. Every run has the same
fixed budget (epochs × patches, not minutes: other processes share the CPU) and the same kind of
input — the S/N of the band(s) with their own noise maps (the ``snr`` recipe; per band for bands).
``--only`` limits the single bands run (e.g. ``--only r`` for the best one).
"""
from __future__ import annotations

import argparse
import time


def train_and_score(train, test, bands, args) -> dict:
    from napari_galseg.frames.bands import BandStack
    from napari_galseg.metrics.evaluate import evaluate
    from napari_galseg.segmenters.unet import UNetSegmenter

    def inputs(field):
        if len(bands) == 1:
            return field.images[bands[0]], field.rms[bands[0]]
        return (BandStack([field.images[b] for b in bands], bands), BandStack([field.rms[b] for b in bands], bands))

    model = UNetSegmenter(depth=3, base_width=8, epochs=args.epochs, patches_per_epoch=args.patches, patch_size=64,
                          block_size=64, max_minutes=0, lr=1e-2, device="cpu", tile_size=128, tile_overlap=32, seed=0)
    if len(bands) == 1:
        model.recipe = "snr"
    start = time.perf_counter()
    model.fit(*inputs(train)[:1], train.truth, inputs(train)[1])
    seconds = time.perf_counter() - start
    labels = model.predict(*inputs(test)).labels
    m = evaluate(labels, test.truth, coco=False).metrics
    return {"iou": m["iou"], "completeness": m["completeness"], "purity": m["purity"], "f1": m["object_f1"],
            "n_pred": m["n_pred"], "n_true": m["n_true"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patches", type=int, default=64, help="patches per epoch")
    parser.add_argument("--only", default="g,r,i", help="single bands to run beside the three together")
    args = parser.parse_args()
    import torch

    from napari_galseg.synth.bands import make_band_field

    torch.set_num_threads(2)
    train = make_band_field(args.size, seed=args.seed)
    test = make_band_field(args.size, seed=args.seed + 100)
    runs = {"g, r, i": ("g", "r", "i"), **{b: (b,) for b in args.only.split(",")}}
    print(f"train {args.size}² seed {args.seed}, test {args.size}² seed {args.seed + 100} "
          f"({int(test.truth.max())} true objects); U-Net depth 3 width 8, {args.epochs} epochs × {args.patches} "
          "patches of 64²")
    print("| input | pixel IoU | completeness | purity | object F1 | detections | train s |")
    print("|---|---|---|---|---|---|---|")
    for name, bands in runs.items():
        r = train_and_score(train, test, bands, args)
        print(f"| {name} | {r['iou']:.3f} | {r['completeness']:.3f} | {r['purity']:.3f} | {r['f1']:.3f} | "
              f"{r['n_pred']} | {r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
