"""Durations as people read them: ``0.4 s``, ``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """A short, human duration; tenths only below 10 s (nobody needs ``1234.567 s``)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    total = round(seconds)
    if total < 3600:
        return f"{total // 60} min {total % 60:02d} s"
    return f"{total // 3600} h {total % 3600 // 60:02d} min"
