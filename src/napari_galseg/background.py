"""A smooth sky background and its rms over a whole frame, from a coarse mesh of boxes.

The photutils ``Background2D`` model (3σ-clipped SExtractor mode per box, boxes with too many bad
pixels filled by inverse-distance weighting, a median filter over the mesh, bicubic-spline
interpolation back to pixels), estimated tile by tile so a 25000² frame never has to be in memory,
and evaluated *pointwise*: any window of the frame gets exactly the values the whole-frame
evaluation would give. The photutils pipeline detects above it; the U-Net's inputs are the image
less it (:class:`SkySubtracted`), at training and at inference time alike.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ._kernels import clip_sorted_rows, sort_rows_nan_last, spline_rows
from .arrays import is_dask
from .tiling import iter_tiles, map_ordered

# -- reading -----------------------------------------------------------------------------------


def direct_source(array):
    """The array-like behind ``dask.array.from_array(x)`` (a FITS reader, memmap, h5py/zarr
    dataset), when ``array`` is exactly that and nothing more, else ``array`` itself.

    Slicing such an ``x`` reads just the window, where slicing the dask array reads whole chunks
    (2048² for our FITS reader) for every 512² tile: ~40× slower per tile here.
    """
    if not is_dask(array):
        return array
    try:
        layers = array.__dask_graph__().layers
    except AttributeError:  # pragma: no cover - every dask array has a HighLevelGraph today
        return array
    if len(layers) != 2:
        return array
    originals = [name for name in layers if str(name).startswith("original-")]
    if len(originals) != 1:
        return array
    values = list(dict(layers[originals[0]]).values())
    if len(values) != 1:
        return array
    source = values[0]
    if tuple(getattr(source, "shape", ())) != tuple(array.shape) or np.dtype(getattr(source, "dtype", None)) != array.dtype:
        return array
    return source


def read_float32(array, slices) -> np.ndarray:
    """A window of a numpy/memmap/dask array as native float32 (converted per window only)."""
    block = array[slices]
    if is_dask(block):  # in this thread: callers run windows in parallel already (tile threads, cluster
        block = block.compute(scheduler="sync")  # tasks, where a compute would become a task of a task)
    block = np.asarray(block)
    if block.dtype != np.float32:
        block = block.astype(np.float32)
    return block


# -- background mesh ---------------------------------------------------------------------------


def _bspline_taps(n_pixels_start: int, n_pixels_stop: int, box: int, pad: int, step: int = 1):
    """Indices and weights of the 4 cubic B-spline taps for pixel centres start, start+step, …
    (< stop) mapped to mesh coordinates the way scipy.ndimage.zoom(grid_mode=True) maps them."""
    pix = np.arange(n_pixels_start, n_pixels_stop, step, dtype=np.float64)
    u = (pix + 0.5) / box - 0.5 + pad
    base = np.floor(u)
    t = u - base
    t2, t3 = t * t, t * t * t
    weights = (
        (1 - t) ** 3 / 6.0,
        (3 * t3 - 6 * t2 + 4) / 6.0,
        (-3 * t3 + 3 * t2 + 3 * t + 1) / 6.0,
        t3 / 6.0,
    )
    index = base.astype(np.int64) - 1
    return [index + k for k in range(4)], weights


def clipped_box_statistics(boxes: np.ndarray, sigma: float = 3.0, maxiters: int = 10):
    """Per-row 3σ-clipped SExtractor background, std and number of kept pixels (NaN = bad).

    Same result as photutils' ``SigmaClip(sigma=3, maxiters=10)`` + ``SExtractorBackground`` +
    ``StdBackgroundRMS`` (what Background2D uses), with one sort per box instead of a median per
    iteration: a clipped set is always a contiguous range of the sorted values, so each row is
    sorted once (a compiled radix sort) and the iterations run compiled
    (:func:`._kernels.clip_sorted_rows`).
    """
    srt, n_good = sort_rows_nan_last(np.ascontiguousarray(boxes, dtype=np.float32))
    return clip_sorted_rows(srt, n_good, float(sigma), int(maxiters))


class MeshBackground:
    """Background and rms meshes over the whole image, evaluated pointwise for any window.

    Built from per-box statistics (filled in with :meth:`add_tile_stats` tile by tile, each tile a
    whole number of boxes, or all at once), then :meth:`finalize` fills excluded boxes (inverse
    distance weighting), median-filters the mesh and computes bicubic spline coefficients.
    """

    _PAD = 8  # mirror padding of the mesh before the spline prefilter (edge effects ~ 0.27**8)

    def __init__(self, shape, box_size: int, filter_size: int = 3, exclude_percentile: float = 10.0):
        self.shape = tuple(int(s) for s in shape)
        self.box = int(box_size)
        self.filter_size = int(filter_size)
        self.exclude_percentile = float(exclude_percentile)
        self.mesh_shape = tuple(-(-n // self.box) for n in self.shape)
        self.bkg_mesh = np.full(self.mesh_shape, np.nan)
        self.rms_mesh = np.full(self.mesh_shape, np.nan)
        self.ready = False

    def add_tile_stats(self, core: tuple[slice, slice], block: np.ndarray) -> None:
        """Statistics of the boxes of one tile core (``block`` = image[core], NaN = bad pixel)."""
        y0, x0 = core[0].start, core[1].start
        if y0 % self.box or x0 % self.box:
            raise ValueError("tile cores must start on box boundaries (tile_size a multiple of box_size)")
        b = self.box
        ny, nx = block.shape
        my, mx = -(-ny // b), -(-nx // b)
        padded = np.full((my * b, mx * b), np.nan, dtype=np.float32)
        padded[:ny, :nx] = block
        padded[~np.isfinite(padded)] = np.nan
        boxes = padded.reshape(my, b, mx, b).swapaxes(1, 2).reshape(my * mx, b * b)
        # in batches of boxes: the sort and prefix sums need ~40 bytes per pixel of scratch
        batch = max(1, (1 << 20) // (b * b))
        parts = [clipped_box_statistics(boxes[i : i + batch]) for i in range(0, len(boxes), batch)]
        bkg, rms, good = (np.concatenate(column) for column in zip(*parts))
        bad = good <= (1 - self.exclude_percentile / 100.0) * b * b
        bkg[bad] = np.nan
        rms[bad] = np.nan
        sy, sx = y0 // b, x0 // b
        self.bkg_mesh[sy : sy + my, sx : sx + mx] = bkg.reshape(my, mx)
        self.rms_mesh[sy : sy + my, sx : sx + mx] = rms.reshape(my, mx)

    def _fill_and_filter(self, mesh: np.ndarray, valid: np.ndarray) -> np.ndarray:
        from photutils.utils import ShepardIDWInterpolator

        mesh = mesh.copy()
        if not valid.all():
            yx_good = np.column_stack(np.nonzero(valid))
            yx_bad = np.column_stack(np.nonzero(~valid))
            mesh[~valid] = ShepardIDWInterpolator(yx_good, mesh[valid])(yx_bad, n_neighbors=min(10, len(yx_good)))
        f = self.filter_size
        if f > 1:  # median of the valid neighbours (NaN outside the mesh), as Background2D
            h = f // 2
            padded = np.pad(mesh, h, mode="constant", constant_values=np.nan)
            windows = np.lib.stride_tricks.sliding_window_view(padded, (f, f)).reshape(*mesh.shape, f * f)
            srt = np.sort(windows, axis=-1)  # NaN last
            count = np.count_nonzero(~np.isnan(srt), axis=-1)
            a = np.take_along_axis(srt, ((count - 1) // 2)[..., None], axis=-1)[..., 0]
            b = np.take_along_axis(srt, (count // 2)[..., None], axis=-1)[..., 0]
            mesh = 0.5 * (a + b)
        return mesh

    def finalize(self) -> MeshBackground:
        valid = np.isfinite(self.bkg_mesh) & np.isfinite(self.rms_mesh)
        if not valid.any():
            raise ValueError(
                "no background box has enough finite pixels: the image is empty (all NaN/inf, or finite "
                "values beyond float32's ±3.4e38, which become inf: rescale such an image) or "
                f"box_size={self.box} is too large for the valid area; check the image or lower box_size / raise exclude_percentile"
            )
        self.bkg_filled = self._fill_and_filter(self.bkg_mesh, valid)
        self.rms_filled = self._fill_and_filter(self.rms_mesh, valid)
        self._coef = {}
        for name, mesh in (("bkg", self.bkg_filled), ("rms", self.rms_filled)):
            padded = np.pad(mesh, self._PAD, mode="symmetric")
            self._coef[name] = (ndimage.spline_filter(padded, order=3, mode="mirror"), float(mesh.min()), float(mesh.max()))
        self.ready = True
        return self

    @property
    def rms_median(self) -> float:
        return float(np.median(self.rms_filled))

    def evaluate(self, name: str, window: tuple[slice, slice], step: tuple[int, int] = (1, 1)) -> np.ndarray:
        """The full-resolution ``"bkg"`` or ``"rms"`` map over ``window`` (float32), at every
        ``step``-th pixel of it when given.

        Pointwise: each pixel is the same 4×4-tap cubic B-spline sum whatever the window, so a
        tiled evaluation equals the untiled one exactly. The x taps are applied to the small
        coefficient mesh first, then the y taps gather whole rows (cheap, contiguous).
        """
        coef, lo, hi = self._coef[name]
        if lo == hi:
            return np.full((len(range(window[0].start, window[0].stop, step[0])),
                            len(range(window[1].start, window[1].stop, step[1]))), lo, np.float32)
        iy, wy = _bspline_taps(window[0].start, window[0].stop, self.box, self._PAD, step[0])
        ix, wx = _bspline_taps(window[1].start, window[1].stop, self.box, self._PAD, step[1])
        rows_needed = slice(int(iy[0].min()), int(iy[3].max()) + 1)
        sub = coef[rows_needed]
        cols = sub[:, ix[0]] * wx[0][None, :]
        for k in range(1, 4):
            cols += sub[:, ix[k]] * wx[k][None, :]
        base = rows_needed.start
        rows = np.stack([i - base for i in iy])
        weights = np.stack(wy).astype(np.float32)
        return spline_rows(cols.astype(np.float32), rows, weights, lo, hi)



#: side of the windows of the statistics pass (rounded down to whole boxes): statistics batch
#: better over larger windows, and the mesh is the same whatever the window
STAT_WINDOW = 1024


def estimate_mesh(image, box_size: int = 64, filter_size: int = 3, exclude_percentile: float = 10.0,
                  n_threads: int = 1, progress: Callable[[int, int], None] | None = None) -> MeshBackground:
    """The finalised :class:`MeshBackground` of a 2-D numpy/memmap/dask/FITS-reader array, read in
    windows of whole boxes (``n_threads`` at a time); ``progress(done, total)`` per window."""
    shape = tuple(int(s) for s in np.shape(image))
    if len(shape) != 2:
        raise ValueError(f"a background mesh needs a 2-D image, got shape {shape}")
    box = min(int(box_size), max(shape))
    mesh = MeshBackground(shape, box, filter_size, exclude_percentile)
    source = direct_source(image)

    def stats(window):  # each window fills its own boxes of the mesh: safe from several threads
        mesh.add_tile_stats(window.core, read_float32(source, window.core))

    side = box * max(1, STAT_WINDOW // box)
    windows = list(iter_tiles(shape, side))
    for n, _ in enumerate(map_ordered(stats, windows, max(1, int(n_threads)))):
        if progress is not None:
            progress(n + 1, len(windows))
    return mesh.finalize()


def window_ranges(key, shape, what: str) -> tuple[range, range]:
    """The (rows, columns) ranges of a 2-D slicing ``key`` of a lazy array of ``shape``: the one
    key check of the array-likes here and in :mod:`napari_galseg.frames` (slices only, steps ≥ 1;
    ``what`` names the array in the errors)."""
    if not isinstance(key, tuple) or len(key) != 2 or not all(isinstance(k, slice) for k in key):
        raise TypeError(f"{what} supports 2-D slicing only, e.g. a[y0:y1, x0:x1] or a[::8, ::8]")
    ys, xs = (range(*k.indices(n)) for k, n in zip(key, shape))
    if ys.step < 1 or xs.step < 1:
        raise ValueError(f"{what} does not support negative steps")
    return ys, xs


class SkySubtracted:
    """``image`` less its background mesh, as a read-only 2-D array-like: slicing it reads that
    window of ``image`` and subtracts the mesh evaluated there (float32). Steps are allowed (a
    strided sample evaluates the mesh only at the sampled pixels)."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, image, mesh: MeshBackground):
        self.image = image
        self.source = direct_source(image)
        self.mesh = mesh
        self.shape = tuple(int(s) for s in np.shape(image))
        if mesh.shape != self.shape:
            raise ValueError(f"the background mesh is for shape {mesh.shape}, the image has shape {self.shape}")

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        ys, xs = window_ranges(key, self.shape, "SkySubtracted")
        window = (slice(ys.start, ys.stop), slice(xs.start, xs.stop))
        block = read_float32(self.source, (slice(ys.start, ys.stop, ys.step), slice(xs.start, xs.stop, xs.step)))
        if not block.size:
            return block
        return block - self.mesh.evaluate("bkg", window, step=(ys.step, xs.step))

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


class MeshMap:
    """One map of a :class:`MeshBackground` (``"rms"`` or ``"bkg"``) as a read-only, lazy 2-D
    array-like: slicing evaluates the mesh over that window only, so an estimated noise map of a
    25000² frame costs the mesh, never a frame-sized array."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, mesh: MeshBackground, name: str = "rms"):
        if name not in ("rms", "bkg"):
            raise ValueError(f"a mesh map is 'rms' or 'bkg', got {name!r}")
        self.mesh, self.name, self.shape = mesh, name, tuple(mesh.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        ys, xs = window_ranges(key, self.shape, "MeshMap")
        if not len(ys) or not len(xs):
            return np.zeros((len(ys), len(xs)), np.float32)
        return self.mesh.evaluate(self.name, (slice(ys.start, ys.stop), slice(xs.start, xs.stop)),
                                  step=(ys.step, xs.step))

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)


#: the sky boxes of an estimated noise map: 128 px rather than the detection mesh's 64 px, whose
#: boxes hold more galaxy light and read the noise a few percent high on crowded fields
NOISE_BOX = 128


def estimate_rms_map(image, box_size: int = NOISE_BOX, n_threads: int = 1) -> MeshMap:
    """The 1σ noise map of a frame that came without one: the σ-clipped scatter of sky boxes
    (the Background2D mesh), smooth and lazy (see :class:`MeshMap`). Its ``.mesh.rms_median`` is
    the frame's typical noise."""
    return MeshMap(estimate_mesh(image, box_size=box_size, n_threads=n_threads), "rms")
