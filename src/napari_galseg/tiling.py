"""Tiles with halos over huge 2-D arrays, and connected components stitched across tile borders.

Two building blocks used by every segmenter that must run on frames larger than memory:

* :func:`iter_tiles` walks an image in tiles; each :class:`Tile` knows its *core* (the pixels it
  owns; the cores partition the image) and its *outer* window (core plus a halo, clipped to the
  image). Pixel-local filters run on the outer window and keep the core, so the tiled result equals
  the untiled one when the halo is at least the filter radius.
* :func:`label_mask` labels the connected components of a boolean mask, numpy or dask. Each tile is
  labelled as :func:`scipy.ndimage.label` labels it (compiled, ``_kernels.label_mask``); components that touch across tile borders are merged by
  a union–find over the border pixel pairs (a sparse graph's connected components); the final ids
  are consecutive and ordered by each component's first pixel in raster order — the same order
  :func:`scipy.ndimage.label` gives — so a tiled result is *exactly equal* to the untiled one.
  :class:`ComponentStitcher` is the same machinery for callers that run their own tile loop.

Memory: a dask mask is computed once, block by block; the blocks are kept bit-packed
(1 bit/pixel) and relabelled lazily, so the returned labels are a dask array whose blocks are
produced on demand (e.g. written tile by tile to FITS).
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "ComponentStitcher",
    "Tile",
    "canonical_relabel",
    "iter_tiles",
    "label_mask",
    "map_ordered",
    "structure_for",
    "tile_grid",
]


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile of a 2-D image.

    ``core``: global slices of the pixels this tile owns (cores partition the image).
    ``outer``: global slices of core + halo, clipped to the image.
    ``inner``: the core as slices *into* the outer window (``outer_block[inner]`` is the core).
    ``index``: (row, column) of the tile in the tile grid.
    """

    index: tuple[int, int]
    core: tuple[slice, slice]
    outer: tuple[slice, slice]

    @property
    def inner(self) -> tuple[slice, slice]:
        return tuple(
            slice(c.start - o.start, c.stop - o.start) for c, o in zip(self.core, self.outer)
        )  # type: ignore[return-value]

    @property
    def core_shape(self) -> tuple[int, int]:
        return tuple(s.stop - s.start for s in self.core)  # type: ignore[return-value]


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if np.ndim(value) == 0:
        value = (int(value), int(value))
    pair = tuple(int(v) for v in value)  # type: ignore[union-attr]
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def tile_grid(shape: Sequence[int], tile: int | Sequence[int]) -> list[list[int]]:
    """Start offsets of the tiles along each axis (the last tile of an axis may be smaller)."""
    ty, tx = _pair(tile, "tile")
    if ty <= 0 or tx <= 0:
        raise ValueError(f"tile size must be positive, got {tile!r}")
    return [list(range(0, int(n), t)) or [0] for n, t in zip(shape, (ty, tx))]


def iter_tiles(shape: Sequence[int], tile: int | Sequence[int], halo: int | Sequence[int] = 0) -> Iterator[Tile]:
    """Tiles of a 2-D ``shape`` in raster order; cores of size ``tile``, windows grown by ``halo``.

    >>> [t.core for t in iter_tiles((3, 5), 3, halo=1)][1]
    (slice(0, 3, None), slice(3, 5, None))
    """
    if len(shape) != 2:
        raise ValueError(f"iter_tiles works on 2-D images, got shape {tuple(shape)}")
    ny, nx = (int(s) for s in shape)
    ty, tx = _pair(tile, "tile")
    hy, hx = _pair(halo, "halo")
    if hy < 0 or hx < 0:
        raise ValueError(f"halo must be >= 0, got {halo!r}")
    starts_y, starts_x = tile_grid((ny, nx), (ty, tx))
    for i, y0 in enumerate(starts_y):
        y1 = min(y0 + ty, ny)
        for j, x0 in enumerate(starts_x):
            x1 = min(x0 + tx, nx)
            yield Tile(
                index=(i, j),
                core=(slice(y0, y1), slice(x0, x1)),
                outer=(slice(max(0, y0 - hy), min(ny, y1 + hy)), slice(max(0, x0 - hx), min(nx, x1 + hx))),
            )


def structure_for(connectivity: int) -> np.ndarray:
    """The 3×3 structuring element of 4- or 8-connectivity."""
    if connectivity == 8:
        return np.ones((3, 3), dtype=bool)
    if connectivity == 4:
        return ndimage.generate_binary_structure(2, 1)
    raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")


def canonical_relabel(labels: np.ndarray) -> np.ndarray:
    """Relabel so ids are 1..n in raster order of each label's first pixel (0 stays 0).

    Two label images that describe the same partition compare equal after this.
    """
    labels = np.asarray(labels)
    flat = labels.ravel()
    nonzero = np.flatnonzero(flat)
    values = flat[nonzero]
    uniq, first_idx = np.unique(values, return_index=True)
    order = np.argsort(first_idx, kind="stable")
    lut_values = np.empty(len(uniq), dtype=np.int32)
    lut_values[order] = np.arange(1, len(uniq) + 1, dtype=np.int32)
    out = np.zeros(labels.shape, dtype=np.int32)
    out.ravel()[nonzero] = lut_values[np.searchsorted(uniq, values)]
    return out


class ComponentStitcher:
    """Connected components of a mask processed tile by tile, merged across tile borders.

    Feed every tile's core mask once with :meth:`add` (any order), call :meth:`finish`, then turn
    each tile's local labels into global ones with :meth:`relabel`. Tiles must be the cores of
    one :func:`iter_tiles` grid. Only the four border lines of each tile are kept, so memory is
    O(perimeter), not O(image).

    After :meth:`finish`: ``n_labels``, ``areas`` (int64, index = final id, 0 = background),
    ``first_pixel`` (flat raster index of each final component's first pixel) and ``bboxes``
    ((n+1, 4) int64 rows of y0, y1, x0, x1, half-open, global).
    """

    def __init__(self, shape: Sequence[int], connectivity: int = 8):
        self.shape = tuple(int(s) for s in shape)
        self.connectivity = connectivity
        self._structure = structure_for(connectivity)
        self._offsets: dict[tuple[int, int], int] = {}
        self._counts: dict[tuple[int, int], int] = {}
        self._cores: dict[tuple[int, int], tuple[slice, slice]] = {}
        self._edges: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._first: list[np.ndarray] = []
        self._area: list[np.ndarray] = []
        self._bbox: list[np.ndarray] = []
        self._next = 1  # node 0 is background
        self._lut: np.ndarray | None = None

    @property
    def structure(self) -> np.ndarray:
        """The ``ndimage.label`` structure of this connectivity."""
        return self._structure

    def offset(self, tile_index: tuple[int, int]) -> int:
        """The node id of local label 1 of a tile already added (local id ``k`` is node ``offset + k - 1``)."""
        return self._offsets[tile_index]

    def label_tile(self, mask_core: np.ndarray) -> tuple[np.ndarray, int]:
        """Local labels of one tile (deterministic: :meth:`relabel` may recompute them)."""
        # the labels scipy.ndimage.label gives, computed without holding the GIL
        from ._kernels import label_mask

        labels, n = label_mask(np.ascontiguousarray(mask_core, dtype=bool), int(self.connectivity))
        return labels, int(n)

    def add(self, tile: Tile, mask_core: np.ndarray) -> np.ndarray:
        """Record one tile's components; returns its local labels (1..n, raster order)."""
        if tuple(np.shape(mask_core)) != tile.core_shape:
            raise ValueError(f"mask block of shape {np.shape(mask_core)} does not match tile core {tile.core_shape}")
        labels, n = self.label_tile(mask_core)
        return self.add_labels(tile, labels, n)

    def add_labels(self, tile: Tile, labels: np.ndarray, n: int, summary=None) -> np.ndarray:
        """:meth:`add` for a tile already labelled with :meth:`label_tile` (e.g. in a worker
        thread: labelling is stateless, recording must happen in one thread). ``summary`` is
        ``_kernels.label_summary(labels, n)`` when the worker computed it already."""
        if self._lut is not None:
            raise RuntimeError("ComponentStitcher.add after finish()")
        if tile.index in self._offsets:
            raise ValueError(f"tile {tile.index} was added twice")
        if tuple(np.shape(labels)) != tile.core_shape:
            raise ValueError(f"labels block of shape {np.shape(labels)} does not match tile core {tile.core_shape}")
        offset = self._next
        self._offsets[tile.index] = offset
        self._counts[tile.index] = n
        self._cores[tile.index] = tile.core
        self._next += n
        def to_global(line: np.ndarray) -> np.ndarray:  # global node ids (0 stays 0)
            line = line.astype(np.int64)
            line[line > 0] += offset - 1
            return line

        self._edges[tile.index] = (to_global(labels[0]), to_global(labels[-1]), to_global(labels[:, 0]), to_global(labels[:, -1]))
        if summary is None:
            from ._kernels import label_summary

            summary = label_summary(np.ascontiguousarray(labels, dtype=np.int32), n)
        local_boxes, areas, local_first = summary
        y0, x0 = tile.core[0].start, tile.core[1].start
        rows, cols = np.divmod(local_first[1:], labels.shape[1])
        self._first.append((y0 + rows) * self.shape[1] + (x0 + cols))
        self._area.append(areas[1:].astype(np.int64))
        self._bbox.append(local_boxes + np.array([y0, y0, x0, x0], np.int64))
        return labels

    def _border_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of node ids that touch across tile borders (full-length border lines, so the
        diagonal contacts at tile corners are included for 8-connectivity)."""
        rows = sorted({i for i, _ in self._edges})
        cols = sorted({j for _, j in self._edges})
        shifts = (-1, 0, 1) if self.connectivity == 8 else (0,)
        a_all: list[np.ndarray] = []
        b_all: list[np.ndarray] = []

        def pairs(a: np.ndarray, b: np.ndarray) -> None:
            n = len(a)
            for d in shifts:
                lo, hi = max(0, -d), n - max(0, d)
                if hi <= lo:
                    continue
                aa, bb = a[lo:hi], b[lo + d : hi + d]
                keep = (aa > 0) & (bb > 0)
                a_all.append(aa[keep])
                b_all.append(bb[keep])

        for i0, i1 in itertools.pairwise(rows):  # horizontal borders
            bottom = np.concatenate([self._edges[(i0, j)][1] for j in cols])
            top = np.concatenate([self._edges[(i1, j)][0] for j in cols])
            pairs(bottom, top)
        for j0, j1 in itertools.pairwise(cols):  # vertical borders
            right = np.concatenate([self._edges[(i, j0)][3] for i in rows])
            left = np.concatenate([self._edges[(i, j1)][2] for i in rows])
            pairs(right, left)
        if not a_all:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(a_all), np.concatenate(b_all)

    def finish(self, min_area: int = 0) -> ComponentStitcher:
        """Merge across borders, drop components smaller than ``min_area`` pixels, number the rest
        1..n in raster order of their first pixel."""
        n_nodes = self._next
        a, b = self._border_pairs()
        graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_nodes, n_nodes))
        _, component = connected_components(graph, directed=False)
        node_first = np.concatenate([[np.iinfo(np.int64).max], *self._first]) if self._first else np.array([np.iinfo(np.int64).max])
        node_area = np.concatenate([[0], *self._area]) if self._area else np.array([0])
        n_comp = int(component.max()) + 1 if n_nodes else 0
        comp_first = np.full(n_comp, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(comp_first, component[1:], node_first[1:])
        comp_area = np.bincount(component[1:], weights=node_area[1:], minlength=n_comp).astype(np.int64)
        keep = comp_area >= max(int(min_area), 1)
        keep[component[0]] = False  # the background node's own component
        kept = np.flatnonzero(keep)
        kept = kept[np.argsort(comp_first[kept], kind="stable")]
        final = np.zeros(n_comp, dtype=np.int32)
        final[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
        self._lut = final[component]
        self._lut[0] = 0
        self.n_labels = len(kept)
        self.areas = np.concatenate([[0], comp_area[kept]])
        self.first_pixel = np.concatenate([[-1], comp_first[kept]])
        # bounding boxes (y0, y1, x0, x1), global, half-open; row 0 (background) is unused
        node_box = np.concatenate([np.zeros((1, 4), np.int64), *self._bbox]) if self._bbox else np.zeros((1, 4), np.int64)
        comp_box = np.empty((n_comp, 4), np.int64)
        comp_box[:, [0, 2]] = np.iinfo(np.int64).max
        comp_box[:, [1, 3]] = -1
        for col, func in ((0, np.minimum), (1, np.maximum), (2, np.minimum), (3, np.maximum)):
            func.at(comp_box[:, col], component[1:], node_box[1:, col])
        self.bboxes = np.concatenate([np.zeros((1, 4), np.int64), comp_box[kept]])
        self._bbox.clear()
        self._edges.clear()
        return self

    @property
    def node_labels(self) -> np.ndarray:
        """Final label of every node (tile-local component) in the order tiles were added, node 0
        being the background: ``node_labels[offset + k - 1]`` is local label k of a tile; 0 for
        components dropped by ``min_area``. Lets callers merge per-tile measurements."""
        if self._lut is None:
            raise RuntimeError("call finish() first")
        return self._lut

    def lookup(self, tile_index: tuple[int, int]) -> np.ndarray:
        """Local label → final label table of one tile (index 0 → 0)."""
        if self._lut is None:
            raise RuntimeError("call finish() before relabel()/lookup()")
        offset, n = self._offsets[tile_index], self._counts[tile_index]
        table = np.zeros(n + 1, dtype=np.int32)
        table[1:] = self._lut[offset : offset + n]
        return table

    def relabel(self, tile_index: tuple[int, int], local_labels: np.ndarray) -> np.ndarray:
        """Final labels of one tile from its local labels (as returned by :meth:`add`)."""
        return self.lookup(tile_index)[local_labels]


def map_ordered(func, items, n_threads: int = 1, max_ahead: int | None = None) -> Iterator:
    """``map(func, items)`` computed by ``n_threads`` threads, yielded in order, with at most
    ``max_ahead`` (default 2 × n_threads) results computed ahead of the consumer, so memory stays
    bounded by a few tiles. Threads (not processes) share the inputs and are safe inside a Qt
    application; they pay off where numpy/scipy release the GIL (sorting, filtering, labelling).
    """
    items = list(items)
    if n_threads <= 1 or len(items) < 2:
        for item in items:
            yield func(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    ahead = max(1, max_ahead or 2 * n_threads)
    with ThreadPoolExecutor(n_threads, thread_name_prefix="galseg-tile") as pool:
        pending: deque = deque()
        it = iter(items)
        try:
            for item in itertools.islice(it, ahead):
                pending.append(pool.submit(func, item))
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(it, 1):
                    pending.append(pool.submit(func, item))
                yield result
        finally:
            for future in pending:
                future.cancel()


# -- label_mask --------------------------------------------------------------------------------


def _check_mask(mask) -> None:
    if mask.ndim != 2:
        raise ValueError(f"label_mask needs a 2-D mask, got shape {tuple(mask.shape)}")
    if mask.dtype != bool:
        raise ValueError(f"label_mask needs a boolean mask, got dtype {mask.dtype}; use `mask > 0` or `mask.astype(bool)`")


def _label_numpy(mask: np.ndarray, min_area: int, connectivity: int) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=structure_for(connectivity))
    labels = labels.astype(np.int32, copy=False)
    if min_area > 1 and n:
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        keep = areas >= min_area
        keep[0] = False
        lut = np.zeros(n + 1, dtype=np.int32)
        lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)  # preserves raster order
        labels = lut[labels]
    return labels


def _summarise_block(block: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    block = np.asarray(block, dtype=bool)
    return np.packbits(block, axis=None), block.shape


def _unpack(packed: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(packed, count=shape[0] * shape[1]).view(bool).reshape(shape)


def _relabel_packed(packed: np.ndarray, shape: tuple[int, int], table: np.ndarray, connectivity: int) -> np.ndarray:
    labels, _ = ndimage.label(_unpack(packed, shape), structure=structure_for(connectivity))
    return table[labels]


def label_mask(mask, min_area: int = 0, connectivity: int = 8):
    """Connected components of a 2-D boolean mask as int32 labels (0 = background).

    Works on numpy arrays (returns numpy) and on dask arrays (returns a lazy dask array with the
    same chunks). Components smaller than ``min_area`` pixels are dropped; ids are consecutive and
    ordered by first pixel in raster order, so the dask result equals the numpy result exactly,
    whatever the chunking.

    A dask mask is computed once (blocks in parallel); its blocks are kept bit-packed (1 bit per
    pixel, e.g. 78 MB for a 25000² frame) while the border merge runs, and the returned array
    relabels each block on demand.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - dask is a core dependency
        da = None
    if da is not None and isinstance(mask, da.Array):
        return _label_dask(mask, int(min_area), connectivity)
    mask = np.asarray(mask)
    _check_mask(mask)
    return _label_numpy(mask, int(min_area), connectivity)


def _label_dask(mask, min_area: int, connectivity: int):
    import dask
    import dask.array as da

    _check_mask(mask)
    if any(np.isnan(c).any() for c in map(np.asarray, mask.chunks)):
        raise ValueError("label_mask needs a dask mask with known chunk sizes; call mask.compute_chunk_sizes() first")
    offsets = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in mask.chunks]
    blocks = list(itertools.product(range(mask.numblocks[0]), range(mask.numblocks[1])))
    packed = dask.compute(*[dask.delayed(_summarise_block)(mask.blocks[idx]) for idx in blocks])
    stitcher = ComponentStitcher(mask.shape, connectivity)
    for (i, j), (bits, shape) in zip(blocks, packed):
        core = (slice(offsets[0][i], offsets[0][i + 1]), slice(offsets[1][j], offsets[1][j + 1]))
        stitcher.add(Tile(index=(i, j), core=core, outer=core), _unpack(bits, shape))
    stitcher.finish(min_area)
    rows = []
    for i in range(mask.numblocks[0]):
        row = []
        for j in range(mask.numblocks[1]):
            bits, shape = packed[i * mask.numblocks[1] + j]
            table = stitcher.lookup((i, j))
            delayed_block = dask.delayed(_relabel_packed)(bits, shape, table, connectivity)
            row.append(da.from_delayed(delayed_block, shape=shape, dtype=np.int32))
        rows.append(row)
    return da.block(rows)
