"""SExtractor's object list after detection (``clean.c``): CLEAN merges and the NUMBER order.

Objects enter a list in the order the scan completes them. With CLEAN Y each newcomer is compared
with the objects in the list: one whose profile, extrapolated as a Moffat-like wing of the brighter
object, explains it is merged into that object (its flux and pixels go to it; shapes stay the
brighter one's). Objects leave the list - and get their NUMBER - when the scan passes their
margin, and the rest at the end, first, last, last-but-one… because removal moves the last
object into the freed slot. This module replays those list operations.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

CLEAN_ZONE = 10.0
MARGIN_SCALE = 2.0
MARGIN_OFFSET = 4.0
PI = 3.1415926535898
OBJ_MERGED, OBJ_CROWDED = 2, 1


def _alpha_amp(o, beta):
    unitarea = PI * o["A_IMAGE"] * o["B_IMAGE"]
    amp = o["_fdflux"] / (2 * unitarea * o["_abcor"])
    base = amp / o["_dthresh"]
    alpha = ((base ** (1.0 / beta) if base > 0 else float("nan")) - 1) * unitarea / o["_fdnpix"]
    return alpha, amp


def _menu(big, small, dx, dy, beta) -> bool:
    """Whether ``big``'s extrapolated profile at ``small`` exceeds ``small``'s mthresh."""
    alpha, amp = _alpha_amp(big, beta)
    val = 1 + alpha * (np.float32(big["CXX_IMAGE"]) * dx * dx + np.float32(big["CYY_IMAGE"]) * dy * dy
                       + np.float32(big["CXY_IMAGE"]) * dx * dy)
    if not val > 1.0:
        return False
    level = np.float32(amp * val ** (-beta) if val < 1e10 else 0.0)
    return bool(level > small["_mthresh"])


def _merge(slave, master) -> None:
    """mergeobject(): the slave's counts go to the master; its shape stays."""
    master["_fdnpix"] += slave["_fdnpix"]
    master["_fdflux"] = float(np.float32(master["_fdflux"] + slave["_fdflux"]))
    master["FLUX_ISO"] += slave["FLUX_ISO"]
    master["_fluxvar"] += slave["_fluxvar"]
    master["FLUX_MAX"] = max(master["FLUX_MAX"], slave["FLUX_MAX"])
    master["ISOAREAF_IMAGE"] += slave["ISOAREAF_IMAGE"]
    for k, f in (("XMIN_IMAGE", min), ("YMIN_IMAGE", min), ("XMAX_IMAGE", max), ("YMAX_IMAGE", max)):
        master[k] = f(master[k], slave[k])
    master["_flag"] |= slave["_flag"] & ~(OBJ_MERGED | OBJ_CROWDED)
    master["_slaves"].append(slave)
    master["_slaves"].extend(slave["_slaves"])


class _ObjectList:
    """SExtractor's clean list: objects plus their centres and A in arrays, so the neighbours of
    a newcomer are found at once; removal moves the last object into the freed slot."""

    def __init__(self):
        self.items: list[dict] = []
        self.xy = np.zeros((64, 5))  # mx, my, A_IMAGE, ycmin, ycmax

    def __len__(self):
        return len(self.items)

    def append(self, o) -> None:
        n = len(self.items)
        if n == len(self.xy):
            self.xy = np.concatenate([self.xy, np.zeros_like(self.xy)])
        self.xy[n] = (o["_mx"], o["_my"], o["A_IMAGE"], o["_ycmin"], o["_ycmax"])
        self.items.append(o)

    def remove(self, k: int) -> dict:
        out = self.items[k]
        last = len(self.items) - 1
        if k != last:
            self.items[k] = self.items[last]
            self.xy[k] = self.xy[last]
        self.items.pop()
        return out

    def near(self, o) -> np.ndarray:
        """Indices (ascending) within CLEAN_ZONE × (A + A') of ``o``, in SExtractor's float32."""
        return _near(self.xy, len(self.items), float(o["_mx"]), float(o["_my"]), float(o["A_IMAGE"]))


@njit(cache=True, nogil=True)
def _near(xy, n, mx, my, a):
    """:meth:`_ObjectList.near` compiled: each step rounded to float32 as numpy does it."""
    out = np.empty(n, np.int64)
    k = 0
    fa = np.float32(a)
    zone = np.float32(CLEAN_ZONE * CLEAN_ZONE)
    for i in range(n):
        dx = np.float32(mx - xy[i, 0])
        dy = np.float32(my - xy[i, 1])
        r = np.float32(fa + np.float32(xy[i, 2]))
        rlim = np.float32(r * r)
        if np.float32(np.float32(dx * dx) + np.float32(dy * dy)) < np.float32(rlim * zone):
            out[k] = i
            k += 1
    return out[:k]


def _clean(objin, objects: _ObjectList, beta, blankh, on_merge=None) -> bool:
    """clean(): False when ``objin`` is eaten by an object of the list, else True after it ate
    the objects it explains (removed from ``objects``, SExtractor's swap-with-last).

    A cleaned object's pixels are pasted back into the image, but the scan blanks detected pixels
    ``blankh`` rows late (after filtering them): rows it has not blanked yet stay masked."""
    paste_row = objin["_line"] - blankh
    victims = []
    for i in objects.near(objin):
        obj = objects.items[i]
        dx = np.float32(objin["_mx"] - obj["_mx"])
        dy = np.float32(objin["_my"] - obj["_my"])
        if obj["_fdflux"] < objin["_fdflux"]:
            if _menu(objin, obj, dx, dy, beta):
                victims.append(i)
        elif _menu(obj, objin, dx, dy, beta):
            objin["_paste_row"] = paste_row
            _merge(objin, obj)
            if on_merge is not None:
                on_merge(objin)
            return False
    for k in reversed(victims):
        objects.items[k]["_paste_row"] = paste_row
        _merge(objects.items[k], objin)
        if on_merge is not None:
            on_merge(objects.items[k])
        objects.remove(k)
    return True


@njit(cache=True, nogil=True)
def _margin(cxx, cyy, cxy, height):
    """addcleanobj()'s margin in rows, in float32 step by step as the C code (and numpy) rounds it."""
    f32 = np.float32
    cxx, cyy, cxy = f32(cxx), f32(cyy), f32(cxy)
    hh1 = f32(cyy - f32(f32(cxy * cxy) / f32(f32(4.0) * cxx)))
    hh1 = f32(1.0 / math.sqrt(np.float64(f32(f32(3.0) * hh1)))) if hh1 > 0.0 else f32(0.0)
    hh2 = f32(np.float64(height) + 1.0)
    top = hh2 if hh2 > hh1 else hh1
    return int(f32(f32(f32(top * f32(MARGIN_SCALE)) + f32(MARGIN_OFFSET)) + f32(0.49999)))


def _margins(o, cleanmargin: int) -> None:
    """addcleanobj(): the rows over which the object stays in the list."""
    margin = _margin(o["CXX_IMAGE"], o["CYY_IMAGE"], o["CXY_IMAGE"], o["YMAX_IMAGE"] - o["YMIN_IMAGE"])
    ymin, ymax = o["YMIN_IMAGE"] - 1, o["YMAX_IMAGE"] - 1
    o["_ycmax"] = max(ymax + margin, int(o["_my"] + 0.49999) + cleanmargin)
    o["_ycmin"] = min(ymin - margin, int(o["_my"] + 0.49999) - cleanmargin)


class CleanList:
    """SExtractor's object list fed one object at a time, in completion order, as the scan goes:
    :meth:`add` each completed object, :meth:`advance` once the scan has passed a line (the flushes
    up to it), :meth:`finish` at the end. Written objects (NUMBER order) pile up in ``out``, each
    with ``_fymin``/``_fymax``: the rows in memory then, which clip its apertures. ``on_merge(o)``
    is called when ``o`` is merged into another object (its pixels are pasted back)."""

    def __init__(self, height: int, clean: bool, beta: float, cleanmargin: int, strip_height: int, blankh: int,
                 stack: int = 3000, strip_margin: int = 1, on_merge=None):
        self.objects = _ObjectList()
        self.out: list[dict] = []
        self.height, self.clean, self.beta, self.cleanmargin = height, clean, beta, cleanmargin
        self.strip_height, self.blankh, self.stack, self.on_merge = strip_height, blankh, stack, on_merge
        self.tall = height > strip_height
        self.start = strip_height - strip_margin
        if not self.tall:
            self.pending = [height]  # the line after the last: ymin 0
            self._ymin = lambda line: 0
        else:
            self.pending = list(range(self.start, height - strip_margin + 1))
            self._ymin = lambda line: line - self.start
        self.p = 0

    def strip_at(self, line: int) -> tuple[int, int]:
        """The rows in memory while the scan is on ``line``."""
        if not self.tall:
            return 0, self.height
        y0 = min(max(0, line - self.start + 1), self.height - self.strip_height)
        return y0, y0 + self.strip_height

    def advance(self, line: int) -> None:
        """Flush the list at every line up to ``line`` (no object completes before it any more)."""
        while self.p < len(self.pending) and self.pending[self.p] <= line:
            ymin = self._ymin(self.pending[self.p])
            _flush(self.objects, self.out, ymin, (ymin, min(ymin + self.strip_height, self.height)))
            self.p += 1

    def add(self, o: dict) -> None:
        o["_slaves"] = []
        line = o["_line"]  # the scan line that completed the object
        self.advance(line)
        objects = self.objects
        if len(objects) >= self.stack:
            # the first object whose margin ends first, from the array (a list built per
            # newcomer made a full MEMORY_OBJSTACK quadratic in the object count)
            _write(self.out, objects.remove(int(np.argmin(objects.xy[:len(objects), 4]))), self.strip_at(line))
        if self.clean and not _clean(o, objects, self.beta, self.blankh, self.on_merge):
            return
        _margins(o, self.cleanmargin)
        objects.append(o)

    def finish(self) -> None:
        self.advance(self.height + 1)
        end = (max(0, self.height - self.strip_height), self.height) if self.tall else (0, self.height)
        while len(self.objects):
            _write(self.out, self.objects.remove(0), end)


def _write(out: list, o: dict, strip: tuple[int, int]) -> None:
    o["_fymin"], o["_fymax"] = strip
    out.append(o)


def _flush(objects: _ObjectList, out: list, ymin: int, strip: tuple[int, int]) -> None:
    """Write the objects whose margin the strip has passed: SExtractor walks the list from its end,
    so they go in decreasing slot order (a removal only moves an already-seen object)."""
    for i in np.nonzero(objects.xy[:len(objects), 3] <= ymin)[0][::-1]:
        _write(out, objects.remove(int(i)), strip)
