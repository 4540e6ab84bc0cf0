"""Object (instance) metrics: predicted and true objects matched one-to-one by IoU.

How it works, and why it is fast on 100k objects and bounded in memory on huge frames:

1. **Overlap table** (:func:`overlap_table`). Every pixel is a pair (true id, predicted id). Along
   the flattened image consecutive pixels almost always repeat the same pair, so each slab of rows
   (numpy) or each chunk (dask) is run-length encoded first and only the runs are reduced to a
   sparse table of pair counts. Areas and intersections come out of the same table, and tables of
   slabs/chunks simply add up — an object spanning chunks is counted correctly.
2. **Matching** (:func:`match_objects`). Candidate pairs are those with IoU >= ``iou_threshold``.
   The matching is **optimal**: the largest number of one-to-one matches, ties broken by the largest
   total IoU. Objects with a single candidate on both sides are matched directly (vectorised); the
   rest of the candidate graph is split into connected components and each is solved with
   ``scipy.optimize.linear_sum_assignment``. For thresholds above 0.5 every object has at most one
   candidate (two disjoint objects cannot both overlap a third by more than half its union), so
   the matching is unique and the assignment step never runs; at exactly 0.5 a tie is possible
   (an object cut in two equal halves) and is resolved optimally.

Definitions (see the module docstring of :mod:`napari_galseg.metrics.pixel` for empty cases):

* completeness = n_matched / n_true (object recall), purity = n_matched / n_pred (object precision),
  object F1 = 2 n_matched / (n_true + n_pred), mean matched IoU over the matched pairs;
* a predicted object is a *fragment* of a true object when at least ``fragment_fraction`` (0.5) of
  its pixels lie inside it; a true object is **split** when it has two or more fragments;
* symmetrically a predicted object is a **blend** (merged) when two or more true objects each have at
  least ``fragment_fraction`` of their pixels inside it; ``n_merged`` counts those predicted
  objects and ``n_blended_true`` the true objects lost in them.

Labels <= 0 are background.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .pixel import SLAB_PIXELS, _as_array, _crop, _slabs, check_same_shape, is_dask, safe_ratio

_EMPTY_I = np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# overlap table
# --------------------------------------------------------------------------------------------
def _reduce_pairs(t: np.ndarray, p: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum counts ``n`` of identical (t, p) pairs; result sorted by (t, p)."""
    if t.size == 0:
        return _EMPTY_I, _EMPTY_I, _EMPTY_I
    t = t.astype(np.int64, copy=False)
    p = p.astype(np.int64, copy=False)
    p_span = int(p.max()) + 1
    if int(t.max()) < (np.iinfo(np.int64).max // p_span) - 1:
        key = t * p_span + p
        unique, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=n, minlength=unique.size).astype(np.int64)
        return unique // p_span, unique % p_span, counts
    pairs, inverse = np.unique(np.stack([t, p], axis=1), axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=n, minlength=len(pairs)).astype(np.int64)
    return pairs[:, 0], pairs[:, 1], counts


def _pair_counts(true: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None):
    """(true id, pred id, pixel count) for one piece of the image, skipping (0, 0)."""
    true = np.asarray(true)
    pred = np.asarray(pred)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        true = np.where(mask, true, 0)
        pred = np.where(mask, pred, 0)
    t = true.ravel()
    p = pred.ravel()
    size = t.size
    if size == 0:
        return _EMPTY_I, _EMPTY_I, _EMPTY_I
    change = np.empty(size, dtype=bool)
    change[0] = True
    np.not_equal(t[1:], t[:-1], out=change[1:])
    change[1:] |= p[1:] != p[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, size))
    rt = t[starts].astype(np.int64)
    rp = p[starts].astype(np.int64)
    rt[rt < 0] = 0
    rp[rp < 0] = 0
    keep = (rt > 0) | (rp > 0)
    return _reduce_pairs(rt[keep], rp[keep], lengths[keep])


def _merge_tables(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]):
    parts = [part for part in parts if part[0].size]
    if not parts:
        return _EMPTY_I, _EMPTY_I, _EMPTY_I
    if len(parts) == 1:
        return parts[0]
    return _reduce_pairs(*(np.concatenate(column) for column in zip(*parts)))


def _group_sum(ids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse.ravel(), weights=counts, minlength=unique.size).astype(np.int64)


@dataclass
class OverlapTable:
    """Areas of the true and predicted objects and the pixel counts of their intersections."""

    true_ids: np.ndarray
    true_area: np.ndarray
    pred_ids: np.ndarray
    pred_area: np.ndarray
    pair_true: np.ndarray  # id of the true object of each overlapping pair
    pair_pred: np.ndarray  # id of the predicted object
    pair_count: np.ndarray  # pixels in the intersection

    @classmethod
    def from_pairs(cls, t: np.ndarray, p: np.ndarray, n: np.ndarray) -> OverlapTable:
        on_true = t > 0
        on_pred = p > 0
        true_ids, true_area = _group_sum(t[on_true], n[on_true])
        pred_ids, pred_area = _group_sum(p[on_pred], n[on_pred])
        both = on_true & on_pred
        return cls(true_ids, true_area, pred_ids, pred_area, t[both], p[both], n[both])

    def pair_iou(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices into ``true_ids``/``pred_ids`` of each overlapping pair, and its IoU."""
        it = np.searchsorted(self.true_ids, self.pair_true)
        ip = np.searchsorted(self.pred_ids, self.pair_pred)
        union = self.true_area[it] + self.pred_area[ip] - self.pair_count
        return it, ip, self.pair_count / union


def _check_labels(array: Any, what: str) -> None:
    if array.dtype.kind not in "iub":
        raise ValueError(
            f"{what} has dtype {array.dtype}, not integer labels; threshold and label it first "
            "(napari_galseg.metrics.as_instances) or use napari_galseg.metrics.evaluate"
        )


def overlap_table(
    pred_labels: Any,
    true_labels: Any,
    *,
    mask: Any = None,
    region: Sequence[slice] | None = None,
    slab_pixels: int = SLAB_PIXELS,
) -> OverlapTable:
    """Sparse overlap table of two label images (numpy slab by slab, dask chunk by chunk)."""
    pred_labels, true_labels = _as_array(pred_labels), _as_array(true_labels)
    check_same_shape(pred_labels, true_labels)
    _check_labels(pred_labels, "the prediction")
    _check_labels(true_labels, "the truth")
    if mask is not None:
        mask = _as_array(mask)
        check_same_shape(mask, true_labels, "mask and truth")
    pred_labels, true_labels, mask = _crop((pred_labels, true_labels, mask), region)
    if is_dask(pred_labels) or is_dask(true_labels) or is_dask(mask):
        parts = _pair_counts_dask(pred_labels, true_labels, mask)
    else:
        parts = [
            _pair_counts(true_labels[index], pred_labels[index], None if mask is None else mask[index])
            for index in _slabs(true_labels.shape, slab_pixels)
        ]
    return OverlapTable.from_pairs(*_merge_tables(parts))


def _pair_counts_dask(pred: Any, true: Any, mask: Any) -> list:
    import dask
    import dask.array as da

    true = da.asarray(true)
    pred = da.asarray(pred).rechunk(true.chunks)
    blocks_t = true.to_delayed().ravel()
    blocks_p = pred.to_delayed().ravel()
    if mask is None:
        tasks = [dask.delayed(_pair_counts)(t, p) for t, p in zip(blocks_t, blocks_p)]
    else:
        blocks_m = da.asarray(mask).rechunk(true.chunks).to_delayed().ravel()
        tasks = [dask.delayed(_pair_counts)(t, p, m) for t, p, m in zip(blocks_t, blocks_p, blocks_m)]
    return list(dask.compute(*tasks))


# --------------------------------------------------------------------------------------------
# flux of the true objects
# --------------------------------------------------------------------------------------------
def _label_sums(labels: np.ndarray, image: np.ndarray, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    selected = labels > 0
    if mask is not None:
        selected &= np.asarray(mask, dtype=bool)
    values = np.asarray(image, dtype=np.float64)[selected]
    finite = np.isfinite(values)
    found = labels[selected][finite]
    index = np.minimum(np.searchsorted(ids, found), max(ids.size - 1, 0))
    known = ids[index] == found if ids.size else np.zeros(found.size, dtype=bool)
    return np.bincount(index[known], weights=values[finite][known], minlength=ids.size)[: ids.size]


def object_flux(
    true_labels: Any,
    image: Any,
    ids: np.ndarray | None = None,
    *,
    mask: Any = None,
    region: Sequence[slice] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of ``image`` over each true object (NaN pixels skipped); returns (ids, flux)."""
    true_labels, image = _as_array(true_labels), _as_array(image)
    check_same_shape(image, true_labels, "image and truth")
    if mask is not None:
        mask = _as_array(mask)
    true_labels, image, mask = _crop((true_labels, image, mask), region)
    if ids is None:
        ids = overlap_table(true_labels, true_labels, mask=mask).true_ids
    ids = np.asarray(ids, dtype=np.int64)
    if is_dask(true_labels) or is_dask(image) or is_dask(mask):
        import dask
        import dask.array as da

        t = da.asarray(true_labels)
        blocks_t = t.to_delayed().ravel()
        blocks_i = da.asarray(image).rechunk(t.chunks).to_delayed().ravel()
        blocks_m = (
            [None] * len(blocks_t) if mask is None else da.asarray(mask).rechunk(t.chunks).to_delayed().ravel()
        )
        parts = dask.compute(*[dask.delayed(_label_sums)(a, b, ids, m) for a, b, m in zip(blocks_t, blocks_i, blocks_m)])
        flux = np.sum(parts, axis=0) if parts else np.zeros(ids.size)
    else:
        flux = np.zeros(ids.size)
        for index in _slabs(true_labels.shape):
            flux += _label_sums(true_labels[index], image[index], ids, None if mask is None else mask[index])
    return ids, flux


# --------------------------------------------------------------------------------------------
# matching
# --------------------------------------------------------------------------------------------
def _optimal_matching(ct: np.ndarray, cp: np.ndarray, ciou: np.ndarray, n_true: int, n_pred: int):
    """Max-cardinality, then max-IoU, one-to-one matching of candidate edges (indices)."""
    if ct.size == 0:
        return _EMPTY_I, _EMPTY_I, np.zeros(0)
    deg_t = np.bincount(ct, minlength=n_true)
    deg_p = np.bincount(cp, minlength=n_pred)
    simple = (deg_t[ct] == 1) & (deg_p[cp] == 1)
    out_t, out_p, out_iou = [ct[simple]], [cp[simple]], [ciou[simple]]
    rest = ~simple
    if rest.any():
        from scipy.optimize import linear_sum_assignment
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        rt, rp, riou = ct[rest], cp[rest], ciou[rest]
        # bipartite graph: true nodes 0..n_true-1, predicted nodes n_true..n_true+n_pred-1
        n_nodes = n_true + n_pred
        graph = coo_matrix((np.ones(rt.size), (rt, rp + n_true)), shape=(n_nodes, n_nodes))
        _, component = connected_components(graph, directed=False)
        edge_component = component[rt]
        order = np.argsort(edge_component, kind="stable")
        bounds = np.flatnonzero(np.diff(edge_component[order])) + 1
        for edges in np.split(order, bounds):
            et, ep, eiou = rt[edges], rp[edges], riou[edges]
            rows, row_index = np.unique(et, return_inverse=True)
            cols, col_index = np.unique(ep, return_inverse=True)
            k = min(rows.size, cols.size)
            cost = np.zeros((rows.size, cols.size))
            # each match is worth 1 plus a bonus < 1/(2k): more matches always win, then more IoU
            cost[row_index, col_index] = -(1.0 + eiou / (2.0 * k + 1.0))
            r, c = linear_sum_assignment(cost)
            chosen = cost[r, c] < 0
            r, c = r[chosen], c[chosen]
            lookup = {(a, b): v for a, b, v in zip(row_index, col_index, eiou)}
            out_t.append(rows[r])
            out_p.append(cols[c])
            out_iou.append(np.array([lookup[(a, b)] for a, b in zip(r, c)], dtype=float))
    return np.concatenate(out_t), np.concatenate(out_p), np.concatenate(out_iou)


@dataclass
class ObjectMatch:
    """The result of matching predicted to true objects; :meth:`summary` gives the metrics."""

    iou_threshold: float
    true_ids: np.ndarray
    true_area: np.ndarray
    pred_ids: np.ndarray
    pred_area: np.ndarray
    matched_true: np.ndarray  # ids of matched true objects
    matched_pred: np.ndarray  # ids of their predicted partners
    matched_iou: np.ndarray
    true_matched: np.ndarray  # bool per true_ids entry
    n_split: int
    n_merged: int
    n_blended_true: int
    true_flux: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_true(self) -> int:
        return int(self.true_ids.size)

    @property
    def n_pred(self) -> int:
        return int(self.pred_ids.size)

    @property
    def n_matched(self) -> int:
        return int(self.matched_true.size)

    def summary(self) -> dict[str, Any]:
        """Completeness, purity, object F1, mean matched IoU and the counts, as plain numbers."""
        both_empty = self.n_true == 0 and self.n_pred == 0
        return {
            "completeness": safe_ratio(self.n_matched, self.n_true, both_empty),
            "purity": safe_ratio(self.n_matched, self.n_pred, both_empty),
            "object_f1": safe_ratio(2 * self.n_matched, self.n_true + self.n_pred, both_empty),
            "mean_matched_iou": float(self.matched_iou.mean()) if self.n_matched else (1.0 if both_empty else 0.0),
            "n_true": self.n_true,
            "n_pred": self.n_pred,
            "n_matched": self.n_matched,
            "n_split": int(self.n_split),
            "n_merged": int(self.n_merged),
            "n_blended_true": int(self.n_blended_true),
            "iou_threshold": float(self.iou_threshold),
        }

    def completeness_curve(self, by: str = "area", bins: int | Sequence[float] = 10) -> dict[str, Any]:
        """Completeness of the true objects in bins of ``"area"`` (pixels) or ``"flux"``.

        ``bins`` is a number of logarithmic bins spanning the positive values, or explicit edges.
        Returns ``edges``, ``centres``, ``n_true``, ``n_matched`` and ``completeness`` (lists);
        the completeness of an empty bin is ``None``. Objects with non-positive flux are left
        out of log bins (counted in ``n_excluded``).
        """
        if by == "area":
            values = self.true_area.astype(float)
        elif by == "flux":
            if self.true_flux is None:
                raise ValueError("flux completeness needs the image: pass image= to match_objects")
            values = np.asarray(self.true_flux, dtype=float)
        else:
            raise ValueError(f"completeness_curve(by={by!r}): use 'area' or 'flux'")
        usable = np.isfinite(values) & (values > 0)
        automatic = np.ndim(bins) == 0
        if automatic:
            if usable.any():
                low, high = values[usable].min(), values[usable].max()
                if high <= low:
                    high = low * 1.0001 + 1e-12
                edges = np.geomspace(low, high, int(bins) + 1)
            else:
                edges = np.array([0.0, 1.0])
        else:
            edges = np.asarray(bins, dtype=float)
        index = np.searchsorted(edges, values[usable], side="right") - 1
        index[values[usable] == edges[-1]] = edges.size - 2  # close the last bin on the right
        if automatic:  # the edges span the values; only rounding can put one outside
            index = np.clip(index, 0, edges.size - 2)
        inside = (index >= 0) & (index < edges.size - 1)
        n_bins = edges.size - 1
        n_true = np.bincount(index[inside], minlength=n_bins)
        n_matched = np.bincount(index[inside], weights=self.true_matched[usable][inside], minlength=n_bins)
        completeness = [float(m / n) if n else None for m, n in zip(n_matched, n_true)]
        centres = np.sqrt(edges[:-1] * edges[1:]) if (edges > 0).all() else 0.5 * (edges[:-1] + edges[1:])
        return {
            "by": by,
            "edges": edges.tolist(),
            "centres": centres.tolist(),
            "n_true": n_true.astype(int).tolist(),
            "n_matched": n_matched.astype(int).tolist(),
            "completeness": completeness,
            "n_excluded": int((~usable).sum() + (~inside).sum()),
        }


def match_table(
    table: OverlapTable, iou_threshold: float = 0.5, *, fragment_fraction: float = 0.5
) -> ObjectMatch:
    """Match the objects of an :class:`OverlapTable` (see the module docstring)."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    n_true, n_pred = table.true_ids.size, table.pred_ids.size
    it, ip, iou = table.pair_iou()
    candidate = iou >= iou_threshold
    mt, mp, miou = _optimal_matching(it[candidate], ip[candidate], iou[candidate], n_true, n_pred)
    order = np.argsort(mt, kind="stable")
    mt, mp, miou = mt[order], mp[order], miou[order]
    true_matched = np.zeros(n_true, dtype=bool)
    true_matched[mt] = True

    # split: a true object with >= 2 predicted fragments; blend: a prediction holding >= 2 true objects
    fragment = table.pair_count >= fragment_fraction * table.pred_area[ip]
    fragments_per_true = np.bincount(it[fragment], minlength=n_true)
    held = table.pair_count >= fragment_fraction * table.true_area[it]
    held_per_pred = np.bincount(ip[held], minlength=n_pred)
    return ObjectMatch(
        iou_threshold=float(iou_threshold),
        true_ids=table.true_ids,
        true_area=table.true_area,
        pred_ids=table.pred_ids,
        pred_area=table.pred_area,
        matched_true=table.true_ids[mt],
        matched_pred=table.pred_ids[mp],
        matched_iou=miou,
        true_matched=true_matched,
        n_split=int((fragments_per_true >= 2).sum()),
        n_merged=int((held_per_pred >= 2).sum()),
        n_blended_true=int(held_per_pred[held_per_pred >= 2].sum()),
    )


def match_objects(
    pred_labels: Any,
    true_labels: Any,
    iou_threshold: float = 0.5,
    *,
    image: Any = None,
    mask: Any = None,
    region: Sequence[slice] | None = None,
    fragment_fraction: float = 0.5,
) -> ObjectMatch:
    """Match predicted to true objects one-to-one at IoU >= ``iou_threshold`` (optimal matching).

    ``image`` (same shape) adds the flux of each true object for completeness-vs-flux curves;
    ``mask``/``region`` restrict the evaluation as in :func:`~napari_galseg.metrics.pixel_metrics`.
    """
    table = overlap_table(pred_labels, true_labels, mask=mask, region=region)
    match = match_table(table, iou_threshold, fragment_fraction=fragment_fraction)
    if image is not None:
        _, match.true_flux = object_flux(true_labels, image, table.true_ids, mask=mask, region=region)
    return match


def object_metrics(pred_labels: Any, true_labels: Any, iou_threshold: float = 0.5, **kwargs: Any) -> dict[str, Any]:
    """Completeness, purity, object F1, mean matched IoU, n_true, n_pred, n_matched, split/merged.

    Keyword arguments go to :func:`match_objects`.
    """
    return match_objects(pred_labels, true_labels, iou_threshold, **kwargs).summary()


def as_instances(pred: Any, threshold: float | None = None, connectivity: int = 1) -> np.ndarray:
    """Instance labels from a prediction: integer labels pass through; a binary mask or a
    probability map (``>= threshold``) is split into connected components (4-connected by default).
    """
    from scipy import ndimage

    from .pixel import binarise

    array = np.asarray(pred)
    if array.dtype.kind in "iu" and threshold is None and array.max(initial=0) > 1:
        return array
    foreground = binarise(array, threshold)
    structure = ndimage.generate_binary_structure(foreground.ndim, connectivity)
    labels, _ = ndimage.label(foreground, structure=structure, output=np.int32)
    return labels


__all__ = [
    "ObjectMatch",
    "OverlapTable",
    "as_instances",
    "match_objects",
    "match_table",
    "object_flux",
    "object_metrics",
    "overlap_table",
]
