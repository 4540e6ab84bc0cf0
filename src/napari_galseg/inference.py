"""Tiled inference over frames of any size, with smooth blending and streamed output.

Any model that maps a ``(B, C, t, t)`` float32 batch to ``(B, K, t, t)`` maps (the U-Net now, the
semantic heads of later models) runs through :class:`TiledPredictor`:

- overlapping tiles, batched; each tile's output is weighted by a separable window that ramps
  (``sin²``) over the overlap on sides that have a neighbour, and the accumulated sum is divided by
  the accumulated weight — so tile edges, where a convolution sees padding, weigh almost nothing
  and there are no seams (tests/test_inference.py compares against one untiled pass);
- streamed by rows of tiles: rows are finished and yielded as soon as no later tile touches them,
  so a 25000² frame never holds more than ``K x (tile + halo) x width`` floats;
- instance labels per strip of rows (watershed with a halo of context), stitched to the strips
  above by overlap, written to FITS strip by strip if asked (:func:`napari_galseg.io.write.write_label_strips`);
- a field-of-view mode: only a region (plus a margin of context) is computed;
- pixels without data (a frame's NaN: zero weight, masked bits; a bad rms) get each channel's
  recipe ``fill`` on the way in (:meth:`~napari_galseg.preprocess.Recipe.network_input`, as in
  training) and are cut out of the labels on the way out: rows carry their no-data mask
  (:func:`with_no_data`, read strip by strip), objects keep only their pixels with data, and those
  left smaller than ``min_size`` are dropped.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .progress import ProgressCallback

Forward = Callable[[np.ndarray], np.ndarray]
#: source(y0, y1, x0, x1) -> preprocessed float32 (C, y1-y0, x1-x0)
Source = Callable[[int, int, int, int], np.ndarray]
#: map_bands(bands) -> each band's network outputs, in order (see TiledPredictor.iter_rows)
MapBands = Callable[[list[tuple]], Iterator[list[np.ndarray]]]


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Origins of tiles of size ``tile`` covering ``[0, n)`` with at least ``overlap`` shared pixels."""
    if n <= tile:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile overlap ({overlap}) must be smaller than the tile size ({tile})")
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


def ramp_window(size: int, overlap: int, left: bool, right: bool) -> np.ndarray:
    """1-D blending weight: ``sin²`` ramp over ``overlap`` pixels on the sides that have a neighbour.

    The ramp never reaches 0 (pixel centres), so every covered pixel keeps a positive weight.
    """
    w = np.ones(size, np.float32)
    ramp_len = min(overlap, size // 2)
    if ramp_len > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(ramp_len) + 0.5) / ramp_len) ** 2
        if left:
            w[:ramp_len] = ramp
        if right:
            w[size - ramp_len:] = ramp[::-1]
    return w


@dataclass
class TiledPredictor:
    """Run ``forward`` over overlapping tiles of a (region of a) frame and blend the outputs."""

    forward: Forward
    n_outputs: int
    tile: int = 512
    overlap: int = 64
    batch_size: int = 4

    def __post_init__(self):
        if self.tile < 8:
            raise ValueError(f"tile size must be >= 8, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"tile overlap must be in [0, tile) = [0, {self.tile}), got {self.overlap}")

    def iter_band_outputs(self, source: Source, y0: int, y1: int, x0: int, x1: int, xs: list[int], tx: int,
                          progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
        """The network's output ``(K, y1-y0, tx)`` for each tile at ``xs`` of one band of rows,
        computed in batches of ``batch_size`` (``progress(n)`` after each batch of ``n`` tiles)."""
        band = np.asarray(source(y0, y1, x0, x1), dtype=np.float32)
        for b0 in range(0, len(xs), self.batch_size):
            chunk = xs[b0: b0 + self.batch_size]
            batch = np.stack([band[:, :, x: x + tx] for x in chunk])
            out = np.asarray(self.forward(batch), dtype=np.float32)
            yield from (out[k] for k in range(len(chunk)))
            if progress is not None:
                progress(len(chunk))

    def band_outputs(self, source: Source, y0: int, y1: int, x0: int, x1: int, xs: list[int], tx: int) -> list[np.ndarray]:
        """:meth:`iter_band_outputs` as a list (what a cluster task sends back)."""
        return list(self.iter_band_outputs(source, y0, y1, x0, x1, xs, tx))

    def iter_rows(self, source: Source, shape: tuple[int, int], bounds: tuple[int, int, int, int] | None = None,
                  progress: ProgressCallback | None = None, map_bands: MapBands | None = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(y0, y1, maps)`` with ``maps`` float32 ``(K, y1-y0, x1-x0)``, top to bottom.

        ``bounds = (y0, y1, x0, x1)`` restricts the work to a window of the frame (coordinates in the
        yielded rows are frame coordinates). ``map_bands(bands)`` computes :meth:`band_outputs` of
        each band's ``(y0, y1, x0, x1, xs, tx)`` elsewhere (a dask cluster), yielded in order; the
        blending stays here, in the same order, so the maps are the same.
        """
        by0, by1, bx0, bx1 = bounds if bounds is not None else (0, shape[0], 0, shape[1])
        height, width = by1 - by0, bx1 - bx0
        if height <= 0 or width <= 0:
            raise ValueError(f"empty region {bounds}")
        ty, tx = min(self.tile, height), min(self.tile, width)
        ys, xs = tile_starts(height, ty, self.overlap), tile_starts(width, tx, self.overlap)
        wx = [ramp_window(tx, self.overlap, i > 0, i < len(xs) - 1) for i in range(len(xs))]
        acc = np.zeros((self.n_outputs, ty, width), np.float32)
        wacc = np.zeros((ty, width), np.float32)
        base = 0  # row of acc[:, 0] relative to by0
        total, done = len(ys) * len(xs), 0

        def count(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total, "tiles")

        bands = [(by0 + y, by0 + y + ty, bx0, bx1, xs, tx) for y in ys]
        remote = iter(map_bands(bands)) if map_bands is not None else None
        for r, y in enumerate(ys):
            if y > base:  # rows [base, y) are final: no later tile reaches them
                shift = y - base
                yield by0 + base, by0 + y, acc[:, :shift] / wacc[:shift]
                acc[:, : ty - shift] = acc[:, shift:].copy()
                acc[:, ty - shift:] = 0
                wacc[: ty - shift] = wacc[shift:].copy()
                wacc[ty - shift:] = 0
                base = y
            if remote is not None:
                outputs = next(remote)
                count(len(xs))
            else:  # accumulated batch by batch: a row's outputs are never all held at once
                outputs = self.iter_band_outputs(source, *bands[r], progress=count)
            wy = ramp_window(ty, self.overlap, r > 0, r < len(ys) - 1)
            for k, (out, x) in enumerate(zip(outputs, xs)):  # outputs first: its last progress call runs
                w = wy[:, None] * wx[k][None, :]
                acc[:, :, x: x + tx] += out * w
                wacc[:, x: x + tx] += w
        yield by0 + base, by1, acc[:, : height - base] / wacc[: height - base]

    def predict(self, source: Source, shape: tuple[int, int], bounds=None, progress=None) -> np.ndarray:
        """All blended maps of the (region of the) frame in memory: ``(K, h, w)`` float32."""
        parts = [maps for _, _, maps in self.iter_rows(source, shape, bounds, progress)]
        return np.concatenate(parts, axis=1)


# -- from maps to instances ------------------------------------------------------------------------
@dataclass
class LabelParams:
    threshold: float = 0.5  # galaxy probability above which a pixel is a galaxy
    seed_threshold: float = 0.5  # normalised distance above which a pixel is an object core
    min_size: int = 5  # smaller objects (pixels) are dropped


def labels_from_maps(prob: np.ndarray, dist: np.ndarray, params: LabelParams | None = None,
                     no_data: np.ndarray | None = None) -> np.ndarray:
    """Instance labels: each connected galaxy region is one object unless it holds several cores
    (``dist > seed_threshold``); those are split by watershed on ``-dist`` (skimage) inside the
    region's bounding box only, which keeps memory near 20 bytes per pixel on wide strips.

    ``no_data`` pixels are cut out of the objects afterwards (an object crossed by a masked stripe
    keeps one id), before ``min_size`` drops what became too small."""
    from skimage.segmentation import watershed

    params = params or LabelParams()
    fg = prob > params.threshold
    comp, n = ndimage.label(fg)
    labels = comp.astype(np.int32)
    if n:
        cores, m = ndimage.label(fg & (dist > params.seed_threshold))
        if m > 1:
            in_core = cores > 0
            core_comp = np.zeros(m + 1, np.int64)
            core_comp[cores[in_core]] = comp[in_core]  # a core lies inside one component
            n_cores = np.bincount(core_comp[1:], minlength=n + 1)
            boxes = ndimage.find_objects(comp)
            for c in np.nonzero(n_cores >= 2)[0]:
                box = boxes[c - 1]
                inside = comp[box] == c
                split = watershed(-dist[box], np.where(inside, cores[box], 0), mask=inside)
                labels[box][inside] = split[inside] + n  # core ids, offset past component ids
    if no_data is not None and n:
        labels[no_data] = 0
    if params.min_size > 1 and n:
        sizes = np.bincount(labels.ravel())
        small = sizes < params.min_size
        small[0] = False
        if small.any():
            labels[small[labels]] = 0
    return _relabel_sequential(labels, 1)[0].astype(np.int32)


def _relabel_sequential(labels: np.ndarray, start: int) -> tuple[np.ndarray, int]:
    """Renumber the non-zero ids of ``labels`` to ``start, start+1, ...`` (order kept)."""
    if not labels.size:
        return labels.astype(np.int64), start
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    ids = np.nonzero(present)[0]
    lut = np.zeros(len(present), np.int64)
    lut[ids] = np.arange(start, start + len(ids))
    return lut[labels], start + len(ids)


def iter_label_strips(rows: Iterator[tuple], halo: int = 64,
                      params: LabelParams | None = None, min_strip: int = 256
                      ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Turn streamed ``(y0, y1, maps)`` (maps[0] = probability, maps[1] = distance) into streamed
    ``(y0, y1, labels int32)`` with frame-wide unique ids. Rows may carry a fourth item, their
    no-data mask (bool, or None where every pixel has data: :func:`with_no_data`); those pixels
    are never labelled (:func:`labels_from_maps`).

    Each strip is labelled with ``halo`` rows of context above and below; ids of objects crossing
    into the strip are taken from the strip above by largest overlap in the shared context rows.
    Objects smaller than ``halo`` come out exactly as one whole-frame pass would give them.
    """
    buf_maps: list[np.ndarray] = []
    buf_missing: list[np.ndarray | None] = []  # each buffered row's no-data mask (None: all data)
    buf_y0 = None  # frame row of the first buffered map row
    final_end = None  # rows < final_end have been yielded
    prev_tail = None  # final labels of rows [final_end - halo, final_end)
    next_id = 1
    end_of_input = object()
    rows = iter(rows)
    while True:
        item = next(rows, end_of_input)
        if item is not end_of_input:
            y0, y1, maps = item[:3]
            if buf_y0 is None:
                buf_y0, final_end = y0, y0
            buf_maps.append(maps[:2])
            buf_missing.append(item[3] if len(item) > 3 else None)
            have_end = y1
            if have_end - final_end < min_strip + halo:
                continue
            finish_to = have_end - halo
        else:
            if buf_y0 is None or not buf_maps:
                return
            have_end = buf_y0 + sum(m.shape[1] for m in buf_maps)
            finish_to = have_end
            if finish_to <= final_end:
                return
        window = np.concatenate(buf_maps, axis=1)  # rows [buf_y0, have_end)
        missing = _join_masks(buf_missing, [m.shape[1:] for m in buf_maps])
        lab = labels_from_maps(window[0], window[1], params, missing)
        top = final_end - buf_y0  # rows above are context already finalised
        lab, _ = _relabel_sequential(lab, 1)
        new = lab[top: finish_to - buf_y0]
        ids = np.unique(new)
        ids = ids[ids > 0]
        mapping = np.zeros(int(lab.max()) + 1, np.int64)
        if top > 0 and prev_tail is not None and ids.size:
            ctx_new = lab[:top]
            ctx_old = prev_tail[-top:]
            both = (ctx_new > 0) & (ctx_old > 0)
            if both.any():
                pairs = np.stack([ctx_new[both], ctx_old[both]], axis=1)
                uniq, counts = np.unique(pairs, axis=0, return_counts=True)
                order = np.lexsort((-counts, uniq[:, 0]))
                uniq = uniq[order]
                first = np.ones(len(uniq), bool)
                first[1:] = uniq[1:, 0] != uniq[:-1, 0]
                mapping[uniq[first, 0]] = uniq[first, 1]
        fresh = ids[mapping[ids] == 0]
        mapping[fresh] = np.arange(next_id, next_id + len(fresh))
        next_id += len(fresh)
        out = mapping[new].astype(np.int32)
        yield final_end, finish_to, out
        final_end = finish_to
        prev_tail = out[-halo:] if prev_tail is None else np.concatenate([prev_tail, out])[-halo:]
        # keep only the last `halo` rows of maps as context for the next strip
        keep_from = max(buf_y0, final_end - halo)
        window = window[:, keep_from - buf_y0:]
        buf_missing = [None if missing is None else missing[keep_from - buf_y0:]]
        buf_maps, buf_y0 = [window], keep_from
        if item is end_of_input:
            return


def _join_masks(masks: list[np.ndarray | None], shapes: list[tuple]) -> np.ndarray | None:
    """Row masks stacked into one (None when none has a no-data pixel)."""
    if all(m is None for m in masks):
        return None
    return np.concatenate([np.zeros(shape, bool) if m is None else m for m, shape in zip(masks, shapes)])


# -- pixels without data ---------------------------------------------------------------------------
class NoDataReader:
    """``reader(y0, y1, x0, x1)``: the window's no-data mask (see
    :func:`~napari_galseg.preprocess.rms.no_data`), or None where every pixel has data; reads the
    window of the image (and rms) only, so a survey frame never gets a frame-sized mask. For bands
    (``(bands, h, w)`` windows) a pixel has no data when no band has any there."""

    def __init__(self, image, rms=None):
        self.image, self.rms = image, rms

    def __call__(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray | None:
        from .background import read_float32
        from .preprocess.rms import no_data

        window = (slice(y0, y1), slice(x0, x1))
        image = read_float32(self.image, window)
        missing = no_data(image, read_float32(self.rms, window) if self.rms is not None else None)
        if missing.ndim == 3:
            missing = missing.all(axis=0)
        return missing if missing.any() else None


def with_no_data(rows: Iterator[tuple[int, int, np.ndarray]], reader: NoDataReader, x0: int, x1: int
                 ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray | None]]:
    """Streamed ``(y0, y1, maps)`` rows of columns ``[x0, x1)`` with each row's no-data mask added
    (what :func:`iter_label_strips` cuts out of the labels)."""
    for y0, y1, maps in rows:
        yield y0, y1, maps, reader(y0, y1, x0, x1)
