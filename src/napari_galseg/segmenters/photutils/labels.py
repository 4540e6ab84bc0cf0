"""The final labels: every segment numbered by its first pixel, deblended parents replaced by
their children, readable over any window (numpy for the whole frame, dask blocks for huge ones)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .deblending import Split

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import Pipeline


class Segments:
    """The segments of a run: detected objects, minus those that split, plus their children.

    Labels are 1..n in raster order of each segment's first pixel, whatever the tiling.
    """

    def __init__(self, first_pixel: np.ndarray, width: int):
        n_obj = len(first_pixel)
        self.n_objects = n_obj
        self.width = width
        self.splits: dict[int, Split] = {}  # parent -> its split
        self._first = [first_pixel]
        self._parent = [np.arange(1, n_obj + 1)]
        self._child = [np.zeros(n_obj, np.int64)]  # 0 = the undeblended object itself

    def add(self, split: Split) -> None:
        self._first.append(split.first_pixels(self.width))
        self._parent.append(np.full(split.n_children, split.parent))
        self._child.append(np.arange(1, split.n_children + 1))
        self.splits[split.parent] = split

    def number(self) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
        """``(parent_lut, child_luts, n)``: final id of each undeblended object (0 if it split) and
        of each child of a split parent, and the number of segments."""
        first, parent, child = (np.concatenate(a) for a in (self._first, self._parent, self._child))
        split_parents = np.fromiter(self.splits.keys(), np.int64, len(self.splits))
        keep = ~np.isin(parent, split_parents) | (child > 0)
        first, parent, child = first[keep], parent[keep], child[keep]
        order = np.argsort(first, kind="stable")
        final_ids = np.empty(len(order), np.int32)
        final_ids[order] = np.arange(1, len(order) + 1, dtype=np.int32)
        parent_lut = np.zeros(self.n_objects + 1, np.int32)
        undeblended = child == 0
        parent_lut[parent[undeblended]] = final_ids[undeblended]
        child_luts: dict[int, np.ndarray] = {}
        for p in self.splits:
            sel = parent == p
            lut = np.zeros(int(child[sel].max()) + 1, np.int32)
            lut[child[sel]] = final_ids[sel]
            child_luts[p] = lut
        return parent_lut, child_luts, len(order)


class FinalLabels:
    """Final (stitched, deblended, renumbered) labels over any window; the output's source."""

    def __init__(self, pipe: Pipeline, parent_lut: np.ndarray, splits: dict[int, Split], child_luts: dict):
        self.pipe, self.parent_lut, self.child_luts = pipe, parent_lut, child_luts
        patches = {parent: (split.window, split.child_ids) for parent, split in splits.items()}
        self.patches = patches
        self.shape = pipe.shape
        if patches:
            keys = np.fromiter(patches.keys(), np.int64, len(patches))
            self._patch_keys = keys
            self._patch_boxes = np.array([[b[0].start, b[0].stop, b[1].start, b[1].stop] for b, _ in (patches[k] for k in keys)])
        else:
            self._patch_keys = np.zeros(0, np.int64)
            self._patch_boxes = np.zeros((0, 4), np.int64)

    def window(self, window: tuple[slice, slice], stitched: np.ndarray | None = None) -> np.ndarray:
        if stitched is None:
            stitched = self.pipe.stitched_labels(window)
        out = self.parent_lut[stitched]
        if len(self._patch_keys):
            b = self._patch_boxes
            hit = (b[:, 0] < window[0].stop) & (b[:, 1] > window[0].start) & (b[:, 2] < window[1].stop) & (b[:, 3] > window[1].start)
            for parent in self._patch_keys[hit]:
                (ys, xs), child_ids = self.patches[int(parent)]
                oy0, oy1 = max(ys.start, window[0].start), min(ys.stop, window[0].stop)
                ox0, ox1 = max(xs.start, window[1].start), min(xs.stop, window[1].stop)
                sub = child_ids[oy0 - ys.start : oy1 - ys.start, ox0 - xs.start : ox1 - xs.start]
                target = out[oy0 - window[0].start : oy1 - window[0].start, ox0 - window[1].start : ox1 - window[1].start]
                sel = sub > 0
                target[sel] = self.child_luts[int(parent)][sub[sel]]
        return out

    def as_numpy(self) -> np.ndarray:
        out = np.zeros(self.shape, np.int32)
        for tile in self.pipe.tiles:
            out[tile.core] = self.window(tile.core)
        return out

    #: largest side of an output block: a writer computes a row of blocks at once (int32, plus
    #: twice that in scratch per block), so 1024² keeps a 8192-wide row under ~100 MB
    _BLOCK = 1024

    def as_dask(self):
        """Lazy labels in blocks of whole tiles, as large as the input's dask chunks up to
        ``_BLOCK`` (1024² for our FITS reader's 2048² chunks): few tasks for the writer, bounded
        memory per block row."""
        import dask
        import dask.array as da

        t = self.pipe.tile
        # the labels' state is one node of the graph that every block reads: a dask cluster ships
        # it once to each worker, not once per task (it holds the frame's detection mask)
        state = dask.delayed(self, pure=False)
        chunks = getattr(self.pipe.image, "chunks", None)
        side = [max(t, (min(int(c[0]), self._BLOCK) // t) * t) if chunks else t for c in (chunks or (None, None))]
        rows = []
        for y0 in range(0, self.shape[0], side[0]):
            row = []
            for x0 in range(0, self.shape[1], side[1]):
                window = (slice(y0, min(y0 + side[0], self.shape[0])), slice(x0, min(x0 + side[1], self.shape[1])))
                block = dask.delayed(_window_of, pure=False)(state, window)  # never hash the pipeline
                row.append(da.from_delayed(block, shape=(window[0].stop - y0, window[1].stop - x0), dtype=np.int32))
            rows.append(row)
        return da.block(rows)



def _window_of(labels: FinalLabels, window: tuple[slice, slice]) -> np.ndarray:
    return labels.window(window)
