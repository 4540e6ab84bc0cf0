"""Speed of napari_galseg.metrics against peers, measured in the same run.

* pixel metrics (IoU/Dice/...) on an N² pair (default 8192²; target < 1 s) vs sklearn's
  ``confusion_matrix`` on the same flattened masks, and the dask (chunked) path;
* object matching on ~100k objects (target: seconds) vs ``skimage.metrics.contingency_table``
  for the overlap-table step alone;
* COCO AP of a crowded image, grouped (ours) vs pycocotools on the whole image (same numbers);
* optionally (``--lazy``) a lazily generated dask pair, chunk by chunk, with the peak memory.

    .venv/bin/python benchmarks/bench_metrics.py [--size 8192] [--objects 100000] [--lazy 16384]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def timed(function, *args, repeat=1, **kwargs):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def blob_labels(size: int, pitch: int, seed: int, jitter: int = 2) -> np.ndarray:
    """A label image of about (size/pitch)² square objects with random sizes and offsets."""
    rng = np.random.default_rng(seed)
    n = size // pitch
    labels = np.zeros((size, size), np.int32)
    side = rng.integers(pitch // 3, pitch - 1, size=(n, n))
    dy, dx = rng.integers(0, jitter + 1, size=(2, n, n))
    label = 0
    for i in range(n):
        y0 = i * pitch
        for j in range(n):
            label += 1
            y, x, s = y0 + dy[i, j], j * pitch + dx[i, j], side[i, j]
            labels[y:y + s, x:x + s] = label
    return labels


def bench_pixels(size: int, with_sklearn: bool) -> None:
    import dask.array as da

    from napari_galseg.metrics import pixel_metrics

    print(f"\n== pixel metrics on a {size}x{size} pair ==")
    rng = np.random.default_rng(0)
    base = (rng.random((size // 64, size // 64)) < 0.3).astype(np.int32)
    true = np.kron(base, np.ones((64, 64), np.int32))
    pred = np.roll(true, 7, axis=1) * 2
    t_ours, result = timed(pixel_metrics, pred, true, repeat=3)
    print(f"napari_galseg pixel_metrics (numpy): {t_ours:.3f} s   IoU={result['iou']:.4f} Dice={result['dice']:.4f}"
          f"  [{'PASS' if t_ours < 1 else 'FAIL'} target < 1 s]")
    pred_d, true_d = da.from_array(pred, chunks=2048), da.from_array(true, chunks=2048)
    t_dask, result_d = timed(pixel_metrics, pred_d, true_d, repeat=2)
    assert result_d == result
    print(f"napari_galseg pixel_metrics (dask, 2048² chunks): {t_dask:.3f} s")
    if with_sklearn:
        from sklearn.metrics import confusion_matrix

        def naive():
            (tn, fp), (fn, tp) = confusion_matrix(true.ravel() > 0, pred.ravel() > 0)
            return tp / (tp + fp + fn)

        t_sk, iou_sk = timed(naive)
        assert abs(iou_sk - result["iou"]) < 1e-12
        print(f"sklearn confusion_matrix (naive): {t_sk:.3f} s   -> ours is {t_sk / t_ours:.1f}x faster")
    print(f"peak RSS so far: {peak_rss_gib():.2f} GiB")


def bench_objects(n_objects: int) -> None:
    from skimage.metrics import contingency_table

    from napari_galseg.metrics import match_objects, overlap_table

    pitch = 13
    size = int(np.ceil(np.sqrt(n_objects))) * pitch
    print(f"\n== object matching: {size}x{size} labels ==")
    true = blob_labels(size, pitch, seed=1)
    rng = np.random.default_rng(2)
    pred = np.roll(true, 1, axis=0)  # shifted by a pixel: IoU ~ 0.6-0.9
    lookup = np.arange(true.max() + 1, dtype=np.int32)
    lookup[rng.random(lookup.size) < 0.1] = 0           # 10% missed
    lookup[1:] += 5_000_000                             # different ids from the truth
    lookup[lookup == 5_000_000] = 0
    pred = lookup[pred]
    # merge 2% of neighbours by giving them one id
    pairs = rng.integers(1, true.max() - 1, size=true.max() // 50)
    merge = np.arange(lookup.max() + 1, dtype=np.int32)
    merge[lookup[pairs + 1]] = lookup[pairs]
    pred = merge[pred]
    n_true = int(true.max())
    print(f"{n_true} true objects, {len(np.unique(pred)) - 1} predicted")

    t_table, table = timed(overlap_table, pred, true, repeat=2)
    t_match, match = timed(match_objects, pred, true, 0.5, repeat=2)
    summary = match.summary()
    print(f"napari_galseg overlap_table: {t_table:.3f} s; match_objects (table + optimal matching): {t_match:.3f} s"
          f"  [{'PASS' if t_match < 10 else 'FAIL'} target: seconds]")
    print(f"  completeness={summary['completeness']:.4f} purity={summary['purity']:.4f} "
          f"n_matched={summary['n_matched']} n_merged={summary['n_merged']}")
    t_sk, _ = timed(contingency_table, true, pred)
    print(f"skimage.metrics.contingency_table (overlap table only): {t_sk:.3f} s   -> ours is {t_sk / t_table:.1f}x faster")
    assert table.pair_count.sum() == np.count_nonzero((true > 0) & (pred > 0))
    print(f"peak RSS so far: {peak_rss_gib():.2f} GiB")


def bench_coco(n_objects: int) -> None:
    from napari_galseg.metrics import coco_evaluate

    pitch = 13
    size = int(np.ceil(np.sqrt(n_objects))) * pitch
    true = blob_labels(size, pitch, seed=3)
    pred = np.roll(true, 1, axis=0)
    scores = dict(zip(range(1, int(pred.max()) + 1), np.random.default_rng(4).random(int(pred.max()))))
    print(f"\n== COCO segm AP, {int(true.max())} objects in one {size}x{size} image ==")
    t_grouped, grouped = timed(coco_evaluate, pred, true, scores=scores, iou_types=("segm",), group=True)
    t_whole, whole = timed(coco_evaluate, pred, true, scores=scores, iou_types=("segm",), group=False)
    same = all(grouped[k] == whole[k] for k in whole if not k.endswith(("ar1", "ar10")))
    print(f"grouped: {t_grouped:.2f} s; pycocotools on the whole image: {t_whole:.2f} s -> {t_whole / t_grouped:.1f}x faster;"
          f" identical AP/AR: {same} (AP={grouped['ap']:.4f})")


def bench_lazy(size: int, chunk: int = 4096) -> None:
    import dask
    import dask.array as da

    from napari_galseg.metrics import object_metrics, pixel_metrics

    print(f"\n== lazy dask pair {size}x{size}, {chunk}² chunks, generated block by block ==")

    def block(block_info=None, shift=0):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        yy = np.arange(y0, y1, dtype=np.int32)[:, None]
        xx = np.arange(x0 + shift, x1 + shift, dtype=np.int32)[None, :]
        cell = (yy // 16) * np.int32(size // 16 + 1) + (xx // 16 + 1)
        cell[~((yy % 16 < 10) & (xx % 16 < 10))] = 0
        return cell

    size = max(chunk, size // chunk * chunk)
    chunks = ((chunk,) * (size // chunk),) * 2
    true = da.map_blocks(block, dtype=np.int32, chunks=chunks)
    pred = da.map_blocks(block, dtype=np.int32, chunks=chunks, shift=1)
    with dask.config.set(scheduler="threads", num_workers=2):
        t_gen, _ = timed(lambda: dask.compute(true.max(), pred.max()))
        print(f"generating the two arrays alone (dask max): {t_gen:.2f} s")
        t_pix, pixel = timed(pixel_metrics, pred, true)
        print(f"pixel_metrics: {t_pix:.2f} s  IoU={pixel['iou']:.4f}")
        t_obj, objects = timed(object_metrics, pred, true)
        print(f"object_metrics: {t_obj:.2f} s  n_true={objects['n_true']} completeness={objects['completeness']:.4f}")
    print(f"peak RSS of this process: {peak_rss_gib():.2f} GiB (the pair in memory would be "
          f"{2 * 4 * size * size / 2**30:.1f} GiB; run with --only lazy to see this case alone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192, help="side of the pixel-metrics pair")
    parser.add_argument("--objects", type=int, default=100_000, help="number of objects to match")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the sklearn peer (it needs ~3 GiB at 8192²)")
    parser.add_argument("--lazy", type=int, default=0, help="also run a lazy dask pair of this side (e.g. 16384)")
    parser.add_argument("--coco-objects", type=int, default=900, help="objects in the COCO comparison")
    parser.add_argument("--only", choices=("pixels", "objects", "coco", "lazy"), help="run one case only")
    args = parser.parse_args()
    if args.only in (None, "pixels"):
        bench_pixels(args.size, not args.no_sklearn)
    if args.only in (None, "objects"):
        bench_objects(args.objects)
    if args.only in (None, "coco"):
        bench_coco(args.coco_objects)
    if args.only == "lazy" or (args.only is None and args.lazy):
        bench_lazy(args.lazy or 16384)


if __name__ == "__main__":
    main()
