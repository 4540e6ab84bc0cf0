"""Contrast stretches as FITS Liberator offers them: black/white levels, then a stretch function
(linear, sqrt, log, asinh, power, sinh, squared, histogram equalisation), with an optional
background flattening before stretching.

Levels come from an interval fitted on a reproducible sample (see :mod:`.normalise`) and are stored
as numbers (``black``, ``white``); histogram equalisation stores the sampled cumulative
distribution as ``histeq_levels``. A fitted :class:`StretchParams` therefore maps each pixel value
to the same output whatever tile it sits in.

Background flattening (the ``Background2D`` sky model of :mod:`napari_galseg.background`) is the one part that is *not* stored: it is
estimated on the array being processed, on a coarse grid (every ``step``-th pixel, at most
``background_max_side`` per side) so that huge images stay cheap, and interpolated back per chunk
with global pixel coordinates. Applied to a whole (lazy) image it is tile-independent; applied to a
patch it uses that patch's own background.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ._sampling import check_2d, finite_values, is_dask, strided_sample
from .normalise import IntervalParams, interval_limits, scale_to_unit

STRETCHES = ("linear", "sqrt", "log", "asinh", "power", "sinh", "squared", "histeq")
#: astropy's default parameter of each stretch that has one (``a`` = softening / exponent)
DEFAULT_A = {"log": 1000.0, "asinh": 0.1, "sinh": 1.0 / 3.0, "power": 1.0}
#: number of stored histogram-equalisation levels (all sampled values when fewer)
HISTEQ_POINTS = 4096


@dataclass
class LevelStretchParams(IntervalParams):
    """Black/white levels plus a stretch function; shared by :class:`StretchParams` and the rms channel.

    ``black``/``white`` are fitted from the interval (or set by hand in data units); ``a`` is the
    stretch parameter (log: ``a``, asinh: softening ``a``, sinh: ``a``, power: the exponent), None
    for astropy's default. Values below ``black`` map to 0, above ``white`` to 1; NaN/Inf → ``fill``.
    """

    stretch: str = "linear"
    a: float | None = None
    black: float | None = None
    white: float | None = None
    histeq_levels: list[float] | None = None
    fill: float = 0.0

    @property
    def fitted(self) -> bool:
        base = self.black is not None and self.white is not None
        return base and (self.stretch != "histeq" or bool(self.histeq_levels))

    def unfitted(self):
        return dataclasses.replace(self, black=None, white=None, histeq_levels=None)

    def _check(self) -> None:
        self._check_interval()
        if self.stretch not in STRETCHES:
            raise ValueError(f"unknown stretch {self.stretch!r}; choose one of {', '.join(STRETCHES)}")
        if self.a is not None and not (math.isfinite(self.a) and self.a > 0):
            raise ValueError(f"stretch parameter a must be a positive number, got {self.a}")

    def stretch_a(self) -> float | None:
        return DEFAULT_A.get(self.stretch) if self.a is None else float(self.a)

    def fit_values(self, values: np.ndarray):
        """A copy with levels (and histogram-equalisation levels) from finite sampled ``values``."""
        self._check()
        black, white = (self.black, self.white)
        if black is None or white is None:
            lo, hi = interval_limits(values, self)
            black = lo if black is None else black
            white = hi if white is None else white
        levels = None
        if self.stretch == "histeq":
            unit = np.sort(scale_to_unit(values, black, white, clip=True))
            if unit.size > HISTEQ_POINTS:
                unit = np.quantile(unit, np.linspace(0.0, 1.0, HISTEQ_POINTS))
            levels = [float(v) for v in unit]
        return dataclasses.replace(self, black=float(black), white=float(white), histeq_levels=levels)


def astropy_stretch(params: LevelStretchParams):
    """The astropy.visualization stretch object that ``params`` describes."""
    from astropy.visualization import (
        AsinhStretch,
        HistEqStretch,
        LinearStretch,
        LogStretch,
        PowerStretch,
        SinhStretch,
        SqrtStretch,
        SquaredStretch,
    )

    name, a = params.stretch, params.stretch_a()
    if name == "linear":
        return LinearStretch()
    if name == "sqrt":
        return SqrtStretch()
    if name == "squared":
        return SquaredStretch()
    if name == "log":
        return LogStretch(a)
    if name == "asinh":
        return AsinhStretch(a)
    if name == "sinh":
        return SinhStretch(a)
    if name == "power":
        return PowerStretch(a)
    levels = np.asarray(params.histeq_levels or [], dtype=np.float64)
    if levels.size < 2 or levels.max() == levels.min():
        return LinearStretch()  # a flat sample has no histogram to equalise
    return HistEqStretch(levels)


def level_stretch_block(block: np.ndarray, params: LevelStretchParams, valid: np.ndarray | None = None,
                        background: np.ndarray | None = None) -> np.ndarray:
    """Apply fitted levels + stretch to one in-memory block (float32 out); invalid pixels → ``fill``."""
    x = np.asarray(block, dtype=np.float64)
    ok = np.isfinite(x) if valid is None else valid & np.isfinite(x)
    x = np.where(ok, x, 0.0)
    if background is not None:
        x = x - background
    y = scale_to_unit(x, params.black, params.white, clip=True)
    y = astropy_stretch(params)(y, clip=True)
    y[~ok] = params.fill
    return y.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# background flattening


@dataclass
class CoarseBackground:
    """A smooth background known on a regular mesh of nodes in full-image pixel coordinates.

    Node ``(i, j)`` sits at full-image pixel ``(origin + i * spacing, origin + j * spacing)`` (the
    centres of photutils' boxes). Values in between are bilinear; beyond the outer nodes the mesh is
    extrapolated linearly, so a sky gradient is removed right up to the image edges.
    """

    mesh: np.ndarray
    origin: float
    spacing: float

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The background over full-image rows ``y0:y1`` and columns ``x0:x1``."""
        return self._at(np.arange(y0, y1), np.arange(x0, x1))

    def at_grid(self, start: int, step: int, ny: int, nx: int) -> np.ndarray:
        """The background at the full-image pixels ``start + i * step`` (for a strided sample)."""
        return self._at(start + step * np.arange(ny), start + step * np.arange(nx))

    def _at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        rows = _interp_axis(self.mesh, (ys - self.origin) / self.spacing, axis=0)
        return _interp_axis(rows, (xs - self.origin) / self.spacing, axis=1)


def _interp_axis(array: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``array`` along ``axis`` at fractional ``coords``, linear beyond the ends."""
    n = array.shape[axis]
    if n == 1:
        return np.repeat(array, len(coords), axis=axis)
    i0 = np.clip(np.floor(coords).astype(int), 0, n - 2)
    w = coords - i0
    a0 = np.take(array, i0, axis=axis)
    a1 = np.take(array, i0 + 1, axis=axis)
    w = w[:, None] if axis == 0 else w[None, :]
    return a0 + (a1 - a0) * w


def estimate_background(image, box_size: int = 64, filter_size: int = 1, max_side: int = 2048) -> CoarseBackground:
    """The sky mesh of photutils' ``Background2D`` (3σ-clipped SExtractor mode per box, the
    project's one sky model: :mod:`napari_galseg.background`) on a coarse grid of ``image``.

    The grid takes every ``step``-th pixel so that at most ``max_side`` pixels per side are read;
    the box size is scaled by the same step. NaN/Inf pixels are masked. Only the low-resolution
    mesh is kept (``CoarseBackground``): the full-size background is interpolated per chunk.
    """
    from ..background import estimate_mesh

    check_2d(image, "image")
    ny, nx = image.shape
    step = max(1, math.ceil(max(ny, nx) / max_side))
    start = (step - 1) // 2
    sub = image[start::step, start::step]
    if is_dask(sub):
        sub = sub.compute()
    sub = np.asarray(sub, dtype=np.float64)
    mask = ~np.isfinite(sub)
    if mask.all():
        raise ValueError("the image has no finite pixels: cannot estimate a background")
    box = max(4, round(box_size / step))
    box = min(box, *sub.shape)
    filt = int(filter_size) | 1  # photutils wants odd filter sizes
    try:
        mesh = estimate_mesh(np.where(mask, np.nan, sub).astype(np.float32), box, filt, 50.0).bkg_filled
    except ValueError as exc:
        raise ValueError(f"background flattening failed ({exc}); try a larger background_box "
                         "or switch flatten_background off") from exc
    return CoarseBackground(mesh, origin=start + step * (box - 1) / 2.0, spacing=float(step * box))


@dataclass
class StretchParams(LevelStretchParams):
    """A FITS-Liberator-like stretch of the image: optional background flattening, levels, stretch.

    The default levels put black at the 84th percentile (about sky + 1 sigma when sources cover less
    than ~10 % of the pixels, so the noise goes dark) and white at the 99.9th percentile.
    ``flatten_background`` subtracts a photutils ``Background2D`` estimate (boxes of
    ``background_box`` px) before the levels are applied. ``background_filter`` > 1 median-filters
    the box mesh (robust to a big galaxy filling a box, but it bends a strong gradient at the edges).
    """

    stretch: str = "asinh"
    interval: str = "asymmetric_percentile"
    lower_percentile: float = 84.0
    upper_percentile: float = 99.9
    flatten_background: bool = False
    background_box: int = 64
    background_filter: int = 1
    background_max_side: int = 2048

    def background(self, image) -> CoarseBackground | None:
        if not self.flatten_background:
            return None
        return estimate_background(image, self.background_box, self.background_filter, self.background_max_side)


def fit_level_stretch(source, params: LevelStretchParams, background: CoarseBackground | None = None,
                      valid_fn=None, what: str = "image"):
    """Fit ``params`` on a reproducible sample of ``source`` (less ``background`` if given)."""
    params._check()
    check_2d(source, what)
    sample, start, step = strided_sample(source, params.max_sample)
    if valid_fn is not None:
        sample = np.where(valid_fn(sample), sample, np.nan)
    if background is not None:
        sample = sample - background.at_grid(start, step, *sample.shape)
    return params.fit_values(finite_values(sample, what))


def fit_stretch(image, params: StretchParams | None = None, **changes) -> StretchParams:
    """Fit levels (and histogram levels) of ``params`` on ``image`` (numpy or dask)."""
    params = dataclasses.replace(params or StretchParams(), **changes)
    return fit_level_stretch(image, params, params.background(image))


def stretch(image, params: StretchParams | None = None, **changes):
    """Stretch a 2-D image to [0, 1] (float32); numpy in → numpy out, dask in → lazy dask out."""
    params = dataclasses.replace(params or StretchParams(), **changes)
    params._check()
    check_2d(image, "image")
    background = params.background(image)
    if not params.fitted:
        params = fit_level_stretch(image, params, background)
    if not is_dask(image):
        bg = None if background is None else background.region(0, image.shape[0], 0, image.shape[1])
        return level_stretch_block(image, params, background=bg)

    def block_fn(block, block_info=None):
        bg = None
        if background is not None:
            (y0, y1), (x0, x1) = block_info[0]["array-location"]
            bg = background.region(y0, y1, x0, x1)
        return level_stretch_block(block, params, background=bg)

    return image.map_blocks(block_fn, dtype=np.float32)
