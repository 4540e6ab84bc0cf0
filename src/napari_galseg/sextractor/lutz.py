"""SExtractor's one-pass connected-component scan (Lutz's algorithm, ``scanimage()``), compiled.

The components are the same as any 8-connected labelling; what only this scan gives is the order
in which SExtractor *completes* objects (which fixes NUMBER) and the order of each object's pixel
list (which CLEAN's heap depends on). Pixels are list nodes ``y * width + x``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

COMPLETE, INCOMPLETE, NONOBJECT, OBJECT = 0, 1, 2, 3
UNKNOWN = -1
M_NONE, M_S, M_s, M_f, M_F = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True)
def _update(n, f, last, i, n2, f2, l2, nextpix):
    """update(): append list 2 to the list in slot ``i`` of (n, f, last)."""
    n[i] += n2
    if f[i] == -1:
        f[i] = f2
        last[i] = l2
    elif l2 != -1:
        nextpix[last[i]] = f2
        last[i] = l2


@njit(cache=True, nogil=True)
def lutz_lists(above, minarea):
    """The objects of a whole boolean map, in the scan's completion order, of at least ``minarea``
    pixels: their pixels (flat indices ``y * width + x``, each object's in list order) one object
    after another, and the offsets (the strip-fed scan run once over the map and its last row)."""
    h, w = above.shape
    size = w + 2
    sc = np.zeros(2, np.int64)
    marker = np.zeros(size, np.int8)
    start = np.zeros(size, np.int64)
    end = np.zeros(size, np.int64)
    psstack = np.zeros(2 * size + 4, np.int64)
    info_n = np.zeros(size, np.int64)
    store_n = np.zeros(size, np.int64)
    lists = np.full((4, size), -1, np.int64)
    cap = 0
    for y in range(h):
        for x in range(w):
            if above[y, x]:
                cap += 1
    idx = np.empty(cap, np.int64)
    nextp = np.empty(cap, np.int64)
    npool, pos1, off1 = _stream_rows(above, 0, False, sc, marker, start, end, psstack, info_n, lists[0], lists[1],
                                     store_n, lists[2], lists[3], idx, nextp, 0)
    _n, pos2, off2 = _stream_rows(above[:0], h, True, sc, marker, start, end, psstack, info_n, lists[0], lists[1],
                                  store_n, lists[2], lists[3], idx, nextp, npool)
    total = 0
    nobj = 0
    for off in (off1, off2):
        for k in range(len(off) - 1):
            if off[k + 1] - off[k] >= minarea:
                total += off[k + 1] - off[k]
                nobj += 1
    flat = np.empty(total, np.int64)
    offsets = np.zeros(nobj + 1, np.int64)
    q = 0
    j = 0
    for pos, off in ((pos1, off1), (pos2, off2)):
        for k in range(len(off) - 1):
            if off[k + 1] - off[k] < minarea:
                continue
            for i in range(off[k], off[k + 1]):
                flat[q] = idx[pos[i]]
                q += 1
            j += 1
            offsets[j] = q
    return flat, offsets


_CO, _PSTOP = 0, 1  # slots of the stream's scalar state
DEAD = -2  # link of a pooled pixel whose object has been handed out (free at the next compaction)


@njit(cache=True, nogil=True)
def _stream_rows(above, y0, final, sc, marker, start, end, psstack, info_n, info_f, info_l,
                 store_n, store_f, store_l, idx, nextp, npool):
    """SExtractor's ``lutz()`` loop over the rows of ``above`` (frame rows ``y0...``), or over the
    final virtual row when ``final``, with pixels appended to the pool (``idx``, ``nextp``: room is
    reserved by the caller). Returns the new pool size, then the pool positions of the objects
    completed here (each object's list order) and their offsets, in completion order; their links
    become :data:`DEAD`."""
    w = above.shape[1]
    nrows = 1 if final else above.shape[0]
    co = sc[_CO]
    pstop = sc[_PSTOP]
    out_first = np.empty(64, np.int64)
    out_n = np.empty(64, np.int64)
    nout = 0
    for r in range(nrows):
        ps = COMPLETE
        cs = NONOBJECT
        ybase = (y0 + r) * w
        for xl in range(w + 1):
            luflag = (not final) and xl < w and above[r, xl]
            newmarker = marker[xl]
            if newmarker != M_NONE:
                marker[xl] = M_NONE
            elif not luflag and cs == NONOBJECT:
                continue  # sky with nothing pending above: what most pixels are
            if luflag and cs != OBJECT:  # start of a segment
                cs = OBJECT
                if ps == OBJECT:
                    if start[co] == UNKNOWN:
                        marker[xl] = M_S
                        start[co] = xl
                    else:
                        marker[xl] = M_s
                else:
                    psstack[pstop] = ps
                    pstop += 1
                    marker[xl] = M_S
                    co += 1
                    start[co] = xl
                    ps = COMPLETE
                    info_n[co] = 0
                    info_f[co] = -1
                    info_l[co] = -1
            if newmarker != M_NONE:
                if newmarker == M_S:
                    psstack[pstop] = ps
                    pstop += 1
                    if cs == NONOBJECT:
                        psstack[pstop] = COMPLETE
                        pstop += 1
                        co += 1
                        info_n[co] = store_n[xl]
                        info_f[co] = store_f[xl]
                        info_l[co] = store_l[xl]
                        start[co] = UNKNOWN
                    else:
                        _update(info_n, info_f, info_l, co, store_n[xl], store_f[xl], store_l[xl], nextp)
                    ps = OBJECT
                elif newmarker == M_s:
                    if cs == OBJECT and ps == COMPLETE:
                        pstop -= 1
                        xl2 = start[co]
                        _update(info_n, info_f, info_l, co - 1, info_n[co], info_f[co], info_l[co], nextp)
                        co -= 1
                        if start[co] == UNKNOWN:
                            start[co] = xl2
                        else:
                            marker[xl2] = M_s
                    ps = OBJECT
                elif newmarker == M_f:
                    ps = INCOMPLETE
                else:  # 'F'
                    pstop -= 1
                    ps = psstack[pstop]
                    if cs == NONOBJECT and ps == COMPLETE:
                        if start[co] == UNKNOWN:
                            if nout == len(out_first):
                                out_first = np.concatenate((out_first, np.empty(nout, np.int64)))
                                out_n = np.concatenate((out_n, np.empty(nout, np.int64)))
                            out_first[nout] = info_f[co]
                            out_n[nout] = info_n[co]
                            nout += 1
                        else:
                            marker[end[co]] = M_F
                            store_n[start[co]] = info_n[co]
                            store_f[start[co]] = info_f[co]
                            store_l[start[co]] = info_l[co]
                        co -= 1
                        pstop -= 1
                        ps = psstack[pstop]
            if luflag:
                idx[npool] = ybase + xl
                nextp[npool] = -1
                _update(info_n, info_f, info_l, co, 1, npool, npool, nextp)
                npool += 1
            elif cs == OBJECT:
                cs = NONOBJECT
                if ps != COMPLETE:
                    marker[xl] = M_f
                    end[co] = xl
                else:
                    pstop -= 1
                    ps = psstack[pstop]
                    marker[xl] = M_F
                    store_n[start[co]] = info_n[co]
                    store_f[start[co]] = info_f[co]
                    store_l[start[co]] = info_l[co]
                    co -= 1
    sc[_CO] = co
    sc[_PSTOP] = pstop
    total = 0
    for k in range(nout):
        total += out_n[k]
    pos = np.empty(total, np.int64)
    offsets = np.zeros(nout + 1, np.int64)
    j = 0
    for k in range(nout):
        p = out_first[k]
        while p != -1:
            pos[j] = p
            j += 1
            q = nextp[p]
            nextp[p] = DEAD
            p = q
        offsets[k + 1] = j
    return npool, pos, offsets


@njit(cache=True, nogil=True)
def _compact_pool(idx, nextp, npool, lists):
    """Drop the :data:`DEAD` pixels of the pool, keeping the others' order; links and the list ends
    in ``lists`` (rows of first/last pool positions) follow. Returns the old-to-new position map
    (-1 for dropped pixels) and the new pool size."""
    newpos = np.empty(npool, np.int64)
    n = 0
    for i in range(npool):
        if nextp[i] == DEAD:
            newpos[i] = -1
        else:
            newpos[i] = n
            n += 1
    for i in range(npool):
        j = newpos[i]
        if j >= 0:
            q = nextp[i]
            idx[j] = idx[i]
            nextp[j] = newpos[q] if q >= 0 else q
    for r in range(lists.shape[0]):  # stale slots may name dropped pixels: they are never read again
        for i in range(lists.shape[1]):
            q = lists[r, i]
            if 0 <= q < npool:
                lists[r, i] = newpos[q]
    return newpos, n


@njit(cache=True, nogil=True)
def _compact_values(values, newpos):
    """Move the kept entries of one value pool to their new positions (in place, order kept)."""
    for i in range(len(newpos)):
        j = newpos[i]
        if j >= 0:
            values[j] = values[i]


@njit(cache=True, nogil=True)
def _gather_rows(rows, idx, p0, p1, base, pool):
    """``pool[p] = rows[...]`` at frame index ``idx[p]`` (rows start at frame index ``base``)."""
    w = rows.shape[1]
    for p in range(p0, p1):
        q = idx[p] - base
        pool[p] = rows[q // w, q % w]


class LutzStream:
    """SExtractor's one-pass scan fed a frame in strips of rows, never holding it whole.

    Only detected pixels are kept, in a *pool*: the frame index ``y * width + x`` (``idx``), the
    given values at that pixel (``values``: one pool per array passed to :meth:`feed`), and the link
    to the next pixel of its object's list. :meth:`feed` and :meth:`finish` return the objects
    completed during the call, in the scan's completion order (small ones too), as ``(positions,
    offsets)``: object ``k``'s pixels, in the scan's list order, are
    ``idx[positions[offsets[k]:offsets[k + 1]]]``. Feeding rows one by one or all at once gives the
    same objects. The pixels of handed-out objects are dropped from the pool at a later call (when
    they are at least half of it), so positions hold until the next call only; with
    ``compact=False`` the pool keeps every detected pixel and positions hold for good.
    """

    def __init__(self, width: int, compact: bool = True):
        self.width = w = int(width)
        size = w + 2
        self._sc = np.zeros(2, np.int64)  # co, pstop
        self._marker = np.zeros(size, np.int8)
        self._start = np.zeros(size, np.int64)
        self._end = np.zeros(size, np.int64)
        self._psstack = np.zeros(2 * size + 4, np.int64)
        self._info_n = np.zeros(size, np.int64)
        self._store_n = np.zeros(size, np.int64)
        # first/last pool position of the lists in info (slot co) and store (column x): one array so
        # a compaction renumbers them together
        self._lists = np.full((4, size), -1, np.int64)
        self._idx = np.empty(0, np.int64)
        self._nextp = np.empty(0, np.int64)
        self._values: list[np.ndarray] | None = None
        self.npool = 0
        self.rows = 0  # rows fed so far
        self.finished = False
        self.compact = compact
        self._dead = 0  # pool pixels of handed-out objects

    @property
    def idx(self) -> np.ndarray:
        """Frame index ``y * width + x`` of each pooled pixel."""
        return self._idx[:self.npool]

    @property
    def values(self) -> list[np.ndarray]:
        """One pool per value array given to :meth:`feed`: that array's entry at each pooled pixel."""
        return [v[:self.npool] for v in self._values or []]

    def release(self) -> None:
        """Drop the pixels of the objects already handed out (their positions become invalid)."""
        if self._dead == 0:
            return
        newpos, n = _compact_pool(self._idx, self._nextp, self.npool, self._lists)
        for v in self._values or []:
            _compact_values(v, newpos)
        self.npool = n
        self._dead = 0

    def _reserve(self, extra: int) -> None:
        if self.compact and self._dead and 2 * self._dead >= self.npool:
            self.release()
        need = self.npool + extra
        if need <= len(self._idx):
            return
        cap = max(need, 2 * len(self._idx), 1024)
        self._idx = _grown(self._idx, cap, self.npool)
        self._nextp = _grown(self._nextp, cap, self.npool)
        self._values = [_grown(v, cap, self.npool) for v in self._values]

    def _scan(self, above: np.ndarray, final: bool):
        info_f, info_l, store_f, store_l = self._lists
        npool, pos, offsets = _stream_rows(
            above, self.rows, final, self._sc, self._marker, self._start, self._end, self._psstack,
            self._info_n, info_f, info_l, self._store_n, store_f, store_l, self._idx, self._nextp, self.npool)
        self.npool = npool
        self._dead += len(pos)
        return pos, offsets

    def feed(self, above_rows: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scan the next rows (a boolean ``(n, width)`` array); ``values`` are arrays of the same
        shape whose entries at detected pixels go to the value pools. Returns ``(positions,
        offsets)`` of the objects completed by these rows."""
        if self.finished:
            raise RuntimeError("LutzStream.feed after finish")
        above_rows = np.asarray(above_rows)
        if above_rows.dtype != np.bool_:
            above_rows = above_rows.astype(bool)
        if above_rows.ndim != 2 or above_rows.shape[1] != self.width:
            raise ValueError(f"rows of width {self.width} expected, got shape {above_rows.shape}")
        if self._values is None:
            self._values = [np.empty(len(self._idx), np.asarray(v).dtype) for v in values]
        if len(values) != len(self._values):
            raise ValueError(f"{len(self._values)} value arrays expected, got {len(values)}")
        for v in values:
            if np.shape(v) != above_rows.shape:
                raise ValueError(f"value array of shape {np.shape(v)}, not {above_rows.shape}")
        self._reserve(int(np.count_nonzero(above_rows)))
        p0 = self.npool
        pos, offsets = self._scan(above_rows, False)
        for pool, v in zip(self._values, values):
            _gather_rows(np.asarray(v), self._idx, p0, self.npool, self.rows * self.width, pool)
        self.rows += above_rows.shape[0]
        return pos, offsets

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Run the scan's last, empty virtual row: the objects that touch the frame's last row."""
        if self.finished:
            raise RuntimeError("LutzStream.finish called twice")
        if self._values is None:
            self._values = []
        self._reserve(0)
        pos, offsets = self._scan(np.zeros((0, self.width), bool), True)
        self.finished = True
        return pos, offsets


def _grown(a: np.ndarray, cap: int, n: int) -> np.ndarray:
    out = np.empty(cap, a.dtype)
    out[:n] = a[:n]
    return out
