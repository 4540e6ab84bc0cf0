"""Benchmark: Mask R-CNN / DETR tiled inference speed (Mpix/s), with the photutils pipeline as a peer.

Run on demand (not part of the test suite), with a trained model folder (nothing is downloaded;
an untrained network finds almost nothing, so its speed says little):

    .venv/bin/python benchmarks/bench_instance_inference.py --model models/mrcnn --size 1024
    .venv/bin/python benchmarks/bench_instance_inference.py --model models/mrcnn --device cuda

For Mask R-CNN it also times torchvision's own output (every detection's mask pasted into a full
tile) against the default box masks (``models.maskrcnn.predict_boxed``) and checks that both give
the same labels. Each timing is the full ``predict`` (sky model, recipe, network, tile merge).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a maskrcnn or detr model folder")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = the run option's default)")
    args = ap.parse_args(argv)

    from napari_galseg.metrics.coco import coco_evaluate
    from napari_galseg.model_folder import read_model_config
    from napari_galseg.segmenters import get
    from napari_galseg.synth import make_field

    method = read_model_config(args.model).get("method", "maskrcnn")
    field = make_field(args.size, seed=args.seed)
    seg = get(method).load(args.model)
    seg.configure(device=args.device, **({"n_threads": args.threads} if args.threads else {}))
    variants = {"default": None}
    if method == "maskrcnn":
        from napari_galseg.models import maskrcnn

        variants["pasted (torchvision)"] = lambda inputs: maskrcnn.predict(seg._require_net(), inputs)
    labels = {}
    for name, predict_batch in variants.items():
        if predict_batch is not None:
            seg.predict_batch = predict_batch
        t = time.perf_counter()
        result = seg.predict(field.image, field.rms)
        seconds = time.perf_counter() - t
        labels[name] = np.asarray(result.labels)
        ap_ = coco_evaluate(labels[name], field.truth, scores=result.scores, iou_types=("segm",))
        print(f"{method} {name:<22} {seconds:7.1f} s  {field.image.size / seconds / 1e6:7.3f} Mpix/s  "
              f"{int(labels[name].max())} objects  AP {ap_['ap']:.3f}  AP50 {ap_['ap50']:.3f}", flush=True)
    if len(labels) > 1:
        print("same labels:", all(np.array_equal(labels["default"], v) for v in labels.values()))
    t = time.perf_counter()
    get("photutils")(catalog="none").predict(field.image, field.rms)
    seconds = time.perf_counter() - t
    print(f"photutils (peer)              {seconds:7.1f} s  {field.image.size / seconds / 1e6:7.3f} Mpix/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
