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


def _clean(objin, objects, beta, blankh) -> bool:
    """clean(): False when ``objin`` is eaten by an object of the list, else True after it ate
    the objects it explains (removed from ``objects``, SExtractor's swap-with-last).

    A cleaned object's pixels are pasted back into the image, but the scan blanks detected pixels
    ``blankh`` rows late (after filtering them): rows it has not blanked yet stay masked."""
    paste_row = objin["_ymax"] + 1 - blankh
    victims = []
    for i, obj in enumerate(objects):
        dx = np.float32(objin["_mx"] - obj["_mx"])
        dy = np.float32(objin["_my"] - obj["_my"])
        rlim = np.float32(objin["A_IMAGE"] + obj["A_IMAGE"])
        rlim = rlim * rlim
        if dx * dx + dy * dy < rlim * CLEAN_ZONE * CLEAN_ZONE:
            if obj["_fdflux"] < objin["_fdflux"]:
                if _menu(objin, obj, dx, dy, beta):
                    victims.append(i)
            elif _menu(obj, objin, dx, dy, beta):
                objin["_paste_row"] = paste_row
                _merge(objin, obj)
                return False
    for k in reversed(victims):
        objects[k]["_paste_row"] = paste_row
        _merge(objects[k], objin)
        _remove(objects, k)
    return True


def _remove(objects: list, k: int):
    """subcleanobj(): the last object takes the freed slot."""
    last = objects.pop()
    if k < len(objects):
        out = objects[k]
        objects[k] = last
        return out
    return last


def _margins(o, cleanmargin: int) -> None:
    """addcleanobj(): the rows over which the object stays in the list."""
    cxx, cyy, cxy = (np.float32(o[k]) for k in ("CXX_IMAGE", "CYY_IMAGE", "CXY_IMAGE"))
    hh1 = np.float32(cyy - cxy * cxy / (np.float32(4.0) * cxx))
    hh1 = np.float32(1 / math.sqrt(3 * hh1)) if hh1 > 0.0 else np.float32(0.0)
    hh2 = np.float32(o["YMAX_IMAGE"] - o["YMIN_IMAGE"] + 1.0)
    margin = int(max(hh1, hh2) * MARGIN_SCALE + MARGIN_OFFSET + 0.49999)
    ymin, ymax = o["YMIN_IMAGE"] - 1, o["YMAX_IMAGE"] - 1
    o["_ycmax"] = max(ymax + margin, int(o["_my"] + 0.49999) + cleanmargin)
    o["_ycmin"] = min(ymin - margin, int(o["_my"] + 0.49999) - cleanmargin)


def order_and_clean(rows: list[dict], height: int, clean: bool, beta: float, cleanmargin: int,
                    strip_height: int, blankh: int) -> list[dict]:
    """The kept objects (CLEAN applied) in SExtractor's NUMBER order; ``rows`` in completion order."""
    objects: list[dict] = []
    out: list[dict] = []
    flushed = False
    for o in rows:
        o["_slaves"] = []
        if height <= strip_height and not flushed and o["_ymax"] >= height - 1:
            # the scan reached the last row: objects whose margin reaches row 0 are written first
            _flush(objects, out)
            flushed = True
        if clean and not _clean(o, objects, beta, blankh):
            continue
        _margins(o, cleanmargin)
        objects.append(o)
    if height <= strip_height and not flushed:
        _flush(objects, out)
    while objects:
        out.append(_remove(objects, 0))
    return out


def _flush(objects: list, out: list) -> None:
    for i in range(len(objects) - 1, -1, -1):
        if objects[i]["_ycmin"] <= 0:
            out.append(_remove(objects, i))
