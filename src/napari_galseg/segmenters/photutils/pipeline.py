"""The tiled passes of the photutils pipeline over a frame: background, then detection.

Each tile is read once per pass (with a halo of the smoothing kernel's radius), in ``n_threads``
threads; numpy, scipy and the compiled kernels release the GIL there (with a dask scheduler address in
``RunOptions.scheduler`` the detection pass's tiles are tasks on that cluster instead, see
:mod:`napari_galseg.cluster`: same tiles, same results). The detection mask is kept
bit-packed per tile, so any window of the stitched labels can be rebuilt later (deblending, the
full catalog, the output) at 1 bit per pixel of memory.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..._kernels import label_summary, may_split
from ...background import MeshBackground, direct_source, estimate_mesh, read_float32
from ...catalog_sums import concat_sums, merge_sums, segment_sums
from ...cluster import map_ordered  # local threads, or the tasks of a dask cluster (RunOptions.scheduler)
from ...progress import ProgressCallback
from ...tiling import ComponentStitcher, iter_tiles
from .deblending import Split, split_object
from .params import PhotutilsParams
from .smoothing import smooth, smoothing_kernel_1d


@dataclass
class TileDetection:
    """What detecting one tile gives (computed in a worker thread, booked in tile order)."""

    tile: Any
    local: np.ndarray  # tile-local component ids
    n_local: int
    summary: tuple  # per-component boxes, areas, first pixels
    packed: np.ndarray  # the bit-packed detection mask
    sums: dict | None = None  # per-component catalog sums (catalog="basic")
    whole: np.ndarray | None = None  # local ids of the components that lie inside the tile (deblended here)
    splits: list[Split] | None = None  # those of them that split


def _rms_window(rms, window, image_block, mesh: MeshBackground) -> np.ndarray:
    if rms is None:
        return mesh.evaluate("rms", window)
    block = read_float32(rms, window)
    finite = np.isfinite(image_block)
    bad = finite & ~(np.isfinite(block) & (block > 0))
    if bad.any():
        raise ValueError(
            f"the rms map has {int(bad.sum())} pixel(s) that are zero, negative or not finite where the image is valid "
            f"(first at y={window[0].start + int(np.argwhere(bad)[0][0])}, x={window[1].start + int(np.argwhere(bad)[0][1])}); "
            "an rms map must be > 0 — set those image pixels to NaN to mask them, or omit --rms to estimate the noise"
        )
    return block


class Pipeline:
    """The tiled passes over the frame (background, detection) and windows read back from them."""

    def __init__(self, image, rms, params: PhotutilsParams, tile_size: int = 512, n_threads: int = 0,
                 progress: ProgressCallback | None = None):
        if np.ndim(image) != 2:
            raise ValueError(f"the photutils pipeline needs a 2-D image, got shape {tuple(np.shape(image))}")
        if rms is not None and tuple(np.shape(rms)) != tuple(np.shape(image)):
            raise ValueError(f"the rms map has shape {tuple(np.shape(rms))} but the image has shape {tuple(np.shape(image))}; they must match")
        self.image, self.rms, self.p = image, rms, params
        self._image_source = direct_source(image)
        self._rms_source = direct_source(rms) if rms is not None else None
        self.shape = tuple(int(s) for s in np.shape(image))
        box = int(params.box_size)
        box = min(box, max(self.shape))
        self.box = box
        self.tile = max(box, -(-int(tile_size) // box) * box)
        self.k1 = smoothing_kernel_1d(params)
        self.radius = len(self.k1) // 2
        self.k1_sq = self.k1**2
        self.noise_factor = float(np.sqrt(np.sum(np.outer(self.k1, self.k1) ** 2)))
        self.progress = progress or (lambda done, total, msg="": None)
        self.n_threads = int(n_threads) or (os.cpu_count() or 1)
        self.tiles = list(iter_tiles(self.shape, self.tile, halo=self.radius))
        self._tile_by_index = {t.index: t for t in self.tiles}
        self.grid = (len({t.index[0] for t in self.tiles}), len({t.index[1] for t in self.tiles}))
        self.packed: dict[tuple[int, int], np.ndarray] = {}
        self._cache_size = max(4, min(3 * self.grid[1] + 3, (256 << 20) // (self.tile * self.tile * 4)))
        self._tile_labels = functools.lru_cache(maxsize=self._cache_size)(self._tile_labels_uncached)

    # pass 0: background mesh
    def background(self) -> MeshBackground:
        n_tiles = len(self.tiles)
        mesh = estimate_mesh(self.image, self.box, self.p.filter_size, self.p.exclude_percentile, self.n_threads,
                             lambda done, total: self.report(round(done * n_tiles / total), "background"))
        if self.rms is None and not mesh.rms_filled.max() > 0:
            raise ValueError(
                "the background rms is zero everywhere (a constant image?): nothing can be detected; "
                "give a noise map with --rms / rms=, or check the image"
            )
        self.mesh = mesh
        return mesh

    #: number of object groups (known after detection); each is one deblending and one catalog step
    n_groups = 0

    def __getstate__(self) -> dict:
        """What a dask worker gets with the lazy labels' tasks: no cache wrapper (it does not
        pickle), no progress callback (the submitter's display), no cached window."""
        state = dict(self.__dict__)
        for name in ("_tile_labels", "progress", "_last_prepared"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.progress = lambda done, total, msg="": None
        self._tile_labels = functools.lru_cache(maxsize=self._cache_size)(self._tile_labels_uncached)

    def report(self, done: int, msg: str) -> None:
        """progress(done, total, phase): tiles twice (background, detection), then the groups of
        objects once for deblending and once for the catalog (as enabled)."""
        n_tiles = len(self.tiles)
        phases = ["background", "detect"] + [name for name, on in (("deblend", self.p.deblend), ("catalog", self.p.catalog != "none")) if on]
        sizes = {"background": n_tiles, "detect": n_tiles, "deblend": self.n_groups,
                 "catalog": self.n_groups if self.p.catalog == "full" else 1}
        offset = sum(sizes[name] for name in phases[: phases.index(msg)])
        total = sum(sizes[name] for name in phases)
        self.progress(min(offset + done, total), total, msg)

    _last_prepared: tuple | None = None

    def prepare(self, window: tuple[slice, slice]):
        """Background-subtracted data, smoothed data, threshold, rms and validity over ``window``
        (the last window is cached: deblending and the catalog often ask for the same one)."""
        key = (window[0].start, window[0].stop, window[1].start, window[1].stop)
        last = self._last_prepared  # one read: other threads may replace it
        if last is not None and last[0] == key:
            return last[1]
        result = self.compute_window(window)
        self._last_prepared = (key, result)
        return result

    def compute_window(self, window: tuple[slice, slice]):
        ny, nx = self.shape
        r = self.radius
        outer = (slice(max(0, window[0].start - r), min(ny, window[0].stop + r)),
                 slice(max(0, window[1].start - r), min(nx, window[1].stop + r)))
        inner = tuple(slice(w.start - o.start, w.stop - o.start) for w, o in zip(window, outer))
        raw = read_float32(self._image_source, outer)
        finite = np.isfinite(raw)
        bkg = self.mesh.evaluate("bkg", outer)
        data = np.where(finite, raw - bkg, np.float32(0))
        conv = smooth(data, self.k1)
        rms = _rms_window(self._rms_source, outer, raw, self.mesh)
        if self.p.threshold_mode == "study":
            noise = rms[inner]
        elif self.rms is None or len(self.k1) == 1:
            noise = rms[inner] * np.float32(self.noise_factor)
        else:
            var = np.where(finite, rms.astype(np.float64) ** 2, 0.0)
            noise = np.sqrt(smooth(var, self.k1_sq))[inner].astype(np.float32)
        valid = finite[inner]
        return data[inner], conv[inner], noise * np.float32(self.p.nsigma), rms[inner], valid

    # pass 1: detection mask, stitched components (+ per-piece catalog sums for catalog="basic")
    def detect(self) -> ComponentStitcher:
        stitcher = ComponentStitcher(self.shape, self.p.connectivity)
        basic = self.p.catalog == "basic" or self.p.min_snr > 0  # the sums give each segment's S/N

        def detect_tile(tile) -> TileDetection:  # everything but the bookkeeping, in worker threads
            data, conv, threshold, rms, valid = self.compute_window(tile.core)
            with np.errstate(invalid="ignore"):
                mask = np.greater(conv, threshold, out=np.empty(conv.shape, bool))
            mask &= valid
            local, n_local = stitcher.label_tile(mask)
            summary = label_summary(local, n_local)
            origin = (tile.core[0].start, tile.core[1].start)
            found = TileDetection(tile, local, n_local, summary, np.packbits(mask, axis=None))
            if basic:
                found.sums = segment_sums(local, n_local, data, conv, rms, valid, origin)
            if self.p.deblend:
                found.whole, found.splits = self._deblend_interior(local, n_local, summary, origin, data, conv, rms, valid)
            return found

        pieces, handled_nodes, splits = [], [], []
        for n, found in enumerate(map_ordered(detect_tile, self.tiles, self.n_threads)):
            stitcher.add_labels(found.tile, found.local, found.n_local, found.summary)
            if basic:
                pieces.append(found.sums)
            if found.whole is not None:
                offset = stitcher.offset(found.tile.index)
                handled_nodes.append(found.whole + offset - 1)
                for split in found.splits:
                    split.parent += offset - 1  # a node of the stitcher until it is finished
                splits += found.splits
            self.packed[found.tile.index] = found.packed
            self.report(n + 1, "detect")
        stitcher.finish(min_area=int(self.p.n_pixels))
        self.stitcher = stitcher
        node_labels = stitcher.node_labels
        self.deblend_handled = np.zeros(stitcher.n_labels + 1, bool)
        if handled_nodes:
            self.deblend_handled[node_labels[np.concatenate(handled_nodes)]] = True
        self.deblend_handled[0] = False
        for split in splits:
            split.parent = int(node_labels[split.parent])
        self.interior_splits = splits
        if basic:  # the pieces of each stitched object merged: the catalog row of every undeblended object
            self.object_sums = merge_sums(concat_sums(pieces), stitcher.node_labels[1:].astype(np.intp) - 1, stitcher.n_labels)
        return stitcher

    def _deblend_interior(self, local, n_local, summary, origin, data, conv, rms, valid) -> tuple[np.ndarray, list[Split]]:
        """Deblend the components of one tile that do not touch its core's border: they are whole
        objects (nothing across the border joins them) whose pixels are all at hand, so they are
        deblended here, in the detection threads, exactly as the group step would. Returns their
        local ids (all handled, split or not) and the objects that split (parents = local ids)."""
        p = self.p
        if not n_local:
            return np.zeros(0, np.int64), []
        h, w = local.shape
        boxes, areas, _ = summary
        interior = (boxes[:, 0] > 0) & (boxes[:, 2] > 0) & (boxes[:, 1] < h) & (boxes[:, 3] < w)
        ids = np.flatnonzero(interior) + 1
        candidates = ids[areas[ids] >= 2 * int(p.n_pixels)]
        splits = []
        if len(candidates):  # most cannot split: a compiled exact test leaves the ones that might
            wanted = np.zeros(n_local + 1, bool)
            wanted[candidates] = True
            candidates = np.flatnonzero(may_split(conv, local, wanted, int(p.n_pixels), int(p.connectivity)))
        for local_id in candidates:
            y0, y1, x0, x1 = (int(v) for v in boxes[local_id - 1])
            box = (slice(y0, y1), slice(x0, x1))
            gbox = (y0 + origin[0], y1 + origin[0], x0 + origin[1], x1 + origin[1])
            split = split_object(int(local_id), conv[box], local[box] == local_id, gbox, p,
                                 data[box], rms[box], valid[box])
            if split is not None:
                splits.append(split)
        return ids, splits

    def _tile_labels_uncached(self, index: tuple[int, int]) -> np.ndarray:
        tile = self._tile_by_index[index]
        shape = tile.core_shape
        mask = np.unpackbits(self.packed[index], count=shape[0] * shape[1]).view(bool).reshape(shape)
        local, _ = self.stitcher.label_tile(mask)
        return self.stitcher.relabel(index, local)

    def object_mask(self, label: int) -> np.ndarray:
        """Pixels of detected object ``label`` over its bounding box, from the bit-packed detection
        mask alone: the object is the connected component of the mask (within its bbox, which
        holds all of it) through its first pixel. No tile needs relabelling."""
        y0, y1, x0, x1 = (int(v) for v in self.stitcher.bboxes[label])
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        t = self.tile
        for i in range(y0 // t, (y1 - 1) // t + 1):
            for j in range(x0 // t, (x1 - 1) // t + 1):
                tile = self._tile_by_index[(i, j)]
                ty0, tx0 = tile.core[0].start, tile.core[1].start
                shape = tile.core_shape
                bits = np.unpackbits(self.packed[(i, j)], count=shape[0] * shape[1]).view(bool).reshape(shape)
                ys = slice(max(y0, ty0), min(y1, tile.core[0].stop))
                xs = slice(max(x0, tx0), min(x1, tile.core[1].stop))
                mask[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = bits[ys.start - ty0 : ys.stop - ty0, xs.start - tx0 : xs.stop - tx0]
        labels, _ = ndimage.label(mask, structure=self.stitcher.structure)
        fy, fx = divmod(int(self.stitcher.first_pixel[label]), self.shape[1])
        return labels == labels[fy - y0, fx - x0]

    def stitched_labels(self, window: tuple[slice, slice]) -> np.ndarray:
        """Stitched (not yet deblended) labels over any window, assembled from the tiles."""
        out = np.zeros((window[0].stop - window[0].start, window[1].stop - window[1].start), np.int32)
        t = self.tile
        for i in range(window[0].start // t, (window[0].stop - 1) // t + 1):
            for j in range(window[1].start // t, (window[1].stop - 1) // t + 1):
                tile = self._tile_by_index[(i, j)]
                ys = slice(max(window[0].start, tile.core[0].start), min(window[0].stop, tile.core[0].stop))
                xs = slice(max(window[1].start, tile.core[1].start), min(window[1].stop, tile.core[1].stop))
                block = self._tile_labels((i, j))
                out[ys.start - window[0].start : ys.stop - window[0].start, xs.start - window[1].start : xs.stop - window[1].start] = block[
                    ys.start - tile.core[0].start : ys.stop - tile.core[0].start, xs.start - tile.core[1].start : xs.stop - tile.core[1].start
                ]
        return out


_FORK_STATE: dict[str, Any] = {}
