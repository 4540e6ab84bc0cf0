"""Per-pixel features that see galaxies: signal-to-noise at several scales (the forest's default).

The study's 13 features (:mod:`.features`) describe the *look* of a normalised picture — colour,
texture, co-occurrence statistics — and a classifier trained on one field learns that field's
brightness scale: on a field of another depth or PSF it finds almost nothing (IoU 0.17). Galaxies are
better described in units of the noise, which is the same on every field:

- ``snr``: the pixel's signal-to-noise, ``(image − sky) / rms``, with the sky a smooth background
  mesh (:mod:`napari_galseg.background`) and ``rms`` the given noise map (or the mesh rms);
- ``rel_rms``: the rms map divided by its median — where the field is shallow or deep;
- per scale σ (``scales``, px): ``snr_σ``, the Gaussian-smoothed S/N divided by the noise of the
  smoothed image (the S/N of a matched filter of width σ: faint extended outskirts that no single
  pixel shows stand out at large σ); ``dog_σ``, smoothed S/N at σ minus at the next scale (blob
  size; not for the largest scale);
  ``hess_max_σ``, ``hess_min_σ``, the eigenvalues of the Hessian of the smoothed S/N times σ² (a
  galaxy's inside is curved down in both directions, a saddle between two is not); ``grad_σ``, the
  gradient magnitude times σ (edges);
- ``local_std``: the standard deviation of ``snr`` in a ``texture_window`` box (texture: ~1 on
  sky, larger on structure).

Every feature is a linear filter (or a pointwise function of linear filters) of ``snr`` with a
bounded support, so a tile with :func:`snr_feature_halo` pixels of context gives exactly the values
of the whole image (tested). The Hessian and gradient use central differences of the smoothed map.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

#: Gaussian support in units of sigma (scipy's ``truncate``): the halo and the cost follow it
TRUNCATE = 3.0


@dataclasses.dataclass(frozen=True)
class SnrFeatureSpec:
    """What decides the feature values; stored with a trained model."""

    scales: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    texture_window: int = 5

    def __post_init__(self):
        if not self.scales or any(not (s > 0 and math.isfinite(s)) for s in self.scales):
            raise ValueError(f"scales must be positive numbers of pixels, got {self.scales}")
        if self.texture_window < 3 or self.texture_window % 2 == 0:
            raise ValueError(f"texture_window must be an odd number >= 3, got {self.texture_window}")


def snr_feature_names(spec: SnrFeatureSpec) -> list[str]:
    names = ["snr", "rel_rms"]
    scales = sorted(spec.scales)
    for i, s in enumerate(scales):
        names += [f"snr_{s:g}"] + ([f"dog_{s:g}"] if i + 1 < len(scales) else [])
        names += [f"hess_max_{s:g}", f"hess_min_{s:g}", f"grad_{s:g}"]
    return names + ["local_std"]


def snr_feature_halo(spec: SnrFeatureSpec) -> int:
    """Context a tile needs on each side: the widest Gaussian's radius plus the central differences
    (2 px), so the tile's core never sees the reflected edge of its window."""
    return max(int(TRUNCATE * max(spec.scales) + 0.5), spec.texture_window // 2) + 2


def _smoothing_noise(sigma: float) -> float:
    """Standard deviation of unit white noise after scipy's truncated, normalised Gaussian."""
    radius = int(TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    return float(np.sum(k**2))  # 2-D kernel = outer product: its sum of squares is (Σk²)², the std Σk²


def _curvatures(g: np.ndarray, sigma: float, out: np.ndarray) -> None:
    """Hessian eigenvalues (scale-normalised by σ²) and gradient magnitude (× σ) of ``g`` by central
    differences, written into ``out[0:3]`` (0 on the outermost pixels)."""
    hyy, hxx, hxy = out[0], out[1], out[2]  # used as scratch, overwritten below
    hyy[...] = 0
    hxx[...] = 0
    hxy[...] = 0
    hyy[1:-1] = g[2:] - 2 * g[1:-1] + g[:-2]
    hxx[:, 1:-1] = g[:, 2:] - 2 * g[:, 1:-1] + g[:, :-2]
    gy = np.zeros_like(g)
    gy[1:-1] = 0.5 * (g[2:] - g[:-2])
    hxy[:, 1:-1] = 0.5 * (gy[:, 2:] - gy[:, :-2])
    gx = np.zeros_like(g)
    gx[:, 1:-1] = 0.5 * (g[:, 2:] - g[:, :-2])
    half_trace = 0.5 * (hyy + hxx)
    root = np.sqrt(0.25 * (hyy - hxx) ** 2 + hxy**2)
    s2 = np.float32(sigma * sigma)
    np.multiply(half_trace + root, s2, out=out[0])
    np.multiply(half_trace - root, s2, out=out[1])
    np.multiply(np.hypot(gy, gx), np.float32(sigma), out=out[2])


def smoothed_snr(snr: np.ndarray, scales) -> np.ndarray:
    """(len(scales), ny, nx) float32: ``snr`` smoothed at each scale, in units of the smoothed noise
    (the ``snr_σ`` planes of :func:`snr_features`)."""
    snr = np.nan_to_num(np.asarray(snr, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.empty((len(scales),) + snr.shape, np.float32)
    for i, s in enumerate(scales):
        g = ndimage.gaussian_filter(snr, float(s), mode="reflect", truncate=TRUNCATE)
        np.multiply(g, np.float32(1.0 / _smoothing_noise(float(s))), out=out[i])
    return out


def snr_features(stack: np.ndarray, spec: SnrFeatureSpec) -> np.ndarray:
    """Feature planes (F, ny, nx) float32 from a (2, ny, nx) stack of ``snr`` and ``rel_rms``.

    Non-finite ``snr`` counts as 0 (sky); order as :func:`snr_feature_names`.
    """
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.shape[0] != 2:
        raise ValueError(f"snr_features needs a (2, ny, nx) stack of snr and rel_rms, got shape {stack.shape}")
    out = np.empty((len(snr_feature_names(spec)),) + stack.shape[1:], np.float32)
    snr = out[0]
    snr[...] = np.nan_to_num(stack[0], nan=0.0, posinf=0.0, neginf=0.0)
    out[1] = np.nan_to_num(stack[1], nan=1.0, posinf=1.0, neginf=1.0)
    scales = sorted(spec.scales)
    k = 2
    g = ndimage.gaussian_filter(snr, scales[0], mode="reflect", truncate=TRUNCATE)
    for i, s in enumerate(scales):
        np.multiply(g, np.float32(1.0 / _smoothing_noise(s)), out=out[k])
        k += 1
        g_next = ndimage.gaussian_filter(snr, scales[i + 1], mode="reflect", truncate=TRUNCATE) if i + 1 < len(scales) else None
        if g_next is not None:
            np.subtract(g, g_next, out=out[k])
            k += 1
        _curvatures(g, s, out[k : k + 3])
        k += 3
        g = g_next
    w = spec.texture_window
    mean = ndimage.uniform_filter(snr, w, mode="reflect")
    mean_sq = ndimage.uniform_filter(snr * snr, w, mode="reflect")
    np.sqrt(np.maximum(mean_sq - mean * mean, 0.0), out=out[k])
    return out


# -- the input stack: (snr, rel_rms) of an image --------------------------------------------------


class SnrInputs:
    """``(snr, rel_rms)`` stacks of images, numpy or lazy: the sky is a background mesh estimated once
    over the whole image (the last image's mesh is kept: a viewer asks for many regions of one image),
    the noise is the rms map or, without one, the mesh rms."""

    def __init__(self, box: int = 64, n_threads: int = 1):
        self.box, self.n_threads = int(box), int(n_threads)
        self._last = None  # (image, rms, mesh, rms median)

    def sky(self, image, rms):
        """Background mesh and median rms of ``image``."""
        from ..background import estimate_mesh
        from .features import sample_image

        last = self._last
        if last is not None and last[0] is image and last[1] is rms:
            return last[2], last[3]
        try:
            mesh = estimate_mesh(image, self.box, n_threads=self.n_threads)
        except ValueError:  # every box more than 10 % source (a small, crowded image): use them all
            mesh = estimate_mesh(image, self.box, exclude_percentile=100.0, n_threads=self.n_threads)
        if rms is None:
            median = mesh.rms_median
        else:
            sample = sample_image(rms)
            sample = sample[np.isfinite(sample) & (sample > 0)]
            median = float(np.median(sample)) if sample.size else 1.0
        self._last = (image, rms, mesh, median)
        return mesh, median

    def stack(self, image, rms, tile: int = 1024, lazy: bool = False):
        """The (2, ny, nx) float32 stack and the valid pixels; dask arrays chunked by ``tile`` when
        ``lazy`` or for dask input."""
        from ..arrays import is_dask
        from .features import valid_pixels

        mesh, median = self.sky(image, rms)
        if not (lazy or is_dask(image) or is_dask(rms)):
            full = (slice(0, image.shape[0]), slice(0, image.shape[1]))
            rms_block = None if rms is None else np.asarray(rms, dtype=np.float32)
            return snr_block(np.asarray(image, dtype=np.float32), rms_block, mesh, median, full), valid_pixels(image, rms)
        import dask.array as da

        image = image.rechunk(tile) if is_dask(image) else da.from_array(image, chunks=tile)
        args = [image]
        if rms is not None:
            args.append(rms.rechunk(image.chunks) if is_dask(rms) else da.from_array(rms, chunks=image.chunks))

        def block(img, rms_blk=None, block_info=None):
            (y0, y1), (x0, x1) = block_info[0]["array-location"]
            return snr_block(np.asarray(img, dtype=np.float32), None if rms_blk is None else np.asarray(rms_blk, np.float32),
                             mesh, median, (slice(y0, y1), slice(x0, x1)))

        stack = da.map_blocks(block, *args, new_axis=0, chunks=((2,), *image.chunks), dtype=np.float32,
                              meta=np.empty((0, 0, 0), np.float32))
        return stack, valid_pixels(image, args[1] if rms is not None else None)


def snr_block(image: np.ndarray, rms: np.ndarray | None, mesh, rms_median: float, window) -> np.ndarray:
    """(2, ny, nx) float32 over ``window`` of the frame: ``(image − sky) / rms`` (0 where not valid)
    and ``rms / median rms``; the mesh gives the sky (and the rms when no map is given)."""
    bkg = mesh.evaluate("bkg", window)
    noise = mesh.evaluate("rms", window) if rms is None else rms
    with np.errstate(invalid="ignore", divide="ignore"):
        good = np.isfinite(image) & np.isfinite(noise) & (noise > 0)
        snr = np.where(good, (image - bkg) / np.where(good, noise, 1), 0).astype(np.float32)
        rel = np.where(good, noise / np.float32(rms_median), 1).astype(np.float32)
    return np.stack([snr, rel])
