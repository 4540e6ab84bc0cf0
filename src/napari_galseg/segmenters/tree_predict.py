"""Compiled prediction of a scikit-learn Random Forest over feature planes (numba, ``nogil``).

scikit-learn's ``predict_proba`` wants a (pixels, features) matrix — a transposed copy of the
feature planes — and allocates a (pixels, 2) float64 array per tree before averaging: on a 2048²
tile that is memory traffic, not arithmetic. Here the trees are flattened once into arrays
(feature, threshold, children, galaxy fraction at the leaf) and every pixel walks every tree reading
the (features, pixels) planes in place, several threads over pixel ranges. The result is the
forest's ``predict_proba(...)[:, 1]`` (same comparisons ``x <= threshold`` in float64, same average;
tested).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass(frozen=True)
class FlatForest:
    """The trees of a fitted forest as padded (trees, nodes) arrays; leaves have feature -1."""

    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    left: np.ndarray  # int32
    right: np.ndarray  # int32
    value: np.ndarray  # float64: fraction of class 1 (galaxy) at each node


def flatten_forest(model) -> FlatForest:
    """Flatten a fitted binary ``RandomForestClassifier`` / ``ExtraTreesClassifier``."""
    trees = [est.tree_ for est in model.estimators_]
    if list(model.classes_) != [0, 1]:
        raise ValueError(f"expected a forest trained on classes [0, 1], got {list(model.classes_)}")
    n_nodes = max(t.node_count for t in trees)
    shape = (len(trees), n_nodes)
    feature = np.full(shape, -1, np.int32)
    threshold = np.zeros(shape, np.float64)
    left = np.zeros(shape, np.int32)
    right = np.zeros(shape, np.int32)
    value = np.zeros(shape, np.float64)
    for i, t in enumerate(trees):
        n = t.node_count
        leaf = t.children_left[:n] < 0
        feature[i, :n] = np.where(leaf, -1, t.feature[:n])
        threshold[i, :n] = t.threshold[:n]
        left[i, :n] = t.children_left[:n]
        right[i, :n] = t.children_right[:n]
        counts = t.value[:n, 0, :].astype(np.float64)
        total = counts.sum(axis=1)
        value[i, :n] = np.where(total > 0, counts[:, 1] / np.where(total > 0, total, 1.0), 0.0)
    return FlatForest(feature, threshold, left, right, value)


@njit(cache=True, nogil=True)
def _forest_proba(planes, index, start, stop, feature, threshold, left, right, value, out):
    """Pixels ``index[start:stop]`` in blocks: one tree at a time over a block, so the tree's nodes and the
    block's feature values stay in cache (pixel by pixel through all trees thrashes both)."""
    n_trees = feature.shape[0]
    block = 2048
    acc = np.zeros(block, np.float64)
    for b0 in range(start, stop, block):
        b1 = min(stop, b0 + block)
        acc[:] = 0.0
        for t in range(n_trees):
            feat_t = feature[t]
            thr_t = threshold[t]
            left_t = left[t]
            right_t = right[t]
            value_t = value[t]
            for q in range(b0, b1):
                p = index[q]
                node = 0
                f = feat_t[0]
                while f >= 0:
                    if np.float64(planes[f, p]) <= thr_t[node]:
                        node = left_t[node]
                    else:
                        node = right_t[node]
                    f = feat_t[node]
                acc[q - b0] += value_t[node]
        for q in range(b0, b1):
            out[index[q]] = acc[q - b0] / n_trees


def forest_proba(flat: FlatForest, planes: np.ndarray, n_threads: int = 0, index: np.ndarray | None = None,
                 fill: float = 0.0) -> np.ndarray:
    """Galaxy probability of every pixel from (features, pixels) float32 planes; ``n_threads``
    threads over pixel ranges (0 = one per CPU). With ``index``, only those pixels are classified
    and the others get ``fill``."""
    planes = np.ascontiguousarray(planes, dtype=np.float32)
    n = planes.shape[1]
    out = np.full(n, fill, np.float32)
    index = np.arange(n, dtype=np.int64) if index is None else np.ascontiguousarray(index, dtype=np.int64)
    m = len(index)
    threads = max(1, int(n_threads) or (os.cpu_count() or 1))
    bounds = np.linspace(0, m, min(threads, max(1, m // 65536)) + 1).astype(np.int64)
    args = (flat.feature, flat.threshold, flat.left, flat.right, flat.value, out)
    if len(bounds) == 2:
        _forest_proba(planes, index, 0, m, *args)
        return out
    with ThreadPoolExecutor(len(bounds) - 1) as pool:
        list(pool.map(lambda i: _forest_proba(planes, index, bounds[i], bounds[i + 1], *args), range(len(bounds) - 1)))
    return out
