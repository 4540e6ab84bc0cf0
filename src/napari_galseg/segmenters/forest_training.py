"""Training pixels of the forest: targets from dense truth or scribbles, class counts and quotas,
and the features of the pixels drawn tile by tile (only where a pixel was drawn)."""
from __future__ import annotations

import numpy as np

from ..arrays import is_dask

SKY, GALAXY = 1, 2  # scribble values

def binary_target(truth):
    """int8 classes: 0 = sky, 1 = galaxy (any label > 0)."""
    if is_dask(truth):
        return (truth > 0).astype(np.int8)
    return (np.asarray(truth) > 0).astype(np.int8)


def scribble_target(scribbles):
    """int8 classes from scribbles: 1 → 0 (sky), 2 → 1 (galaxy), 0 → -1 (unlabelled)."""
    s = scribbles if is_dask(scribbles) else np.asarray(scribbles)
    if not is_dask(s):
        bad = np.setdiff1d(np.unique(s), [0, SKY, GALAXY])
        if bad.size:
            raise ValueError(f"scribbles may only hold 0 (unlabelled), 1 (sky) and 2 (galaxy); found {bad[:5].tolist()}")
    lut = np.array([-1, 0, 1], dtype=np.int8)
    if is_dask(s):
        return s.map_blocks(lambda b: lut[np.clip(b, 0, 2)], dtype=np.int8)
    return lut[s.astype(np.intp)]


def class_counts(target) -> np.ndarray:
    if is_dask(target):
        import dask.array as da

        counts = da.bincount((target.ravel() + 1).astype(np.intp), minlength=3).compute()
    else:
        counts = np.bincount((np.asarray(target).ravel() + 1).astype(np.intp), minlength=3)
    return counts[1:3].astype(np.int64)


def trim_to_quota(y: np.ndarray, quota, cap: int, seed: int) -> np.ndarray:
    """Indices of the training pixels to keep: at most ``quota[c]`` of class c (or ``cap`` in all)."""
    rng = np.random.default_rng([seed, 7])
    if quota is None:
        idx = np.arange(len(y))
        return np.sort(rng.choice(idx, cap, replace=False)) if len(idx) > cap else idx
    keep = []
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        keep.append(np.sort(rng.choice(idx, int(quota[c]), replace=False)) if len(idx) > quota[c] else idx)
    return np.sort(np.concatenate(keep))


def tiles(shape, tile: int):
    from ..tiling import iter_tiles

    return list(iter_tiles(shape, int(tile)))


def sample_tile(channels, valid, target, tile, prob, features, halo: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """Features and classes of the sampled training pixels inside one tile."""
    ys, xs = tile.core
    tgt = np.asarray(target[ys, xs].compute() if is_dask(target) else target[ys, xs])
    ok = np.asarray(valid[ys, xs].compute() if is_dask(valid) else valid[ys, xs])
    labelled = (tgt >= 0) & ok
    if not labelled.any():
        return np.empty((0, 0), np.float32), np.empty(0, np.int8)
    rng = np.random.default_rng(list(seed))
    draw = rng.random(tgt.shape) < prob[np.clip(tgt, 0, 1)]
    chosen = labelled & draw
    if not chosen.any():
        return np.empty((0, 0), np.float32), np.empty(0, np.int8)
    rr, cc = np.nonzero(chosen)
    # features only over the bounding box of the chosen pixels, plus the halo they need
    ny, nx = channels.shape[1:]
    r0, r1 = ys.start + rr.min(), ys.start + rr.max() + 1
    c0, c1 = xs.start + cc.min(), xs.start + cc.max() + 1
    o_r0, o_r1, o_c0, o_c1 = max(0, r0 - halo), min(ny, r1 + halo), max(0, c0 - halo), min(nx, c1 + halo)
    window = channels[:, o_r0:o_r1, o_c0:o_c1]
    window = np.asarray(window.compute() if is_dask(window) else window)
    feats = features(window)
    x = feats[:, ys.start + rr - o_r0, xs.start + cc - o_c0].T
    return np.ascontiguousarray(x), tgt[rr, cc].astype(np.int8)
