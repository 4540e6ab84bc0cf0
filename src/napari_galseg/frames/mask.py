"""Bit masks (HSC/LSST MASK, DES MSK, Legacy Surveys maskbits, SExtractor FLAG_IMAGE): which bits
mean "bad", chosen by their header names or as a list, applied a window at a time.

LSST/HSC name their bit planes in ``MP_<NAME> = <bit>`` header cards; ``--mask FILE:SAT,BAD`` or
``--mask-bits MP_EDGE,0x10`` picks bits by name, bit number or a hex value. Without a choice the
named planes in :data:`DEFAULT_BAD_PLANES` are bad where the header names them, and any set bit
is bad where it names none.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..background import direct_source

#: LSST/HSC mask planes that mean "no usable pixel" (DETECTED, INTRP, CLIPPED … only inform)
DEFAULT_BAD_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE", "CR", "SUSPECT", "UNMASKEDNAN")


def plane_names(header: Mapping | None) -> dict[str, int]:
    """``{"BAD": 0, "SAT": 1, ...}`` from a mask header's ``MP_*`` cards (LSST/HSC style)."""
    names: dict[str, int] = {}
    for key in (header.keys() if header is not None else ()):
        if str(key).upper().startswith("MP_"):
            try:
                names[str(key)[3:].upper()] = int(header[key])
            except (TypeError, ValueError):
                continue
    return names


def bad_bits(spec: str | None, header: Mapping | None = None) -> int:
    """The bitmask of bad bits: from ``spec`` (names, ``MP_`` names, bit numbers, ``0x`` values,
    comma-separated) or, without one, the default planes the header names (every bit if none)."""
    names = plane_names(header)
    if spec is None or not str(spec).strip():
        if not names:
            return -1  # every bit: a mask without names (DES MSK, FLAG_IMAGE) flags bad pixels as non-zero
        value = 0
        for plane in DEFAULT_BAD_PLANES:
            if plane in names:
                value |= 1 << names[plane]
        if not value:
            raise ValueError(f"the mask names planes {', '.join(sorted(names))} but none of the usual bad ones "
                             f"({', '.join(DEFAULT_BAD_PLANES)}); choose them with --mask-bits")
        return value
    value = 0
    for item in (part.strip() for part in str(spec).split(",")):
        if not item:
            continue
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", item):
            value |= int(item, 16)
        elif item.isdigit():
            bit = int(item)
            if bit > 62:
                raise ValueError(f"mask bit {bit} is out of range (0..62)")
            value |= 1 << bit
        else:
            name = item.upper()
            name = name[3:] if name.startswith("MP_") else name
            if name not in names:
                known = ", ".join(f"{n} ({b})" for n, b in sorted(names.items(), key=lambda nb: nb[1])) or "none"
                raise ValueError(f"mask bit {item!r} is not named in the mask's header (MP_* cards: {known}); "
                                 "give bit numbers (0,3) or a hex value (0x9) instead")
            value |= 1 << names[name]
    if not value:
        raise ValueError(f"--mask-bits {spec!r} selects no bit")
    return value


class MaskPlane:
    """An integer mask plane and its bad bits: slicing gives True where a pixel is masked."""

    ndim = 2
    dtype = np.dtype(bool)

    def __init__(self, source, bits: int = -1, name: str = "the mask"):
        self.source = direct_source(source)
        self.shape = tuple(int(s) for s in np.shape(source))
        if len(self.shape) != 2:
            raise ValueError(f"a mask is 2-D, got shape {self.shape}")
        kind = np.dtype(getattr(source, "dtype", np.int32)).kind
        if kind not in "iub":
            raise ValueError(f"{name} holds {np.dtype(source.dtype)} values; a mask is an integer (bit) image")
        self.bits, self.name = int(bits), name

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        block = self.source[key]
        if hasattr(block, "compute"):
            block = block.compute(scheduler="sync")
        block = np.asarray(block)
        if block.dtype == np.bool_:
            return block.copy()
        if block.dtype.kind == "f":  # integers read through BLANK come back as floats (NaN = blank: bad)
            bad = ~np.isfinite(block)
            block = np.where(bad, 0, block).astype(np.int64)
            return bad | ((block & self.bits) != 0)
        return (block.astype(np.int64, copy=False) & self.bits) != 0

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)
