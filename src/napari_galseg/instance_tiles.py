"""Instance models over survey frames: overlapping tiles, one owner per object, streamed output.

A detector (Mask R-CNN, DETR, ...) sees one tile at a time and returns scored instance masks.
Objects cut by a tile edge come out as fragments, and objects in the overlap of two tiles come out
twice. This module turns per-tile detections into one frame-wide instance map:

1. **Ownership.** Each axis is cut at the middles of the tile overlaps; the *core* of a tile is the
   part of the frame closer to it than to any neighbour, and the cores partition the frame. A tile
   keeps only the instances whose centre lies in its core (grown by ``margin`` px, so that an object
   whose centre two tiles measure slightly differently is not dropped by both). With an overlap of
   at least the largest object, every object lies whole inside the tile that owns it, and the
   fragments at tile edges have their centres outside that tile's core.
2. **Suppression.** What stays ambiguous (an object kept by two tiles through the margin,
   overlapping masks within one tile) is resolved by mask IoU: instances are painted in decreasing
   score order; one whose mask overlaps an already painted instance with IoU above
   ``iou_threshold`` is a duplicate and dropped; otherwise it takes only the pixels still free, and
   is dropped when those are fewer than ``min_free_fraction`` of its mask (a remnant of an object
   already painted, as DETR and Mask2Former's panoptic post-processing drop them).
   Pixels without data (:func:`without_no_data`) are cut out of each tile's detections first.
3. **Streaming.** Tiles are processed row by row; after a row, the frame rows no later tile can
   touch are final and leave as a strip with frame-wide ids, with one catalog row per instance
   (id, centroid, score, area, box). Memory holds one tile row of labels.

:func:`stream_to_fits` writes the strips into a pre-sized FITS file and keeps a small resume state
(next tile row, the carried rows of labels, the catalog so far) beside it, so an interrupted
25000² run continues where it stopped; the scored catalog is written as ECSV at the end.
No torch here: any detector callable works (tests use an oracle that cuts the truth at tile edges).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .inference import tile_starts
from .progress import ProgressCallback, is_cancelled

CATALOG_COLUMNS = ("label", "x_centroid", "y_centroid", "score", "area", "bbox_xmin", "bbox_xmax", "bbox_ymin", "bbox_ymax")


@dataclass
class Instance:
    """One detection in frame coordinates: a boolean mask of its box starting at (y0, x0)."""

    y0: int
    x0: int
    mask: np.ndarray
    score: float

    def centre(self) -> tuple[float, float]:
        ys, xs = np.nonzero(self.mask)
        if ys.size == 0:
            return float("nan"), float("nan")
        return self.y0 + float(ys.mean()), self.x0 + float(xs.mean())


def instances_from_masks(masks: np.ndarray, scores: Sequence[float], y0: int = 0, x0: int = 0,
                         mask_threshold: float = 0.5) -> list[Instance]:
    """``(N, h, w)`` masks (bool or probabilities) of a tile at (y0, x0) → cropped :class:`Instance` s."""
    out = []
    for mask, score in zip(masks, scores):
        m = np.asarray(mask)
        m = m > mask_threshold if m.dtype != bool else m
        rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        if rows.size == 0:
            continue
        out.append(Instance(y0 + int(rows[0]), x0 + int(cols[0]),
                            m[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1].copy(), float(score)))
    return out


@dataclass
class BoxedMasks:
    """One tile's detections as masks of their boxes (as Mask R-CNN predicts them, before pasting
    each into a full tile: that costs a tile of pixels per detection, ~20x the network's time on a CPU).

    ``origins`` (N, 2) are the boxes' (y, x) in tile pixels (may be negative or past the tile's edge),
    ``masks`` the N thresholded boolean masks of the boxes, ``scores`` (N,).
    """

    origins: np.ndarray
    masks: list[np.ndarray]
    scores: np.ndarray

    def instances(self, y0: int, x0: int, height: int, width: int) -> list[Instance]:
        """The detections clipped to the tile's ``height`` x ``width`` valid pixels, in frame coordinates
        (what :func:`instances_from_masks` gives for the same masks pasted into the tile)."""
        out = []
        for (by, bx), mask, score in zip(np.asarray(self.origins, int).reshape(-1, 2), self.masks, self.scores):
            ty0, tx0 = max(by, 0), max(bx, 0)
            m = np.asarray(mask, bool)[ty0 - by: max(height - by, 0), tx0 - bx: max(width - bx, 0)]
            rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            if rows.size == 0:
                continue
            out.append(Instance(y0 + ty0 + int(rows[0]), x0 + tx0 + int(cols[0]),
                                m[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1].copy(), float(score)))
        return out


def tile_instances(output, y0: int, x0: int, height: int, width: int, mask_threshold: float = 0.5) -> list[Instance]:
    """A detector's output for one tile — :class:`BoxedMasks`, or ``(masks (N, t, t), scores)`` as
    tensors or arrays — as :class:`Instance` s of the tile's valid ``height`` x ``width`` pixels."""
    if isinstance(output, BoxedMasks):
        return output.instances(y0, x0, height, width)
    masks, scores = output
    masks = masks[:, :height, :width]
    if hasattr(masks, "cpu"):  # torch: threshold on the device, so one byte per pixel crosses to the host
        masks = (masks > mask_threshold).cpu().numpy()
        scores = scores.float().cpu().numpy()
    return instances_from_masks(masks, np.asarray(scores).tolist(), y0, x0, mask_threshold)


def without_no_data(instances: Sequence[Instance], no_data: np.ndarray | None, y0: int, x0: int) -> list[Instance]:
    """The instances of a tile at (y0, x0) without the tile's ``no_data`` pixels (a bool mask of
    the tile's valid area, or None): each keeps only its pixels with data, cropped to them, and one
    left with none is gone (the assembler drops those left under ``min_size``). Ownership then
    goes by the centre of the pixels with data, the same in every tile that sees the object."""
    if no_data is None:
        return list(instances)
    out = []
    for inst in instances:
        h, w = inst.mask.shape
        mask = inst.mask & ~no_data[inst.y0 - y0: inst.y0 - y0 + h, inst.x0 - x0: inst.x0 - x0 + w]
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        if rows.size == 0:
            continue
        out.append(Instance(inst.y0 + int(rows[0]), inst.x0 + int(cols[0]),
                            mask[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1].copy(), inst.score))
    return out


def axis_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Origins of tiles of side ``tile`` covering ``[0, n)`` with at least ``overlap`` shared pixels
    (the same layout as the U-Net's blended tiles)."""
    return tile_starts(n, tile, overlap)


def core_bounds(starts: Sequence[int], n: int, tile: int) -> list[tuple[int, int]]:
    """Each tile's core ``[lo, hi)`` along one axis: cut at the middle of each overlap."""
    cuts = [0] + [(starts[i + 1] + min(starts[i] + tile, n)) // 2 for i in range(len(starts) - 1)] + [n]
    return [(cuts[i], cuts[i + 1]) for i in range(len(starts))]


@dataclass
class TileLayout:
    """Overlapping tiles of a frame and their cores (see the module docstring)."""

    shape: tuple[int, int]
    tile: int
    overlap: int
    ys: list[int] = field(init=False)
    xs: list[int] = field(init=False)

    def __post_init__(self):
        if self.tile < 8:
            raise ValueError(f"tile size must be at least 8 px, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"tile overlap must be in [0, {self.tile}), got {self.overlap}")
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        self.ys = axis_starts(self.shape[0], self.tile, self.overlap)
        self.xs = axis_starts(self.shape[1], self.tile, self.overlap)
        self.core_y = core_bounds(self.ys, self.shape[0], self.tile)
        self.core_x = core_bounds(self.xs, self.shape[1], self.tile)

    @property
    def n_rows(self) -> int:
        return len(self.ys)

    def row_tiles(self, r: int) -> list[tuple[int, int, int, int]]:
        """Windows ``(y0, y1, x0, x1)`` of tile row ``r``."""
        y0 = self.ys[r]
        y1 = min(y0 + self.tile, self.shape[0])
        return [(y0, y1, x0, min(x0 + self.tile, self.shape[1])) for x0 in self.xs]

    def owns(self, r: int, c: int, y: float, x: float, margin: float = 0.0) -> bool:
        (ylo, yhi), (xlo, xhi) = self.core_y[r], self.core_x[c]
        return ylo - margin <= y < yhi + margin and xlo - margin <= x < xhi + margin

    def final_rows_after(self, r: int) -> int:
        """Frame rows below this are final once tile row ``r`` is painted."""
        return self.ys[r + 1] if r + 1 < self.n_rows else self.shape[0]

    def around(self, y0: int, y1: int, x0: int, x1: int, context: float) -> tuple[tuple[int, int, int, int], TileLayout]:
        """The tiles of this grid whose cores come within ``context`` px of ``[y0, y1) × [x0, x1)``:
        ``(the window (y0, y1, x0, x1) they cover, a layout of just them in that window's pixels)``.

        The same tiles, cores and painting order as the whole frame's run, so painting them gives
        the whole-frame labels near the window (what a field-of-view prediction needs).
        """
        rows = [r for r, (lo, hi) in enumerate(self.core_y) if lo < y1 + context and hi > y0 - context]
        cols = [c for c, (lo, hi) in enumerate(self.core_x) if lo < x1 + context and hi > x0 - context]
        if not rows or not cols:
            raise ValueError(f"the window ({y0}, {y1}, {x0}, {x1}) lies outside the frame {self.shape}")
        oy0, oy1 = self.ys[rows[0]], min(self.ys[rows[-1]] + self.tile, self.shape[0])
        ox0, ox1 = self.xs[cols[0]], min(self.xs[cols[-1]] + self.tile, self.shape[1])
        part = copy.copy(self)
        part.shape = (oy1 - oy0, ox1 - ox0)
        part.ys = [self.ys[r] - oy0 for r in rows]
        part.xs = [self.xs[c] - ox0 for c in cols]
        part.core_y = [(self.core_y[r][0] - oy0, self.core_y[r][1] - oy0) for r in rows]
        part.core_x = [(self.core_x[c][0] - ox0, self.core_x[c][1] - ox0) for c in cols]
        return (oy0, oy1, ox0, ox1), part


def keep_owned(instances: Sequence[Instance], layout: TileLayout, r: int, c: int, margin: float = 0.0) -> list[Instance]:
    """The instances of tile (r, c) whose centre lies in its core (grown by ``margin``)."""
    return [inst for inst in instances if layout.owns(r, c, *inst.centre(), margin)]


class Assembler:
    """Paints owned instances tile row by tile row and hands out finished strips (see module doc)."""

    def __init__(self, layout: TileLayout, iou_threshold: float = 0.5, min_size: int = 1, next_id: int = 1,
                 carry: np.ndarray | None = None, carry_y0: int = 0, areas: dict[int, int] | None = None,
                 *, min_free_fraction: float = 0.0):
        self.layout = layout
        self.iou_threshold = float(iou_threshold)
        self.min_size = int(min_size)
        self.min_free_fraction = float(min_free_fraction)
        self.next_id = int(next_id)
        self.buf_y0 = int(carry_y0)
        width = layout.shape[1]
        self.buf = np.zeros((0, width), np.int32) if carry is None else np.asarray(carry, np.int32)
        #: painted area of each instance still in the buffer (IoU needs it)
        self.areas: dict[int, int] = dict(areas or {})

    def _duplicate(self, taken: np.ndarray, area: int) -> bool:
        """True when the new mask overlaps one painted instance with IoU above the threshold."""
        ids, counts = np.unique(taken, return_counts=True)
        for other, inter in zip(ids.tolist(), counts.tolist()):
            union = area + self.areas.get(other, 0) - inter
            if inter / max(union, 1) > self.iou_threshold:
                return True
        return False

    def _ensure(self, y1: int) -> None:
        have = self.buf_y0 + self.buf.shape[0]
        if y1 > have:
            self.buf = np.concatenate([self.buf, np.zeros((y1 - have, self.buf.shape[1]), np.int32)])

    def paint(self, instances: Sequence[Instance]) -> list[tuple]:
        """Paint instances in decreasing score order; returns their catalog rows."""
        rows = []
        for inst in sorted(instances, key=lambda i: -i.score):
            h, w = inst.mask.shape
            y0 = inst.y0 - self.buf_y0
            if y0 < 0:
                raise RuntimeError("an instance reaches rows already written; the tile overlap is too small")
            self._ensure(inst.y0 + h)
            view = self.buf[y0: y0 + h, inst.x0: inst.x0 + w]
            under = view[inst.mask]
            taken = under[under > 0]
            area = int(inst.mask.sum())
            if taken.size and self._duplicate(taken, area):
                continue
            free = inst.mask & (view == 0)
            n_free = int(free.sum())
            if n_free < self.min_size or n_free < self.min_free_fraction * area:
                continue
            label = self.next_id
            self.next_id += 1
            view[free] = label
            self.areas[label] = n_free
            ys, xs = np.nonzero(free)
            rows.append((label, inst.x0 + float(xs.mean()), inst.y0 + float(ys.mean()), inst.score, n_free,
                         inst.x0 + int(xs.min()), inst.x0 + int(xs.max()), inst.y0 + int(ys.min()), inst.y0 + int(ys.max())))
        return rows

    def release(self, upto: int) -> tuple[int, int, np.ndarray]:
        """Hand out the finished rows ``[buf_y0, upto)`` and keep the rest."""
        self._ensure(upto)
        k = upto - self.buf_y0
        strip, self.buf = self.buf[:k], self.buf[k:].copy()
        alive = set(np.unique(self.buf).tolist())
        self.areas = {i: a for i, a in self.areas.items() if i in alive}
        y0, self.buf_y0 = self.buf_y0, upto
        return y0, upto, strip


Detector = Callable[[list[tuple[int, int, int, int]]], list[list[Instance]]]


def iter_instance_strips(detect: Detector, layout: TileLayout, *, margin: float = 4.0, iou_threshold: float = 0.5,
                         min_size: int = 1, min_free_fraction: float = 0.0, start_row: int = 0,
                         assembler: Assembler | None = None,
                         progress: ProgressCallback | None = None, cancel=None
                         ) -> Iterator[tuple[int, int, int, np.ndarray, list[tuple]]]:
    """Yield ``(tile_row, y0, y1, labels int32, catalog rows)`` per tile row, top to bottom.

    ``detect(windows)`` gets the windows of one tile row and returns each tile's instances in frame
    coordinates. ``start_row``/``assembler`` continue an interrupted run.
    """
    asm = assembler or Assembler(layout, iou_threshold, min_size, min_free_fraction=min_free_fraction)
    for r in range(start_row, layout.n_rows):
        if is_cancelled(cancel):
            from .progress import Cancelled

            raise Cancelled("cancelled")
        windows = layout.row_tiles(r)
        per_tile = detect(windows)
        owned = [inst for c, found in enumerate(per_tile) for inst in keep_owned(found, layout, r, c, margin)]
        rows = asm.paint(owned)
        y0, y1, strip = asm.release(layout.final_rows_after(r))
        if progress is not None:
            progress(r + 1, layout.n_rows, f"{asm.next_id - 1} objects")
        yield r, y0, y1, strip, rows


def assemble(detect: Detector, layout: TileLayout, **kwargs) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """Whole-frame labels (int32), scores indexed by label (``scores[0]`` NaN) and catalog rows."""
    labels = np.zeros(layout.shape, np.int32)
    catalog: list[tuple] = []
    for _, y0, y1, strip, rows in iter_instance_strips(detect, layout, **kwargs):
        labels[y0:y1] = strip
        catalog += rows
    return labels, scores_of(catalog), catalog


def scores_of(catalog: list[tuple]) -> np.ndarray:
    n = max((row[0] for row in catalog), default=0)
    scores = np.full(n + 1, np.nan)
    for row in catalog:
        scores[row[0]] = row[3]
    return scores


def catalog_table(rows: list[tuple] | np.ndarray):
    """The scored catalog as an astropy Table (one row per instance)."""
    from astropy.table import Table

    data = np.asarray(rows, float).reshape(-1, len(CATALOG_COLUMNS))
    table = Table(data, names=CATALOG_COLUMNS)
    for name in ("label", "area", "bbox_xmin", "bbox_xmax", "bbox_ymin", "bbox_ymax"):
        table[name] = table[name].astype(np.int64)
    table["score"].description = "detection score of the model (COCO AP ranks by it)"
    table["x_centroid"].description = table["y_centroid"].description = "centroid of the painted pixels [px, 0-based]"
    return table


# -- streamed, resumable FITS output ---------------------------------------------------------------
def _labels_header(shape, header=None):
    from astropy.io import fits

    hdr = fits.Header() if header is None else header.copy()
    for key in ("BZERO", "BSCALE", "BLANK", "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"):
        hdr.remove(key, ignore_missing=True, remove_all=True)
    out = fits.Header([("SIMPLE", True), ("BITPIX", 32), ("NAXIS", 2), ("NAXIS1", int(shape[1])),
                       ("NAXIS2", int(shape[0])), ("EXTEND", True)])
    out.extend(hdr, unique=True)
    return out


def _presize(path: Path, shape, header) -> int:
    """Write the header and a zero-filled (sparse) data area; return the data offset."""
    text = header.tostring().encode("ascii")
    nbytes = int(shape[0]) * int(shape[1]) * 4
    with open(path, "wb") as fh:
        fh.write(text)
        fh.truncate(len(text) + ((nbytes + 2879) // 2880) * 2880)
    return len(text)


def stream_to_fits(detect: Detector, layout: TileLayout, path: str | os.PathLike, *, header=None,
                   catalog_path: str | os.PathLike | None = None, overwrite: bool = False, resume: bool = True,
                   margin: float = 4.0, iou_threshold: float = 0.5, min_size: int = 1, min_free_fraction: float = 0.0,
                   wcs=None, source_key: str = "",
                   progress: ProgressCallback | None = None, cancel=None) -> tuple[Path, Path]:
    """Labels to ``path`` (int32 FITS) and the scored catalog to ``catalog_path`` (ECSV, default
    beside it), in bounded memory. A ``PATH.partial`` folder holds the work so far; with ``resume``
    an interrupted run continues from its last finished tile row, if it was started with the same
    layout, settings and ``source_key`` (a fingerprint of the image and the model); otherwise it
    starts afresh. Outputs appear atomically at the end.
    """
    path = Path(path)
    catalog_path = Path(catalog_path) if catalog_path else path.with_name(path.name.split(".")[0] + "_catalog.ecsv")
    for target in (path, catalog_path):
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; choose another name or pass --overwrite")
    work = path.with_name(path.name + ".partial")
    state_file = work / "state.json"
    fingerprint = {"shape": list(layout.shape), "tile": layout.tile, "overlap": layout.overlap,
                   "margin": margin, "iou_threshold": iou_threshold, "min_size": min_size,
                   "min_free_fraction": min_free_fraction, "source": source_key}
    state = None
    if resume and state_file.exists():
        state = json.loads(state_file.read_text())
        if state.get("fingerprint") != fingerprint:
            state = None  # another run's leftovers: start afresh
    if state is None:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        offset = _presize(work / "labels.fits", layout.shape, _labels_header(layout.shape, header))
        state = {"fingerprint": fingerprint, "next_row": 0, "next_id": 1, "carry_y0": 0, "offset": offset}
        asm = Assembler(layout, iou_threshold, min_size, min_free_fraction=min_free_fraction)
    else:
        for stale in work.glob("catalog-*.npy"):  # rows finished after the last saved state
            if int(stale.stem.split("-")[1]) >= state["next_row"]:
                stale.unlink()
        carry = np.load(work / f"carry-{state['next_row']:06d}.npy")
        areas = np.load(work / f"areas-{state['next_row']:06d}.npy")
        asm = Assembler(layout, iou_threshold, min_size, state["next_id"], carry, state["carry_y0"],
                        dict(zip(areas[0].tolist(), areas[1].tolist())), min_free_fraction=min_free_fraction)
    width = layout.shape[1]
    with open(work / "labels.fits", "r+b") as fh:
        for r, y0, _, strip, rows in iter_instance_strips(detect, layout, margin=margin, iou_threshold=iou_threshold,
                                                           min_size=min_size, start_row=state["next_row"],
                                                           assembler=asm, progress=progress, cancel=cancel):
            fh.seek(state["offset"] + y0 * width * 4)
            fh.write(np.ascontiguousarray(strip, ">i4").tobytes())
            fh.flush()
            np.save(work / f"catalog-{r:06d}.npy", np.asarray(rows, float).reshape(-1, len(CATALOG_COLUMNS)))
            np.save(work / f"carry-{r + 1:06d}.npy", asm.buf)
            np.save(work / f"areas-{r + 1:06d}.npy",
                    np.array([list(asm.areas), list(asm.areas.values())], np.int64).reshape(2, -1))
            state.update(next_row=r + 1, next_id=asm.next_id, carry_y0=asm.buf_y0)
            tmp = work / "state.json.tmp"
            tmp.write_text(json.dumps(state))
            os.replace(tmp, state_file)  # the run's state moves on only here
            for name in (f"carry-{r:06d}.npy", f"areas-{r:06d}.npy"):
                (work / name).unlink(missing_ok=True)
    parts = sorted(work.glob("catalog-*.npy"))
    rows = np.concatenate([np.load(p) for p in parts]) if parts else np.zeros((0, len(CATALOG_COLUMNS)))
    table = catalog_table(rows)
    if wcs is not None:
        from .catalog import add_sky_coordinates

        add_sky_coordinates(table, wcs)
    from ._atomic import atomic_path
    from .io.catalog import file_table

    with atomic_path(catalog_path, overwrite=overwrite) as tmp:
        file_table(table).write(tmp, format="ascii.ecsv")  # FITS 1-based positions, units
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} appeared while writing; the result is left in {work}")
    os.replace(work / "labels.fits", path)
    shutil.rmtree(work, ignore_errors=True)
    return path, catalog_path
