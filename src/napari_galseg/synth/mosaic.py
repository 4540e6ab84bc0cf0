"""Training fields that span a range of conditions: what the built-in models learn from.

One model for every frame has to see many PSFs, depths, densities and galaxy shapes. A *mosaic*
puts fields of different conditions side by side (each ``tile`` px square, drawn by GalSim or the
built-in generator) into one image with one truth map, so the ordinary training loop, its spatial
train/validation split and its patch sampler see all of them.

The noise map the network is given is the one it will have at inference on a user's frame that
came without one: each tile's noise is *estimated* from its pixels (:func:`estimate_rms_map`),
not copied from the generator.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..background import estimate_rms_map


@dataclass(frozen=True)
class ConditionRange:
    """The conditions a mosaic's tiles are drawn from (uniform, FWHM log-uniform)."""

    psf_fwhm: tuple[float, float] = (1.5, 6.0)
    psfs: tuple[str, ...] = ("moffat", "kolmogorov")
    moffat_beta: tuple[float, float] = (2.5, 4.5)
    #: sky electrons per pixel: with the read noise, the depth (noise 7-30 in the generator's units)
    sky_level: tuple[float, float] = (40.0, 900.0)
    galaxy_density: tuple[float, float] = (300.0, 1500.0)
    #: half-light radius (px) of a galaxy at the pivot flux: pixel scales ~0.1-0.3"
    size_pivot: tuple[float, float] = (1.4, 3.2)
    blend_fraction: tuple[float, float] = (0.05, 0.3)
    #: morphologies of the GalSim tiles (the rest bulge + disk); irregulars and mergers are left to
    #: the test fields, so a model card's scores are on shapes it never saw
    knotty_fraction: float = 0.35
    irregular_fraction: float = 0.0
    merger_fraction: float = 0.0
    #: share of the tiles drawn by the built-in Sérsic generator instead of GalSim
    sersic_share: float = 0.25

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def draw_conditions(n: int, seed: int, spec: ConditionRange = ConditionRange()) -> list[dict]:
    """``n`` tiles' generator settings: {"backend": "galsim"|"builtin", **options}."""
    rng = np.random.default_rng([seed, 0xC0D1])
    tiles = []
    for _ in range(n):
        fwhm = float(np.exp(rng.uniform(*np.log(spec.psf_fwhm))))
        common = {"psf_fwhm": round(fwhm, 3), "sky_level": round(float(rng.uniform(*spec.sky_level)), 1),
                  "galaxy_density": round(float(rng.uniform(*spec.galaxy_density)), 1),
                  "size_pivot": round(float(rng.uniform(*spec.size_pivot)), 3)}
        if rng.random() < spec.sersic_share:
            tiles.append({"backend": "builtin", "psf": "moffat",
                          "moffat_beta": round(float(rng.uniform(*spec.moffat_beta)), 2), **common})
            continue
        psf = str(rng.choice(list(spec.psfs)))
        extra = {"moffat_beta": round(float(rng.uniform(*spec.moffat_beta)), 2)} if psf == "moffat" else {}
        tiles.append({"backend": "galsim", "psf": psf, **extra, **common,
                      "blend_fraction": round(float(rng.uniform(*spec.blend_fraction)), 3),
                      "knotty_fraction": spec.knotty_fraction, "irregular_fraction": spec.irregular_fraction,
                      "merger_fraction": spec.merger_fraction})
    return tiles


def make_tile_field(settings: dict, size: int, seed: int):
    """One field of ``settings`` (as :func:`draw_conditions` gives them)."""
    options = dict(settings)
    backend = options.pop("backend", "galsim")
    if backend == "builtin":
        from .builtin import make_field

        return make_field(size, seed, **options)
    from .galsim_backend import make_galsim_field

    return make_galsim_field(size, seed, **options)


@dataclass
class Mosaic:
    """Fields of several conditions side by side, as one training field."""

    image: np.ndarray
    truth: np.ndarray
    #: the noise as estimated from each tile's pixels (what inference without a map will see)
    rms: np.ndarray
    #: the generator's exact noise, for reference
    true_rms: np.ndarray
    tiles: list[dict] = field(default_factory=list)


def make_mosaic(grid: tuple[int, int], tile: int, seed: int, spec: ConditionRange = ConditionRange(),
                progress=None) -> Mosaic:
    """A ``grid`` (rows, columns) of ``tile``-px fields with conditions drawn from ``spec``."""
    rows, cols = grid
    settings = draw_conditions(rows * cols, seed, spec)
    shape = (rows * tile, cols * tile)
    image = np.zeros(shape, np.float32)
    truth = np.zeros(shape, np.int32)
    rms = np.zeros(shape, np.float32)
    true_rms = np.zeros(shape, np.float32)
    offset = 0
    for k, options in enumerate(settings):
        f = make_tile_field(options, tile, seed * 1000 + k)
        r, c = divmod(k, cols)
        window = (slice(r * tile, (r + 1) * tile), slice(c * tile, (c + 1) * tile))
        image[window] = f.image
        true_rms[window] = f.rms
        rms[window] = np.asarray(estimate_rms_map(f.image))
        truth[window] = np.where(f.truth > 0, f.truth + offset, 0)
        offset += int(f.truth.max())
        if progress is not None:
            progress(k + 1, len(settings), f"tile {k + 1}/{len(settings)}")
    return Mosaic(image, truth, rms, true_rms, settings)
