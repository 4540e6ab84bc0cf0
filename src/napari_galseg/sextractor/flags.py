"""FLAG_IMAGE / FLAG_TYPE (``flag.c``): IMAFLAGS_ISO and NIMAFLAGS_ISO of each detection.

Each flag map's values are combined over a detection's pixels, zero values skipped: OR, AND (which
in SExtractor starts from 0 and so always gives 0: reproduced), MIN, MAX (the extreme value and
how many pixels hold it) or MOST (the most frequent value, first met on ties); NIMAFLAGS_ISO counts
the pixels that enter. CLEAN merges a swallowed object's flags into its master as mergeflags() does.
"""
from __future__ import annotations

import numpy as np

FLAG_TYPES = ("OR", "AND", "MIN", "MAX", "MOST")


def as_flags(data: np.ndarray, name: str) -> np.ndarray:
    """A flag map as SExtractor's unsigned 32-bit FLAGTYPE."""
    from .errors import SExtractorInputError

    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all() or (arr != np.round(arr)).any():
            raise SExtractorInputError(f"{name} (FLAG_IMAGE): the flag map holds non-integer values; give an integer "
                                       "FITS image of flag bits")
    return arr.astype(np.int64).astype(np.uint32)


def combine(values: np.ndarray, kind: str) -> tuple[int, int]:
    """getflags() of one map over one detection's pixel values (in its pixel-list order)."""
    v = values[values != 0]
    if v.size == 0:
        return 0, 0
    if kind == "OR":
        return int(np.bitwise_or.reduce(v)), int(v.size)
    if kind == "AND":
        return 0, int(v.size)
    if kind in ("MIN", "MAX"):
        best = int(v.min() if kind == "MIN" else v.max())
        return best, int((v == best).sum())
    uniq, first, counts = np.unique(v, return_index=True, return_counts=True)
    order = np.argsort(first)  # SExtractor's stack keeps values in the order first met; ties keep the first
    uniq, counts = uniq[order], counts[order]
    k = int(np.argmax(counts))
    return int(uniq[k]), int(counts[k])


def merge(master: tuple[int, int], slave: tuple[int, int], kind: str) -> tuple[int, int]:
    """mergeflags(): the (flag, count) of a master after CLEAN merges ``slave`` into it."""
    (mf, mn), (sf, sn) = master, slave
    if kind == "OR":
        return mf | sf, mn + sn
    if kind == "AND":
        return mf & sf, mn + sn
    if kind in ("MIN", "MAX"):
        if sf == mf:
            return mf, mn + sn
        better = sf < mf if kind == "MIN" else sf > mf
        return (sf, sn) if better else (mf, mn)
    return (sf, sn) if sn > mn else (mf, mn)
