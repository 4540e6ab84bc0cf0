"""Patch datasets over huge fields: a spatial split, galaxy-aware sampling, augmentation, targets.

Patches are read lazily from whatever 2-D array holds the field (numpy, ``np.memmap``, astropy's
memmap, or a dask array such as ``napari_galseg.io.open_fits(path).data``), converted to native
float32 per patch, and passed through a fitted preprocessing recipe. Nothing reads the whole image.

Why a *spatial* split: random patches overlap, so a random train/test split puts the same pixels in
both and the test score leaks. Here the field is cut into blocks; each block goes to exactly one of
train/val/test and every patch lies inside one block, so no test pixel is ever seen in training.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)
SPLITS = ("train", "val", "test")


# -- reading ---------------------------------------------------------------------------------------
def read_window(array, y0: int, y1: int, x0: int, x1: int, dtype=np.float32) -> np.ndarray:
    """``array[y0:y1, x0:x1]`` as a native-byte-order numpy array (computes a dask slice in this
    thread: on a dask worker a compute would otherwise come back to the cluster as a task of a task)."""
    block = array[y0:y1, x0:x1]
    if hasattr(block, "compute") and not isinstance(block, np.ndarray):
        block = block.compute(scheduler="sync")
    return np.asarray(block, dtype=dtype)


def check_field(image, truth=None, rms=None) -> tuple[int, int]:
    """Shape of a field, with a clear error when image/truth/rms disagree."""
    if getattr(image, "ndim", None) != 2:
        raise ValueError(f"the image must be 2-D, got shape {getattr(image, 'shape', None)}")
    shape = tuple(int(s) for s in image.shape)
    for name, other in (("truth", truth), ("rms", rms)):
        if other is not None and tuple(other.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(other.shape)} but the image has {shape}; they must match")
    return shape  # type: ignore[return-value]


# -- the spatial split -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpatialSplit:
    """Blocks of a field assigned to train / val / test (disjoint, together covering the field)."""

    shape: tuple[int, int]
    block_size: int
    train: tuple[Box, ...]
    val: tuple[Box, ...]
    test: tuple[Box, ...]

    def blocks(self, split: str) -> tuple[Box, ...]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return getattr(self, split)

    def mask(self, split: str) -> np.ndarray:
        """Boolean image of the blocks of ``split`` (for plots and tests; small fields only)."""
        out = np.zeros(self.shape, bool)
        for y0, y1, x0, x1 in self.blocks(split):
            out[y0:y1, x0:x1] = True
        return out

    def to_dict(self) -> dict:
        return {k: (list(map(list, v)) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


def _edges(n: int, block: int) -> list[int]:
    count = max(1, n // block)
    return [round(i * n / count) for i in range(count + 1)]


def default_block_size(shape: tuple[int, int], patch_size: int) -> int:
    """Blocks of at least two patches, and at least 4x4 blocks on fields large enough."""
    return max(2 * patch_size, min(shape) // 4)


def spatial_split(
    shape: tuple[int, int],
    patch_size: int,
    block_size: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> SpatialSplit:
    """Cut ``shape`` into a grid of blocks (each >= ``block_size`` >= ``patch_size`` per side) and
    assign them to splits at random (seeded). Each non-zero fraction gets at least one block."""
    ny, nx = int(shape[0]), int(shape[1])
    if min(ny, nx) < patch_size:
        raise ValueError(f"the field ({ny}x{nx}) is smaller than one patch ({patch_size}); use a smaller patch_size")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val_fraction, test_fraction and their sum < 1; got {val_fraction}, {test_fraction}")
    block = int(block_size or default_block_size((ny, nx), patch_size))
    block = max(block, patch_size)
    ye, xe = _edges(ny, block), _edges(nx, block)
    boxes = [(ye[i], ye[i + 1], xe[j], xe[j + 1]) for i in range(len(ye) - 1) for j in range(len(xe) - 1)]
    n = len(boxes)
    n_val = math.ceil(val_fraction * n) if val_fraction > 0 else 0
    n_test = math.ceil(test_fraction * n) if test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise ValueError(
            f"the field gives only {n} block(s) of {block} px: not enough for train/val/test; "
            "use a smaller block_size or patch_size, or a larger field"
        )
    order = np.random.default_rng(seed).permutation(n)
    val = tuple(boxes[i] for i in sorted(order[:n_val]))
    test = tuple(boxes[i] for i in sorted(order[n_val:n_val + n_test]))
    train = tuple(boxes[i] for i in sorted(order[n_val + n_test:]))
    return SpatialSplit((ny, nx), block, train, val, test)


# -- targets ---------------------------------------------------------------------------------------
def touching_borders(labels: np.ndarray) -> np.ndarray:
    """Pixels of an object that touch a *different* object (4-connectivity)."""
    border = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        a = labels.take(range(0, labels.shape[axis] - 1), axis=axis)
        b = labels.take(range(1, labels.shape[axis]), axis=axis)
        differ = (a != b) & (a > 0) & (b > 0)
        if axis == 0:
            border[:-1] |= differ
            border[1:] |= differ
        else:
            border[:, :-1] |= differ
            border[:, 1:] |= differ
    return border


def instance_targets(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground mask and per-object normalised distance to the object's edge (float32 in [0, 1]).

    The distance is 1 at each object's most interior pixel and falls to 0 at its edge and where it
    touches another object, so thresholding it gives one core per object even for touching pairs.
    """
    labels = np.asarray(labels)
    fg = labels > 0
    if not fg.any():
        return fg.astype(np.float32), np.zeros(labels.shape, np.float32)
    interior = fg & ~touching_borders(labels)
    dist = ndimage.distance_transform_edt(interior).astype(np.float32)
    ids = np.unique(labels[fg])
    peak = np.zeros(int(ids.max()) + 1, np.float32)
    peak[ids] = ndimage.maximum(dist, labels, ids)
    scale = peak[labels]
    norm = np.divide(dist, scale, out=np.zeros_like(dist), where=scale > 0)
    return fg.astype(np.float32), norm


# -- augmentation ----------------------------------------------------------------------------------
@dataclass
class Augmentation:
    """Random changes a galaxy survey can really show, applied to raw pixels before the recipe.

    - the 8 flips/rotations of the square (the sky has no preferred orientation);
    - extra Gaussian noise drawn from the rms map (``sigma = k * rms``, ``k`` up to ``noise``; the rms
      channel is raised to match, so the model sees deeper and shallower data);
    - flux scaling of the sources: the image is scaled by ``s`` (log-uniform in ``flux_scale``)
      about the patch's sky level (its median), noise unchanged, so galaxies get brighter or fainter
      relative to the noise. (Scaling sky and noise too would only be undone by the recipe's
      intervals, which are fitted on each image.)
    """

    dihedral: bool = True
    noise: float = 0.3
    noise_probability: float = 0.5
    flux_scale: tuple[float, float] = (0.8, 1.25)

    def __call__(self, rng: np.random.Generator, image, rms, truth):
        lo, hi = self.flux_scale
        if hi > lo > 0:
            s = np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            sky = np.nanmedian(image, axis=(-2, -1), keepdims=True).astype(np.float32)  # per band for bands
            image = sky + (image - sky) * s
        if self.noise > 0 and rng.random() < self.noise_probability:
            k = float(rng.uniform(0, self.noise))
            image = image + rng.standard_normal(image.shape, dtype=np.float32) * (k * rms)
            rms = rms * np.float32(np.sqrt(1 + k * k))
        if self.dihedral:
            t = int(rng.integers(8))
            image, rms, truth = (dihedral(a, t) for a in (image, rms, truth))
        return image, rms, truth


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """The ``t``-th (0..7) element of the symmetry group of the square applied to the last two axes
    of ``a`` (a 2-D array, or the ``(bands, h, w)`` patch of several bands)."""
    if t >= 4:
        a = a[..., ::-1]
    return np.ascontiguousarray(np.rot90(a, t % 4, axes=(-2, -1)))


# -- datasets --------------------------------------------------------------------------------------
def galaxy_occupancy(truth, cell: int) -> np.ndarray:
    """Coarse map: does a ``cell``-sized square hold any galaxy pixel? One streamed pass over truth."""
    ny, nx = truth.shape
    gy, gx = math.ceil(ny / cell), math.ceil(nx / cell)
    occ = np.zeros((gy, gx), bool)
    rows = max(1, (1 << 24) // max(nx, 1) // cell) * cell  # ~16 Mpix per read
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        band = read_window(truth, y0, y1, 0, nx, dtype=None) > 0
        py, px = (-band.shape[0]) % cell, (-nx) % cell
        band = np.pad(band, ((0, py), (0, px)))
        occ[y0 // cell: y0 // cell + band.shape[0] // cell] = band.reshape(
            band.shape[0] // cell, cell, band.shape[1] // cell, cell).any(axis=(1, 3))
    return occ


class _FieldPatches:
    """Shared reading + preprocessing of patches (image, rms, truth) -> (inputs, targets)."""

    def __init__(self, image, truth, rms, recipe, patch_size: int):
        self.shape = check_field(image, truth, rms)
        if recipe is None:
            raise ValueError("a fitted preprocessing recipe is needed (see napari_galseg.preprocess.default_recipe().fit)")
        self.image, self.truth, self.rms, self.recipe = image, truth, rms, recipe
        self.patch_size = int(patch_size)

    def read(self, y0: int, x0: int):
        p = self.patch_size
        image = read_window(self.image, y0, y0 + p, x0, x0 + p)
        rms = read_window(self.rms, y0, y0 + p, x0, x0 + p) if self.rms is not None else None
        truth = read_window(self.truth, y0, y0 + p, x0, x0 + p, dtype=np.int64)
        return image, rms, truth

    def encode(self, image, rms, truth):
        inputs = self.recipe.network_input(image, rms)  # no-data pixels at the recipe's fills, as at inference
        fg, dist = instance_targets(truth)
        return inputs, np.stack([fg, dist])


class PatchDataset(_FieldPatches):
    """Random training patches inside the given blocks; ``len`` = patches per epoch.

    A fraction ``positive_fraction`` of patches is centred near a galaxy (from a coarse occupancy map)
    so training does not drown in empty sky; the rest are uniform. Item ``i`` of epoch ``e`` depends
    only on ``(seed, e, i)``: runs are reproducible and a resumed run sees the same patches.
    Items are ``(inputs float32 (C, p, p), targets float32 (2, p, p))``: foreground and distance.
    """

    def __init__(self, image, truth, rms, recipe, blocks: Sequence[Box], patch_size: int = 256,
                 patches_per_epoch: int = 256, positive_fraction: float = 0.7,
                 augmentation: Augmentation | None = None, seed: int = 0, occupancy_cell: int | None = None):
        super().__init__(image, truth, rms, recipe, patch_size)
        p = self.patch_size
        self.blocks = [b for b in blocks if b[1] - b[0] >= p and b[3] - b[2] >= p]
        if not self.blocks:
            raise ValueError(f"no block is at least {p} px on each side; use a smaller patch_size")
        self.n = int(patches_per_epoch)
        self.positive_fraction = float(positive_fraction)
        self.augmentation = augmentation
        self.seed = int(seed)
        self.epoch = 0
        self.cell = int(occupancy_cell or max(8, p // 4))
        self._weights = np.array([(b[1] - b[0] - p + 1) * (b[3] - b[2] - p + 1) for b in self.blocks], float)
        self._weights /= self._weights.sum()
        self._positive = self._positive_cells() if self.positive_fraction > 0 else []
        self._positive_end = np.cumsum([len(cells) for cells in self._positive]).astype(int)
        self._n_positive = int(self._positive_end[-1]) if len(self._positive_end) else 0

    def _positive_cells(self) -> list[np.ndarray]:
        occ = galaxy_occupancy(self.truth, self.cell)
        c = self.cell
        cells = []
        for y0, y1, x0, x1 in self.blocks:
            gy, gx = np.nonzero(occ[y0 // c: math.ceil(y1 / c), x0 // c: math.ceil(x1 / c)])
            cells.append(np.stack([gy + y0 // c, gx + x0 // c], axis=1))
        return cells

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def position(self, rng: np.random.Generator) -> tuple[int, int]:
        """Origin of a patch: near a random galaxy cell (any block), or uniform in a random block."""
        p, c = self.patch_size, self.cell
        if self._n_positive and rng.random() < self.positive_fraction:
            j = int(rng.integers(self._n_positive))
            k = int(np.searchsorted(self._positive_end, j, side="right"))
            y0, y1, x0, x1 = self.blocks[k]
            start = self._positive_end[k - 1] if k else 0
            cy, cx = self._positive[k][j - start] * c
            # any patch inside the block that contains the cell's centre
            ylo, yhi = max(y0, cy + c // 2 - p + 1), min(y1 - p, cy + c // 2)
            xlo, xhi = max(x0, cx + c // 2 - p + 1), min(x1 - p, cx + c // 2)
            if ylo <= yhi and xlo <= xhi:
                return int(rng.integers(ylo, yhi + 1)), int(rng.integers(xlo, xhi + 1))
        k = int(rng.choice(len(self.blocks), p=self._weights))
        y0, y1, x0, x1 = self.blocks[k]
        return int(rng.integers(y0, y1 - p + 1)), int(rng.integers(x0, x1 - p + 1))

    def __getitem__(self, index: int):
        if not 0 <= index < self.n:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        y0, x0 = self.position(rng)
        image, rms, truth = self.read(y0, x0)
        if self.augmentation is not None:
            if rms is None:
                rms = np.full_like(image, np.nanstd(image) or 1.0)
            image, rms, truth = self.augmentation(rng, image, rms, truth)
        return self.encode(image, rms, truth)


def grid_positions(blocks: Sequence[Box], patch_size: int) -> list[tuple[int, int]]:
    """Patch origins covering each block (stride = patch size, last one flush with the block end)."""
    p = patch_size
    out = []
    for y0, y1, x0, x1 in blocks:
        if y1 - y0 < p or x1 - x0 < p:
            continue
        ys = list(range(y0, y1 - p + 1, p))
        xs = list(range(x0, x1 - p + 1, p))
        if ys[-1] != y1 - p:
            ys.append(y1 - p)
        if xs[-1] != x1 - p:
            xs.append(x1 - p)
        out.extend((y, x) for y in ys for x in xs)
    return out


class GridPatchDataset(_FieldPatches):
    """Fixed patches tiling the given blocks, no augmentation: for validation and test scores."""

    def __init__(self, image, truth, rms, recipe, blocks: Sequence[Box], patch_size: int = 256,
                 max_patches: int | None = None, seed: int = 0):
        super().__init__(image, truth, rms, recipe, patch_size)
        positions = grid_positions(blocks, self.patch_size)
        if max_patches and len(positions) > max_patches:
            keep = np.sort(np.random.default_rng(seed).choice(len(positions), max_patches, replace=False))
            positions = [positions[i] for i in keep]
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int):
        y0, x0 = self.positions[index]
        return self.encode(*self.read(y0, x0))
