"""Per-pixel features for the Random Forest pixel classifier (the study's 13, and optional extras).

The study describes every pixel by 13 numbers: the intensity channels of the composite (3 with the
default recipe), a local binary pattern, and 9 Haralick statistics of the grey-level co-occurrence
matrix (GLCM) of a small window around the pixel. Computing a GLCM per pixel with a Python loop is
hopeless on survey frames, so here everything is done with whole-image array operations:

* the texture channel is quantised once to ``levels`` grey levels over a *fixed* range (fitted on
  the training data and stored with the model), so tiles of a huge image see the same levels;
* for each direction ``d`` the pair ``(a, b) = (q(u), q(u + d))`` is formed at every pixel ``u``;
* every statistic of the window's GLCM that is linear in the GLCM (contrast, correlation, variance,
  inverse difference moment, sum average, sum variance) is a box sum of a per-pixel product of ``a``
  and ``b``, done with integral images in exact integer arithmetic;
* the three that are not (angular second moment, entropy, sum entropy) need the per-pixel histogram
  of pair codes, obtained with one box sum per grey-level pair (``levels * (levels + 1) / 2`` of them,
  36 for 8 levels) — a loop over *bins*, never over pixels.

Conventions (documented because implementations differ): the window is ``window x window`` pixels
centred on the pixel; pairs count only when both pixels lie inside the window and the image
(exactly ``skimage.feature.graycomatrix`` on the window patch); the GLCM is symmetric, at distance 1,
and the features are computed per direction for 0, 45, 90 and 135 degrees and *averaged over the four
directions* (``mahotas.features.haralick(..., return_mean=True)``); entropies use log base 2 and the
"variance" is the variance of the symmetric GLCM's marginal, as in mahotas; correlation is 1 for a
window of constant grey level (as in mahotas and scikit-image). Pixels that are NaN are left out of
every pair; a window with no valid pair gets 0 for every texture feature.

The local binary pattern is scikit-image's rotation-invariant "uniform" pattern (P=8, R=1), taken on
the texture channel quantised to 256 levels over the same range (integer input, so noise at the 1e-7
level cannot flip bits).

Optional extras (``extra_sigmas``), per Gaussian scale sigma of the texture channel: the smoothed
value, a difference of Gaussians (sigma vs 1.6 sigma) and the two Hessian eigenvalues — the usual
ilastik/APOC set, useful on real data; off by default so the default feature set is the study's.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from ..arrays import is_dask

HARALICK_NAMES = (
    "asm",  # angular second moment (energy squared)
    "contrast",
    "correlation",
    "variance",  # "sum of squares: variance"
    "idm",  # inverse difference moment (homogeneity)
    "sum_average",
    "sum_variance",
    "sum_entropy",
    "entropy",
)

#: (row, col) offsets at distance 1 for 0, 45, 90 and 135 degrees (symmetric GLCM, so signs do not matter)
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Everything that decides the feature values; stored with a trained model."""

    window: int = 7
    levels: int = 8
    texture_channel: int = 0
    #: (low, high) of the texture channel mapped to grey levels 0 .. levels-1 (fitted on training data)
    value_range: tuple[float, float] = (0.0, 1.0)
    extra_sigmas: tuple[float, ...] = ()

    def __post_init__(self):
        if self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"window must be an odd number >= 3, got {self.window}")
        if not 2 <= self.levels <= 64:
            raise ValueError(f"levels must be between 2 and 64, got {self.levels}")
        lo, hi = self.value_range
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"value_range must be two finite numbers low < high, got {self.value_range}")
        if any(s <= 0 for s in self.extra_sigmas):
            raise ValueError(f"extra_sigmas must be positive, got {self.extra_sigmas}")


def feature_names(n_channels: int, spec: FeatureSpec) -> list[str]:
    """Names of the feature planes ``pixel_features`` returns, in order."""
    names = [f"channel_{i}" for i in range(n_channels)] + ["lbp"]
    names += [f"haralick_{n}" for n in HARALICK_NAMES]
    for s in spec.extra_sigmas:
        names += [f"gauss_{s:g}", f"dog_{s:g}", f"hessian_max_{s:g}", f"hessian_min_{s:g}"]
    return names


def feature_halo(spec: FeatureSpec) -> int:
    """Pixels of context a tile needs on each side for its features to equal the untiled ones."""
    halo = spec.window // 2 + 1  # window plus the distance-1 partner of a pair
    for s in spec.extra_sigmas:
        halo = max(halo, int(4.0 * 1.6 * s + 0.5) + 2)
    return halo


def quantize(channel: np.ndarray, levels: int, value_range: tuple[float, float]) -> np.ndarray:
    """Grey levels 0 .. levels-1 over a fixed range (values outside are clipped); NaN becomes -1."""
    lo, hi = value_range
    x = np.asarray(channel, dtype=np.float64)
    finite = np.isfinite(x)
    scaled = (np.where(finite, x, lo) - lo) * (levels / (hi - lo))
    q = np.clip(np.floor(scaled), 0, levels - 1).astype(np.int16)
    q[~finite] = -1
    return q


# -- box sums with integral images -----------------------------------------------------------------
class _BoxSummer:
    """Sums of a per-pixel array over a fixed rectangle of offsets around every pixel (zero outside)."""

    def __init__(self, shape: tuple[int, int], r0: int, r1: int, c0: int, c1: int):
        self.shape = shape
        self.r0, self.r1, self.c0, self.c1 = r0, r1, c0, c1
        self.pad = max(abs(r0), abs(r1), abs(c0), abs(c1)) + 1

    def __call__(self, values: np.ndarray, dtype=np.int64) -> np.ndarray:
        ny, nx = self.shape
        p = self.pad
        padded = np.zeros((ny + 2 * p + 1, nx + 2 * p + 1), dtype=dtype)
        # padded[1:, 1:] holds the zero-padded array so that the cumulative sums start with a zero row/col
        padded[1 + p : 1 + p + ny, 1 + p : 1 + p + nx] = values
        np.cumsum(padded, axis=0, out=padded)
        np.cumsum(padded, axis=1, out=padded)
        # sum over rows y+r0 .. y+r1 (padded index y+p+r0+1 .. y+p+r1+1) and the same for columns
        ra, rb = p + self.r0, p + self.r1 + 1
        ca, cb = p + self.c0, p + self.c1 + 1
        return (
            padded[rb : rb + ny, cb : cb + nx]
            - padded[ra : ra + ny, cb : cb + nx]
            - padded[rb : rb + ny, ca : ca + nx]
            + padded[ra : ra + ny, ca : ca + nx]
        )


def _pairs(q: np.ndarray, dr: int, dc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey levels a = q(u), b = q(u + d) at every u, and whether the pair exists (both valid, inside)."""
    ny, nx = q.shape
    b = np.full_like(q, -1)
    rs = slice(max(0, -dr), ny - max(0, dr))
    cs = slice(max(0, -dc), nx - max(0, dc))
    rt = slice(max(0, dr), ny - max(0, -dr))
    ct = slice(max(0, dc), nx - max(0, -dc))
    b[rs, cs] = q[rt, ct]
    valid = (q >= 0) & (b >= 0)
    a = np.where(valid, q, 0).astype(np.int64)
    b = np.where(valid, b, 0).astype(np.int64)
    return a, b, valid


def _present(values: np.ndarray) -> np.ndarray:
    """The non-negative values that occur in a small-integer array (bins worth a box sum)."""
    counts = np.bincount(values.ravel().astype(np.int64) + 1)
    return np.flatnonzero(counts[1:])


def _xlog2x_table(n_max: int) -> np.ndarray:
    n = np.arange(n_max + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, n * np.log2(np.maximum(n, 1)), 0.0)


def haralick_image(q: np.ndarray, levels: int, window: int) -> np.ndarray:
    """The 9 Haralick features of every pixel's ``window`` x ``window`` GLCM, shape (9, ny, nx).

    ``q`` holds grey levels 0 .. levels-1 (int) and -1 for missing pixels. See the module docstring
    for the conventions; the result equals mahotas' ``haralick(patch, return_mean=True)[:9]`` on
    each window patch.
    """
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(f"haralick_image needs a 2-D image, got shape {q.shape}")
    if q.size and q.max() >= levels:
        raise ValueError(f"grey levels must be below levels={levels}, found {int(q.max())}")
    ny, nx = q.shape
    h = window // 2
    xlogx = _xlog2x_table(window * window)
    out = np.zeros((9, ny, nx), dtype=np.float64)
    for dr, dc in DIRECTIONS:
        a, b, valid = _pairs(q, dr, dc)
        # u and u+d must both be inside the window centred on the pixel
        box = _BoxSummer((ny, nx), -h + max(0, -dr), h - max(0, dr), -h + max(0, -dc), h - max(0, dc))
        n = box(valid, np.int64)
        s1 = box(a + b)
        s2 = box(a * a + b * b)
        sab = box(a * b)
        d = a - b
        sd2 = box(d * d)
        sidm = box(np.where(valid, 1.0 / (1.0 + d * d), 0.0), np.float64)
        ssum2 = box((a + b) ** 2)

        # histogram-based statistics: one box count per unordered grey-level pair and per grey-level sum
        # (small integer dtypes and integer accumulators: these loops are most of the work)
        code = np.where(valid, np.minimum(a, b) * levels + np.maximum(a, b), -1).astype(np.int16)
        sum_mlogm = np.zeros((ny, nx), dtype=np.float64)
        asm_diag = np.zeros((ny, nx), dtype=np.int64)
        asm_off = np.zeros((ny, nx), dtype=np.int64)
        diag = np.zeros((ny, nx), dtype=np.int64)
        for c in _present(code):
            m = box(code == c, np.int32)
            sum_mlogm += np.take(xlogx, m)
            i, j = divmod(int(c), levels)
            if i == j:
                asm_diag += m * m
                diag += m
            else:
                asm_off += m * m
        asm_num = asm_diag + 0.5 * asm_off
        s = np.where(valid, a + b, -1).astype(np.int16)
        sum_sum_mlogm = np.zeros((ny, nx), dtype=np.float64)
        for k in _present(s):
            sum_sum_mlogm += np.take(xlogx, box(s == k, np.int32))

        has = n > 0
        nf = np.where(has, n, 1).astype(np.float64)
        log2n = np.log2(nf)
        # exact integer numerators: var * 4N^2 = 2N*S2 - S1^2, cov * 4N^2 = 4N*Sab - S1^2
        var_num = 2 * n * s2 - s1 * s1
        cov_num = 4 * n * sab - s1 * s1
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(var_num > 0, cov_num / np.where(var_num > 0, var_num, 1), 1.0)
        sum_avg = s1 / nf
        feats = (
            asm_num / (nf * nf),
            sd2 / nf,
            corr,
            var_num / (4.0 * nf * nf),
            sidm / nf,
            sum_avg,
            ssum2 / nf - sum_avg**2,
            log2n - sum_sum_mlogm / nf,
            log2n - sum_mlogm / nf + (n - diag) / nf,  # symmetric: off-diagonal pairs split in two cells
        )
        for k, f in enumerate(feats):
            out[k] += np.where(has, f, 0.0)
    out /= len(DIRECTIONS)
    return out.astype(np.float32)


def local_binary_pattern_image(channel: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Rotation-invariant uniform LBP (P=8, R=1) of the channel quantised to 256 levels; values 0..9."""
    from skimage.feature import local_binary_pattern

    q = quantize(channel, 256, value_range)
    q = np.where(q < 0, 0, q).astype(np.uint8)
    return local_binary_pattern(q, P=8, R=1, method="uniform").astype(np.float32)


def _scale_features(channel: np.ndarray, sigma: float) -> list[np.ndarray]:
    x = np.nan_to_num(np.asarray(channel, dtype=np.float32))
    g = ndimage.gaussian_filter(x, sigma, mode="reflect")
    g2 = ndimage.gaussian_filter(x, 1.6 * sigma, mode="reflect")
    hrr = ndimage.gaussian_filter(x, sigma, order=(2, 0), mode="reflect")
    hcc = ndimage.gaussian_filter(x, sigma, order=(0, 2), mode="reflect")
    hrc = ndimage.gaussian_filter(x, sigma, order=(1, 1), mode="reflect")
    half_trace = 0.5 * (hrr + hcc)
    root = np.sqrt(0.25 * (hrr - hcc) ** 2 + hrc**2)
    return [g, g - g2, half_trace + root, half_trace - root]


def pixel_features(channels: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Feature planes (F, ny, nx) float32 for a numpy (C, ny, nx) stack of recipe channels.

    Order as :func:`feature_names`. Non-finite channel values become 0 in the intensity planes and
    are left out of the texture statistics.
    """
    channels = np.asarray(channels)
    if channels.ndim != 3:
        raise ValueError(f"pixel_features needs a (channels, ny, nx) stack, got shape {channels.shape}")
    if not 0 <= spec.texture_channel < channels.shape[0]:
        raise ValueError(
            f"texture_channel={spec.texture_channel} but the recipe gives {channels.shape[0]} channels"
        )
    texture = channels[spec.texture_channel]
    planes = [np.nan_to_num(channels.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)]
    planes.append(local_binary_pattern_image(texture, spec.value_range)[None])
    planes.append(haralick_image(quantize(texture, spec.levels, spec.value_range), spec.levels, spec.window))
    for s in spec.extra_sigmas:
        planes.append(np.stack(_scale_features(texture, s)))
    return np.concatenate(planes, axis=0).astype(np.float32, copy=False)


def pixel_features_lazy(channels, spec: FeatureSpec):
    """Dask version of :func:`pixel_features`: per chunk with a halo, equal to the untiled result."""
    n_out = len(feature_names(channels.shape[0], spec))
    return map_stack_with_halo(lambda x: pixel_features(x, spec), channels, feature_halo(spec), n_out, np.float32)


def map_stack_with_halo(fn, stack, halo: int, n_out: int, dtype):
    """Apply ``fn((C, ny, nx) block) -> (n_out, ny, nx)`` to a dask stack chunk by chunk with a halo.

    Each chunk gets ``halo`` pixels of its neighbours; the image's own edges get none
    (``boundary="none"``), so ``fn`` sees them exactly as in an untiled call and the result equals
    ``fn(whole stack)`` whenever ``fn``'s output at a pixel depends only on inputs within ``halo``.
    """
    from dask.array.overlap import overlap, trim_internal

    depth = {0: 0, 1: int(halo), 2: int(halo)}
    padded = overlap(stack.rechunk({0: -1}), depth=depth, boundary="none")
    out = padded.map_blocks(fn, chunks=((n_out,),) + padded.chunks[1:], dtype=dtype,
                            meta=np.empty((0, 0, 0), dtype=dtype))
    return trim_internal(out, depth, boundary="none")


def fit_value_range(texture_samples: Sequence[np.ndarray], low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Percentile range of the texture channel's finite values, for :class:`FeatureSpec.value_range`."""
    values = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in texture_samples])
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("the texture channel has no finite pixels; check the image and the recipe")
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        raise ValueError("the image is constant (every pixel has the same value); there is no texture to learn from")
    return float(lo), float(hi)


# -- helpers shared by the pixel-wise segmenters (kmeans, forest) ------------------------------------
def check_image(image, rms=None, other=None, other_name: str = "truth") -> None:
    """2-D inputs of one shape, with some finite, non-constant pixels; clear messages otherwise."""
    if image is None:
        raise ValueError("no image given")
    if getattr(image, "ndim", None) != 2:
        raise ValueError(f"the image must be 2-D (ny, nx), got shape {tuple(getattr(image, 'shape', ()))}; "
                         "pick one plane of a cube or one HDU")
    for arr, what in ((rms, "rms map"), (other, other_name)):
        if arr is not None and tuple(arr.shape) != tuple(image.shape):
            raise ValueError(f"the {what} has shape {tuple(arr.shape)} but the image has shape "
                             f"{tuple(image.shape)}; they must match pixel for pixel")
    sample = sample_image(image)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        raise ValueError("the image has no finite pixels (all NaN or inf): check that the right file/HDU was opened")
    if finite.min() == finite.max():
        raise ValueError(f"the image is constant (every pixel is {finite.min():g}): there is nothing to segment")


def sample_image(image, max_pixels: int = 1_000_000) -> np.ndarray:
    """A reproducible strided sample of a 2-D numpy or dask image (the whole image when small)."""
    ny, nx = image.shape
    step = max(1, int(math.ceil(math.sqrt(ny * nx / max_pixels))))
    sample = image[::step, ::step]
    return np.asarray(sample.compute() if is_dask(sample) else sample, dtype=np.float64)


def resolve_recipe(recipe, image, rms):
    """The fitted Recipe for these inputs: the stored one, or a default fitted on ``image``/``rms``.

    ``recipe`` may be None (then the study's default recipe, or its image-only variant without an
    rms map), a Recipe, a recipe dict, a name or a path. An unfitted recipe is fitted here.
    """
    from ..preprocess import as_recipe, default_recipe, image_only_recipe

    rec = as_recipe(recipe)
    if rec is None:
        rec = default_recipe() if rms is not None else image_only_recipe()
    if rec.needs_rms and rms is None:
        raise ValueError(f"this model's recipe uses an rms map (channels {rec.channel_names}): pass rms=... (--rms)")
    if not rec.is_fitted:
        rec = rec.fit(image, rms if rec.needs_rms else None)
    return rec


def valid_pixels(image, rms=None):
    """Pixels that can be classified: finite image (and positive finite rms when given)."""
    if is_dask(image) or is_dask(rms):
        import dask.array as da

        ok = da.isfinite(image)
        if rms is not None:
            ok &= da.isfinite(rms) & (rms > 0)
        return ok
    ok = np.isfinite(image)
    if rms is not None:
        rms = np.asarray(rms)
        with np.errstate(invalid="ignore"):
            ok &= np.isfinite(rms) & (rms > 0)
    return ok


def counting_progress(fn, total: int, progress: Callable[[int, int, str], None] | None, message: str):
    """``fn`` that reports progress(done, total) after each call (thread-safe; dask runs blocks in threads)."""
    if progress is None:
        return fn
    import threading

    lock = threading.Lock()
    done = [0]

    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        with lock:
            done[0] += 1
            progress(min(done[0], total), total, message)
        return out

    return wrapped
