"""scikit-learn models stored as plain arrays (``.npz``, loaded with ``allow_pickle=False``).

A model folder may come from anyone: unpickling it (joblib) would run whatever code it holds. A
forest is stored as the node arrays of its trees and rebuilt into scikit-learn's own ``Tree``
objects, so predictions are bit-for-bit those of the trained forest; a KMeans model is its
centroids. Old folders with a ``.joblib`` pickle load only when the caller says the folder is
trusted (``trust_pickle=True``, ``galseg segment --trust-model``).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..model_folder import ModelFolderError

#: Node fields of scikit-learn's trees (``Tree.__getstate__()["nodes"]``).
NODE_FIELDS = ("left_child", "right_child", "feature", "threshold", "impurity", "n_node_samples",
               "weighted_n_node_samples", "missing_go_to_left")
FORMAT = "napari-galseg sklearn arrays v1"


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ModelFolderError(f"{path} is not a readable array file ({type(exc).__name__}: {exc}); "
                               "the model folder is damaged: train or copy it again") from None
    if str(arrays.get("format", "")) != FORMAT:
        raise ModelFolderError(f"{path} was not written by napari-galseg (no '{FORMAT}' tag)")
    return arrays


def _save_npz(path: Path, **arrays: Any) -> None:
    from .._atomic import atomic_path

    with atomic_path(path, overwrite=True, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, format=np.array(FORMAT), **arrays)


# -- forests -------------------------------------------------------------------------------------------
def save_forest(model: Any, path: str | os.PathLike) -> None:
    """The trees of a fitted RandomForestClassifier (single output) as arrays in ``path`` (.npz)."""
    states = [est.tree_.__getstate__() for est in model.estimators_]
    counts = np.array([s["node_count"] for s in states], dtype=np.int64)
    nodes = np.concatenate([s["nodes"] for s in states])
    arrays = {f"node_{name}": np.ascontiguousarray(nodes[name]) for name in NODE_FIELDS if name in nodes.dtype.names}
    _save_npz(Path(path),
              classes=np.asarray(model.classes_), n_features=np.array(model.n_features_in_),
              node_counts=counts, max_depths=np.array([s["max_depth"] for s in states], dtype=np.int64),
              values=np.concatenate([s["values"] for s in states]), **arrays)


def load_forest(path: str | os.PathLike, **forest_kwargs: Any) -> Any:
    """A RandomForestClassifier rebuilt from :func:`save_forest`'s arrays (no pickle involved)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    path = Path(path)
    arrays = _load_npz(path)
    try:
        classes = arrays["classes"]
        n_features = int(arrays["n_features"])
        counts = arrays["node_counts"].astype(np.int64)
        depths = arrays["max_depths"].astype(np.int64)
        values = arrays["values"]
        n_classes = np.array([len(classes)], dtype=np.intp)
        node_dtype = Tree(n_features, n_classes, 1).__getstate__()["nodes"].dtype
        nodes = np.zeros(counts.sum().item(), dtype=node_dtype)
        for name in node_dtype.names:
            if f"node_{name}" not in arrays:
                raise ModelFolderError(f"{path} lacks the tree field {name!r}: it was saved by another "
                                       "scikit-learn layout; retrain the forest")
            nodes[name] = arrays[f"node_{name}"]
        if values.shape[0] != len(nodes) or len(depths) != len(counts):
            raise ModelFolderError(f"{path}: the tree arrays do not fit together; the file is damaged")
        if (nodes["feature"] >= n_features).any() or (nodes["left_child"] >= np.repeat(counts, counts)).any():
            raise ModelFolderError(f"{path}: tree nodes point outside their tree; the file is damaged")
        estimators = []
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for i, count in enumerate(counts):
            tree = Tree(n_features, n_classes, 1)
            tree.__setstate__({"max_depth": int(depths[i]), "node_count": count.item(),
                               "nodes": nodes[offsets[i]:offsets[i + 1]].copy(),
                               "values": np.ascontiguousarray(values[offsets[i]:offsets[i + 1]], dtype=np.float64)})
            est = DecisionTreeClassifier()
            est.tree_ = tree
            est.n_features_in_ = n_features
            est.n_outputs_ = 1
            est.n_classes_ = len(classes)
            est.classes_ = classes
            est.max_features_ = n_features
            estimators.append(est)
    except ModelFolderError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFolderError(f"{path} does not hold a forest napari-galseg can rebuild "
                               f"({type(exc).__name__}: {exc}); retrain it") from None
    forest = RandomForestClassifier(n_estimators=len(estimators), **forest_kwargs)
    forest.estimators_ = estimators
    forest.estimator_ = DecisionTreeClassifier()
    forest.classes_ = classes
    forest.n_classes_ = len(classes)
    forest.n_outputs_ = 1
    forest.n_features_in_ = n_features
    return forest


# -- KMeans ----------------------------------------------------------------------------------------------
def save_kmeans(model: Any, path: str | os.PathLike) -> None:
    _save_npz(Path(path), cluster_centers=np.asarray(model.cluster_centers_))


def load_kmeans(path: str | os.PathLike, **kmeans_kwargs: Any) -> Any:
    """A MiniBatchKMeans that predicts with the saved centroids."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    path = Path(path)
    centers = _load_npz(path).get("cluster_centers")
    if centers is None or centers.ndim != 2 or not np.isfinite(centers).all():
        raise ModelFolderError(f"{path} holds no valid cluster centres; the model folder is damaged")
    model = MiniBatchKMeans(n_clusters=len(centers), **kmeans_kwargs)
    model.cluster_centers_ = np.ascontiguousarray(centers)
    model.n_features_in_ = centers.shape[1]
    model._n_threads = _openmp_effective_n_threads()
    model._n_features_out = len(centers)
    return model


# -- old pickled folders -------------------------------------------------------------------------------------
_TRUST_PICKLE = contextvars.ContextVar("galseg_trust_pickle", default=False)


@contextlib.contextmanager
def trusted_pickles(trust: bool = True):
    """Within this block, model folders holding an old pickle (``.joblib``) may be loaded:
    only for folders the user trusts (``galseg segment --trust-model``)."""
    token = _TRUST_PICKLE.set(bool(trust))
    try:
        yield
    finally:
        _TRUST_PICKLE.reset(token)


def load_trusted_pickle(path: Path, trust_pickle: bool = False) -> Any:
    """An old ``.joblib`` model, unpickled only when the user trusts the folder."""
    if not (trust_pickle or _TRUST_PICKLE.get()):
        raise ModelFolderError(
            f"{path} is a pickle (joblib) from an older napari-galseg. Loading a pickle runs any code it "
            "holds, so it is refused by default. If you trust where this folder came from, load it once "
            "with trust_pickle=True (galseg segment --trust-model) and save it again to convert it, or retrain.")
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise ModelFolderError(f"{path} is not a joblib file written by napari-galseg "
                               f"({type(exc).__name__}: {exc})") from None
