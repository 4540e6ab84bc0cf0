"""The one region type: a rectangle of whole pixels, ``[y0, y1) × [x0, x1)``.

Used for a field of view in the viewer, a tile of a huge frame and a ``predict(region=...)`` call
alike; converts to and from numpy slices.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    y0: int
    y1: int
    x0: int
    x1: int

    def __post_init__(self):
        for name in ("y0", "y1", "x0", "x1"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.y1 < self.y0 or self.x1 < self.x0:
            raise ValueError(f"empty or inverted window {self}")

    @classmethod
    def full(cls, shape) -> Window:
        return cls(0, int(shape[-2]), 0, int(shape[-1]))

    @classmethod
    def of(cls, region) -> Window:
        """A Window from a Window, ``(y0, y1, x0, x1)`` or ``(slice, slice)``."""
        if isinstance(region, Window):
            return region
        if len(region) == 2 and all(isinstance(s, slice) for s in region):
            ys, xs = region
            return cls(ys.start or 0, ys.stop, xs.start or 0, xs.stop)
        if len(region) == 4:
            return cls(*region)
        raise ValueError(f"a region is (y0, y1, x0, x1) or (slice, slice), got {region!r}")

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        return self.y0, self.y1, self.x0, self.x1

    def clip(self, shape) -> Window:
        h, w = int(shape[-2]), int(shape[-1])
        return Window(min(max(self.y0, 0), h), min(max(self.y1, 0), h), min(max(self.x0, 0), w), min(max(self.x1, 0), w))

    def grow(self, margin: int, shape) -> Window:
        """This window with ``margin`` pixels of context on each side, clipped to ``shape``."""
        m = int(margin)
        return Window(self.y0 - m, self.y1 + m, self.x0 - m, self.x1 + m).clip(shape)

    def within(self, outer: Window) -> tuple[slice, slice]:
        """Slices of this window inside an array that holds ``outer``."""
        return slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0)
