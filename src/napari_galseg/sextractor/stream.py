"""SExtractor's steps run strip by strip, as SExtractor runs them (``scan.c``'s buffers).

The frame is read a block of rows at a time: background subtracted, weights interpolated, filtered,
thresholded and fed to the one-pass scan. Each object completed by the scan is deblended and
measured at once (isophotal values), enters CLEAN's list, and is written - numbered and given its
photometry - when the strip scrolls past it, with the rows then in memory: those of SExtractor's
MEMORY_BUFSIZE strip. What stays in memory is that strip (the background-subtracted values and the
map of which detection owns each pixel), the detections not yet written and the catalogue's
columns: never a whole frame. The segmentation is kept as runs of pixels along rows
(:class:`Segmentation`), which gives rows or the whole map on demand. The compiled steps that free
the GIL (photometry, deblending trees, filtering, the next block's reading) use a second core.
"""
from __future__ import annotations

import math
import operator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .background import sextractor_background_rows
from .classstar import class_star
from .cleaning import CleanList
from .deblend import GlibcRand, deblend, deblend_front, may_split
from .extract import OBJ_MERGED, OBJ_TRUNC, Extraction, _above, _above_map, _clean_margin, _filter, _photometry
from .flags import as_flags, combine, merge
from .isophotal import isophotal_rows
from .lutz import LutzStream
from .weights import BIG, InterpolationState, low_weight_flags, map_rows, read_map, var_threshold, weight_scale, weight_to_var

#: rows read, filtered and scanned per step (at most this many bytes of float32 per block)
BLOCK_BYTES = 2 << 20


class ArrayRows:
    """Rows of an in-memory (or memory-mapped) 2-D array as new float32 blocks."""

    def __init__(self, array):
        self.array = array
        self.shape = tuple(int(n) for n in np.shape(array))

    def read(self, y0: int, y1: int) -> np.ndarray:
        return np.array(self.array[y0:y1], dtype=np.float32)


class Segmentation:
    """SExtractor's segmentation (CHECKIMAGE_TYPE SEGMENTATION) as runs of pixels along rows: each
    run's ``first flat index << 32 | NUMBER`` (sorted) and its length. An object of ~100 pixels
    takes ~10 runs: a few bytes per source, never a frame."""

    def __init__(self, shape: tuple[int, int], keys: np.ndarray, lengths: np.ndarray):
        self.shape = tuple(shape)
        self.keys = keys
        self.lengths = lengths

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows [y0, y1) of the map, int32."""
        w = self.shape[1]
        out = np.zeros((y1 - y0, w), np.int32)
        lo, hi = np.searchsorted(self.keys, [np.int64(y0 * w) << 32, np.int64(y1 * w) << 32])
        keys, lengths = self.keys[lo:hi], self.lengths[lo:hi]
        if len(keys):
            first = np.repeat((keys >> 32) - y0 * w, lengths)
            step = np.arange(len(first)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            out.ravel()[first + step] = np.repeat((keys & 0xFFFFFFFF).astype(np.int32), lengths)
        return out

    def blocks(self, block_bytes: int = 4 << 20):
        """The map as consecutive blocks of rows (for a writer that never holds it whole)."""
        h, w = self.shape
        step = max(1, block_bytes // max(1, 4 * w))
        for y0 in range(0, h, step):
            yield self.rows(y0, min(h, y0 + step))


def _runs(idx: np.ndarray, number: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (flat indices, each with its NUMBER) as runs along rows: (first index << 32 | NUMBER,
    length), in raster order."""
    order = np.argsort(idx, kind="stable")
    idx, number = idx[order].astype(np.int64), number[order]
    starts = np.ones(len(idx), bool)
    starts[1:] = (idx[1:] != idx[:-1] + 1) | (number[1:] != number[:-1]) | (idx[1:] % width == 0)
    first = np.flatnonzero(starts)
    lengths = np.diff(np.append(first, len(idx))).astype(np.int32)
    return (idx[first] << 32) | number[first].astype(np.int64), lengths


#: the columns kept whatever the .param file asks: the viewer's markers and CLASS_STAR's inputs
KEPT = frozenset({"NUMBER", "X_IMAGE", "Y_IMAGE", "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "FLUX_MAX"})


#: what CLEAN, the photometry and the written columns read of a detection, whatever the .param file asks
NEEDED = KEPT | {"CXX_IMAGE", "CYY_IMAGE", "CXY_IMAGE", "XMIN_IMAGE", "YMIN_IMAGE", "XMAX_IMAGE", "YMAX_IMAGE",
                 "FLUX_ISO", "ISOAREAF_IMAGE"}


class _Slim:
    """A detection's row without what no later step reads (its pixel coordinates, the columns no
    one asked for): thousands wait in CLEAN's list at once. Every row has the same keys."""

    def __init__(self, keep):
        self.keep = keep
        self.keys = None

    def __call__(self, row: dict) -> dict:
        if self.keys is None:
            self.keys = [k for k in row if (k not in ("_ys", "_xs") if k[0] == "_"
                                            else self.keep is None or k in self.keep)]
            self.get = operator.itemgetter(*self.keys)
        return dict(zip(self.keys, self.get(row)))


class _Columns:
    """The catalogue's columns, gathered row by row and kept as arrays every few hundred rows
    (a dictionary per source would hold ~3 kB each)."""

    def __init__(self, wanted=None, every: int = 256):
        self.every = every
        self.wanted = None if wanted is None else set(wanted) | KEPT
        self.keys: list[str] | None = None
        self.pending: list[tuple] = []
        self.chunks: list[list[np.ndarray]] = []
        self.n = 0

    def add(self, row: dict) -> None:
        if self.keys is None:
            self.keys = [k for k in row if k == "_iso" or not k.startswith("_")
                         and (self.wanted is None or k in self.wanted)]
            self.chunks = [[] for _ in self.keys]
            self._get = operator.itemgetter(*self.keys)
        values = self._get(row)
        self.pending.append(values if len(self.keys) > 1 else (values,))
        self.n += 1
        if len(self.pending) >= self.every:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            for i, chunks in enumerate(self.chunks):
                chunks.append(np.array([r[i] for r in self.pending]))
            self.pending = []

    def arrays(self) -> dict[str, np.ndarray]:
        self._flush()
        return {k: np.concatenate(v) if len(v) > 1 else v[0] for k, v in zip(self.keys or [], self.chunks)}


class _StripBuffer:
    """The rows [y0, y1) SExtractor holds for its photometry: background-subtracted values (NaN where
    masked or without data), the owner of each detected pixel (0: sky, -1: a detection not complete
    yet) and, with a weight map, the variance. Rows enter at the bottom; the top is dropped when the
    buffer is full (one copy per block, never a reallocation)."""

    def __init__(self, width: int, capacity: int, weighted: bool, pool: ThreadPoolExecutor | None = None):
        self.pool = pool
        self.w = width
        self.cap = capacity
        self.y0 = self.y1 = 0
        self.sub = np.empty((capacity, width), np.float32)
        self.comp = np.empty((capacity, width), np.int32)
        self.var = np.empty((capacity, width), np.float32) if weighted else np.zeros((0, 0), np.float32)

    def keep_from(self, y: int) -> None:
        """Drop the rows above ``y``."""
        k = min(max(0, y - self.y0), self.y1 - self.y0)
        if k == 0:
            return
        n = self.y1 - self.y0 - k

        def shift(arr):
            for a in range(0, n, k):  # k rows at a time: source and target never overlap (no temporary)
                b = min(n, a + k)
                arr[a:b] = arr[a + k:b + k]

        arrays = (self.sub, self.comp) + ((self.var,) if self.var.shape[0] else ())
        if self.pool is None:
            for arr in arrays:
                shift(arr)
        else:  # numpy copies without the GIL: the arrays move side by side
            for f in [self.pool.submit(shift, arr) for arr in arrays]:
                f.result()
        self.y0 += k

    def push(self, sub: np.ndarray, var: np.ndarray | None) -> None:
        n = len(sub)
        if self.y1 - self.y0 + n > self.cap:
            self.keep_from(self.y1 + n - self.cap)
        at = self.y1 - self.y0
        self.sub[at:at + n] = sub
        self.comp[at:at + n] = 0
        if var is not None and self.var.shape[0]:
            self.var[at:at + n] = var
        self.y1 += n

    def mark(self, y0: int, detected: np.ndarray) -> None:
        """Detected pixels of rows [y0, y0 + len(detected)) belong to a detection not complete yet."""
        a = y0 - self.y0
        self.comp[a:a + len(detected)][detected] = -1

    def set_labels(self, idx: np.ndarray, label) -> None:
        """``comp`` of the pixels ``idx`` (flat frame indices) that are in the buffer."""
        inside = (idx >= self.y0 * self.w) & (idx < self.y1 * self.w)
        self.comp.ravel()[idx[inside] - self.y0 * self.w] = label if np.ndim(label) == 0 else label[inside]

    def close(self) -> None:
        """Give the strip's memory back (the extraction has measured everything)."""
        self.sub = self.comp = self.var = np.zeros((0, 0), np.float32)


def _segmentation(shape, numbers: list[tuple[np.ndarray, np.ndarray]]) -> Segmentation:
    """The written objects' runs of pixels (per block, :func:`_runs`) in one raster order (the list
    is emptied)."""
    keys = np.concatenate([k for k, _n in numbers]) if numbers else np.zeros(0, np.int64)
    lengths = np.concatenate([n for _k, n in numbers]) if numbers else np.zeros(0, np.int32)
    numbers.clear()
    order = np.argsort(keys, kind="stable")
    return Segmentation(shape, keys[order], lengths[order])


def _filter_block(window: np.ndarray, r0: int, r1: int, s, pool) -> np.ndarray:
    """Rows [r0, r1) of the filtered ``window`` (which reaches the kernel's half-height beyond them,
    or the frame's edge), each half in its own thread: the same sums as filtering it whole."""
    if s.kernel is None:
        return window[r0:r1]
    half = np.shape(s.kernel)[0] // 2

    def rows(a, b):
        lo, hi = max(0, a - half), min(len(window), b + half)
        return _filter(window[lo:hi], s.kernel, s.kernel_normalise)[a - lo:b - lo]

    mid = (r0 + r1) // 2
    if r1 - r0 < 32:
        return rows(r0, r1)
    top = pool.submit(rows, r0, mid)
    bottom = rows(mid, r1)
    return np.concatenate([top.result(), bottom])


def block_rows(width: int) -> int:
    return max(16, BLOCK_BYTES // max(1, 4 * width))


def mag(flux: float, zp: float) -> float:
    return -2.5 * math.log10(flux) + zp if flux > 0 else 99.0


def extract_rows(source, s, progress=None):
    """:func:`napari_galseg.sextractor.extract` of a row source (``.shape``, ``.read(y0, y1)`` →
    new float32 rows): the frame is never held whole."""

    h, w = source.shape
    wt = s.weight
    raw = map_rows(wt.image, (h, w), "weight map", "WEIGHT_IMAGE") if wt.on and wt.type != "BACKGROUND" else None
    wthresh = var_threshold(wt) if wt.on else np.float32(BIG)
    raw_var = None if raw is None else (lambda y0, y1: weight_to_var(raw(y0, y1), wt.type))
    bg = sextractor_background_rows(source.read, (h, w), s.back_size, s.back_filtersize, s.back_filtthresh,
                                    read_var_rows=raw_var, wthresh=wthresh)
    backsig = bg.backsig
    sigfac = 1.0
    var_rows = None  # the variance of rows [y0, y1), as the detection and photometry use it
    if wt.type == "BACKGROUND":
        def var_rows(y0, y1):
            return weight_to_var(bg.rms_rows(y0, y1), "BACKGROUND")
    elif wt.type == "MAP_RMS":
        var_rows = raw_var
    elif raw is not None:  # a variance or weight map is scaled to the image's noise (makeback)
        sigfac = weight_scale(bg)
        if wt.rescale:
            def var_rows(y0, y1):
                return weight_to_var(raw(y0, y1), wt.type, sigfac)
        else:
            var_rows = raw_var
            backsig = float(np.float32(backsig / np.float32(sigfac)))
    weighted = var_rows is not None
    interp = InterpolationState(w) if weighted and wt.interp else None
    dthresh = s.detect_thresh if s.thresh_absolute else s.detect_thresh * backsig
    thresh = s.analysis_thresh if s.thresh_absolute else s.analysis_thresh * backsig
    flagmaps = [as_flags(read_map(f, (h, w), "flag map", "FLAG_IMAGE"), str(f) if not isinstance(f, np.ndarray)
                         else "flag map") for f in s.flag_images]
    want_wflags = weighted and s.needs("FLAGS_WEIGHT", "NLOWWEIGHT_ISO", "NLOWDWEIGHT_ISO")
    gainflag = weighted and wt.gain
    threshfac = float(np.float32(thresh)) / float(np.float32(backsig)) if backsig > 0.0 else 1.0
    var_b = backsig * backsig
    kh = np.shape(s.kernel)[0] if s.kernel is not None else 0
    margin = kh // 2 + 1  # rows around a block that its filtering (and low-weight dilation) reads
    blankh = kh // 2 + 1 if kh else 0
    strip_h = max(s.bufsize, kh)
    strip_margin = max(1, (kh - 1) // 2 + 1) if kh else 1
    step = block_rows(w)
    tall = h > strip_h
    pool = ThreadPoolExecutor(2)  # the compiled steps that free the GIL, two at a time
    buf = _StripBuffer(w, (strip_h + step) if tall else h, weighted, pool)

    # what the scan keeps of each detected pixel, in this order (LutzStream's value pools)
    names = ["val", "cval"] + (["pthr", "pvar"] if weighted else []) + (["wflag"] if want_wflags else [])
    names += [f"flag{i}" for i in range(len(flagmaps))]
    scan = LutzStream(w)
    idx_type = np.int32 if h * w < 2 ** 31 else np.int64  # the kept pixels' frame indices
    rng = GlibcRand()
    n_done = [0]  # completed detections so far (small ones too): detection k owns label k + 1
    next_branch = [1 << 30]  # deblended branches: labels of their own, above any detection's

    def pasted(o):  # CLEAN pastes a merged object's pixels back: nobody masks them any more
        idx = o["_idx"]
        buf.set_labels(idx[idx // w <= o["_paste_row"]], 0)

    def pixel_flags(row, wfl, fmaps):
        """weight_count() and getflags() of one detection's pixels."""
        nw = ndw = 0  # without a weight map SExtractor writes zeros
        if wfl is not None:
            nw, ndw = int((wfl & 1).astype(bool).sum()), int((wfl & 2).astype(bool).sum())
        row["NLOWWEIGHT_ISO"], row["NLOWDWEIGHT_ISO"] = nw, ndw
        row["FLAGS_WEIGHT"] = (1 if nw else 0) | (2 if ndw else 0)
        row["_imaflags"] = [combine(m, kind) for m, kind in zip(fmaps, s.flag_types)]

    clean = CleanList(h, s.clean, s.clean_param, _clean_margin(s), strip_h, blankh, s.objstack, strip_margin,
                      on_merge=pasted)
    written = 0
    table = _Columns(s.wanted)
    slim = _Slim(None if s.wanted is None else set(s.wanted) | NEEDED)
    numbers: list[tuple[np.ndarray, np.ndarray]] = []  # the written objects' pixels, as runs (per block)

    def complete(positions, offsets):
        """Deblend and measure the detections the scan completed (in one compiled call for the whole
        ones, one for the branches); they enter CLEAN's list in completion order."""
        n = len(offsets) - 1
        if n == 0:
            return
        counts = np.diff(offsets)
        first = n_done[0] + 1  # detection k owns label first + k (small ones too: they mask neighbours)
        n_done[0] += n
        buf.set_labels(scan.idx[positions], np.repeat(np.arange(first, first + n, dtype=np.int32), counts))
        kept = np.flatnonzero(counts >= s.minarea)
        if len(kept) == 0:
            return
        koff = np.zeros(len(kept) + 1, np.int64)
        np.cumsum(counts[kept], out=koff[1:])
        kpos = np.concatenate([positions[offsets[k]:offsets[k + 1]] for k in kept])
        pools = dict(zip(names, (v[kpos] for v in scan.values)))
        kidx = scan.idx[kpos].astype(idx_type)
        del kpos
        ys, xs = np.divmod(kidx.astype(np.int64), w)
        val, cval = pools["val"], pools["cval"]
        pthr, pvar = (pools["pthr"], pools["pvar"]) if weighted else (None, None)
        # deblend() in completion order (its random draws), only for detections with several maxima
        split = {}
        cands = np.flatnonzero(may_split(xs, ys, cval, koff, s.deblend_nthresh, s.deblend_mincont)).tolist()
        odthresh = [float(np.float32(pthr[koff[j]:koff[j + 1]].min() if weighted else dthresh)) for j in cands]

        def front(i):  # parcelout() draws no random number: the candidates may go in any order
            j = cands[i]
            lo, hi = int(koff[j]), int(koff[j + 1])
            return deblend_front(xs[lo:hi], ys[lo:hi], cval[lo:hi], odthresh[i], s.deblend_nthresh,
                                 s.deblend_mincont, s.minarea)

        fronts = pool.map(front, range(len(cands))) if len(cands) > 4 else map(front, range(len(cands)))
        for i, (j, fr) in enumerate(zip(cands, fronts)):
            if fr is None:
                continue
            lo, hi = int(koff[j]), int(koff[j + 1])
            parts = deblend(xs[lo:hi], ys[lo:hi], cval[lo:hi], val[lo:hi], odthresh[i], s.deblend_nthresh,
                            s.deblend_mincont, s.minarea, rng, front=fr)
            if parts is not None:
                split[j] = parts
        iso_args = (dthresh, thresh, var_b, s.gain, h, w, s.minarea)
        iso_opts = dict(gainflag=gainflag, threshfac=threshfac)
        whole = np.array([j for j in range(len(kept)) if j not in split], np.int64)
        whole_rows = iter(isophotal_rows((first + kept[whole]).tolist(), xs, ys, val, cval, koff, *iso_args,
                                         objects=whole, pthr=pthr, pvar=pvar, **iso_opts))
        sel, boff, bids, centers, cores = [], [0], [], [], []
        for j, parts in split.items():
            for pidx, center, ncore in parts:
                g = int(koff[j]) + pidx
                bids.append(next_branch[0])
                buf.set_labels(kidx[g], next_branch[0])  # each branch masks its siblings in photometry
                next_branch[0] += 1
                sel.append(g)
                boff.append(boff[-1] + len(g))
                centers.append(center)
                cores.append(g[:ncore])
        g = np.concatenate(sel) if sel else np.zeros(0, np.int64)
        branch_rows = iter(isophotal_rows(bids, xs[g], ys[g], val[g], cval[g], boff, *iso_args, centers=centers,
                                          pthr=None if pthr is None else pthr[g],
                                          pvar=None if pvar is None else pvar[g], **iso_opts))
        wfl = pools["wflag"] if want_wflags else None
        fmaps = [pools[f"flag{i}"] for i in range(len(flagmaps))]
        sel, cores = iter(sel), iter(cores)
        for j in range(len(kept)):
            lo, hi = int(koff[j]), int(koff[j + 1])
            parts = split.get(j)
            if parts is None:
                row = next(whole_rows)
                row["_line"], row["_idx"] = row["_ymax"] + 1, kidx[lo:hi]  # the line that completed it
                pixel_flags(row, None if wfl is None else wfl[lo:hi], [m[lo:hi] for m in fmaps])
                clean.add(slim(row))
                continue
            line = int(ys[lo:hi].max()) + 1  # the detection's, for each of its branches
            for _ in parts:
                row, gb, core = next(branch_rows), next(sel), next(cores)
                pixel_flags(row, None if wfl is None else wfl[gb], [m[gb] for m in fmaps])
                core_x, core_y = xs[core], ys[core]  # the branch's flags come from its core
                edge = core_x.min() == 0 or core_x.max() == w - 1 or core_y.min() == 0 or core_y.max() == h - 1
                row["_flag"] = (row["_flag"] & ~OBJ_TRUNC) | (OBJ_TRUNC if edge else 0) | OBJ_MERGED
                row["_line"], row["_idx"] = line, kidx[gb]
                clean.add(slim(row))

    def write_out():
        """Number and measure the objects CLEAN's list has written since the last call, each on
        the rows in memory when it was written (its ``_fymin``/``_fymax``, all in the buffer)."""
        nonlocal written
        new = clean.out[written:]
        # SExtractor reads its first strip whole before it scans: an object its full list writes
        # before the scan is that far waits until those rows are read (all in order)
        ready_now = next((i for i, r in enumerate(new) if r["_fymax"] > buf.y1), len(new))
        new = new[:ready_now]
        written += len(new)
        if written > 4096:  # the measured ones leave the list
            del clean.out[:written]
            written = 0
        for g0 in range(0, len(new), 512):  # a few hundred at a time: the temporaries stay small
            group = new[g0:g0 + 512]
            pixels, sizes, owners = [], [], []
            for number, r in enumerate(group, table.n + 1):
                r["NUMBER"] = number
                for part in [r, *r["_slaves"]]:
                    pixels.append(part["_idx"])
                    sizes.append(len(part["_idx"]))
                    owners.append(number)
                    if part is not r:
                        r["_imaflags"] = [merge(m, sl, kind) for m, sl, kind in
                                          zip(r["_imaflags"], part["_imaflags"], s.flag_types)]
                r["FLUXERR_ISO"] = math.sqrt(r["_fluxvar"])
                r["MAG_ISO"] = mag(r["FLUX_ISO"], s.mag_zeropoint)
                r["MAGERR_ISO"] = 1.086 * r["FLUXERR_ISO"] / r["FLUX_ISO"] if r["FLUX_ISO"] > 0 else 99.0
            if pixels:  # the block's pixels as runs along rows, not an array per source
                numbers.append(_runs(np.concatenate(pixels), np.repeat(np.array(owners, np.int64), sizes), w))
            n = buf.y1 - buf.y0
            _photometry(group, buf.sub[:n], buf.comp[:n], bg, s, var_b, buf.var[:n] if weighted else buf.var, gainflag,
                        buf.y0)
            for r in group:
                if flagmaps or s.needs("IMAFLAGS_ISO", "NIMAFLAGS_ISO"):
                    n_maps = max(len(flagmaps), 1)
                    r["IMAFLAGS_ISO"] = np.array([f for f, _n in r["_imaflags"]] or [0] * n_maps, np.int64)
                    r["NIMAFLAGS_ISO"] = np.array([n for _f, n in r["_imaflags"]] or [0] * n_maps, np.int64)
                table.add(r)  # only the columns stay
                r.clear()

    # rows [0, ready) are read, background-subtracted and interpolated (and in the strip buffer);
    # rows [win0, ready) of them (and their variance) are kept for the blocks' filtering
    ready = win0 = 0
    win_sub = np.zeros((0, w), np.float32)
    win_var = np.zeros((0, w), np.float32) if weighted else None

    def load(y0, y1):
        """Rows [y0, y1) read, background-subtracted, interpolated, and their masked copy for the
        photometry. Called in order, one call at a time (the interpolation carries state)."""
        sub = source.read(y0, y1)
        if s.back_type == "AUTO":
            bg.subtract_rows(sub, y0)
        else:
            sub -= np.float32(s.back_value)
        var = var_rows(y0, y1).astype(np.float32, copy=True) if weighted else None
        if interp is not None:
            interp.apply(sub, var, wthresh, wt.xlag, wt.ylag, True)
        phot = sub.copy()
        if weighted:  # low-weight pixels are masked like neighbours' in the photometry
            np.putmask(phot, var >= wthresh, np.float32(np.nan))
        return sub, var, phot

    blocks = [(c0, min(h, c0 + step)) for c0 in range(0, h, step)]
    wants = [min(h, c1 + margin) for _c0, c1 in blocks]  # rows a block's filtering needs read
    reader = ThreadPoolExecutor(1)  # the next block's rows are read while this one is measured
    try:
        coming = reader.submit(load, 0, wants[0])
        for i, (c0, c1) in enumerate(blocks):
            want = wants[i]
            if want > ready:
                new_sub, new_var, phot = coming.result()
                buf.push(phot, new_var)
                del phot
                win_sub = np.concatenate([win_sub, new_sub]) if len(win_sub) else new_sub
                if weighted:
                    win_var = np.concatenate([win_var, new_var]) if len(win_var) else new_var
                ready = want
                if i + 1 < len(blocks) and wants[i + 1] > ready:
                    coming = reader.submit(load, ready, wants[i + 1])
            # the block's rows, filtered over a window that reaches `margin` rows beyond it (or the edge)
            a0 = max(0, c0 - margin) - win0
            a1 = min(h, c1 + margin) - win0
            wsub = win_sub[a0:a1]
            r0, r1 = c0 - win0 - a0, c1 - win0 - a0
            bsub, bfilt = wsub[r0:r1], _filter_block(wsub, r0, r1, s, pool)
            pthr = None
            if weighted:
                wvar_win = win_var[a0:a1]
                fvar = _filter(wvar_win, s.kernel, s.kernel_normalise)
                if s.thresh_absolute:
                    pthr = np.full((c1 - c0, w), np.float32(dthresh))
                else:  # scanimage(): thresh = relthresh * sqrt(filtered variance), per pixel
                    with np.errstate(invalid="ignore"):
                        pthr = (np.float64(np.float32(s.detect_thresh))
                                * np.sqrt(fvar[r0:r1].astype(np.float64))).astype(np.float32)
                above = _above_map(bfilt, bsub, pthr)
            else:
                above = _above(bfilt, bsub, np.float32(dthresh))
            values = [bsub, bfilt]
            if weighted:
                values += [pthr, wvar_win[r0:r1]]
                if want_wflags:
                    lo, hi = max(0, r0 - 1), min(len(wvar_win), r1 + 1)
                    values.append(low_weight_flags(wvar_win[lo:hi], fvar[lo:hi], wthresh)[r0 - lo:r1 - lo])
            values += [fm[c0:c1] for fm in flagmaps]
            buf.mark(c0, above)  # detected: masked in the photometry until its detection completes
            positions, offsets = scan.feed(above, *values)
            drop = max(0, c1 - margin - win0)  # the next block's window starts `margin` rows above it
            win_sub = win_sub[drop:]
            if weighted:
                win_var = win_var[drop:]
            win0 += drop
            complete(positions, offsets)
            clean.advance(c1)
            write_out()
            if progress is not None:
                progress(c1, h)
        complete(*scan.finish())
        clean.finish()
        write_out()
    finally:  # also when the run is cancelled (the progress callback raises)
        reader.shutdown()
        pool.shutdown()
    buf.close()
    seg = _segmentation((h, w), numbers)
    columns = table.arrays()
    iso = columns.pop("_iso", None)
    if s.nnw is not None and iso is not None and s.needs("CLASS_STAR"):
        columns["CLASS_STAR"] = class_star(s.nnw, iso, columns["FLUX_MAX"], thresh, s.seeing_fwhm,
                                           s.pixel_scale).astype(np.float64)
    return Extraction(background=bg, labels=seg, columns=columns, thresh=thresh, dthresh=dthresh,
                      back_value=None if s.back_type == "AUTO" else float(s.back_value), sigfac=sigfac,
                      variance_rows=var_rows,
                      interpolation=(wthresh, wt.xlag, wt.ylag) if interp is not None else None)
